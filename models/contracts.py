"""Wire contracts of the public topics (see ``docs/asyncapi.yaml``).

Every record that enters or leaves the pipeline is one of these pydantic models: frozen, no extra
fields, timezone-aware datetimes only. Decoding raw bytes goes through :func:`decode_reading` /
:func:`decode_report`, which turn every way a record can be wrong into a :class:`RejectedRecord`
with a short reason code (the ``error.reason`` header on the dead-letter topic) and a detail that
names the field.
"""

from __future__ import annotations

import re
from collections.abc import Container
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from models.errors import PuhuiError

#: Records larger than this are rejected before parsing (``too_large``).
MAX_RECORD_BYTES: Final = 64 * 1024

TOPIC_READINGS: Final = "puhui.sensor-readings"
TOPIC_REPORTS: Final = "puhui.volunteer-reports"
TOPIC_ALERTS: Final = "puhui.alerts"
TOPIC_DEAD_LETTERS: Final = "puhui.dead-letters"
TOPIC_COMMANDS: Final = "puhui.alert-commands"


class SensorKind(StrEnum):
    """Sensor kinds met in 一网统管 deployments (DOMAIN.md, "Sensor kinds")."""

    PEOPLE_COUNT = "people_count"
    ENTRIES = "entries"
    EXITS = "exits"
    SMOKE = "smoke"
    GAS_LEL = "gas_lel"
    CIRCUIT_TEMP = "circuit_temp"
    LEAK_CURRENT = "leak_current"
    WATER_DEPTH = "water_depth"
    MANHOLE_TILT = "manhole_tilt"
    FIRE_LANE_BLOCKED = "fire_lane_blocked"
    EBIKE_IN_ELEVATOR = "ebike_in_elevator"
    HEARTBEAT = "heartbeat"


class Risk(StrEnum):
    """What an alert is about."""

    CROWDING = "crowding"
    FIRE = "fire"
    GAS = "gas"
    ELECTRICAL = "electrical"
    FLOODING = "flooding"
    MANHOLE = "manhole"
    FIRE_LANE = "fire_lane"
    EBIKE = "ebike"
    SENSOR_OFFLINE = "sensor_offline"
    REPORT = "report"


class Level(StrEnum):
    """China's four warning colours, 四级 (blue, lowest) to 一级 (red, highest)."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        """1 for blue … 4 for red, so levels compare by severity."""
        return _LEVEL_RANK[self]

    @property
    def zh(self) -> str:
        """The colour's Chinese name (蓝/黄/橙/红)."""
        return _LEVEL_ZH[self]


_LEVEL_RANK: Final = {Level.BLUE: 1, Level.YELLOW: 2, Level.ORANGE: 3, Level.RED: 4}
_LEVEL_ZH: Final = {Level.BLUE: "蓝", Level.YELLOW: "黄", Level.ORANGE: "橙", Level.RED: "红"}


def max_level(*levels: Level | None) -> Level | None:
    """The most severe of ``levels``; ``None`` (no condition) is below blue."""
    present = [lvl for lvl in levels if lvl is not None]
    return max(present, key=lambda lvl: lvl.rank) if present else None


