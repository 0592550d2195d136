"""Silences: operators read them, admins create and delete them.

A silenced alert is still raised, recorded and shown; only its notifications are held back (the
notifier asks :func:`alerts.silences.is_silenced`). Deleting a silence keeps its row, marked with
who deleted it and when, so the log of who muted what survives.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from api.auth import AdminCaller, OperatorCaller
from api.context import ApiContext
from api.errors import InvalidInput, NotFound
from api.schemas import (
    ID_PATTERN,
    SILENCE_ID_EXAMPLE,
    SilenceIn,
    SilenceList,
    SilenceOut,
    SilenceState,
    error_responses,
)
from infra.db import SilenceRow, delete_silence, insert_silence, list_silences

__all__ = ["silence_out", "silences_router"]


def silence_state(row: SilenceRow, now: datetime) -> SilenceState:
    """Where the silence is at ``now``."""
    if row.deleted_at is not None:
        return SilenceState.DELETED
    if now < row.starts_at:
        return SilenceState.PENDING
    if now < row.ends_at:
        return SilenceState.ACTIVE
    return SilenceState.EXPIRED


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def silence_out(row: SilenceRow, now: datetime) -> dict[str, Any]:
    """A silence row as the API shows it (times in UTC, as stored)."""
    return {
        "id": row.id,
        "zone_id": row.zone_id,
        "site": row.site,
        "risk": row.risk,
        "level": row.level,
        "starts_at": _utc(row.starts_at),
        "ends_at": _utc(row.ends_at),
        "comment": row.comment,
        "created_by": row.created_by,
        "created_at": _utc(row.created_at),
        "state": silence_state(row, now),
        "deleted_at": _utc(row.deleted_at),
        "deleted_by": row.deleted_by,
    }


def silences_router(ctx: ApiContext) -> APIRouter:
    """``/api/silences``."""
    router = APIRouter(tags=["silences"])

    @router.get(
        "/api/silences",
        summary="Silences in effect or pending (operator)",
        response_model=SilenceList,
        responses=error_responses(401, 403, 422),
    )
    def listing(
        _caller: OperatorCaller,
        include_expired: Annotated[
            bool, Query(description="Also those whose window has ended")
        ] = False,
        include_deleted: Annotated[bool, Query(description="Also deleted ones")] = False,
    ) -> dict[str, Any]:
        now = ctx.now()
        rows = list_silences(
            ctx.engine, now=None if include_expired else now, include_deleted=include_deleted
        )
        return {"items": [silence_out(row, now) for row in rows]}

    @router.post(
        "/api/silences",
        status_code=201,
        summary="Create a silence (admin)",
        description="Matchers: any of `zone_id`, `site`, `risk`, `level` (at least one; each an "
        "exact match, so a silence on blue does not hide the same alert at red), and a window "
        "`starts_at` (default now) to `ends_at` (after the start, in the future).",
        response_model=SilenceOut,
        responses=error_responses(400, 401, 403, 413, 422),
    )
    def create(body: SilenceIn, caller: AdminCaller) -> dict[str, Any]:
        now = ctx.now()
        if not any((body.zone_id, body.site, body.risk, body.level)):
            raise InvalidInput(
                ("body", "zone_id"),
                "give at least one matcher: zone_id, site, risk or level",
                "missing_matcher",
            )
        if body.zone_id is not None and body.zone_id not in ctx.zones:
            raise InvalidInput(
                ("body", "zone_id"), f"unknown zone {body.zone_id[:128]!r}", "unknown_zone"
            )
        if body.site is not None and body.site not in ctx.zones.sites():
            raise InvalidInput(
                ("body", "site"), f"unknown site {body.site[:128]!r}", "unknown_site"
            )
        starts = body.starts_at or now
        if body.ends_at <= starts:
            raise InvalidInput(("body", "ends_at"), "must be after starts_at", "invalid_window")
        if body.ends_at <= now:
            raise InvalidInput(("body", "ends_at"), "must be in the future", "invalid_window")
        row = SilenceRow(
            id=str(uuid.uuid4()),
            zone_id=body.zone_id,
            site=body.site,
            risk=body.risk.value if body.risk else None,
            level=body.level.value if body.level else None,
            starts_at=starts,
            ends_at=body.ends_at,
            comment=body.comment,
            created_by=caller.name,
            created_at=now,
        )
        insert_silence(ctx.engine, row)
        return silence_out(row, now)

    @router.delete(
        "/api/silences/{silence_id}",
        status_code=204,
        summary="Delete a silence (admin)",
        description="It stops silencing at once; the row is kept, marked deleted.",
        response_class=Response,
        responses=error_responses(401, 403, 404, 422),
    )
    def remove(
        silence_id: Annotated[
            str,
            Path(pattern=ID_PATTERN, description="The silence's id", examples=[SILENCE_ID_EXAMPLE]),
        ],
        caller: AdminCaller,
    ) -> Response:
        if not delete_silence(ctx.engine, silence_id, caller.name, ctx.now()):
            raise NotFound(f"no silence {silence_id}")
        return Response(status_code=204)

    return router
