"""Alerts for the control room: the board, one alert's detail, the operators' actions, the live
stream, the CAP export, and the incident log.

Operators do not change alerts here. An action becomes an ``AlertCommand`` on
``puhui.alert-commands`` keyed by zone; the worker that holds the zone's state applies it and
publishes the resulting alert record (it is the single writer of revisions), and its persist agent
writes that record to ``alerts`` + ``alert_history`` — the audit trail of who did what, when, and
why. So an action answers 202: accepted, to be applied.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from alerts.config import RuleBook, RulesFileError, load_rules
from alerts.explain import explain
from api.auth import Caller, OperatorCaller, StreamCaller
from api.bus import PublishError
from api.cap import CapRef, build_cap, cap_ref
from api.context import ApiContext
from api.errors import Conflict, NotFound, Unavailable
from api.queries import (
    OPEN_STATUSES,
    cap_ranks,
    get_alert,
    history_page,
    list_alerts,
    load_history,
    reports_for_alert,
    resolved_since,
)
from api.routes.common import FilterQuery, Limit, Offset, alert_filter, alert_item, listing_item
from api.routes.photos import photo_links
from api.schemas import (
    ALERT_ID_EXAMPLE,
    ID_PATTERN,
    ActionIn,
    AlertDetail,
    AlertPage,
    AssignIn,
    CommandAccepted,
    HistoryPage,
    IncidentPage,
    LinkedReportPage,
    ShiftLogPage,
    error_responses,
)
from infra.db import AlertHistoryRow, AlertRow, ReportRow
from infra.photos import photos_of_reports
from infra.privacy import record_access, report_ids
from infra.settings import Settings
from infra.tokens import token_active
from models.contracts import AlertCommand, AlertRecord, AlertStatus, CommandAction, Level, Risk

__all__ = ["alerts_router", "sse_event"]

CAP_MEDIA_TYPE = "application/cap+xml"

AlertId = Annotated[
    str, Path(pattern=ID_PATTERN, description="The alert's id", examples=[ALERT_ID_EXAMPLE])
]

_FILTER_DOC = (
    "Filters (each repeatable or comma-separated): `status` (firing, acknowledged, resolved, "
    "or `all`), `zone` (zone id), `site`, `risk`, `level` (blue, yellow, orange, red)."
)


#: What an alert's detail shows of its history and linked reports (the rest page).
HISTORY_SHOWN = 100
REPORTS_SHOWN = 50


def history_entry(h: AlertHistoryRow) -> dict[str, Any]:
    """One change of an alert, for the audit trail."""
    return {
        "revision": h.revision,
        "change": h.change,
        "level": h.level,
        "status": h.status,
        "at": h.at,
        "actor": h.actor,
        "note": h.note,
        "assignee": (h.record or {}).get("assignee"),
    }


def linked_report(r: ReportRow, photo_ids: list[str] | None = None) -> dict[str, Any]:
    """A report linked to an alert, as operators see it (personal fields included)."""
    return {
        "photos": [photo_links(p) for p in photo_ids or []],
        "report_id": r.report_id,
        "reporter_id": r.reporter_id,
        "category": r.category,
        "description": r.description,
        "submitted_at": r.submitted_at,
        "lat": r.lat,
        "lon": r.lon,
        "photo_url": r.photo_url,
    }


REVOKED_EVENT = "event: revoked\ndata: {}\n\n"
"""The last event of a stream whose token was revoked or has expired."""


def sse_event(record: AlertRecord) -> str:
    """One server-sent event for an alert record."""
    event_id = f"{record.alert_id}:{record.revision}"
    return f"event: alert\nid: {event_id}\ndata: {record.model_dump_json()}\n\n"


def alerts_router(ctx: ApiContext) -> APIRouter:
    """``/api/alerts/**`` and ``/api/incidents``."""
    router = APIRouter(tags=["alerts"])
    _stream_route(router, ctx)  # before /api/alerts/{alert_id}, which would match "stream"
    _board_routes(router, ctx)
    _detail_routes(router, ctx, _rule_book(ctx))
    _cap_route(router, ctx)
    _action_routes(router, ctx)
    return router


def _rule_book(ctx: ApiContext) -> RuleBook | None:
    try:
        return load_rules(ctx.settings.rules_file, ctx.zones)
    except RulesFileError:
        return None  # the worker refuses such a file; the detail then has no words


def _explanation(rule_book: RuleBook | None, alert: AlertRow) -> dict[str, Any] | None:
    """The alert in words (what was measured against which threshold), if the rules allow."""
    if rule_book is None:
        return None
    try:
        words = explain(
            Risk(alert.risk),
            Level(alert.level),
            alert.evidence or {},
            rule_book.for_zone(alert.zone_id),
            predicted=alert.predicted,
        )
    except (ValueError, KeyError, TypeError):
        return None
    return asdict(words)


# -- live stream ------------------------------------------------------------------------------


def _stream_route(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/api/alerts/stream",
        summary="Live alert records as server-sent events",
        description="Each change of an alert, as published on `puhui.alerts`: `event: alert`, "
        "`id: <alert_id>:<revision>`, `data: <alert record JSON>`. A `: live` comment says the "
        "feed is positioned at the end of the topic (every record after it is delivered); a "
        "`: keep-alive` comment follows every 15 s of silence. The stream ends after "
        "`PUHUI_SSE_MAX_SECONDS` (the client reconnects). The token goes in the `Authorization` "
        "header (read the stream with `fetch`; a token in the URL is a 400). The token is "
        "re-checked every `PUHUI_STREAM_RECHECK_SECONDS`: once revoked or expired, an "
        "`event: revoked` ends the stream.",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "An endless event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **error_responses(400, 401, 403, 422),
        },
    )
    async def stream(request: Request, caller: StreamCaller) -> StreamingResponse:
        return StreamingResponse(
            _alert_events(ctx, caller),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


class _Pacer:
    """When a stream's next token check, keep-alive and end are due (the event loop's clock).

    Waits are cut into slices of ``recheck`` seconds; after each, the token is looked up again:
    a revoked or expired token's stream ends within seconds, not at ``sse_max_seconds``.
    Keep-alives still go out every ``keepalive`` seconds."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.get_running_loop()
        self.keepalive = settings.sse_keepalive_seconds
        self.recheck = settings.stream_recheck_seconds
        self.deadline = self.loop.time() + settings.sse_max_seconds
        self.next_check = self.loop.time() + self.recheck
        self.next_keepalive = self.loop.time() + self.keepalive

    def running(self) -> bool:
        return self.loop.time() < self.deadline

    def wait_budget(self) -> float:
        return max(0.0, min(self.next_check, self.next_keepalive, self.deadline) - self.loop.time())

    async def due(self, still_allowed: Callable[[], Awaitable[bool]]) -> list[str]:
        """What the passing of time calls for: a keep-alive, or the end of the stream
        (``event: revoked``, then nothing) once the token is no longer valid."""
        now = self.loop.time()
        lines: list[str] = []
        if now >= self.next_check:
            self.next_check = now + self.recheck
            if not await still_allowed():
                return [REVOKED_EVENT]
        if now >= self.next_keepalive:
            self.next_keepalive = now + self.keepalive
            lines.append(": keep-alive\n\n")
        return lines


async def _alert_events(ctx: ApiContext, caller: Caller) -> AsyncIterator[str]:
    """The event stream of one subscriber: every alert record once the feed is live, keep-alives,
    and the end (the deadline, an overflowing subscriber, or the token no longer valid)."""
    hub = ctx.hub

    async def still_allowed() -> bool:
        return await run_in_threadpool(token_active, ctx.engine, caller.token_id, ctx.now())

    pacer = _Pacer(ctx.settings)
    with hub.subscribe() as sub:
        yield "retry: 3000\n: connected\n\n"
        live = False
        while not sub.overflowed and pacer.running():
            if not live and hub.live.is_set():
                live = True
                yield ": live\n\n"
            try:
                if live:
                    yield sse_event(await asyncio.wait_for(sub.get(), pacer.wait_budget()))
                else:
                    await asyncio.wait_for(hub.live.wait(), pacer.wait_budget())
            except TimeoutError:
                pass
            for line in await pacer.due(still_allowed):
                yield line
                if line is REVOKED_EVENT:
                    return


# -- the board --------------------------------------------------------------------------------


def _board_routes(router: APIRouter, ctx: ApiContext) -> None:
    """The board, the incident log and the shift log."""

    @router.get(
        "/api/alerts",
        summary="Alerts, most severe first (default: the open ones)",
        description=_FILTER_DOC + " Default: what the control room must see — firing, "
        "acknowledged (still firing) and **latched** alerts (橙/红 alerts that resolved on their "
        "own before anyone acknowledged them: `status` resolved, `latched` true, until a person "
        "acknowledges them). Ordered by level (red first), then the most recently changed.",
        response_model=AlertPage,
        responses=error_responses(401, 403, 422),
    )
    def board(
        _caller: OperatorCaller,
        status: FilterQuery = None,
        zone: FilterQuery = None,
        site: FilterQuery = None,
        risk: FilterQuery = None,
        level: FilterQuery = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        where = alert_filter(
            ctx,
            status=status,
            zone=zone,
            site=site,
            risk=risk,
            level=level,
            default_statuses=OPEN_STATUSES,
            default_latched=True,
        )
        rows, total = list_alerts(ctx.engine, where, limit=limit, offset=offset)
        items = [alert_item(ctx, r.alert, r.latest) for r in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.get(
        "/api/incidents",
        summary="Every alert episode, open and closed, newest first",
        description=_FILTER_DOC + " Default: all statuses. Each item counts the volunteer "
        "reports linked to it.",
        response_model=IncidentPage,
        tags=["incidents"],
        responses=error_responses(401, 403, 422),
    )
    def incidents(
        _caller: OperatorCaller,
        status: FilterQuery = None,
        zone: FilterQuery = None,
        site: FilterQuery = None,
        risk: FilterQuery = None,
        level: FilterQuery = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        where = alert_filter(
            ctx,
            status=status,
            zone=zone,
            site=site,
            risk=risk,
            level=level,
            default_statuses=None,
        )
        rows, total = list_alerts(ctx.engine, where, limit=limit, offset=offset, order="recent")
        items = [listing_item(ctx, r) for r in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.get(
        "/api/shift-log",
        summary="The shift log: every alert resolved in the last N hours, who closed it and how",
        description="Newest first. `closed_how` is `operator` (a person resolved it: "
        "`resolved_by`, `note`) or `cleared` (the condition cleared on its own for the hold "
        "time); `acknowledged_by`/`acknowledged_at` say who has seen it, and `latched` that "
        "nobody has yet (it is still on the board). `hours` counts back from now (wall clock) "
        "over the alerts' resolve times.",
        response_model=ShiftLogPage,
        tags=["incidents"],
        responses=error_responses(401, 403, 422),
    )
    def shift_log(
        _caller: OperatorCaller,
        hours: Annotated[
            float, Query(gt=0, le=168, description="How far back, in hours (default 12)")
        ] = 12.0,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        since = ctx.now() - timedelta(hours=hours)
        rows, total = resolved_since(ctx.engine, since, limit=limit, offset=offset)
        items = [
            {
                **alert_item(ctx, alert, done.record),
                "resolved_at": done.at,
                "closed_how": "operator" if done.actor else "cleared",
                "resolved_by": done.actor,
                "note": done.note,
            }
            for alert, done in rows
        ]
        return {"items": items, "total": total, "limit": limit, "offset": offset, "hours": hours}


# -- one alert --------------------------------------------------------------------------------


def _detail_routes(router: APIRouter, ctx: ApiContext, rule_book: RuleBook | None) -> None:
    """One alert, its history and its linked reports."""

    @router.get(
        "/api/alerts/{alert_id}",
        summary="One alert with its evidence, history (audit trail) and linked reports",
        response_model=AlertDetail,
        responses=error_responses(401, 403, 404, 422),
    )
    def detail(alert_id: AlertId, caller: OperatorCaller) -> dict[str, Any]:
        alert = get_alert(ctx.engine, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        history, history_total = history_page(ctx.engine, alert_id, limit=HISTORY_SHOWN)
        reports, reports_total = reports_for_alert(ctx.engine, alert_id, limit=REPORTS_SHOWN)
        latest = history[-1].record if history else None
        _read_reports(ctx, caller, reports, f"GET /api/alerts/{alert_id}")
        photos = photos_of_reports(ctx.engine, report_ids(reports))
        return {
            **alert_item(ctx, alert, latest),
            "explanation": _explanation(rule_book, alert),
            "evidence": alert.evidence,
            "history": [history_entry(h) for h in history],
            "history_total": history_total,
            "reports": [linked_report(r, photos.get(r.report_id)) for r in reports],
            "reports_total": reports_total,
        }

    @router.get(
        "/api/alerts/{alert_id}/history",
        summary="A page of an alert's history (audit: who, when, note), oldest first",
        response_model=HistoryPage,
        responses=error_responses(401, 403, 404, 422),
    )
    def history(
        alert_id: AlertId, _caller: OperatorCaller, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        if get_alert(ctx.engine, alert_id) is None:
            raise NotFound(f"no alert {alert_id}")
        rows, total = history_page(ctx.engine, alert_id, limit=limit, offset=offset)
        items = [history_entry(h) for h in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.get(
        "/api/alerts/{alert_id}/reports",
        summary="A page of the volunteer reports linked to an alert, oldest first",
        description="Volunteers' personal data: each read is recorded (who, when, which reports).",
        response_model=LinkedReportPage,
        responses=error_responses(401, 403, 404, 422),
    )
    def linked_reports(
        alert_id: AlertId, caller: OperatorCaller, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        if get_alert(ctx.engine, alert_id) is None:
            raise NotFound(f"no alert {alert_id}")
        rows, total = reports_for_alert(ctx.engine, alert_id, limit=limit, offset=offset)
        _read_reports(ctx, caller, rows, f"GET /api/alerts/{alert_id}/reports")
        photos = photos_of_reports(ctx.engine, report_ids(rows))
        items = [linked_report(r, photos.get(r.report_id)) for r in rows]
        return {"items": items, "total": total, "limit": limit, "offset": offset}


def _read_reports(ctx: ApiContext, caller: Caller, rows: list[Any], what: str) -> None:
    """An operator is shown volunteers' personal fields: recorded (PIPL accountability)."""
    record_access(ctx.engine, caller.name, "read", what, report_ids(rows), ctx.now())


# -- CAP export -------------------------------------------------------------------------------


def _cap_route(router: APIRouter, ctx: ApiContext) -> None:
    @router.get(
        "/api/alerts/{alert_id}/cap",
        summary="The alert as an OASIS CAP 1.2 message (GB/T 35965.1 identifier)",
        description="The newest revision by default, or `revision`. msgType Alert for the first "
        "revision, Update for later ones, Cancel once resolved; updates reference every earlier "
        "revision's message. Valid against the official CAP 1.2 XSD.",
        response_class=Response,
        responses={
            200: {
                "description": "CAP 1.2 XML",
                "content": {CAP_MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            **error_responses(401, 403, 404, 422),
        },
    )
    def cap(
        alert_id: AlertId,
        _caller: OperatorCaller,
        revision: Annotated[
            int | None, Query(ge=1, le=1_000_000, description="Default: the newest")
        ] = None,
    ) -> Response:
        history = load_history(ctx.engine, alert_id)
        if not history:
            raise NotFound(f"no alert {alert_id}")
        chosen = history[-1] if revision is None else None
        for row in history:
            if row.revision == revision:
                chosen = row
        if chosen is None:
            raise NotFound(f"alert {alert_id} has no revision {revision}")
        earlier = [row for row in history if row.revision < chosen.revision]
        ranks = cap_ranks(ctx.engine, [*earlier, chosen])
        code = ctx.settings.cap_sender_code
        record = AlertRecord.model_validate(chosen.record)
        refs: list[CapRef] = [
            cap_ref(code, AlertRecord.model_validate(row.record), ranks[row.revision])
            for row in earlier
        ]
        body = build_cap(
            record,
            zone=ctx.zones.get(record.zone_id),
            sender=ctx.settings.cap_sender,
            sender_name=ctx.settings.cap_sender_name,
            sender_code=code,
            identifier=cap_ref(code, record, ranks[chosen.revision]).identifier,
            references=refs,
        )
        return Response(body, media_type=CAP_MEDIA_TYPE)


# -- actions ----------------------------------------------------------------------------------


async def _command(
    ctx: ApiContext,
    alert_id: str,
    action: CommandAction,
    caller: Caller,
    note: str | None,
    assignee: str | None = None,
    public: bool = False,
) -> CommandAccepted:
    """Publish an operator's action as an ``AlertCommand`` keyed by zone (the worker applies it)."""
    alert = await run_in_threadpool(get_alert, ctx.engine, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    _refuse_if_closed(alert, action)
    cmd = AlertCommand(
        command_id=str(uuid.uuid4()),
        alert_id=alert.alert_id,
        zone_id=alert.zone_id,
        action=action,
        actor=caller.name,
        issued_at=ctx.now(),
        note=note,
        assignee=assignee,
        note_public=public and note is not None,
    )
    try:
        await ctx.publisher.publish(ctx.topics.commands, cmd.zone_id.encode(), cmd.to_bytes())
    except PublishError as exc:
        raise Unavailable(f"the command was not accepted, try again: {exc}") from exc
    return CommandAccepted(command_id=cmd.command_id, alert_id=alert_id, action=action)


def _refuse_if_closed(alert: AlertRow, action: CommandAction) -> None:
    """Only open alerts are acted on; a latched one (resolved on its own, unacknowledged) may
    still be acknowledged, which takes it off the board."""
    if alert.status != AlertStatus.RESOLVED:
        return
    if alert.latched and action == CommandAction.ACKNOWLEDGE:
        return
    if alert.latched:
        raise Conflict(
            f"alert {alert.alert_id} already resolved on its own; acknowledge it to take it "
            "off the board"
        )
    raise Conflict(f"alert {alert.alert_id} is resolved; only open alerts can be acted on")


def _action_routes(router: APIRouter, ctx: ApiContext) -> None:
    """Acknowledge, assign, resolve: each a command for the worker (202)."""
    action_doc = (
        "Publishes an `AlertCommand` to `puhui.alert-commands` (keyed by zone); the worker "
        "applies it and publishes the alert record, which lands in the alert's history with the "
        "caller as actor and the note. Only open alerts: a resolved one is a 409 — except "
        "acknowledging a latched alert (resolved on its own, unacknowledged), which takes it off "
        "the board. Resolving an alert whose condition is still present is accepted, and the "
        "worker reopens the same alert (`change` reopened, same id) at its next assessment."
    )
    action_errors = error_responses(400, 401, 403, 404, 409, 413, 422, 503)

    @router.post(
        "/api/alerts/{alert_id}/ack",
        status_code=202,
        summary="Acknowledge an alert",
        description=action_doc,
        response_model=CommandAccepted,
        responses=action_errors,
    )
    async def acknowledge(
        alert_id: AlertId,
        caller: OperatorCaller,
        body: Annotated[ActionIn | None, Body()] = None,
    ) -> CommandAccepted:
        note = body.note if body is not None else None
        public = body.public if body is not None else False
        return await _command(ctx, alert_id, CommandAction.ACKNOWLEDGE, caller, note, public=public)

    @router.post(
        "/api/alerts/{alert_id}/assign",
        status_code=202,
        summary="Assign an alert to someone",
        description=action_doc,
        response_model=CommandAccepted,
        responses=action_errors,
    )
    async def assign(
        alert_id: AlertId,
        body: AssignIn,
        caller: OperatorCaller,
    ) -> CommandAccepted:
        return await _command(
            ctx, alert_id, CommandAction.ASSIGN, caller, body.note, body.assignee, body.public
        )

    @router.post(
        "/api/alerts/{alert_id}/resolve",
        status_code=202,
        summary="Resolve an alert",
        description=action_doc,
        response_model=CommandAccepted,
        responses=action_errors,
    )
    async def resolve(
        alert_id: AlertId,
        caller: OperatorCaller,
        body: Annotated[ActionIn | None, Body()] = None,
    ) -> CommandAccepted:
        note = body.note if body is not None else None
        public = body.public if body is not None else False
        return await _command(ctx, alert_id, CommandAction.RESOLVE, caller, note, public=public)