class AlertStatus(StrEnum):
    """Where an alert is in its life."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Change(StrEnum):
    """What happened to an alert in one alert record."""

    RAISED = "raised"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    CONFIRMED = "confirmed"  # a predicted alert's level was actually reached
    CORROBORATED = "corroborated"  # a volunteer's report joined a sensor alert
    RESOLVED = "resolved"
    #: The condition was present again within the hold time after an operator resolved the
    #: alert: the same alert (same id, next revision) fires again instead of an unlinked twin.
    REOPENED = "reopened"


class ReportCategory(StrEnum):
    """Categories a volunteer can report (Open311 ``service_code``)."""

    INJURY = "injury"
    FIRE = "fire"
    SMOKE = "smoke"
    CROWDING = "crowding"
    GAS = "gas"
    ELECTRICAL = "electrical"
    FLOODING = "flooding"
    MANHOLE = "manhole"
    FIRE_LANE = "fire_lane"
    EBIKE = "ebike"
    LITTERING = "littering"
    OTHER = "other"


# Plausible ranges per kind (inclusive), and whether the value must be a whole number.
# A value outside is "impossible" and is dead-lettered rather than raising a false alert.
KIND_RANGES: Final[dict[SensorKind, tuple[float, float, bool]]] = {
    SensorKind.PEOPLE_COUNT: (0, 1_000_000, True),
    SensorKind.ENTRIES: (0, 1_000_000, True),
    SensorKind.EXITS: (0, 1_000_000, True),
    SensorKind.SMOKE: (0, 1, True),
    SensorKind.GAS_LEL: (0, 100, False),  # % of the lower explosive limit
    SensorKind.CIRCUIT_TEMP: (-50, 400, False),  # °C
    SensorKind.LEAK_CURRENT: (0, 100_000, False),  # mA
    SensorKind.WATER_DEPTH: (0, 1_000, False),  # cm
    SensorKind.MANHOLE_TILT: (0, 180, False),  # degrees
    SensorKind.FIRE_LANE_BLOCKED: (0, 1, True),
    SensorKind.EBIKE_IN_ELEVATOR: (0, 1, True),
    SensorKind.HEARTBEAT: (0, 1e12, False),
}

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def _rfc3339(value: object) -> object:
    """Only RFC 3339 text with a UTC offset on the wire (no epoch numbers, no bare dates)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time string")
    if _NAIVE.match(value):
        raise PydanticCustomError("timezone_aware", "Input should have timezone info")
    if not _RFC3339.match(value):
        raise PydanticCustomError(
            "datetime_parsing",
            "Input should be an RFC 3339 date-time with a UTC offset, "
            "e.g. 2026-10-01T19:00:00+08:00",
        )
    return value


# Text no database or screen should be handed: C0/C1 control characters (NUL among them; newline
# and tab are allowed in free text only) and the bidirectional overrides and isolates that make a
# text read other than it is stored (U+202A–U+202E, U+2066–U+2069).
_BIDI = "\u202a-\u202e\u2066-\u2069"
_BAD_IN_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_BAD_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _clean(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: object) -> object:
        if isinstance(value, str):
            bad = pattern.search(value)
            if bad is not None:
                raise PydanticCustomError(
                    "string_characters",
                    "{what} must not contain U+{code} (a control or bidirectional-override "
                    "character) at position {at}",
                    {"what": what, "code": f"{ord(bad.group()):04X}", "at": bad.start()},
                )
        return value

    return BeforeValidator(check)


#: One line of text (ids, names): no control character at all.
_LINE = _clean(_BAD_IN_LINE, "a single-line text")
#: Free text (descriptions, notes): newline and tab allowed, other control characters not.
_TEXT = _clean(_BAD_IN_TEXT, "text")

#: For adapters (the HTTP API) that must refuse exactly what the contract refuses.
FREE_TEXT_CHARS: Final = _TEXT
ONE_LINE_CHARS: Final = _LINE

_Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
_Id = Annotated[str, Field(min_length=1, max_length=128, strict=True, pattern=r"\S"), _LINE]
#: An alert id: the ``alerts.alert_id`` column holds 64 characters (ours are uuid5, 36).
_AlertId = Annotated[str, Field(min_length=1, max_length=64, strict=True, pattern=r"\S"), _LINE]
_Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class SensorReading(_Wire):
    """One value from one sensor: a record of ``puhui.sensor-readings``."""

    reading_id: _Id
    sensor_id: _Id
    zone_id: _Id
    kind: SensorKind
    value: _Finite
    observed_at: _Time


class VolunteerReport(_Wire):
    """A volunteer's report: a record of ``puhui.volunteer-reports``."""

    report_id: _Id
    reporter_id: _Id
    zone_id: _Id
    category: ReportCategory
    description: Annotated[
        str, Field(min_length=1, max_length=2000, strict=True, pattern=r"\S"), _TEXT
    ]
    submitted_at: _Time
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, strict=True)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, strict=True)] | None = None
    photo_url: Annotated[str, Field(max_length=2048, pattern=r"^https?://\S+$"), _LINE] | None = (
        None
    )


