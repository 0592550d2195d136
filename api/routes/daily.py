"""The daily report (日报): ``GET /api/daily-report?date=YYYY-MM-DD`` and its printable page.

The figures are computed by :func:`alerts.daily.daily_report` over the day's per-minute zone
figures (``zone_series``), the alerts opened that day with their history, and the cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.daily import (
    SHANGHAI,
    AlertOfDay,
    CaseTimes,
    SeriesMinute,
    daily_report,
    day_window,
)
from api.auth import OperatorCaller
from api.context import ApiContext
from api.errors import InvalidInput
from api.schemas import DailyReport, error_responses
from infra.cases_db import case_times
from infra.db import AlertHistoryRow, AlertRow, load_zone_series
from models.contracts import Level, Risk

__all__ = ["CaseSource", "alerts_of_day", "daily_router"]

#: Reads the cases relevant to ``[start, end)`` (opened before ``end`` and not ended before
#: ``start``): :func:`infra.cases_db.case_times` by default.
CaseSource = Callable[[Engine, datetime, datetime], Sequence[CaseTimes]]


def alerts_of_day(engine: Engine, start: datetime, end: datetime) -> list[AlertOfDay]:
    """Alerts opened in ``[start, end)``, each with the levels of its revisions before ``end``."""
    with Session(engine) as session:
        rows = session.execute(
            select(AlertRow.alert_id, AlertRow.zone_id, AlertRow.risk, AlertRow.predicted).where(
                AlertRow.opened_at >= start, AlertRow.opened_at < end
            )
        ).all()
        levels: dict[str, list[Level]] = {}
        ids = [r.alert_id for r in rows]
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            history = session.execute(
                select(AlertHistoryRow.alert_id, AlertHistoryRow.level).where(
                    AlertHistoryRow.alert_id.in_(chunk), AlertHistoryRow.at < end
                )
            ).all()
            for h in history:
                levels.setdefault(h.alert_id, []).append(Level(h.level))
    return [
        AlertOfDay(
            alert_id=r.alert_id,
            zone_id=r.zone_id,
            risk=Risk(r.risk),
            levels=tuple(levels.get(r.alert_id, [])),
            predicted=bool(r.predicted),
        )
        for r in rows
        if levels.get(r.alert_id)
    ]


def daily_router(ctx: ApiContext, cases: CaseSource = case_times) -> APIRouter:
    """``/api/daily-report``."""
    router = APIRouter(tags=["reports"])

    @router.get(
        "/api/daily-report",
        summary="The daily report: peaks per site and zone, alerts by risk and level, cases",
        description="For one calendar day in Asia/Shanghai (default: today there). Peaks come "
        "from the per-minute zone figures (`zone_series`, kept `PUHUI_SERIES_RETENTION_DAYS`); "
        "a site's total at a minute sums its zones. Alerts: those opened that day, by risk and "
        "by the highest level each reached that day. Cases: opened, closed, closed on time "
        "(按期处置率 = on time / closed that day) and mean minutes to accept, arrive and close.",
        response_model=DailyReport,
        responses=error_responses(401, 403, 422),
    )
    def report(
        _caller: OperatorCaller,
        day: Annotated[
            str | None,
            Query(
                alias="date",
                pattern=r"^\d{4}-\d{2}-\d{2}$",
                description="YYYY-MM-DD (Asia/Shanghai); default: today",
            ),
        ] = None,
    ) -> dict[str, Any]:
        if day is None:
            wanted = ctx.now().astimezone(SHANGHAI).date()
        else:
            try:
                wanted = date.fromisoformat(day)
            except ValueError:
                raise InvalidInput(("query", "date"), "must be a date YYYY-MM-DD") from None
        try:
            start, end = day_window(wanted)
        except OverflowError:
            raise InvalidInput(("query", "date"), "out of range") from None
        minutes = [
            SeriesMinute(r.zone_id, r.minute, r.people)
            for r in load_zone_series(ctx.engine, start, end)
        ]
        return daily_report(
            wanted,
            ctx.zones,
            minutes,
            alerts_of_day(ctx.engine, start, end),
            list(cases(ctx.engine, start, end)),
        )

    return router
