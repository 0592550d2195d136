"""The units cases are dispatched to (派遣): grid teams, property offices, 城管, 派出所, 消防, 医疗.

Loaded once from a YAML file (the bundled ``models/data/units.yaml`` or ``PUHUI_UNITS_FILE``) and
checked against the zone registry (the grids and sites a unit serves must exist); immutable
afterwards. Reading that file is the only I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from enum import StrEnum
from importlib.resources import as_file, files
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.documents import load_document
from models.errors import ConfigFileError
from models.zones import SLUG_PATTERN, Grid, ZoneRegistry

__all__ = [
    "Unit",
    "UnitKind",
    "UnitRegistry",
    "UnitsFileError",
    "bundled_units_path",
    "load_bundled_units",
    "load_units",
    "parse_units",
]


class UnitKind(StrEnum):
    """What kind of unit (the Chinese name in :data:`KIND_ZH`)."""

    GRID = "grid"
    PROPERTY = "property"
    URBAN_MANAGEMENT = "urban_management"
    POLICE = "police"
    FIRE = "fire"
    MEDICAL = "medical"


KIND_ZH: dict[UnitKind, str] = {
    UnitKind.GRID: "网格",
    UnitKind.PROPERTY: "物业",
    UnitKind.URBAN_MANAGEMENT: "城管",
    UnitKind.POLICE: "派出所",
    UnitKind.FIRE: "消防",
    UnitKind.MEDICAL: "医疗",
}


class Unit(BaseModel):
    """One unit that can receive cases."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]
    name_zh: Annotated[str, Field(min_length=1, max_length=128)]
    name_en: Annotated[str, Field(min_length=1, max_length=128)]
    kind: UnitKind
    grids: Annotated[tuple[Grid, ...], Field(min_length=1)]
    sites: tuple[Annotated[str, Field(pattern=SLUG_PATTERN)], ...] = ()
    note: str | None = None

    @property
    def kind_zh(self) -> str:
        return KIND_ZH[self.kind]


class UnitsFileError(ConfigFileError):
    """The units file is unusable; every line names the file, the unit and the field."""

    def __init__(
        self,
        file: str | Path | None,
        problems: Sequence[tuple[str | None, str]],
        line: int | None = None,
    ) -> None:
        self.problems = list(problems)
        where = "units" if file is None else str(file)
        if line is not None:
            where += f":{line}"
        lines = [f"{where}: {unit + ': ' if unit else ''}{msg}" for unit, msg in self.problems]
        super().__init__("\n".join(lines), file=file, line=line)


class UnitRegistry:
    """Units by id, in file order."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self._units = {u.id: u for u in units}

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._units.values())

    def __len__(self) -> int:
        return len(self._units)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._units

    def get(self, unit_id: str) -> Unit | None:
        return self._units.get(unit_id)

    def serving(self, grid: str | None, site: str | None) -> list[Unit]:
        """The units that serve a place, nearest first: those that serve its site, then the
        grid team(s) of its grid, then the other units that cover its grid (城管, 派出所, …);
        file order within each group."""
        rank: list[tuple[int, Unit]] = []
        for unit in self._units.values():
            grids = {g.value for g in unit.grids}
            if site is not None and site in unit.sites:
                rank.append((0, unit))
            elif grid is not None and grid in grids and unit.kind is UnitKind.GRID:
                rank.append((1, unit))
            elif grid is not None and grid in grids and not unit.sites:
                rank.append((2, unit))
        return [unit for _, unit in sorted(rank, key=lambda pair: pair[0])]


def parse_units(
    document: Any, zones: ZoneRegistry | None = None, file: str | Path | None = None
) -> UnitRegistry:
    """Validate a parsed units document ``{units: [...]}`` (against ``zones`` when given)."""
    problems: list[tuple[str | None, str]] = []
    if not isinstance(document, dict) or not isinstance(document.get("units"), list):
        raise UnitsFileError(file, [(None, "top level must be a mapping {units: [...]}")])
    problems += [(None, f"{k}: unknown top-level key") for k in document if k != "units"]
    raw_units = document["units"]
    if not raw_units:
        raise UnitsFileError(file, [(None, "units: the file has no units")])
    sites = {z.site for z in zones} if zones is not None else None
    units: list[Unit] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_units):
        if not isinstance(raw, dict):
            problems.append((None, f"units[{index}]: a unit must be a mapping"))
            continue
        uid = raw.get("id") if isinstance(raw.get("id"), str) else f"units[{index}]"
        try:
            unit = Unit.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"])
                problems.append((uid, f"{field}: {err['msg']}"))
            continue
        if unit.id in seen:
            problems.append((unit.id, "id: duplicate id"))
        seen.add(unit.id)
        if sites is not None:
            problems += [
                (unit.id, f"sites: unknown site {s!r}") for s in unit.sites if s not in sites
            ]
        units.append(unit)
    if problems:
        raise UnitsFileError(file, problems)
    return UnitRegistry(units)


def load_units(path: Path, zones: ZoneRegistry | None = None) -> UnitRegistry:
    """Read and validate a units file (see ``models/data/units.yaml`` for the format)."""
    try:
        document = load_document(path)
    except ConfigFileError as exc:
        raise UnitsFileError(path, [(None, exc.detail)], line=exc.line) from exc
    return parse_units(document, zones, path)


def bundled_units_path() -> Path:
    """The bundled units file, ``models/data/units.yaml``."""
    return Path(str(files("models").joinpath("data", "units.yaml")))


def load_bundled_units(zones: ZoneRegistry | None = None) -> UnitRegistry:
    """The 打浦桥 units shipped with the package."""
    with as_file(files("models").joinpath("data", "units.yaml")) as path:
        return load_units(path, zones)