_Summary = Annotated[str, Field(max_length=2000), _TEXT]


class Summary(_Wire):
    """A human summary in Chinese first, and English."""

    zh: _Summary
    en: _Summary


class AlertRecord(_Wire):
    """One change of one alert: a record of ``puhui.alerts`` (key: the zone id)."""

    alert_id: _AlertId
    revision: Annotated[int, Field(ge=1)]
    zone_id: _Id
    risk: Risk
    level: Level
    status: AlertStatus
    change: Change
    predicted: bool = False
    inhibited: bool = False
    at: AwareDatetime
    opened_at: AwareDatetime
    evidence: dict[str, JsonValue] = Field(default_factory=dict)
    summary: Summary
    actor: _Id | None = None
    note: Annotated[str, Field(max_length=2000), _TEXT] | None = None
    assignee: Annotated[str, Field(min_length=1, max_length=128), _LINE] | None = None
    #: Who acknowledged the alert's current condition and when (cleared again when the alert
    #: escalates or reopens: a worse condition needs a person's eyes again).
    acknowledged_by: _Id | None = None
    acknowledged_at: AwareDatetime | None = None
    #: Resolved on its own (the condition cleared) before any person acknowledged it, at a level
    #: that latches (橙/红 by default): it stays on the board until someone acknowledges it.
    latched: bool = False
    #: The operator marked ``note`` for the reporters of the alert's linked reports; notes are
    #: internal to the control room otherwise.
    note_public: bool = False

    @property
    def acknowledged(self) -> bool:
        """Whether a person has acknowledged (or closed) the alert's current condition."""
        return self.acknowledged_by is not None

    def to_bytes(self) -> bytes:
        """The record as UTF-8 JSON, as published."""
        return self.model_dump_json().encode()


class CommandAction(StrEnum):
    """What an operator can do to an open alert."""

    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    RESOLVE = "resolve"


class AlertCommand(_Wire):
    """An operator's command: a record of ``puhui.alert-commands`` (key: the zone id).

    The worker that holds the zone's state applies it and publishes the resulting alert record,
    so revisions stay in one writer's hands.
    """

    command_id: _Id
    alert_id: _AlertId
    zone_id: _Id
    action: CommandAction
    actor: _Id
    issued_at: _Time
    note: Annotated[str, Field(max_length=2000), _TEXT] | None = None
    assignee: Annotated[str, Field(min_length=1, max_length=128), _LINE] | None = None
    #: Show ``note`` to the reporters of the alert's reports (default: internal).
    note_public: bool = False

    def to_bytes(self) -> bytes:
        """The command as UTF-8 JSON, as published."""
        return self.model_dump_json().encode()


