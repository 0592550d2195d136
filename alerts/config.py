"""Rules as configuration: per-kind defaults, overridden per site or zone, validated per zone.

``load_rules(path, zones)`` reads the YAML (``alerts/data/rules.yaml`` is bundled), deep-merges
``defaults`` ← ``sites.<site>`` ← ``zones.<id>`` for every zone of the registry and validates the
result, so an error names the file, the zone and the field. The result is a :class:`RuleBook`:
one frozen :class:`ZoneRules` per zone. Reading the file is the only I/O here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from models.contracts import Level, ReportCategory, Risk, SensorKind
from models.documents import StrictModel, parse_document
from models.errors import ConfigFileError
from models.zones import Zone

LevelName = Literal["blue", "yellow", "orange", "red"]


_Strict = StrictModel


def _ordered(levels: Mapping[LevelName, float]) -> Mapping[LevelName, float]:
    ranked = sorted(levels.items(), key=lambda kv: Level(kv[0]).rank)
    values = [v for _, v in ranked]
    if values != sorted(values):
        raise ValueError("thresholds must rise with the level (blue < yellow < orange < red)")
    if not levels:
        raise ValueError("at least one level is needed")
    return levels


class Forecast(_Strict):
    enabled: bool = True
    horizon_minutes: float = Field(15, gt=0, le=120)
    window_minutes: float = Field(5, gt=0, le=60)
    min_points: int = Field(6, ge=3)
    min_slope: float = Field(0.05, ge=0)
    min_t: float = Field(4.0, ge=0)
    level: LevelName = "yellow"


class Crowding(_Strict):
    density: dict[LevelName, float]
    occupancy: dict[LevelName, float] = Field(default_factory=dict)
    forecast: Forecast = Forecast()

    @model_validator(mode="after")
    def _check(self) -> Crowding:
        _ordered(self.density)
        if self.occupancy:
            _ordered(self.occupancy)
        return self


class Fire(_Strict):
    pair_window_seconds: float = Field(300, gt=0)


class Threshold(_Strict):
    risk: Risk
    levels: dict[LevelName, float]
    source: str

    @model_validator(mode="after")
    def _check(self) -> Threshold:
        _ordered(self.levels)
        return self


class Duration(_Strict):
    risk: Risk
    level: LevelName
    after_seconds: float = Field(gt=0)
    source: str


class NoSignal(_Strict):
    enabled: bool = True
    factor: float = Field(3, gt=1)
    level: LevelName = "blue"
    min_gaps: int = Field(3, ge=1)
    default_interval_seconds: float = Field(60, gt=0)
    #: Usual interval by kind until a sensor's own gaps are known (smoke panels report slowly).
    kind_interval_seconds: dict[SensorKind, float] = Field(default_factory=dict)
    source: str


class Reports(_Strict):
    merge_window_seconds: float = Field(600, gt=0)
    escalate_reporters: int = Field(3, ge=2)
    levels: dict[ReportCategory, LevelName]
    source: str

    @model_validator(mode="after")
    def _all_categories(self) -> Reports:
        missing = set(ReportCategory) - set(self.levels)
        if missing:
            raise ValueError(f"levels missing for {sorted(c.value for c in missing)}")
        return self


class ZoneRules(_Strict):
    """Every rule that applies to one zone, after defaults, site and zone overrides."""

    hold_seconds: float = Field(300, gt=0)
    #: Levels whose alerts latch: resolved on their own before anyone acknowledged them, they
    #: stay on the board as resolved-unacknowledged until a person acknowledges (ISA-18.2).
    latch_levels: tuple[LevelName, ...] = ("orange", "red")
    crowding: Crowding
    fire: Fire = Fire()
    thresholds: dict[SensorKind, Threshold] = Field(default_factory=dict)
    durations: dict[SensorKind, Duration] = Field(default_factory=dict)
    no_signal: NoSignal
    reports: Reports
    inhibit: dict[Risk, list[Risk]] = Field(default_factory=dict)

    @property
    def hold(self) -> timedelta:
        """The hold time as a timedelta."""
        return timedelta(seconds=self.hold_seconds)

    def density_levels(self) -> dict[Level, float]:
        """Crowding density thresholds keyed by :class:`Level`."""
        return {Level(k): v for k, v in self.crowding.density.items()}

    def occupancy_levels(self) -> dict[Level, float]:
        """Crowding occupancy thresholds keyed by :class:`Level`."""
        return {Level(k): v for k, v in self.crowding.occupancy.items()}


class RulesFileError(ConfigFileError):
    """A rules file that cannot be used; the message names the file, the zone and the field."""

    def __init__(
        self,
        file: str,
        problems: list[tuple[str | None, str | None, str]],
        *,
        line: int | None = None,
    ) -> None:
        self.problems = problems
        lines = [
            f"{file}: "
            + (f"zone {zone!r} " if zone else "")
            + (f"field {field!r}: " if field else "")
            + msg
            for zone, field, msg in problems
        ]
        first = problems[0][1] if problems else None
        super().__init__("\n".join(lines), file=file, field=first, line=line)


class RuleBook:
    """The rules of every zone (immutable). Unknown zones get the defaults."""

    def __init__(self, default: ZoneRules, per_zone: Mapping[str, ZoneRules]) -> None:
        self.default = default
        self._per_zone = dict(per_zone)

    def for_zone(self, zone_id: str) -> ZoneRules:
        """The rules of ``zone_id``."""
        return self._per_zone.get(zone_id, self.default)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _validate(data: Any, file: str, zone: str | None) -> tuple[ZoneRules | None, list[Any]]:
    try:
        return ZoneRules.model_validate(data), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err.get("loc", ())) or None
            problems.append((zone, field, err["msg"]))
        return None, problems


def parse_rules(text: str, zones: Iterable[Zone], file: str = "rules.yaml") -> RuleBook:
    """Build the :class:`RuleBook` of ``zones`` from YAML text (raises :class:`RulesFileError`)."""
    try:
        doc = parse_document(text, file)  # duplicate keys refused
    except ConfigFileError as exc:
        raise RulesFileError(file, [(None, None, exc.detail)], line=exc.line) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("defaults"), dict):
        raise RulesFileError(file, [(None, "defaults", "a mapping `defaults:` is required")])
    unknown = set(doc) - {"defaults", "sites", "zones"}
    if unknown:
        raise RulesFileError(file, [(None, k, "unknown top-level key") for k in sorted(unknown)])
    sites = doc.get("sites") or {}
    per_zone_over = doc.get("zones") or {}
    if not isinstance(sites, dict) or not isinstance(per_zone_over, dict):
        raise RulesFileError(file, [(None, "sites/zones", "must be mappings")])
    zone_list = list(zones)
    known = {z.id for z in zone_list}
    problems: list[Any] = [
        (zid, None, "no such zone in the zone registry")
        for zid in per_zone_over
        if zid not in known
    ]
    default, errs = _validate(doc["defaults"], file, None)
    problems.extend(errs)
    per_zone: dict[str, ZoneRules] = {}
    for zone in zone_list:
        merged = _merge(doc["defaults"], sites.get(zone.site) or {})
        merged = _merge(merged, per_zone_over.get(zone.id) or {})
        rules, errs = _validate(merged, file, zone.id)
        problems.extend(errs)
        if rules is not None:
            per_zone[zone.id] = rules
    if problems or default is None:
        raise RulesFileError(file, problems)
    return RuleBook(default, per_zone)


def bundled_rules_path() -> Path:
    """The bundled ``alerts/data/rules.yaml``."""
    return Path(str(resources.files("alerts") / "data" / "rules.yaml"))


def load_rules(path: Path | None, zones: Iterable[Zone]) -> RuleBook:
    """Read and validate the rules file (the bundled one when ``path`` is None)."""
    path = path or bundled_rules_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesFileError(str(path), [(None, None, f"cannot read: {exc}")]) from None
    return parse_rules(text, zones, file=str(path))


def default_rules() -> ZoneRules:
    """The bundled defaults, as they apply to a zone with no site or zone override."""
    return load_rules(None, []).default
