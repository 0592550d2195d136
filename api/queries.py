"""The API's read side: filtered, paginated queries over the tables the worker writes.

Plain blocking functions (the endpoints call them in worker threads). Alerts, their history and
the reports linked to them are written by the worker's persist agent and the report intake; the
API only reads them, except for the ``reports`` row it inserts at submission and the silences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from infra.db import AlertHistoryRow, AlertRow, ReportRow, ZoneStatusRow
from models.contracts import AlertStatus, Change, Level

__all__ = [
    "AlertFilter",
    "AlertListing",
    "alerts_by_id",
    "cap_ranks",
    "get_alert",
    "get_report",
    "histories",
    "list_alerts",
    "list_reports",
    "load_history",
    "open_alerts_by_zone",
    "reports_for_alert",
    "resolved_since",
    "zone_statuses",
]

OPEN_STATUSES: tuple[str, ...] = (AlertStatus.FIRING.value, AlertStatus.ACKNOWLEDGED.value)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Each field restricts the alerts to those whose value is one of the given ones; ``None``
    means no restriction (an empty tuple matches nothing)."""

    statuses: tuple[str, ...] | None = None
    zone_ids: tuple[str, ...] | None = None
    risks: tuple[str, ...] | None = None
    levels: tuple[str, ...] | None = None
    #: Also match latched alerts (resolved on their own, not yet acknowledged), whatever
    #: ``statuses`` says: the board keeps them until a person acknowledges them.
    latched: bool = False

    def clauses(self) -> list[Any]:
        pairs = [
            (AlertRow.zone_id, self.zone_ids),
            (AlertRow.risk, self.risks),
            (AlertRow.level, self.levels),
        ]
        out: list[Any] = [
            column.in_(list(values)) for column, values in pairs if values is not None
        ]
        if self.statuses is not None:
            status = AlertRow.status.in_(list(self.statuses))
            out.append(or_(status, AlertRow.latched.is_(True)) if self.latched else status)
        return out


@dataclass(frozen=True, slots=True)
class AlertListing:
    """One alert with what the lists show beside it."""

    alert: AlertRow
    latest: dict[str, Any] | None  # the newest history record (assignee lives there)
    report_count: int


def _level_rank() -> Any:
    return case({level.value: level.rank for level in Level}, value=AlertRow.level, else_=0)


def list_alerts(
    engine: Engine,
    where: AlertFilter,
    *,
    limit: int,
    offset: int,
    order: str = "severity",
) -> tuple[list[AlertListing], int]:
    """Alerts matching ``where`` and their total count. ``order``: ``severity`` (most severe
    level first, then the most recently changed) or ``recent`` (newest episode first)."""
    latest = aliased(AlertHistoryRow)
    counts = (
        select(ReportRow.alert_id.label("alert_id"), func.count().label("n"))
        .where(ReportRow.alert_id.is_not(None))
        .group_by(ReportRow.alert_id)
        .subquery()
    )
    clauses = where.clauses()
    if order == "severity":
        ordering = [_level_rank().desc(), AlertRow.updated_at.desc(), AlertRow.alert_id]
    else:
        ordering = [AlertRow.opened_at.desc(), AlertRow.alert_id]
    query = (
        select(AlertRow, latest.record, func.coalesce(counts.c.n, 0))
        .outerjoin(
            latest,
            and_(latest.alert_id == AlertRow.alert_id, latest.revision == AlertRow.revision),
        )
        .outerjoin(counts, counts.c.alert_id == AlertRow.alert_id)
        .where(*clauses)
        .order_by(*ordering)
        .limit(limit)
        .offset(offset)
    )
    total_query = select(func.count()).select_from(AlertRow).where(*clauses)
    with Session(engine, expire_on_commit=False) as session:
        rows = [AlertListing(a, rec, int(n)) for a, rec, n in session.execute(query)]
        total = int(session.scalar(total_query) or 0)
    return rows, total


def resolved_since(
    engine: Engine, since: datetime, *, limit: int, offset: int
) -> tuple[list[tuple[AlertRow, AlertHistoryRow]], int]:
    """Alerts resolved at or after ``since`` with the record that resolved them, newest first,
    and their total count."""
    where = and_(
        AlertHistoryRow.change == Change.RESOLVED.value,
        AlertHistoryRow.at >= since,
    )
    query = (
        select(AlertRow, AlertHistoryRow)
        .join(AlertHistoryRow, AlertHistoryRow.alert_id == AlertRow.alert_id)
        .where(where)
        .order_by(AlertHistoryRow.at.desc(), AlertRow.alert_id)
        .limit(limit)
        .offset(offset)
    )
    with Session(engine, expire_on_commit=False) as session:
        rows = [(a, h) for a, h in session.execute(query)]
        total = int(
            session.scalar(select(func.count()).select_from(AlertHistoryRow).where(where)) or 0
        )
    return rows, total


def get_alert(engine: Engine, alert_id: str) -> AlertRow | None:
    """One alert's current row."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(AlertRow, alert_id)


def load_history(engine: Engine, alert_id: str) -> list[AlertHistoryRow]:
    """An alert's history, oldest revision first."""
    with Session(engine, expire_on_commit=False) as session:
        query = (
            select(AlertHistoryRow)
            .where(AlertHistoryRow.alert_id == alert_id)
            .order_by(AlertHistoryRow.revision)
        )
        return list(session.scalars(query))


