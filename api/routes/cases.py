"""Cases: 立案 → 派遣 → 处置 → 核查 → 结案, and the units they are dispatched to.

The API does not change cases. Each action is checked against the case as stored (a wrong state
is a 409, the wrong caller a 403, a bad field a 422 naming it), then becomes a ``CaseCommand`` on
``puhui.cases`` keyed by case id; the case worker (``streams/cases.py``) is the single writer:
it applies the command and stores the case and its timeline entry. So an action answers 202 and
``POST /api/cases`` 201 with the new id; the change shows in ``GET /api/cases/{id}`` moments
later. Time limits per category and level come from the case limits file; a step past its limit
is ``overdue`` here and is escalated once by the worker and the notifier.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from alerts.cases import (
    CATEGORIES,
    OPEN_STATUSES,
    Case,
    CaseEvent,
    CaseLimits,
    CaseRejected,
    CaseStatus,
    apply_case_command,
    is_overdue,
    load_bundled_case_limits,
    load_case_limits,
)
from api.auth import Caller, CaseCaller, OperatorCaller
from api.bus import PublishError
from api.context import ApiContext
from api.errors import ApiError, Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from api.queries import alerts_by_id, get_report, histories
from api.schemas import TEXT, CleanText, error_responses
from infra.cases_db import (
    case_events,
    cases_of_alerts,
    count_open,
    list_cases,
    load_case,
    unit_case_has_photo,
)
from infra.db import AlertHistoryRow, AlertRow, ReportRow
from infra.photos import owned_problems
from infra.tokens import Role
from models.cases import (
    CASE_ID_PATTERN,
    PHOTO_ID_PATTERN,
    ActorRole,
    CaseAction,
    CaseCommand,
    VerifyResult,
)
from models.contracts import Level
from models.units import KIND_ZH, UnitRegistry, configured_units

__all__ = ["STATUS_ZH", "case_photo_rule", "case_view", "cases_router"]

STATUS_ZH: dict[CaseStatus, str] = {
    CaseStatus.REGISTERED: "已立案",
    CaseStatus.DISPATCHED: "已派遣",
    CaseStatus.ACCEPTED: "已接单",
    CaseStatus.ON_SITE: "已到场",
    CaseStatus.HANDLED: "已处置，待核查",
    CaseStatus.CLOSED: "已结案",
    CaseStatus.CANCELLED: "已撤销",
}

CaseId = Annotated[str, Path(pattern=CASE_ID_PATTERN, description="The case's id (cs_ + 32 hex)")]
Note = Annotated[CleanText, Field(max_length=2000, pattern=TEXT)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseIn(_In):
    """Open a case (立案) about alerts and/or volunteer reports."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "alert_ids": ["0b8f6c3e-2f6a-5d7e-9a1b-3c4d5e6f7a8b"],
                    "title": "泰康路210弄 人群拥挤",
                    "category": "crowding",
                }
            ]
        },
    )

    alert_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20
    )
    report_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=50
    )
    title: Annotated[CleanText, Field(min_length=1, max_length=200, pattern=r"\S")]
    category: str | None = Field(
        None, description="An alert risk or report category; default: the first alert's risk"
    )
    level: Level | None = Field(
        None, description="Default: the highest level of the alerts (yellow for reports only)"
    )
    note: Note | None = None


class DispatchIn(_In):
    unit_id: Annotated[str, Field(min_length=1, max_length=64)]
    note: Note | None = None


class NoteIn(_In):
    note: Note | None = None


class HandleIn(_In):
    note: Annotated[CleanText, Field(min_length=1, max_length=2000, pattern=r"\S")]
    photo_ids: list[Annotated[str, Field(pattern=PHOTO_ID_PATTERN)]] = Field(
        default_factory=list, max_length=9
    )


class VerifyIn(_In):
    result: VerifyResult
    note: Note | None = None


def load_units_for(ctx: ApiContext) -> UnitRegistry:
    settings = ctx.settings
    return configured_units(
        settings.units_file, ctx.zones, bundled_zones=settings.zones_file is None
    )


