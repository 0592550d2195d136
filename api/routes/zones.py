"""The zone registry with each zone's latest crowd figures, and who the caller is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.auth import OperatorCaller, VolunteerCaller
from api.context import ApiContext
from api.errors import InvalidInput, NotFound
from api.queries import open_alerts_by_zone, zone_statuses
from api.schemas import FeedStatus, Me, ZoneList, ZoneSeries, error_responses
from infra.db import load_zone_series

__all__ = ["zones_router"]

_FIGURES = (
    "people",
    "density",
    "occupancy",
    "level",
    "peak_5m",
    "peak_1h",
    "peak_day",
    "inflow_per_min",
    "outflow_per_min",
    "updated_at",
    "received_at",
)


def zones_router(ctx: ApiContext) -> APIRouter:
    """``/api/zones`` and ``/api/me``."""
    router = APIRouter(tags=["zones"])

    @router.get(
        "/api/me",
        summary="Who the token belongs to",
        response_model=Me,
        tags=["access"],
        responses=error_responses(401),
    )
    def me(caller: VolunteerCaller) -> dict[str, Any]:
        return {
            "name": caller.name,
            "role": caller.role.value,
            "principal": caller.principal,
            "expires_at": caller.expires_at,
            "unit_id": caller.unit_id,
        }

    @router.get(
        "/api/zones",
        summary="Zones with their latest people, density, peaks and open alerts",
        description="Registry fields (areas and capacities marked `estimated` are estimates) and "
        "the figures the worker last wrote to `zone_status`; those are `null` until it has. "
        "Volunteers may read it too: they pick a zone when they report.",
        response_model=ZoneList,
        responses=error_responses(401),
    )
    def zones(_caller: VolunteerCaller) -> dict[str, Any]:
        statuses = zone_statuses(ctx.engine)
        open_alerts = open_alerts_by_zone(ctx.engine)
        now = ctx.now()
        items = []
        for zone in ctx.zones:
            item: dict[str, Any] = {
                "id": zone.id,
                "name": {"zh": zone.name.zh, "en": zone.name.en},
                "site": zone.site,
                "grid": zone.grid.value,
                "area_m2": zone.area_m2,
                "capacity": zone.capacity,
                "estimated": zone.estimated,
                "location": (
                    {"lat": zone.location.lat, "lon": zone.location.lon} if zone.location else None
                ),
                "outline": (
                    {
                        "points": [list(p) for p in zone.outline.points],
                        "estimated": zone.outline.estimated,
                    }
                    if zone.outline
                    else None
                ),
            }
            status = statuses.get(zone.id)
            for name in _FIGURES:
                item[name] = getattr(status, name) if status is not None else None
            received = item["received_at"]
            item["reading_age_seconds"] = (
                round((now - received).total_seconds(), 1) if received is not None else None
            )
            count, level = open_alerts.get(zone.id, (0, None))
            item["open_alerts"] = count
            item["alert_level"] = level
            items.append(item)
        bounds = ctx.zones.bounds
        return {"items": items, "bounds": bounds.model_dump() if bounds else None}

    @router.get(
        "/api/zones/{zone_id}/series",
        summary="A zone's people and density per minute over the last N hours",
        description="One point per minute of event time that had a reading: the minute's largest "
        "people count and its density (`aggregate: max`), oldest first; minutes without a "
        "reading are absent. `hours` counts back from `until` (default: now). Minutes are kept "
        "`PUHUI_SERIES_RETENTION_DAYS` days.",
        response_model=ZoneSeries,
        responses=error_responses(401, 403, 404, 422),
    )
    def series(
        zone_id: Annotated[str, Path(max_length=128, description="A zone id of the registry")],
        _caller: OperatorCaller,
        hours: Annotated[
            float, Query(gt=0, le=168, description="How far back, in hours (default 6)")
        ] = 6.0,
        until: Annotated[
            datetime | None,
            Query(description="End of the window (ISO 8601 with a zone; default now)"),
        ] = None,
    ) -> dict[str, Any]:
        if zone_id not in ctx.zones:
            raise NotFound(f"no zone {zone_id}")
        if until is not None and until.tzinfo is None:
            raise InvalidInput(("query", "until"), "needs a time zone (e.g. +08:00 or Z)")
        try:
            end = (until if until is not None else ctx.now()).astimezone(UTC)
            since = end - timedelta(hours=hours)
        except OverflowError:
            raise InvalidInput(("query", "until"), "out of range") from None
        rows = load_zone_series(ctx.engine, since, end, zone_id)
        return {
            "zone_id": zone_id,
            "since": since,
            "until": end,
            "resolution_seconds": 60,
            "aggregate": "max",
            "points": [{"at": r.minute, "people": r.people, "density": r.density} for r in rows],
        }

    @router.get(
        "/api/feed",
        summary="Is the sensor feed alive? (the console's 实时 / silent header)",
        description="The wall-clock age of the newest reading any zone took in; `silent` once "
        "it exceeds `PUHUI_FEED_SILENT_SECONDS` (a feed that never started is not `silent`).",
        response_model=FeedStatus,
        responses=error_responses(401, 403),
    )
    def feed(_caller: OperatorCaller) -> dict[str, Any]:
        received = [s.received_at for s in zone_statuses(ctx.engine).values() if s.received_at]
        latest = max(received) if received else None
        age = (ctx.now() - latest).total_seconds() if latest is not None else None
        limit = ctx.settings.feed_silent_seconds
        return {
            "latest_reading_at": latest,
            "age_seconds": round(age, 1) if age is not None else None,
            "silent_after_seconds": limit,
            "silent": age is not None and age > limit,
        }

    return router
