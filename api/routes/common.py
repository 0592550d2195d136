"""Pieces the routers share: list filters, paging parameters, and alert rows as API items."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Query
from pydantic import StringConstraints

from api.context import ApiContext
from api.errors import InvalidInput
from api.queries import AlertFilter, AlertListing
from infra.db import AlertRow
from models.contracts import AlertStatus, Level, Risk

__all__ = [
    "FilterQuery",
    "Limit",
    "Offset",
    "alert_filter",
    "alert_item",
]

Limit = Annotated[int, Query(ge=1, le=200, description="Items per page (1-200)")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]
FilterQuery = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=1000)]] | None,
    Query(description="Repeat the parameter or give a comma-separated list"),
]


def split_values(raw: Iterable[str] | None, field: str) -> list[str] | None:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``; ``None`` → ``None``. A parameter given with no
    value at all (``?risk=``) is a 422: it would otherwise silently filter nothing."""
    if raw is None:
        return None
    values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    if not values:
        raise InvalidInput(("query", field), "give at least one value", "empty_value")
    return values


def _checked(field: str, values: list[str] | None, allowed: Iterable[str]) -> list[str] | None:
    if values is None:
        return None
    known = set(allowed)
    for value in values:
        if value not in known:
            choices = ", ".join(sorted(known)) if len(known) <= 12 else "see GET /api/zones"
            raise InvalidInput(
                ("query", field), f"unknown {field} {value[:128]!r} (one of: {choices})", "enum"
            )
    return values


def alert_filter(
    ctx: ApiContext,
    *,
    status: list[str] | None,
    zone: list[str] | None,
    site: list[str] | None,
    risk: list[str] | None,
    level: list[str] | None,
    default_statuses: tuple[str, ...] | None,
    default_latched: bool = False,
) -> AlertFilter:
    """Validate the list filters (422 naming the parameter) and build the query filter.

    ``status=all`` lifts the default status restriction; ``default_latched`` adds the latched
    alerts (resolved, unacknowledged) to the default statuses — not to explicit ones.
    """
    statuses = split_values(status, "status")
    if statuses is not None and "all" in statuses:
        chosen: tuple[str, ...] | None = None
    else:
        checked = _checked("status", statuses, [s.value for s in AlertStatus])
        chosen = tuple(checked) if checked is not None else default_statuses
    zones = _checked("zone", split_values(zone, "zone"), ctx.zones.ids())
    sites = _checked("site", split_values(site, "site"), ctx.zones.sites())
    zone_ids: set[str] | None = set(zones) if zones is not None else None
    if sites is not None:
        of_sites = {z.id for z in ctx.zones if z.site in sites}
        zone_ids = of_sites if zone_ids is None else zone_ids & of_sites
    risks = _checked("risk", split_values(risk, "risk"), [r.value for r in Risk])
    levels = _checked("level", split_values(level, "level"), [lv.value for lv in Level])
    return AlertFilter(
        statuses=chosen,
        zone_ids=tuple(sorted(zone_ids)) if zone_ids is not None else None,
        risks=tuple(risks) if risks is not None else None,
        levels=tuple(levels) if levels is not None else None,
        latched=default_latched and statuses is None,
    )


def assignee_of(record: dict[str, Any] | None) -> str | None:
    """The assignee carried by a stored alert record, if any."""
    if not record:
        return None
    value = record.get("assignee")
    return value if isinstance(value, str) else None


def alert_item(ctx: ApiContext, alert: AlertRow, latest: dict[str, Any] | None) -> dict[str, Any]:
    """An alert row as the lists show it."""
    zone = ctx.zones.get(alert.zone_id)
    return {
        "alert_id": alert.alert_id,
        "zone_id": alert.zone_id,
        "zone_name": ctx.zone_name(alert.zone_id),
        "site": zone.site if zone is not None else None,
        "grid": zone.grid.value if zone is not None else None,
        "risk": alert.risk,
        "level": alert.level,
        "status": alert.status,
        "revision": alert.revision,
        "predicted": alert.predicted,
        "opened_at": alert.opened_at,
        "updated_at": alert.updated_at,
        "summary": {"zh": alert.summary_zh, "en": alert.summary_en},
        "assignee": assignee_of(latest),
        "inhibited": bool((latest or {}).get("inhibited", False)),
        "acknowledged": alert.acknowledged_by is not None,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": alert.acknowledged_at,
        "latched": bool(alert.latched),
        "expected_at": expected_at(alert.evidence) if alert.predicted else None,
    }


def expected_at(evidence: dict[str, Any] | None) -> str | None:
    """When a forecast expects its level to be reached (``evidence.forecast.expected_at``)."""
    forecast = (evidence or {}).get("forecast")
    value = forecast.get("expected_at") if isinstance(forecast, dict) else None
    return value if isinstance(value, str) else None


def listing_item(ctx: ApiContext, listing: AlertListing) -> dict[str, Any]:
    """An alert listing as an item, with its report count."""
    return {
        **alert_item(ctx, listing.alert, listing.latest),
        "report_count": listing.report_count,
    }
