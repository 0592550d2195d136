"""The zone registry: the places in 打浦桥街道 that readings, rules and alerts refer to.

A *zone* is the smallest area the pipeline reasons about (a lane of 田子坊, the atrium of
日月光中心广场, a residential area). Each zone belongs to a *site* (the named place) and to one of
the street office's four grids. Its walkable area turns a people count into a density; an optional
capacity (最大承载量) turns it into an occupancy.

The registry is read once from YAML (`load_zones`, or `load_bundled_zones` for the copy shipped in
``models/data/zones.yaml``) and is immutable afterwards. Reading that file is the only I/O here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from importlib.resources import as_file, files
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.documents import load_document
from models.errors import ConfigFileError

__all__ = [
    "Bounds",
    "Grid",
    "LocalizedText",
    "Location",
    "Outline",
    "Problem",
    "Zone",
    "ZoneRegistry",
    "ZoneRegistryError",
    "bundled_zones_path",
    "load_bundled_zones",
    "load_registry_file",
    "load_zones",
]

SLUG_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{1,62}$"
"""Zone ids and site slugs: lowercase ASCII, digits and hyphens, 2-63 characters."""

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]

# (zone_id, field, message). zone_id / field are None when the problem is not about one zone /
# one field (a missing file, malformed YAML, ...).
Problem = tuple[str | None, str | None, str]


class Grid(StrEnum):
    """The four grids of 打浦桥街道, split by 鲁班路 (N-S) and 徐家汇路 (E-W)."""

    ZHONGTAI = "zhongtai"  # 中泰: 田子坊, 日月光 (business district, "宜游")
    ZHONGSHUN = "zhongshun"  # 中顺: office towers ("宜商")
    ZHONGHAI = "zhonghai"  # 中海: property self-governance ("宜业")
    ZHONGHUI = "zhonghui"  # 中汇: community facilities ("宜居")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalizedText(_Frozen):
    """A name in Chinese and English; both are required and must not be blank."""

    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)

    @field_validator("zh", "en")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Location(_Frozen):
    """A WGS-84 point. In the bundled registry these are approximate, for display only."""

    lat: float = Field(ge=-90, le=90, strict=True, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, strict=True, allow_inf_nan=False)


class Bounds(_Frozen):
    """A WGS-84 box (the district's extent): every outline and location must lie inside it."""

    south: float = Field(ge=-90, le=90, strict=True, allow_inf_nan=False)
    west: float = Field(ge=-180, le=180, strict=True, allow_inf_nan=False)
    north: float = Field(ge=-90, le=90, strict=True, allow_inf_nan=False)
    east: float = Field(ge=-180, le=180, strict=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if not (self.south < self.north and self.west < self.east):
            raise ValueError("bounds need south < north and west < east")
        return self

    def contains(self, lon: float, lat: float) -> bool:
        """Whether the point is inside the box (edges included)."""
        return self.west <= lon <= self.east and self.south <= lat <= self.north


LonLat = tuple[
    Annotated[float, Field(ge=-180, le=180, strict=True, allow_inf_nan=False)],
    Annotated[float, Field(ge=-90, le=90, strict=True, allow_inf_nan=False)],
]


class Outline(_Frozen):
    """A zone's outline: a closed ring of ``[lon, lat]`` points (WGS-84), for the map only.

    Closed (the last point repeats the first), at least three distinct corners, a non-zero area,
    and no edge crossing another. ``estimated`` must be stated: an outline nobody surveyed is
    marked so, as areas are.
    """

    points: list[LonLat] = Field(min_length=4)
    estimated: bool = Field(strict=True)

    @field_validator("points")
    @classmethod
    def _a_simple_closed_ring(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if points[0] != points[-1]:
            raise ValueError("an outline must be closed: its last point must repeat the first")
        ring = points[:-1]
        if len(set(ring)) < 3:
            raise ValueError("an outline needs at least 3 distinct points")
        if abs(_ring_area(points)) == 0:
            raise ValueError("an outline must enclose an area (its points are on one line)")
        if _self_intersects(points):
            raise ValueError("an outline must not cross itself")
        return points

    def centroid(self) -> tuple[float, float]:
        """The ring's area centroid ``(lon, lat)`` (planar: fine at district scale)."""
        ox, oy = self.points[0]  # relative to a corner: no cancellation at 121°, 31°
        pts = [(x - ox, y - oy) for x, y in self.points]
        area = _ring_area(pts)
        cx = cy = 0.0
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            cross = x0 * y1 - x1 * y0
            cx += (x0 + x1) * cross
            cy += (y0 + y1) * cross
        return ox + cx / (6 * area), oy + cy / (6 * area)


def _ring_area(points: Sequence[tuple[float, float]]) -> float:
    """Signed planar area of a closed ring (shoelace), in squared degrees."""
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(points))


def _orientation(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> int:
    value = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (value > 0) - (value < 0)


def _on_segment(a: tuple[float, float], b: tuple[float, float], p: tuple[float, float]) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    o1, o2, o3, o4 = (
        _orientation(a, b, c),
        _orientation(a, b, d),
        _orientation(c, d, a),
        (_orientation(c, d, b)),
    )
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def _self_intersects(points: Sequence[tuple[float, float]]) -> bool:
    """Whether two non-adjacent edges of the closed ring touch (O(n²): outlines are small)."""
    edges = list(itertools.pairwise(points))
    n = len(edges)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a corner
            if _segments_meet(*edges[i], *edges[j]):
                return True
    return False


class Zone(_Frozen):
    """One monitored area: a walkable area, optionally a capacity and a location.

    ``estimated`` marks an area/capacity that was estimated rather than surveyed; such a zone must
    say in ``notes`` how the figures were obtained.
    """

    id: Slug
    name: LocalizedText
    site: Slug
    grid: Grid
    area_m2: float = Field(gt=0, strict=True, allow_inf_nan=False)
    capacity: int | None = Field(default=None, gt=0, strict=True)
    location: Location | None = None
    outline: Outline | None = None
    estimated: bool = Field(default=False, strict=True)
    notes: str | None = Field(default=None, validate_default=True)

    @field_validator("notes")
    @classmethod
    def _estimates_are_explained(cls, notes: str | None, info: ValidationInfo) -> str | None:
        # Numbers nobody measured must carry their reasoning, or they end up trusted as facts.
        if info.data.get("estimated") and not (notes and notes.strip()):
            raise ValueError("an estimated zone must say how its area/capacity were derived")
        return notes

    def density(self, people: float) -> float:
        """Return persons per m² of walkable area for ``people`` persons in the zone.

        Raises ``ValueError`` if ``people`` is negative or not finite.
        """
        _check_people(people)
        return people / self.area_m2

    def occupancy(self, people: float) -> float | None:
        """Return ``people`` as a fraction of the zone's capacity (1.0 = at capacity).

        Returns ``None`` when the zone has no capacity. Raises ``ValueError`` if ``people`` is
        negative or not finite.
        """
        _check_people(people)
        if self.capacity is None:
            return None
        return people / self.capacity


def _check_people(people: float) -> None:
    if not math.isfinite(people) or people < 0:
        raise ValueError(f"people must be a finite number >= 0, got {people!r}")


class ZoneRegistryError(ConfigFileError):
    """The zone registry is unusable; lists every problem found.

    ``problems`` holds ``(zone_id, field, message)`` tuples. ``zone_id`` and ``field`` are those of
    the first problem (``None`` where not applicable); ``file`` is the registry file (``None`` for
    a registry built in memory). Each line of the message names the file, the zone and the field.
    """

    def __init__(
        self, file: str | Path | None, problems: Sequence[Problem], *, line: int | None = None
    ) -> None:
        if not problems:
            raise ValueError("ZoneRegistryError needs at least one problem")
        name = None if file is None else str(file)
        self.problems: list[Problem] = list(problems)
        self.zone_id: str | None = self.problems[0][0]
        lines = [_format_problem(name, *problem) for problem in self.problems]
        if len(lines) > 1:
            lines.insert(0, f"{name or 'zone registry'}: {len(lines)} problems")
        super().__init__("\n".join(lines), file=name, field=self.problems[0][1], line=line)


def _format_problem(file: str | None, zone_id: str | None, field: str | None, msg: str) -> str:
    where = file or "zone registry"
    if zone_id is not None:
        where += f": zone {zone_id!r}"
        if field is not None:
            where += f" field {field!r}"
    elif field is not None:
        where += f": field {field!r}"
    return f"{where}: {msg}"


class ZoneRegistry:
    """An immutable collection of zones, keyed by id, iterated in the order given (file order).

    ``in`` accepts a zone id (or a ``Zone``, which must be the registered one). Duplicate ids raise
    ``ZoneRegistryError``.
    """

    __slots__ = ("_by_id", "_zones", "bounds")

    def __init__(self, zones: Iterable[Zone], bounds: Bounds | None = None) -> None:
        ordered = tuple(zones)
        by_id: dict[str, Zone] = {}
        duplicates: list[Problem] = []
        for zone in ordered:
            if zone.id in by_id:
                duplicates.append((zone.id, "id", "duplicate id"))
            by_id[zone.id] = zone
        if duplicates:
            raise ZoneRegistryError(None, duplicates)
        if bounds is not None and (outside := _outside(ordered, bounds)):
            raise ZoneRegistryError(None, outside)
        #: The district's box, when the registry gives one (the map's extent).
        self.bounds: Bounds | None = bounds
        self._zones: tuple[Zone, ...] = ordered
        self._by_id: Mapping[str, Zone] = MappingProxyType(by_id)

    def get(self, zone_id: str) -> Zone | None:
        """Return the zone with this id, or ``None``."""
        return self._by_id.get(zone_id)

    def __getitem__(self, zone_id: str) -> Zone:
        return self._by_id[zone_id]

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Zone):
            return self._by_id.get(item.id) == item
        return isinstance(item, str) and item in self._by_id

    def __iter__(self) -> Iterator[Zone]:
        return iter(self._zones)

    def __len__(self) -> int:
        return len(self._zones)

    def __repr__(self) -> str:
        return f"ZoneRegistry({len(self._zones)} zones)"

    def ids(self) -> frozenset[str]:
        """Return the set of zone ids."""
        return frozenset(self._by_id)

    def sites(self) -> dict[str, list[Zone]]:
        """Return zones grouped by site slug (sites in order of first appearance); a fresh copy."""
        grouped: dict[str, list[Zone]] = {}
        for zone in self._zones:
            grouped.setdefault(zone.site, []).append(zone)
        return grouped

    def by_grid(self, grid: Grid | str) -> list[Zone]:
        """Return the zones of one grid, in registry order; ``ValueError`` for an unknown grid."""
        wanted = Grid(grid)
        return [zone for zone in self._zones if zone.grid is wanted]


def _outside(zones: Iterable[Zone], bounds: Bounds) -> list[Problem]:
    """Every outline point and location outside ``bounds``, as problems."""
    problems: list[Problem] = []
    for zone in zones:
        if zone.location is not None and not bounds.contains(zone.location.lon, zone.location.lat):
            problems.append((zone.id, "location", "outside the registry's bounds"))
        if zone.outline is not None:
            for index, (lon, lat) in enumerate(zone.outline.points):
                if not bounds.contains(lon, lat):
                    where = f"outline.points.{index}"
                    problems.append((zone.id, where, f"[{lon}, {lat}] is outside the bounds"))
                    break
    return problems


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _dotted(loc: tuple[int | str, ...]) -> str | None:
    return ".".join(str(part) for part in loc) or None


def _read_bounds(raw: object, problems: list[Problem]) -> Bounds | None:
    """The registry's ``bounds`` (``None`` when absent); its faults appended to ``problems``."""
    if raw is None:
        return None
    try:
        return Bounds.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append((None, _dotted(("bounds", *tuple(error["loc"]))), error["msg"]))
        return None


def _read_zones(raw_zones: list[object], problems: list[Problem]) -> list[Zone]:
    """The zones that validate; every fault (not a mapping, a bad field, a duplicate id)
    appended to ``problems``."""
    zones: list[Zone] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(raw_zones):
        if not isinstance(raw, dict):
            problems.append(
                (None, None, f"zones[{index}]: a zone must be a mapping, got {_type_name(raw)}")
            )
            continue
        raw_id = raw.get("id")
        zone_id = raw_id if isinstance(raw_id, str) and raw_id else None
        where = "" if zone_id is not None else f"zones[{index}]: "
        if zone_id is not None:
            if zone_id in first_index:
                first = first_index[zone_id]
                problems.append((zone_id, "id", f"duplicate id (first defined at zones[{first}])"))
            else:
                first_index[zone_id] = index
        try:
            zones.append(Zone.model_validate(raw))
        except ValidationError as exc:
            for error in exc.errors():
                problems.append((zone_id, _dotted(tuple(error["loc"])), where + error["msg"]))
    return zones


def load_zones(path: Path) -> ZoneRegistry:
    """Read and validate a zone registry from a YAML file ``{zones: [zone, ...]}``.

    Raises ``ZoneRegistryError`` if the file is missing or unreadable, is not YAML, does not have
    the ``{zones: [...]}`` shape, or holds no zones; and, listing every one, for zones that are
    not mappings, fields that fail validation, and duplicate ids.
    """
    file = str(path)
    try:
        document = load_document(path)
    except ConfigFileError as exc:
        raise ZoneRegistryError(file, [(None, None, exc.detail)], line=exc.line) from exc

    if not isinstance(document, dict):
        got = _type_name(document)
        message = f"top level must be a mapping {{zones: [...]}}, got {got}"
        raise ZoneRegistryError(file, [(None, None, message)])
    problems: list[Problem] = [
        (None, str(key), "unknown top-level key (expected 'zones' and optionally 'bounds')")
        for key in document
        if key not in ("zones", "bounds")
    ]
    bounds = _read_bounds(document.get("bounds"), problems)
    raw_zones = document.get("zones")
    if not isinstance(raw_zones, list):
        got = "nothing" if "zones" not in document else _type_name(raw_zones)
        problems.append((None, "zones", f"must be a list of zones, got {got}"))
        raise ZoneRegistryError(file, problems)
    if not raw_zones:
        problems.append((None, "zones", "the registry has no zones"))
        raise ZoneRegistryError(file, problems)

    zones = _read_zones(raw_zones, problems)

    if bounds is not None:
        problems.extend(_outside(zones, bounds))
    if problems:
        raise ZoneRegistryError(file, problems)
    return ZoneRegistry(zones, bounds)


def bundled_zones_path() -> Path:
    """Return the file-system path of the bundled registry, ``models/data/zones.yaml``."""
    return Path(str(files("models").joinpath("data", "zones.yaml")))


def load_bundled_zones() -> ZoneRegistry:
    """Load the 打浦桥 zone registry shipped with the package."""
    with as_file(files("models").joinpath("data", "zones.yaml")) as path:
        return load_zones(path)


def load_registry_file(path: Path | None) -> ZoneRegistry:
    """The one registry loader of the processes: the registry at ``path``
    (``PUHUI_ZONES_FILE``), or the bundled one when it is ``None``."""
    return load_zones(path) if path is not None else load_bundled_zones()