def load_limits_for(ctx: ApiContext) -> CaseLimits:
    path = ctx.settings.case_limits_file
    return load_case_limits(path) if path else load_bundled_case_limits()


def _event_view(event: CaseEvent, units: UnitRegistry) -> dict[str, Any]:
    unit = units.get(event.unit_id) if event.unit_id else None
    return {
        "action": event.action.value,
        "from_status": None if event.from_status is None else event.from_status.value,
        "to_status": event.to_status.value,
        "actor": event.actor,
        "actor_role": event.actor_role.value,
        "unit_id": event.unit_id,
        "unit_name": None if unit is None else {"zh": unit.name_zh, "en": unit.name_en},
        "at": event.at,
        "note": event.note,
        "result": None if event.result is None else event.result.value,
        "photo_ids": list(event.photo_ids),
        "photo_urls": [f"/api/photos/{p}" for p in event.photo_ids],
        "step": event.step,
    }


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def case_view(ctx: ApiContext, case: Case, units: UnitRegistry, now: datetime) -> dict[str, Any]:
    """A case as the API shows it (list item)."""
    unit = units.get(case.unit_id) if case.unit_id else None
    return {
        "case_id": case.case_id,
        "title": case.title,
        "category": case.category,
        "level": case.level.value,
        "zone_id": case.zone_id,
        "zone_name": ctx.zone_name(case.zone_id) if case.zone_id else None,
        "status": case.status.value,
        "status_zh": STATUS_ZH[case.status],
        "open": case.open,
        "unit_id": case.unit_id,
        "unit_name": None if unit is None else {"zh": unit.name_zh, "en": unit.name_en},
        "opened_by": case.opened_by,
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
        "step_started_at": case.step_started_at,
        "due_at": case.due_at,
        "overdue": is_overdue(case, now),
        "overdue_seconds": (
            round((now - case.due_at).total_seconds(), 3)
            if is_overdue(case, now) and case.due_at
            else 0
        ),
        "escalated": case.escalated_step is not None and case.escalated_step == case.step_seq,
        "late_steps": case.late_steps,
        "on_time": case.on_time and not is_overdue(case, now),
        "returns": case.returns,
        "alert_ids": list(case.alert_ids),
        "report_ids": list(case.report_ids),
        "dispatched_at": case.dispatched_at,
        "accepted_at": case.accepted_at,
        "arrived_at": case.arrived_at,
        "handled_at": case.handled_at,
        "closed_at": case.closed_at,
        "handle_note": case.handle_note,
        "photo_ids": list(case.photo_ids),
        "photo_urls": [f"/api/photos/{p}" for p in case.photo_ids],
        "minutes_to_accept": _minutes(case.dispatched_at, case.accepted_at),
        "minutes_to_arrive": _minutes(case.dispatched_at, case.arrived_at),
        "minutes_to_close": _minutes(case.opened_at, case.closed_at),
    }


def _minutes(a: datetime | None, b: datetime | None) -> float | None:
    s = _seconds(a, b)
    return None if s is None else round(s / 60, 1)


def sensor_back_to_normal(alert: AlertRow, history: list[AlertHistoryRow]) -> dict[str, Any]:
    """Whether the alert's condition has cleared and stayed clear for the rule's hold time.

    The worker resolves an alert on its own (no actor) only after the condition has been absent
    for the hold time, so such a resolution is exactly that; resolved by an operator, or still
    firing, it is not (the sensor may still be out of range)."""
    last = history[-1] if history else None
    cleared = (
        alert.status == "resolved"
        and last is not None
        and last.status == "resolved"
        and last.actor is None
    )
    return {
        "alert_id": alert.alert_id,
        "risk": alert.risk,
        "level": alert.level,
        "status": alert.status,
        "zone_id": alert.zone_id,
        "summary_zh": alert.summary_zh,
        "summary_en": alert.summary_en,
        "back_to_normal": cleared,
        "normal_since": last.at if cleared and last is not None else None,
    }


