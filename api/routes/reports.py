"""Volunteer reports: submit one, follow its status (Open311 GeoReport v2 in spirit).

Submission order: the body is validated (an unknown zone is a 422 naming ``zone_id``), then the
reporter's rate limit is taken (429), then the row is stored with no alert, then the report is
produced to ``puhui.volunteer-reports`` keyed by zone. If the broker does not take it, the row is
removed again and the answer is 503: a rejected request leaves nothing behind.

A report may carry photos uploaded before (``photo_ids``, the volunteer's own only); they are
attached in the same transaction as the row is stored, and freed again if the broker refuses.
The photo link (``photo_url``) is still accepted for one release.

A client that may send a report twice (the volunteer page resends what it kept while offline)
chooses the report's id: a repeat by the same volunteer with the same content is answered like
the first time and changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from alerts.cases import Case, CaseStatus
from api.auth import Caller, VolunteerCaller
from api.bus import PublishError
from api.context import ApiContext
from api.errors import Conflict, InvalidInput, NotFound, Unavailable
from api.queries import alerts_by_id, get_alert, get_report, histories, list_reports, load_history
from api.routes.common import Limit, Offset
from api.routes.photos import photo_links
from api.schemas import (
    ID_PATTERN,
    REPORT_ID_EXAMPLE,
    Category,
    ReportAccepted,
    ReportIn,
    ReportPage,
    ReportStatus,
    ReportView,
    error_responses,
)
from infra.cases_db import cases_of_alerts, cases_of_reports
from infra.db import AlertHistoryRow, AlertRow, ReportRow
from infra.photos import (
    PhotoNotAttachable,
    attach_problems,
    attached_ids,
    delete_unsent_report,
    insert_report_with_photos,
    photos_of_reports,
)
from infra.privacy import record_access
from models.contracts import ReportCategory, VolunteerReport

__all__ = ["CATEGORY_NAMES", "reports_router"]

CATEGORY_NAMES: dict[ReportCategory, tuple[str, str]] = {
    ReportCategory.INJURY: ("有人受伤", "Injury"),
    ReportCategory.FIRE: ("火情", "Fire"),
    ReportCategory.SMOKE: ("冒烟 / 焦味", "Smoke or burning smell"),
    ReportCategory.CROWDING: ("人群拥挤", "Crowding"),
    ReportCategory.GAS: ("燃气异味", "Gas smell"),
    ReportCategory.ELECTRICAL: ("电线 / 电器隐患", "Electrical hazard"),
    ReportCategory.FLOODING: ("积水", "Flooding"),
    ReportCategory.MANHOLE: ("井盖缺失或松动", "Manhole cover missing or loose"),
    ReportCategory.FIRE_LANE: ("消防通道堵塞", "Fire lane blocked"),
    ReportCategory.EBIKE: ("电动车进楼 / 进电梯", "E-bike indoors or in a lift"),
    ReportCategory.LITTERING: ("乱扔垃圾", "Littering"),
    ReportCategory.OTHER: ("其他", "Other"),
}

ReportId = Annotated[
    str, Path(pattern=ID_PATTERN, description="The report's id", examples=[REPORT_ID_EXAMPLE])
]


def report_view(
    ctx: ApiContext,
    row: ReportRow,
    alert: AlertRow | None,
    history: list[AlertHistoryRow],
    caller: Caller,
    photo_ids: list[str] | None = None,
    case: Case | None = None,
) -> dict[str, Any]:
    """A report as its reader sees it: actors' names and internal notes are shown to operators
    only, and a volunteer sees the alert's changes from their report on (not its whole past)."""
    status = report_status(alert, history)
    if case is not None and case.status is not CaseStatus.CANCELLED:
        status = (
            ReportStatus.CASE_CLOSED if case.status is CaseStatus.CLOSED else ReportStatus.IN_CASE
        )
    shown = history if alert is not None else []
    if not caller.is_operator:
        shown = [h for h in shown if h.at >= row.submitted_at or h.actor is not None]
    updates = [
        {
            "at": h.at,
            "change": h.change,
            "status": h.status,
            "note": h.note if caller.is_operator or _public(h) else None,
            "actor": h.actor if caller.is_operator else None,
        }
        for h in shown
    ]
    notes = [u["note"] for u in updates if u["note"]]
    updated = max([row.submitted_at, *(h.at for h in history if alert is not None)])
    return {
        "report_id": row.report_id,
        "reporter_id": row.reporter_id,
        "zone_id": row.zone_id,
        "zone_name": ctx.zone_name(row.zone_id),
        "category": row.category,
        "description": row.description,
        "lat": row.lat,
        "lon": row.lon,
        "photo_url": row.photo_url,
        "photos": [photo_links(p) for p in photo_ids or []],
        "submitted_at": row.submitted_at,
        "status": status,
        "alert_id": row.alert_id,
        "updates": updates,
        "service_request_id": row.report_id,
        "service_code": row.category,
        "open311_status": (
            "closed" if status in (ReportStatus.RESOLVED, ReportStatus.CASE_CLOSED) else "open"
        ),
        "status_notes": notes[-1] if notes else None,
        "requested_datetime": row.submitted_at,
        "updated_datetime": updated,
        "media_url": row.photo_url or (photo_links(photo_ids[0])["url"] if photo_ids else None),
        "case": None
        if case is None
        else {
            "case_id": case.case_id,
            "status": case.status.value,
            "opened_at": case.opened_at,
            "closed_at": case.closed_at,
        },
    }