class RejectedRecord(PuhuiError):
    """A record that cannot enter the pipeline, with a short ``reason`` code and a ``detail``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Reason codes (the ``error.reason`` header of a dead letter).
TOO_LARGE: Final = "too_large"
MALFORMED_JSON: Final = "malformed_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
UNKNOWN_FIELD: Final = "unknown_field"
INVALID_FIELD: Final = "invalid_field"
UNKNOWN_KIND: Final = "unknown_kind"
UNKNOWN_CATEGORY: Final = "unknown_category"
UNKNOWN_ZONE: Final = "unknown_zone"
NAIVE_TIME: Final = "naive_time"
IMPOSSIBLE_VALUE: Final = "impossible_value"
#: Valid by the contract, refused by the database (its message is the detail); set by the worker.
UNSTORABLE: Final = "unstorable"
#: A zone already tracks its configured maximum of distinct sensors; set by the worker.
TOO_MANY_SENSORS: Final = "too_many_sensors"

REASONS: Final = (
    TOO_LARGE,
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    MISSING_FIELD,
    UNKNOWN_FIELD,
    INVALID_FIELD,
    UNKNOWN_KIND,
    UNKNOWN_CATEGORY,
    UNKNOWN_ZONE,
    NAIVE_TIME,
    IMPOSSIBLE_VALUE,
    UNSTORABLE,
    TOO_MANY_SENSORS,
)


def _reason_for(error: dict[str, Any]) -> str:
    kind = error["type"]
    loc = error.get("loc", ())
    field = str(loc[0]) if loc else ""
    if kind in ("json_invalid", "json_type"):
        return MALFORMED_JSON
    if kind == "model_type" or (kind == "model_attributes_type"):
        return NOT_AN_OBJECT
    if kind == "missing":
        return MISSING_FIELD
    if kind == "extra_forbidden":
        return UNKNOWN_FIELD
    if kind == "timezone_aware":
        return NAIVE_TIME
    if field == "kind" and kind == "enum":
        return UNKNOWN_KIND
    if field == "category" and kind == "enum":
        return UNKNOWN_CATEGORY
    if field == "value" and kind == "finite_number":
        return IMPOSSIBLE_VALUE
    return INVALID_FIELD


def _rejection(exc: ValidationError) -> RejectedRecord:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    loc = ".".join(str(part) for part in first.get("loc", ())) or "(record)"
    detail = f"{loc}: {first['msg']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return RejectedRecord(_reason_for(dict(first)), detail)


def _check_size(raw: bytes) -> None:
    if len(raw) > MAX_RECORD_BYTES:
        raise RejectedRecord(TOO_LARGE, f"record is {len(raw)} bytes, limit {MAX_RECORD_BYTES}")


def decode_reading(raw: bytes, zone_ids: Container[str]) -> SensorReading:
    """Parse and validate one ``puhui.sensor-readings`` record.

    Raises :class:`RejectedRecord` for every way the record is unusable: too large, not JSON, not
    an object, missing or extra fields, unknown kind or zone, naive time, or a value that is not
    finite or impossible for its kind (a negative count, a smoke value of 7).
    """
    _check_size(raw)
    try:
        reading = SensorReading.model_validate_json(raw)
    except ValidationError as exc:
        raise _rejection(exc) from None
    check_value(reading.kind, reading.value)
    if reading.zone_id not in zone_ids:
        raise RejectedRecord(UNKNOWN_ZONE, f"zone_id: unknown zone {reading.zone_id!r}")
    return reading


def check_value(kind: SensorKind, value: float) -> None:
    """Raise ``impossible_value`` when ``value`` is outside what a ``kind`` sensor can read."""
    low, high, whole = KIND_RANGES[kind]
    if not low <= value <= high:
        raise RejectedRecord(
            IMPOSSIBLE_VALUE, f"value: {value} outside [{low:g}, {high:g}] for kind {kind.value}"
        )
    if whole and value != int(value):
        raise RejectedRecord(
            IMPOSSIBLE_VALUE, f"value: {value} is not a whole number for kind {kind.value}"
        )


def decode_report(raw: bytes, zone_ids: Container[str]) -> VolunteerReport:
    """Parse and validate one ``puhui.volunteer-reports`` record (same rules as readings)."""
    _check_size(raw)
    try:
        report = VolunteerReport.model_validate_json(raw)
    except ValidationError as exc:
        raise _rejection(exc) from None
    if report.zone_id not in zone_ids:
        raise RejectedRecord(UNKNOWN_ZONE, f"zone_id: unknown zone {report.zone_id!r}")
    return report


def decode_command(raw: bytes) -> AlertCommand:
    """Parse one ``puhui.alert-commands`` record (raises :class:`RejectedRecord`)."""
    _check_size(raw)
    try:
        return AlertCommand.model_validate_json(raw)
    except ValidationError as exc:
        raise _rejection(exc) from None


def decode_alert(raw: bytes) -> AlertRecord:
    """Parse one ``puhui.alerts`` record (raises pydantic's ``ValidationError``)."""
    return AlertRecord.model_validate_json(raw)


def decode_alert_record(raw: bytes) -> AlertRecord:
    """Parse one ``puhui.alerts`` record; raises :class:`RejectedRecord` like the other decoders
    (for the persist agent, which dead-letters what it cannot store)."""
    _check_size(raw)
    try:
        return AlertRecord.model_validate_json(raw)
    except ValidationError as exc:
        raise _rejection(exc) from None


def utc_iso(moment: datetime) -> str:
    """RFC 3339 text of an aware datetime."""
    return moment.isoformat()