def case_photo_rule(engine: Any) -> Callable[[Caller, Any], bool]:
    """For ``PhotoAccess``: a responder may see the photos of its unit's cases."""

    def rule(caller: Caller, photo: Any) -> bool:
        if caller.role is not Role.RESPONDER or not caller.unit_id:
            return False
        return unit_case_has_photo(engine, caller.unit_id, photo.photo_id)

    return rule


def cases_router(ctx: ApiContext) -> APIRouter:
    """``/api/cases/**`` and ``/api/units``."""
    router = APIRouter(tags=["cases"])
    desk = CaseDesk.load(ctx)
    _unit_routes(router, desk)
    _open_route(router, desk)
    _action_routes(router, desk)
    _read_routes(router, desk)
    return router


@dataclass(frozen=True)
class CaseDesk:
    """What the case routes share: the units, the time limits, and how an action becomes a
    checked ``CaseCommand`` on ``puhui.cases``."""

    ctx: ApiContext
    units: UnitRegistry
    limits: CaseLimits
    unit_ids: frozenset[str]

    @classmethod
    def load(cls, ctx: ApiContext) -> CaseDesk:
        units = load_units_for(ctx)
        return cls(ctx, units, load_limits_for(ctx), frozenset(u.id for u in units))

    @staticmethod
    def visible(caller: Caller, case: Case | None, case_id: str) -> Case:
        """The case, if the caller may see it (a responder: its unit's only); else a 404."""
        if case is None or (caller.role is Role.RESPONDER and case.unit_id != caller.unit_id):
            raise NotFound(f"no case {case_id}")
        return case

    async def submit(self, cmd: CaseCommand, before: Case | None) -> None:
        """Check ``cmd`` against the case as stored (the worker's own rules), then publish it."""
        try:
            apply_case_command(before, cmd, self.limits, self.unit_ids)
        except CaseRejected as rejected:
            raise _refusal(rejected) from None
        ctx = self.ctx
        try:
            await ctx.publisher.publish(ctx.topics.cases, cmd.case_id.encode(), cmd.to_bytes())
        except PublishError as exc:
            raise Unavailable(f"the command was not accepted, try again: {exc}") from exc

    def command(
        self, caller: Caller, case_id: str, action: CaseAction, **fields: Any
    ) -> CaseCommand:
        role = {
            Role.OPERATOR: ActorRole.OPERATOR,
            Role.ADMIN: ActorRole.ADMIN,
            Role.RESPONDER: ActorRole.RESPONDER,
        }.get(caller.role)
        if role is None:
            raise Forbidden("this needs the operator or responder role")
        return CaseCommand(
            command_id=str(uuid.uuid4()),
            case_id=case_id,
            action=action,
            actor=caller.name,
            actor_role=role,
            actor_unit=caller.unit_id,
            issued_at=self.ctx.now(),
            **fields,
        )

    async def act(
        self, case_id: str, caller: Caller, action: CaseAction, **fields: Any
    ) -> dict[str, Any]:
        """An action on a stored case the caller may see."""
        case = await run_in_threadpool(load_case, self.ctx.engine, case_id)
        case = self.visible(caller, case, case_id)
        cmd = self.command(caller, case_id, action, **fields)
        await self.submit(cmd, case)
        return {"case_id": case_id, "command_id": cmd.command_id, "action": action.value}

    async def linked(
        self, body: CaseIn
    ) -> tuple[list[str], dict[str, AlertRow], list[str], list[ReportRow]]:
        """The alerts (ids in order, rows) and the reports (ids, rows) a new case is about; an
        unknown id is a 422 naming it."""
        if not body.alert_ids and not body.report_ids:
            raise InvalidInput(("body", "alert_ids"), "give alert_ids and/or report_ids")
        alert_ids = list(dict.fromkeys(body.alert_ids))
        report_ids = list(dict.fromkeys(body.report_ids))
        alerts = await run_in_threadpool(alerts_by_id, self.ctx.engine, alert_ids)
        for i, alert_id in enumerate(alert_ids):
            if alert_id not in alerts:
                raise InvalidInput(("body", "alert_ids", str(i)), f"no alert {alert_id[:64]}")
        reports = []
        for i, report_id in enumerate(report_ids):
            row = await run_in_threadpool(get_report, self.ctx.engine, report_id)
            if row is None:
                raise InvalidInput(("body", "report_ids", str(i)), f"no report {report_id[:64]}")
            reports.append(row)
        return alert_ids, alerts, report_ids, reports