def report_cases(ctx: ApiContext, rows: list[ReportRow]) -> dict[str, Case]:
    """The newest case of each report: opened about the report itself or about its alert."""
    direct = cases_of_reports(ctx.engine, [r.report_id for r in rows])
    by_alert = cases_of_alerts(ctx.engine, sorted({r.alert_id for r in rows if r.alert_id}))
    out: dict[str, Case] = {}
    for r in rows:
        found = [c for c in [direct.get(r.report_id), *by_alert.get(r.alert_id or "", [])] if c]
        if found:
            out[r.report_id] = max(found, key=lambda c: c.opened_at)
    return out


MAX_REPORT_AGE = timedelta(days=7)
"""The oldest ``made_at`` a report may carry (a phone kept it offline for a week at most)."""


def _repeat(row: ReportRow, body: ReportIn, caller: Caller, photos: list[str]) -> ReportAccepted:
    """A report id seen before: the same volunteer resending the same content is the same
    report (its original answer again); anything else is a conflict."""
    same = (
        sorted(photos) == sorted(body.photo_ids)
        and row.reporter_id == caller.principal
        and row.zone_id == body.zone_id
        and row.category == body.category.value
        and row.description == body.description
        and row.lat == body.lat
        and row.lon == body.lon
        and row.photo_url == body.photo_url
    )
    if not same:
        raise Conflict(
            "report_id is already used by another report: choose a new id for a new report"
        )
    return ReportAccepted(report_id=row.report_id, submitted_at=row.submitted_at)


def _public(h: AlertHistoryRow) -> bool:
    return bool((h.record or {}).get("note_public"))


def report_status(alert: AlertRow | None, history: list[AlertHistoryRow]) -> ReportStatus:
    """``submitted`` → ``linked`` → ``acknowledged`` (a person acted) → ``resolved`` (closed and
    seen by a person). A latched alert (cleared on its own, unacknowledged) is not resolved for
    the reporter: nobody has looked yet."""
    if alert is None:
        return ReportStatus.SUBMITTED
    acted = alert.acknowledged_by is not None or any(h.actor for h in history)
    if alert.status == "resolved" and not alert.latched:
        return ReportStatus.RESOLVED
    return ReportStatus.ACKNOWLEDGED if acted else ReportStatus.LINKED


