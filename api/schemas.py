"""Request and response bodies of the HTTP API (they make the OpenAPI document, with examples).

Kept apart from the wire contracts in :mod:`models.contracts`: these are what a browser sends and
reads; the endpoints turn them into contract records (``VolunteerReport``, ``AlertCommand``).
Request bodies forbid unknown fields, so a typo is a 422 naming the field rather than a silently
dropped value. Free text must be valid Unicode without NUL characters (databases refuse those).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from models.contracts import (
    FREE_TEXT_CHARS,
    ONE_LINE_CHARS,
    AlertStatus,
    Change,
    CommandAction,
    Level,
    ReportCategory,
    Risk,
)

# -- shared pieces ------------------------------------------------------------------------------


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


def _sane_time(value: datetime) -> datetime:
    # Far-off offsets near year 1 or 9999 overflow once converted to UTC; no real window is there.
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("date-time out of range") from None
    if not 2000 <= utc.year <= 2999:
        raise ValueError("date-time must fall between the years 2000 and 2999")
    return value


def _time_text(value: object) -> object:
    # JSON carries times as RFC 3339 text; a bare number would otherwise pass as epoch seconds.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset")
    return value


#: Free text (newline and tab allowed): what the wire contract accepts, no more (a report or
#: command the API took must never be refused by the worker).
CleanText = Annotated[str, AfterValidator(_clean_text), FREE_TEXT_CHARS]
#: One line of text (names): no control character at all, as the contract.
CleanLine = Annotated[str, AfterValidator(_clean_text), ONE_LINE_CHARS]
Time = Annotated[AwareDatetime, BeforeValidator(_time_text), AfterValidator(_sane_time)]

ZONE_EXAMPLE = "tianzifang-taikang-210"
ALERT_ID_EXAMPLE = "3f1e0c8a-5b1d-5c7e-9a0b-2d4e6f8a1c3e"
REPORT_ID_EXAMPLE = "0b9e6a52-2f7c-4a35-9d0e-5c1f2b3a4d5e"
SILENCE_ID_EXAMPLE = "7d2c9b1e-6a4f-4e3d-8c5b-1a2f3e4d5c6b"
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
PHOTO_ID_PATTERN = r"^ph_[0-9a-f]{32}$"
"""A photo's id (``infra.photos.PHOTO_ID_PATTERN``; repeated here, the schemas import no infra)."""
MAX_REPORT_PHOTOS = 4
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
TEXT = r"^[^\x00]*$"
"""Free text: anything but NUL (PostgreSQL cannot store it)."""
SOME_TEXT = r"^[^\x00]*\S[^\x00]*$"
"""Free text that must say something: at least one non-space character, and no NUL."""
"""Ids in paths (alert, report and silence ids are UUIDs): anything else is a 422, never a query."""


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalizedName(_Out):
    """A name in Chinese and English."""

    zh: str
    en: str


class Page(_Out):
    """The paging fields every list carries."""

    total: int = Field(description="Items matching the filters, over all pages")
    limit: int
    offset: int


# -- who am I -----------------------------------------------------------------------------------