def _refusal(rejected: CaseRejected) -> ApiError:
    """The HTTP answer to a command the case's rules refuse."""
    if rejected.code == "conflict":
        return Conflict(rejected.message)
    if rejected.code == "forbidden":
        return Forbidden(rejected.message)
    if rejected.code == "not_found":
        return NotFound(rejected.message)
    return InvalidInput(("body", rejected.field or "body"), rejected.message)


def _unit_routes(router: APIRouter, desk: CaseDesk) -> None:
    units = desk.units

    @router.get(
        "/api/units",
        summary="Units cases can be dispatched to (网格, 物业, 城管, 派出所, 消防, 医疗)",
        responses=error_responses(401, 403, 422),
    )
    def list_units(_caller: CaseCaller) -> dict[str, Any]:
        items = [
            {
                "unit_id": u.id,
                "name": {"zh": u.name_zh, "en": u.name_en},
                "kind": u.kind.value,
                "kind_zh": KIND_ZH[u.kind],
                "grids": [g.value for g in u.grids],
                "sites": list(u.sites),
            }
            for u in units
        ]
        return {"items": items, "total": len(items)}


def _open_route(router: APIRouter, desk: CaseDesk) -> None:
    command, submit = desk.command, desk.submit

    @router.post(
        "/api/cases",
        status_code=201,
        summary="Open a case (立案) about alerts and/or volunteer reports",
        description="201 with the new `case_id`: the command is on `puhui.cases` and the case "
        "worker registers the case moments later. Unknown alert or report ids are a 422 naming "
        "the field. `category` defaults to the first alert's risk (a report's category for "
        "report-only cases), `level` to the highest level of the alerts.",
        responses=error_responses(400, 401, 403, 413, 422, 503),
    )
    async def open_case(body: CaseIn, caller: OperatorCaller) -> dict[str, Any]:
        alert_ids, alerts, report_ids, reports = await desk.linked(body)
        first_alert = alerts[alert_ids[0]] if alert_ids else None
        category = body.category or (
            first_alert.risk if first_alert is not None else reports[0].category
        )
        if category not in CATEGORIES:
            raise InvalidInput(("body", "category"), f"unknown category {category[:32]!r}")
        levels = [Level(alerts[a].level) for a in alert_ids]
        level = body.level or (max(levels, key=lambda lv: lv.rank) if levels else Level.YELLOW)
        zone_id = first_alert.zone_id if first_alert is not None else reports[0].zone_id
        case_id = "cs_" + uuid.uuid4().hex
        cmd = command(
            caller,
            case_id,
            CaseAction.OPEN,
            title=body.title,
            category=category,
            level=level,
            zone_id=zone_id,
            alert_ids=tuple(alert_ids),
            report_ids=tuple(report_ids),
            note=body.note,
        )
        await submit(cmd, None)
        return {"case_id": case_id, "command_id": cmd.command_id, "status": "registered"}