def history_page(
    engine: Engine, alert_id: str, *, limit: int, offset: int | None = None
) -> tuple[list[AlertHistoryRow], int]:
    """A page of an alert's history, oldest revision first, and the number of revisions.
    ``offset=None``: the last ``limit`` revisions."""
    where = AlertHistoryRow.alert_id == alert_id
    with Session(engine, expire_on_commit=False) as session:
        total = int(session.scalar(select(func.count()).where(where)) or 0)
        start = max(0, total - limit) if offset is None else offset
        query = (
            select(AlertHistoryRow)
            .where(where)
            .order_by(AlertHistoryRow.revision)
            .limit(limit)
            .offset(start)
        )
        return list(session.scalars(query)), total


def reports_for_alert(
    engine: Engine, alert_id: str, *, limit: int, offset: int | None = None
) -> tuple[list[ReportRow], int]:
    """A page of the reports linked to an alert, oldest first, and how many there are.
    ``offset=None``: the latest ``limit``."""
    where = ReportRow.alert_id == alert_id
    with Session(engine, expire_on_commit=False) as session:
        total = int(session.scalar(select(func.count()).select_from(ReportRow).where(where)) or 0)
        start = max(0, total - limit) if offset is None else offset
        query = (
            select(ReportRow)
            .where(where)
            .order_by(ReportRow.submitted_at, ReportRow.report_id)
            .limit(limit)
            .offset(start)
        )
        return list(session.scalars(query)), total


def get_report(engine: Engine, report_id: str) -> ReportRow | None:
    """One report."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(ReportRow, report_id)


def list_reports(
    engine: Engine, reporter_id: str, *, limit: int, offset: int
) -> tuple[list[ReportRow], int]:
    """A reporter's reports, newest first, and their total count."""
    where = ReportRow.reporter_id == reporter_id
    query = (
        select(ReportRow)
        .where(where)
        .order_by(ReportRow.submitted_at.desc(), ReportRow.report_id)
        .limit(limit)
        .offset(offset)
    )
    with Session(engine, expire_on_commit=False) as session:
        rows = list(session.scalars(query))
        total = int(session.scalar(select(func.count()).select_from(ReportRow).where(where)) or 0)
    return rows, total


def alerts_by_id(engine: Engine, alert_ids: Sequence[str]) -> dict[str, AlertRow]:
    """The current rows of the given alerts."""
    if not alert_ids:
        return {}
    with Session(engine, expire_on_commit=False) as session:
        query = select(AlertRow).where(AlertRow.alert_id.in_(list(alert_ids)))
        return {row.alert_id: row for row in session.scalars(query)}


def histories(engine: Engine, alert_ids: Sequence[str]) -> dict[str, list[AlertHistoryRow]]:
    """The histories of the given alerts, oldest revision first."""
    out: dict[str, list[AlertHistoryRow]] = {alert_id: [] for alert_id in alert_ids}
    if not alert_ids:
        return out
    with Session(engine, expire_on_commit=False) as session:
        query = (
            select(AlertHistoryRow)
            .where(AlertHistoryRow.alert_id.in_(list(alert_ids)))
            .order_by(AlertHistoryRow.alert_id, AlertHistoryRow.revision)
        )
        for row in session.scalars(query):
            out[row.alert_id].append(row)
    return out


def zone_statuses(engine: Engine) -> dict[str, ZoneStatusRow]:
    """The latest figures of every zone the worker has written."""
    with Session(engine, expire_on_commit=False) as session:
        return {row.zone_id: row for row in session.scalars(select(ZoneStatusRow))}


def open_alerts_by_zone(engine: Engine) -> dict[str, tuple[int, str | None]]:
    """Per zone: how many alerts are open, and the most severe open level."""
    query = (
        select(AlertRow.zone_id, func.count(), func.max(_level_rank()))
        .where(AlertRow.status.in_(list(OPEN_STATUSES)))
        .group_by(AlertRow.zone_id)
    )
    by_rank = {level.rank: level.value for level in Level}
    with Session(engine) as session:
        return {
            zone_id: (int(n), by_rank.get(int(rank or 0)))
            for zone_id, n, rank in session.execute(query)
        }


def cap_ranks(engine: Engine, history: Sequence[AlertHistoryRow]) -> dict[int, int]:
    """For each history row (by revision): how many stored alert changes, of any alert, fall in
    the same second and were stored before it. This orders the CAP messages of one second for
    the GB/T 35965.1 identifier's sequence number; rows are stored once and never renumbered, so
    a message keeps its identifier. One query, whatever the number of revisions."""
    if not history:
        return {}
    seconds = sorted({row.at.replace(microsecond=0) for row in history})
    query = select(AlertHistoryRow.id, AlertHistoryRow.at).where(
        or_(
            *(
                and_(AlertHistoryRow.at >= start, AlertHistoryRow.at < start + timedelta(seconds=1))
                for start in seconds
            )
        )
    )
    with Session(engine) as session:
        stored = [(row_id, at.replace(microsecond=0)) for row_id, at in session.execute(query)]
    return {
        row.revision: sum(
            1
            for row_id, second in stored
            if second == row.at.replace(microsecond=0) and row_id < row.id
        )
        for row in history
    }