class Me(_Out):
    """The caller, as the token says."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "王芳",
                    "role": "volunteer",
                    "principal": "p_3f9c2a71d04e8b65",
                    "expires_at": None,
                }
            ]
        }
    )

    name: str
    role: Literal["volunteer", "responder", "operator", "admin"]
    principal: str = Field(description="the stable id reports are filed under (not the name)")
    expires_at: datetime | None = Field(None, description="when the token stops working")
    unit_id: str | None = Field(None, description="a responder's unit (GET /api/units)")


# -- reports ------------------------------------------------------------------------------------


class ReportIn(_In):
    """A volunteer's report (Open311 GeoReport v2: ``service_code`` = ``category``, ``lat`` /
    ``long`` = ``lat`` / ``lon``, ``media_url`` = ``photo_url``). The reporter is the token's
    principal (a stable id, not the display name); the client may choose the id (a UUID, for
    safe resending) and give the time it was made."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "zone_id": ZONE_EXAMPLE,
                    "category": "crowding",
                    "description": "弄堂口人挤人，有老人被挤到墙边",
                    "lat": 31.2081,
                    "lon": 121.4689,
                }
            ]
        },
    )

    zone_id: str = Field(
        min_length=1,
        max_length=128,
        description="A zone id from `GET /api/zones`; an unknown zone is a 422",
        examples=[ZONE_EXAMPLE],
    )
    category: ReportCategory = Field(description="What is happening (Open311 `service_code`)")
    description: CleanText = Field(
        min_length=1, max_length=2000, pattern=SOME_TEXT, description="What the volunteer sees"
    )
    lat: float | None = Field(
        None, ge=-90, le=90, strict=True, allow_inf_nan=False, description="WGS-84 latitude"
    )
    lon: float | None = Field(
        None, ge=-180, le=180, strict=True, allow_inf_nan=False, description="WGS-84 longitude"
    )
    photo_url: CleanLine | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://[^\s\x00]+$",
        description="Deprecated (accepted for one more release): a link to a photo (Open311 "
        "`media_url`). Upload the photo instead and send its id in `photo_ids`.",
        json_schema_extra={"deprecated": True},
    )
    photo_ids: list[Annotated[str, Field(pattern=PHOTO_ID_PATTERN)]] = Field(
        default_factory=list,
        max_length=MAX_REPORT_PHOTOS,
        description=f"Photos uploaded with `POST /api/photos` by the same volunteer (at most "
        f"{MAX_REPORT_PHOTOS}, each in one report only); another's or an unknown id is a 422",
        examples=[["ph_5d41402abc4b2a76b9719d911017c592"]],
    )
    report_id: str | None = Field(
        None,
        pattern=UUID_PATTERN,
        description="Chosen by the client (a UUID) so that a resend is recognised: the same id "
        "from the same volunteer with the same content is the same report (202 again, nothing "
        "new stored); the same id with other content, or another volunteer's, is a 409. "
        "Omitted: the server chooses one.",
        examples=[REPORT_ID_EXAMPLE],
    )
    made_at: Time | None = Field(
        None,
        description="When the volunteer made the report (a report kept on the phone while "
        "offline is sent later with its original time). Becomes `submitted_at`; a time ahead of "
        "the server's clock counts as now; more than 7 days old is a 422. Omitted: now.",
        examples=["2026-10-01T19:05:00+08:00"],
    )


class PhotoLink(_Out):
    """A photo attached to a report or a case (read it with the same token)."""

    photo_id: str
    url: str = Field(description="`GET` it: the JPEG")
    thumbnail_url: str = Field(description="`GET` it: the 320-pixel thumbnail")