def _action_routes(router: APIRouter, desk: CaseDesk) -> None:
    """Dispatch, accept, arrive, handle, verify, cancel: each a command for the case worker."""
    ctx, unit_ids, act = desk.ctx, desk.unit_ids, desk.act
    errors = error_responses(400, 401, 403, 404, 409, 413, 422, 503)
    accepted = "202: the command is on `puhui.cases`; the case worker applies it moments later."

    @router.post(
        "/api/cases/{case_id}/dispatch",
        status_code=202,
        summary="Dispatch (派遣) or re-dispatch (改派) a case to a unit",
        description=accepted,
        responses=errors,
    )
    async def dispatch(case_id: CaseId, body: DispatchIn, caller: OperatorCaller) -> dict[str, Any]:
        if body.unit_id not in unit_ids:
            raise InvalidInput(("body", "unit_id"), f"unknown unit {body.unit_id[:64]!r}")
        return await act(case_id, caller, CaseAction.DISPATCH, unit_id=body.unit_id, note=body.note)

    @router.post(
        "/api/cases/{case_id}/accept",
        status_code=202,
        summary="Accept a dispatched case (接单): a responder of its unit",
        description=accepted,
        responses=errors,
    )
    async def accept(
        case_id: CaseId, caller: CaseCaller, body: Annotated[NoteIn | None, Body()] = None
    ) -> dict[str, Any]:
        return await act(case_id, caller, CaseAction.ACCEPT, note=body.note if body else None)

    @router.post(
        "/api/cases/{case_id}/arrive",
        status_code=202,
        summary="Arrived on site (到场): a responder of its unit",
        description=accepted,
        responses=errors,
    )
    async def arrive(
        case_id: CaseId, caller: CaseCaller, body: Annotated[NoteIn | None, Body()] = None
    ) -> dict[str, Any]:
        return await act(case_id, caller, CaseAction.ARRIVE, note=body.note if body else None)

    @router.post(
        "/api/cases/{case_id}/handle",
        status_code=202,
        summary="Handled (处置完成), with what was done and photos: a responder of its unit",
        description=accepted + " `photo_ids` come from `POST /api/photos`.",
        responses=errors,
    )
    async def handle(case_id: CaseId, body: HandleIn, caller: CaseCaller) -> dict[str, Any]:
        photo_ids = list(dict.fromkeys(body.photo_ids))
        problem = await run_in_threadpool(owned_problems, ctx.engine, photo_ids, caller.principal)
        if problem is not None:
            raise InvalidInput(("body", "photo_ids", str(problem.index)), str(problem))
        return await act(
            case_id,
            caller,
            CaseAction.HANDLE,
            note=body.note,
            photo_ids=tuple(photo_ids),
        )

    @router.post(
        "/api/cases/{case_id}/verify",
        status_code=202,
        summary="Verify (核查) a handled case: closed (结案) or returned (退回, dispatched again)",
        description=accepted,
        responses=errors,
    )
    async def verify(case_id: CaseId, body: VerifyIn, caller: OperatorCaller) -> dict[str, Any]:
        return await act(case_id, caller, CaseAction.VERIFY, result=body.result, note=body.note)

    @router.post(
        "/api/cases/{case_id}/cancel",
        status_code=202,
        summary="Cancel (撤销) an open case",
        description=accepted,
        responses=errors,
    )
    async def cancel(
        case_id: CaseId, caller: OperatorCaller, body: Annotated[NoteIn | None, Body()] = None
    ) -> dict[str, Any]:
        return await act(case_id, caller, CaseAction.CANCEL, note=body.note if body else None)