def reports_router(ctx: ApiContext) -> APIRouter:
    """``/api/reports`` and ``/api/report-categories``."""
    router = APIRouter(tags=["reports"])

    @router.get(
        "/api/report-categories",
        summary="Categories a volunteer can report (Open311 services)",
        response_model=list[Category],
        responses=error_responses(401),
    )
    def categories(_caller: VolunteerCaller) -> list[dict[str, Any]]:
        return [
            {"code": code, "name": {"zh": zh, "en": en}}
            for code, (zh, en) in CATEGORY_NAMES.items()
        ]

    @router.post(
        "/api/reports",
        status_code=202,
        summary="Submit a report (volunteer)",
        description="Stores the report and puts it on `puhui.volunteer-reports` (keyed by zone). "
        "The reporter is the token's principal (a stable id, not the display name). The client "
        "may choose `report_id` (a UUID): a resend of the same report answers 202 with the same "
        "id and stores nothing new; the same id with other content is a 409. `made_at` (the time "
        "the report was made, e.g. while offline) becomes `submitted_at`; without it the "
        "server's clock does. Limited per reporter (429 with `Retry-After`; a resend does not "
        "count).",
        response_model=ReportAccepted,
        responses=error_responses(400, 401, 403, 409, 413, 422, 429, 503),
    )
    async def submit(body: ReportIn, caller: VolunteerCaller) -> ReportAccepted:
        return await _submit(ctx, body, caller)

    @router.get(
        "/api/reports",
        summary="The caller's own reports, newest first",
        response_model=ReportPage,
        responses=error_responses(401, 422),
    )
    def mine(caller: VolunteerCaller, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        rows, total = list_reports(ctx.engine, caller.principal, limit=limit, offset=offset)
        linked = sorted({r.alert_id for r in rows if r.alert_id})
        alerts = alerts_by_id(ctx.engine, linked)
        history = histories(ctx.engine, linked)
        cases = report_cases(ctx, rows)
        photos = photos_of_reports(ctx.engine, [r.report_id for r in rows])
        items = [
            report_view(
                ctx,
                row,
                alerts.get(row.alert_id) if row.alert_id else None,
                history.get(row.alert_id, []) if row.alert_id else [],
                caller,
                photos.get(row.report_id, []),
                cases.get(row.report_id),
            )
            for row in rows
        ]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    @router.get(
        "/api/reports/{report_id}",
        summary="A report, its status and the operators' updates",
        description="The reporter sees its own reports (another volunteer's is a 404); operators "
        "see any. `status` is `submitted` until the pipeline links the report to an alert, then "
        "that alert's status; `updates` is the alert's history (actors shown to operators only).",
        response_model=ReportView,
        responses=error_responses(401, 404, 422),
    )
    def one(report_id: ReportId, caller: VolunteerCaller) -> dict[str, Any]:
        row = get_report(ctx.engine, report_id)
        if row is None or (not caller.is_operator and row.reporter_id != caller.principal):
            raise NotFound(f"no report {report_id}")
        if row.reporter_id != caller.principal:  # an operator reads a volunteer's personal data
            record_access(
                ctx.engine,
                caller.name,
                "read",
                f"GET /api/reports/{report_id}",
                [report_id],
                ctx.now(),
            )
        alert = get_alert(ctx.engine, row.alert_id) if row.alert_id else None
        history = load_history(ctx.engine, alert.alert_id) if alert is not None else []
        photos = photos_of_reports(ctx.engine, [report_id]).get(report_id, [])
        case = report_cases(ctx, [row]).get(row.report_id)
        return report_view(ctx, row, alert, history, caller, photos, case)

    return router


async def _submit(ctx: ApiContext, body: ReportIn, caller: Caller) -> ReportAccepted:
    """Check a report, then store and publish it; a resend of a stored one answers as the first
    time did (:func:`_repeat`)."""
    submitted_at = _submitted_at(ctx, body)
    report_id = body.report_id.lower() if body.report_id else str(uuid.uuid4())
    for index, photo_id in enumerate(body.photo_ids):
        if photo_id in body.photo_ids[:index]:
            raise InvalidInput(("body", "photo_ids", str(index)), "listed twice", "duplicate")
    if body.report_id is not None:
        existing = await run_in_threadpool(get_report, ctx.engine, report_id)
        if existing is not None:
            attached = await run_in_threadpool(attached_ids, ctx.engine, report_id)
            return _repeat(existing, body, caller, attached)
    problem = await run_in_threadpool(
        attach_problems, ctx.engine, body.photo_ids, caller.principal, report_id
    )
    if problem is not None:
        raise InvalidInput(("body", "photo_ids", str(problem.index)), str(problem), "unknown_photo")
    report = _report_of(body, report_id, caller.principal, submitted_at)
    return await _store_and_publish(ctx, report, body, caller)


def _submitted_at(ctx: ApiContext, body: ReportIn) -> datetime:
    """The report's time (``made_at``, at most now and at most a week old; or now), once its
    zone is known to exist."""
    if body.zone_id not in ctx.zones:
        raise InvalidInput(
            ("body", "zone_id"), f"unknown zone {body.zone_id[:128]!r}", "unknown_zone"
        )
    now = ctx.now()
    if body.made_at is None:
        return now
    if body.made_at < now - MAX_REPORT_AGE:
        raise InvalidInput(("body", "made_at"), "more than 7 days old: report it afresh", "too_old")
    return min(body.made_at, now)


def _report_of(
    body: ReportIn, report_id: str, reporter: str, submitted_at: datetime
) -> VolunteerReport:
    """The wire record; what the contract refuses is a 422 naming the field."""
    try:
        return VolunteerReport(
            report_id=report_id,
            reporter_id=reporter,
            zone_id=body.zone_id,
            category=body.category,
            description=body.description,
            submitted_at=submitted_at,
            lat=None if body.lat is None else float(body.lat),
            lon=None if body.lon is None else float(body.lon),
            photo_url=body.photo_url,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(part) for part in first.get("loc", ()))
        raise InvalidInput(("body", *loc), first["msg"], first["type"]) from None


async def _store_and_publish(
    ctx: ApiContext, report: VolunteerReport, body: ReportIn, caller: Caller
) -> ReportAccepted:
    """Store the report with its photos, then put it on ``puhui.volunteer-reports``; counted
    against the reporter's rate limit only when it is new and accepted (a refused one is not
    kept: nothing half-written)."""
    ctx.report_limiter.take(caller.principal)
    try:
        inserted = await run_in_threadpool(
            insert_report_with_photos, ctx.engine, report, body.photo_ids
        )
    except PhotoNotAttachable as exc:
        ctx.report_limiter.give_back(caller.principal)
        raise InvalidInput(
            ("body", "photo_ids", str(exc.index)), str(exc), "unknown_photo"
        ) from None
    if not inserted:
        # The same id arrived at the same moment from another request: that one stored it.
        ctx.report_limiter.give_back(caller.principal)
        existing = await run_in_threadpool(get_report, ctx.engine, report.report_id)
        if existing is None:
            raise Unavailable("the report was not accepted, try again")
        attached = await run_in_threadpool(attached_ids, ctx.engine, report.report_id)
        return _repeat(existing, body, caller, attached)
    try:
        await ctx.publisher.publish(
            ctx.topics.reports, report.zone_id.encode(), report.model_dump_json().encode()
        )
    except PublishError as exc:
        await run_in_threadpool(delete_unsent_report, ctx.engine, report.report_id)
        ctx.report_limiter.give_back(caller.principal)
        raise Unavailable(f"the report was not accepted, try again: {exc}") from exc
    return ReportAccepted(report_id=report.report_id, submitted_at=report.submitted_at)