class ReportAccepted(_Out):
    """The report is stored and on its way to the pipeline."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "report_id": REPORT_ID_EXAMPLE,
                    "status": "submitted",
                    "submitted_at": "2026-10-01T11:05:00Z",
                }
            ]
        }
    )

    report_id: str
    status: Literal["submitted"] = "submitted"
    submitted_at: datetime


class ReportStatus(StrEnum):
    """A report's status, honest about who has acted: ``submitted`` until the pipeline links it
    to an alert; ``linked`` once it has (no person has acted on the alert yet);
    ``acknowledged`` once an operator has acted (acknowledged, assigned or closed it);
    ``resolved`` once the alert is closed and a person has seen it. An alert that cleared on its
    own and nobody has acknowledged yet leaves the report ``linked``. Once a case is opened
    about the report (or its alert) the case decides: ``in_case`` while it is handled,
    ``case_closed`` once it is closed after 核查 (a cancelled case leaves the alert's status)."""

    SUBMITTED = "submitted"
    LINKED = "linked"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    #: A case (立案) has been opened about the report or its alert and is being handled.
    IN_CASE = "in_case"
    #: That case is closed (结案) after 核查.
    CASE_CLOSED = "case_closed"


class ReportUpdate(_Out):
    """One change of the alert a report is linked to (what the reporter is told)."""

    at: datetime
    change: Change
    status: AlertStatus
    note: str | None = None
    actor: str | None = Field(None, description="Who made the change; shown to operators only")


class ReportCase(_Out):
    """The case a report is in, as its reporter sees it."""

    case_id: str
    status: str
    opened_at: datetime
    closed_at: datetime | None


class ReportView(_Out):
    """A report with its status and the updates operators made (Open311 GeoReport v2 names are
    included: ``service_request_id``, ``service_code``, ``status_notes``, ``requested_datetime``,
    ``updated_datetime``, ``media_url``; ``open311_status`` is Open311's open/closed)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "report_id": REPORT_ID_EXAMPLE,
                    "reporter_id": "p_3f9c2a71d04e8b65",
                    "zone_id": ZONE_EXAMPLE,
                    "zone_name": {"zh": "田子坊 泰康路210弄", "en": "Tianzifang, Lane 210"},
                    "category": "crowding",
                    "description": "弄堂口人挤人",
                    "lat": None,
                    "lon": None,
                    "photo_url": None,
                    "submitted_at": "2026-10-01T11:05:00Z",
                    "status": "acknowledged",
                    "alert_id": ALERT_ID_EXAMPLE,
                    "updates": [
                        {
                            "at": "2026-10-01T11:07:00Z",
                            "change": "acknowledged",
                            "status": "acknowledged",
                            "note": "已派人前往",
                            "actor": None,
                        }
                    ],
                    "service_request_id": REPORT_ID_EXAMPLE,
                    "service_code": "crowding",
                    "open311_status": "open",
                    "status_notes": "已派人前往",
                    "requested_datetime": "2026-10-01T11:05:00Z",
                    "updated_datetime": "2026-10-01T11:07:00Z",
                    "media_url": None,
                }
            ]
        },
    )

    report_id: str
    reporter_id: str
    zone_id: str
    zone_name: LocalizedName
    category: ReportCategory
    description: str
    lat: float | None
    lon: float | None
    photo_url: str | None
    photos: list[PhotoLink] = Field(default_factory=list, description="Uploaded photos")
    submitted_at: datetime
    status: ReportStatus
    alert_id: str | None
    updates: list[ReportUpdate]
    service_request_id: str
    service_code: ReportCategory
    open311_status: Literal["open", "closed"]
    status_notes: str | None
    requested_datetime: datetime
    updated_datetime: datetime
    media_url: str | None
    case: ReportCase | None = Field(None, description="the case opened about it, if any")


class ReportPage(Page):
    """The caller's own reports, newest first."""

    items: list[ReportView]


class Category(_Out):
    """A category a volunteer can report (Open311 ``GET services``)."""

    code: ReportCategory
    name: LocalizedName


# -- alerts -------------------------------------------------------------------------------------


class AlertItem(_Out):
    """An alert's current state, as the board shows it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "alert_id": ALERT_ID_EXAMPLE,
                    "zone_id": ZONE_EXAMPLE,
                    "zone_name": {"zh": "田子坊 泰康路210弄", "en": "Tianzifang, Lane 210"},
                    "site": "tianzifang",
                    "grid": "zhongtai",
                    "risk": "crowding",
                    "level": "orange",
                    "status": "firing",
                    "revision": 2,
                    "predicted": False,
                    "opened_at": "2026-10-01T11:00:00Z",
                    "updated_at": "2026-10-01T11:03:00Z",
                    "summary": {
                        "zh": "田子坊 泰康路210弄 人群密度 4.2 人/㎡（橙色预警）",
                        "en": "Crowd density 4.2 persons/m² at Tianzifang, Lane 210 (orange)",
                    },
                    "assignee": None,
                    "inhibited": False,
                    "acknowledged": False,
                    "acknowledged_by": None,
                    "acknowledged_at": None,
                    "latched": False,
                    "expected_at": None,
                }
            ]
        },
    )

    alert_id: str
    zone_id: str
    zone_name: LocalizedName
    site: str | None
    grid: str | None
    risk: Risk
    level: Level
    status: AlertStatus
    revision: int
    predicted: bool
    opened_at: datetime
    updated_at: datetime
    summary: LocalizedName
    assignee: str | None
    inhibited: bool = Field(
        False, description="Muted by a more important alert in the zone (shown, not notified)"
    )
    acknowledged: bool = Field(
        False, description="A person has acknowledged the alert's current condition (or closed it)"
    )
    acknowledged_by: str | None = Field(None, description="Who acknowledged it")
    acknowledged_at: datetime | None = Field(None, description="When it was acknowledged")
    latched: bool = Field(
        False,
        description="Resolved on its own before anyone acknowledged it (橙/红): it stays on the "
        "board until a person acknowledges it",
    )
    expected_at: datetime | None = Field(
        None,
        description="For a forecast (预判, `predicted`): when the forecast level is expected",
    )


class AlertPage(Page):
    """Alerts, most severe level first, then the most recently changed."""

    items: list[AlertItem]


class ShiftLogItem(AlertItem):
    """A resolved alert in the shift log: when, by whom and how it was closed."""

    resolved_at: datetime = Field(description="When the alert was resolved (event time)")
    closed_how: str = Field(
        description="`operator`: a person resolved it (`resolved_by`, `note`); `cleared`: the "
        "condition cleared on its own for the hold time"
    )
    resolved_by: str | None = Field(description="The operator who resolved it; null if cleared")
    note: str | None = Field(description="The operator's note on resolving, if any")


class ShiftLogPage(Page):
    """Alerts resolved in the last ``hours``, newest first."""

    hours: float
    items: list[ShiftLogItem]


class HistoryEntry(_Out):
    """One change of an alert: the audit trail (who, when, note)."""

    revision: int
    change: Change
    level: Level
    status: AlertStatus
    at: datetime
    actor: str | None
    note: str | None
    assignee: str | None


class LinkedReport(_Out):
    """A volunteer report that opened or joined the alert."""

    report_id: str
    reporter_id: str
    category: ReportCategory
    description: str
    submitted_at: datetime
    lat: float | None
    lon: float | None
    photo_url: str | None
    photos: list[PhotoLink] = Field(default_factory=list, description="Uploaded photos")


class ExplanationFigure(_Out):
    """One figure behind an alert, with its unit."""

    zh: str
    en: str
    value: str


class Explanation(_Out):
    """Why the alert has its level, in words: the rule it crossed ("承载率 121 % ≥ 120 % → 红"),
    its figures with units; for a forecast, the expected time (``expected_at`` and ``HH:MM``
    Beijing time)."""

    zh: str
    en: str
    figures: list[ExplanationFigure]
    expected_at: datetime | None = None
    expected_clock: str | None = None


class AlertDetail(AlertItem):
    """An alert with its evidence, its latest history (audit trail) and the latest reports
    linked to it; the rest page through ``/history`` and ``/reports``."""

    explanation: Explanation | None = Field(
        None, description="The rule crossed and the figures, in words (null if unknown)"
    )
    evidence: dict[str, Any]
    history: list[HistoryEntry] = Field(description="The latest 100 changes, oldest first")
    history_total: int = Field(description="Changes in all (`GET /api/alerts/{id}/history`)")
    reports: list[LinkedReport] = Field(description="The latest 50 linked reports, oldest first")
    reports_total: int = Field(description="Linked reports in all (`GET /api/alerts/{id}/reports`)")


class HistoryPage(Page):
    """A page of an alert's changes, oldest first."""

    items: list[HistoryEntry]


class LinkedReportPage(Page):
    """A page of the reports linked to an alert, oldest first."""

    items: list[LinkedReport]


class IncidentItem(AlertItem):
    """An alert episode, open or closed, with the number of reports linked to it."""

    report_count: int


class IncidentPage(Page):
    """Alert episodes, newest first."""

    items: list[IncidentItem]


class ActionIn(_In):
    """Optional body of acknowledge / resolve."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "已派人"}]})

    note: CleanText | None = Field(
        None, max_length=2000, pattern=TEXT, description="Goes into the audit trail"
    )
    public: bool = Field(
        False,
        strict=True,
        description="Show the note to the volunteers whose reports are linked to the alert "
        "(default: internal to the control room)",
    )


class AssignIn(_In):
    """Body of assign."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"assignee": "网格员 王", "note": "请到弄堂口疏导"}]},
    )

    assignee: CleanLine = Field(
        min_length=1, max_length=128, pattern=SOME_TEXT, description="Who handles the alert"
    )
    note: CleanText | None = Field(
        None, max_length=2000, pattern=TEXT, description="Goes into the audit trail"
    )
    public: bool = Field(
        False,
        strict=True,
        description="Show the note to the volunteers whose reports are linked to the alert "
        "(default: internal to the control room)",
    )