def _read_routes(router: APIRouter, desk: CaseDesk) -> None:
    """The case list, one case, the cases of an alert."""
    ctx, units, limits, unit_ids, visible = (
        desk.ctx,
        desk.units,
        desk.limits,
        desk.unit_ids,
        desk.visible,
    )
    status_values = {s.value for s in CaseStatus}

    @router.get(
        "/api/cases",
        summary="Cases, most urgent first (default: the open ones)",
        description="Filters (repeatable or comma-separated): `status` (registered, dispatched, "
        "accepted, on_site, handled, closed, cancelled, or `open` / `all`), `unit`, `zone`, "
        "`overdue` (true/false). A responder sees its unit's cases only. Order: open before "
        "done, red first, overdue first, then newest. `counts` has the open cases by status and "
        "the overdue ones (of what the caller may see, before `status`/`overdue` filters).",
        responses=error_responses(401, 403, 422),
    )
    def listing(
        caller: CaseCaller,
        status: Annotated[list[str] | None, Query(max_length=10)] = None,
        unit: Annotated[list[str] | None, Query(max_length=10)] = None,
        zone: Annotated[list[str] | None, Query(max_length=10)] = None,
        overdue: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> dict[str, Any]:
        now = ctx.now()
        statuses = _statuses(_split(status, "status", status_values | {"open", "all"}))
        units_wanted = _split(unit, "unit", set(unit_ids))
        if caller.role is Role.RESPONDER:
            units_wanted = [caller.unit_id or ""]
        zones = _split(zone, "zone", None)
        cases, total = list_cases(
            ctx.engine,
            statuses=statuses,
            units=units_wanted,
            zones=zones,
            overdue=overdue,
            now=now,
            limit=limit,
            offset=offset,
        )
        counts = count_open(ctx.engine, units=units_wanted, zones=zones, now=now)
        return {
            "items": [case_view(ctx, c, units, now) for c in cases],
            "total": total,
            "limit": limit,
            "offset": offset,
            "counts": counts,
        }

    @router.get(
        "/api/cases/{case_id}",
        summary="One case with its timeline (who did what, when) and its alerts' state",
        description="`suggested_unit_ids`: the units that serve the case's zone, nearest first "
        "(its site's own, its grid team, then the others covering its grid). "
        "`alerts[].back_to_normal` says the sensor condition that raised the alert "
        "has cleared and stayed clear for the rule's hold time (the worker resolved the alert "
        "on its own): what the operator checks before verifying. A responder sees its unit's "
        "cases only (another's is a 404).",
        responses=error_responses(401, 403, 404, 422),
    )
    def detail(case_id: CaseId, caller: CaseCaller) -> dict[str, Any]:
        now = ctx.now()
        case = visible(caller, load_case(ctx.engine, case_id), case_id)
        alerts = alerts_by_id(ctx.engine, list(case.alert_ids))
        history = histories(ctx.engine, list(alerts))
        limit = limits.limit(case.category, case.level, case.status)
        zone = ctx.zones.get(case.zone_id) if case.zone_id else None
        serving = units.serving(zone.grid.value, zone.site) if zone is not None else []
        return {
            "suggested_unit_ids": [u.id for u in serving],
            **case_view(ctx, case, units, now),
            "limit_seconds": None if limit is None else limit.total_seconds(),
            "alerts": [sensor_back_to_normal(alerts[a], history.get(a, [])) for a in alerts],
            "timeline": [_event_view(e, units) for e in case_events(ctx.engine, case_id)],
        }

    @router.get(
        "/api/alerts/{alert_id}/cases",
        summary="The cases opened about an alert",
        responses=error_responses(401, 403, 422),
    )
    def of_alert(
        alert_id: Annotated[str, Path(min_length=1, max_length=64)], _caller: OperatorCaller
    ) -> dict[str, Any]:
        now = ctx.now()
        found = cases_of_alerts(ctx.engine, [alert_id]).get(alert_id, [])
        return {"items": [case_view(ctx, c, units, now) for c in found], "total": len(found)}


def _split(values: list[str] | None, name: str, allowed: set[str] | None) -> list[str] | None:
    """A repeatable, comma-separated query filter; a value not in ``allowed`` is a 422."""
    if not values:
        return None
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if allowed is not None and part not in allowed:
                raise InvalidInput(("query", name), f"unknown value {part[:64]!r}")
            out.append(part)
    return out or None


def _statuses(wanted: list[str] | None) -> list[str] | None:
    """The statuses a ``status`` filter means (``open``: the open ones; ``all``: no filter)."""
    if wanted is None or "open" in wanted:
        statuses: list[str] | None = sorted(
            {s.value for s in OPEN_STATUSES} | set(wanted or []) - {"open"}
        )
    else:
        statuses = wanted
    if statuses is not None and "all" in statuses:
        statuses = None
    return statuses