class CommandAccepted(_Out):
    """The command is on ``puhui.alert-commands``; the worker applies it and publishes the new
    alert record (watch ``GET /api/alerts/stream`` or the alert's history)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "command_id": "9c1d7e2a-4b3f-4e5d-8a6b-7c8d9e0f1a2b",
                    "alert_id": ALERT_ID_EXAMPLE,
                    "action": "acknowledge",
                }
            ]
        }
    )

    command_id: str
    alert_id: str
    action: CommandAction


# -- silences -----------------------------------------------------------------------------------


class SilenceIn(_In):
    """A new silence: at least one matcher, and a window that ends after it starts (and in the
    future). ``starts_at`` defaults to now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "zone_id": ZONE_EXAMPLE,
                    "risk": "crowding",
                    "level": "blue",
                    "starts_at": "2026-10-01T18:00:00+08:00",
                    "ends_at": "2026-10-01T22:00:00+08:00",
                    "comment": "国庆灯光秀，现场已有民警疏导",
                }
            ]
        },
    )

    zone_id: str | None = Field(None, min_length=1, max_length=128, examples=[ZONE_EXAMPLE])
    site: str | None = Field(None, min_length=1, max_length=128, examples=["tianzifang"])
    risk: Risk | None = None
    level: Level | None = None
    starts_at: Time | None = Field(None, description="RFC 3339 with offset; default now")
    ends_at: Time = Field(description="RFC 3339 with offset; after starts_at and in the future")
    comment: CleanText = Field(min_length=1, max_length=1000, pattern=SOME_TEXT)


class SilenceState(StrEnum):
    """Where a silence is in its life at the time of the request."""

    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    DELETED = "deleted"


class SilenceOut(_Out):
    """A silence."""

    id: str
    zone_id: str | None
    site: str | None
    risk: Risk | None
    level: Level | None
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime
    state: SilenceState
    deleted_at: datetime | None = None
    deleted_by: str | None = None


class SilenceList(_Out):
    """Silences, newest first."""

    items: list[SilenceOut]


# -- zones --------------------------------------------------------------------------------------


class Point(_Out):
    lat: float
    lon: float


class OutlineOut(_Out):
    """A zone's outline on the map (WGS-84 ``[lon, lat]``; ``estimated``: not surveyed)."""

    points: list[tuple[float, float]]
    estimated: bool


class BoundsOut(_Out):
    """The district's box (the map's extent)."""

    south: float
    west: float
    north: float
    east: float


class ZoneItem(_Out):
    """A zone from the registry with its latest figures (``null`` until the worker writes them)
    and its open alerts."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": ZONE_EXAMPLE,
                    "name": {"zh": "田子坊 泰康路210弄", "en": "Tianzifang, Lane 210"},
                    "site": "tianzifang",
                    "grid": "zhongtai",
                    "area_m2": 420.0,
                    "capacity": 1260,
                    "estimated": True,
                    "location": {"lat": 31.20834, "lon": 121.4702},
                    "outline": {
                        "estimated": True,
                        "points": [
                            [121.47008, 31.2078],
                            [121.47032, 31.2078],
                            [121.47032, 31.20888],
                            [121.47008, 31.20888],
                            [121.47008, 31.2078],
                        ],
                    },
                    "people": 980.0,
                    "density": 2.33,
                    "occupancy": 0.78,
                    "level": "blue",
                    "peak_5m": 1010.0,
                    "peak_1h": 1100.0,
                    "peak_day": 1250.0,
                    "inflow_per_min": 42.0,
                    "outflow_per_min": 38.0,
                    "updated_at": "2026-10-01T11:05:00Z",
                    "open_alerts": 1,
                    "alert_level": "blue",
                }
            ]
        },
    )

    id: str
    name: LocalizedName
    site: str
    grid: str
    area_m2: float
    capacity: int | None
    estimated: bool
    location: Point | None
    outline: OutlineOut | None = Field(
        None, description="Closed ring of [lon, lat] points for the map; display only"
    )
    people: float | None = None
    density: float | None = None
    occupancy: float | None = None
    level: Level | None = None
    peak_5m: float | None = None
    peak_1h: float | None = None
    peak_day: float | None = None
    inflow_per_min: float | None = None
    outflow_per_min: float | None = None
    updated_at: datetime | None = None
    received_at: datetime | None = Field(
        None, description="Wall clock when the worker took in the zone's latest reading"
    )
    reading_age_seconds: float | None = Field(
        None, description="Seconds since then (wall clock), when the API answered"
    )
    open_alerts: int = Field(0, description="Alerts of the zone that are firing or acknowledged")
    alert_level: Level | None = Field(None, description="The most severe open alert's level")


class FeedStatus(_Out):
    """Is the sensor feed alive? Wall-clock age of the newest reading any zone took in."""

    latest_reading_at: datetime | None = Field(description="Null: no reading yet")
    age_seconds: float | None
    silent_after_seconds: float = Field(description="`PUHUI_FEED_SILENT_SECONDS`")
    silent: bool = Field(description="A reading came in once, and none for silent_after_seconds")


class ZoneList(_Out):
    """Every zone, in registry order."""

    items: list[ZoneItem]
    bounds: BoundsOut | None = Field(None, description="The registry's box, when it gives one")


class SeriesPoint(_Out):
    """One minute of a zone: the largest people count of that minute (event time) and its
    density."""

    at: datetime = Field(description="Start of the minute (UTC)")
    people: float
    density: float


class ZoneSeries(_Out):
    """A zone's people and density per minute, oldest first; minutes without a reading are
    absent."""

    zone_id: str
    since: datetime
    until: datetime
    resolution_seconds: int = 60
    aggregate: str = Field("max", description="Each minute's figure is its largest value")
    points: list[SeriesPoint]


# -- errors -------------------------------------------------------------------------------------


class ErrorDetail(_Out):
    loc: list[str | int] = Field(description="Where: body / query / path, then the field")
    field: str = Field(description="The field's name (dotted for nested fields)")
    msg: str
    type: str


class ErrorInfo(_Out):
    code: str = Field(examples=["invalid_request"])
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(_Out):
    """Every error has this shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "zone_id: unknown zone 'atlantis'",
                        "details": [
                            {
                                "loc": ["body", "zone_id"],
                                "field": "zone_id",
                                "msg": "unknown zone 'atlantis'",
                                "type": "unknown_zone",
                            }
                        ],
                    }
                }
            ]
        }
    )

    error: ErrorInfo


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error status codes. An endpoint that can answer 401
    can also answer 400 (a token in the URL) and 429 (too many failed sign-ins from the
    caller's address): both are added."""
    if 401 in codes:
        codes = tuple(sorted({*codes, 400, 429}))
    text = {
        400: "The body is not JSON, or a token was sent in the URL (send the header)",
        401: "No token, or an unknown, revoked or expired one (`WWW-Authenticate: Bearer`)",
        403: "The token's role may not do this",
        404: "No such resource (or not yours to see)",
        409: "Conflicts with the current state (an alert resolved already; a report id in use)",
        413: "The body is over the size limit",
        415: "Not a type this endpoint takes (photos: JPEG, PNG or WebP)",
        422: "A field is invalid; `details` names it",
        429: "Too many reports, or too many failed sign-ins from this address; see `Retry-After`",
        503: "The broker did not take the record; nothing was stored",
    }
    return {code: {"model": ErrorBody, "description": text[code]} for code in codes}


# -- daily report -------------------------------------------------------------------------------


class DailyZone(_Out):
    """A zone's day: its busiest minute and the largest value of each local hour."""

    zone_id: str
    name: LocalizedName
    site: str
    minutes: int = Field(description="Minutes with a reading")
    peak_people: float | None
    peak_at: datetime | None = Field(description="Start of the busiest minute")
    peak_density: float | None
    peak_occupancy: float | None
    hourly: list[float | None] = Field(description="24 values, local hours 0-23")


class DailySite(_Out):
    """A site's day: the largest sum of its zones' figures at one minute."""

    site: str
    zones: list[str]
    peak_people: float | None
    peak_at: datetime | None
    hourly: list[float | None]


class RiskCount(_Out):
    risk: Risk
    total: int
    by_level: dict[str, int]


class DailyAlerts(_Out):
    """Alerts opened that day, by the highest level each reached."""

    total: int
    predicted: int
    by_level: dict[str, int]
    by_risk: list[RiskCount]


class DailyCases(_Out):
    """Cases of the day (立案 → 结案)."""

    opened: int
    closed: int
    closed_on_time: int
    on_time_rate: float | None = Field(description="按期处置率: closed on time / closed")
    cancelled: int
    open_at_end: int
    mean_seconds_to_accept: float | None = Field(description="dispatched → accepted")
    mean_seconds_to_arrive: float | None = Field(description="dispatched → on site")
    mean_seconds_to_close: float | None = Field(description="opened → closed")


class DailyReport(_Out):
    """The daily report of one Asia/Shanghai calendar day."""

    date: str
    timezone: str
    start: datetime
    end: datetime
    zones: list[DailyZone]
    sites: list[DailySite]
    alerts: DailyAlerts
    cases: DailyCases
