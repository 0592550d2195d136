"""Persistence of cases: ``cases`` (current state), ``case_events`` (the timeline, unique by
command id: applying the same command twice adds nothing) and ``case_links`` (which alerts and
reports a case is about). Only the case worker writes these (``streams/cases.py``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from alerts.cases import (
    OPEN_STATUSES,
    Case,
    CaseEvent,
    CaseLimits,
    CaseRejected,
    CaseStatus,
    apply_case_command,
)
from alerts.daily import CaseTimes
from infra.db import Base, NotificationAttemptRow, UTCDateTime
from models.cases import ActorRole, CaseAction, CaseCommand, VerifyResult
from models.contracts import Level

__all__ = [
    "CaseEventRow",
    "CaseLinkRow",
    "CaseRow",
    "StoreOutcome",
    "apply_and_store",
    "case_events",
    "case_times",
    "cases_of_reports",
    "count_open",
    "list_cases",
    "load_case",
    "overdue_steps",
    "row_to_case",
]


class CaseRow(Base):
    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    zone_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str | None] = mapped_column(String(64))
    opened_by: Mapped[str] = mapped_column(String(128))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    step_seq: Mapped[int] = mapped_column(Integer)
    step_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_step: Mapped[int | None] = mapped_column(Integer)
    returns: Mapped[int] = mapped_column(Integer)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handle_note: Mapped[str | None] = mapped_column(Text)
    photo_ids: Mapped[list[str]] = mapped_column(JSON)
    alert_ids: Mapped[list[str]] = mapped_column(JSON)
    report_ids: Mapped[list[str]] = mapped_column(JSON)
    late_steps: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_cases_status", "status"),
        Index("ix_cases_unit", "unit_id"),
        Index("ix_cases_due", "due_at"),
    )


class CaseLinkRow(Base):
    """One alert (``kind`` alert) or report (``kind`` report) a case is about, or a photo
    (``kind`` photo) its handling referred to."""

    __tablename__ = "case_links"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    ref_id: Mapped[str] = mapped_column(String(128), primary_key=True)

    __table_args__ = (Index("ix_case_links_ref", "kind", "ref_id"),)


class CaseEventRow(Base):
    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"))
    command_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    actor_role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(String(16))
    photo_ids: Mapped[list[str]] = mapped_column(JSON)
    step: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("command_id", name="uq_case_events_command"),
        Index("ix_case_events_case", "case_id"),
        Index("ix_case_events_action_at", "action", "at"),
    )


_CASE_FIELDS = [
    "case_id",
    "title",
    "category",
    "zone_id",
    "status",
    "unit_id",
    "opened_by",
    "opened_at",
    "updated_at",
    "step_seq",
    "step_started_at",
    "due_at",
    "escalated_step",
    "returns",
    "dispatched_at",
    "accepted_at",
    "arrived_at",
    "handled_at",
    "closed_at",
    "handle_note",
    "late_steps",
]


def row_to_case(row: CaseRow) -> Case:
    values: dict[str, Any] = {name: getattr(row, name) for name in _CASE_FIELDS}
    values["status"] = CaseStatus(row.status)
    return Case(
        **values,
        level=Level(row.level),
        alert_ids=tuple(row.alert_ids or ()),
        report_ids=tuple(row.report_ids or ()),
        photo_ids=tuple(row.photo_ids or ()),
    )


def _case_values(case: Case) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(case, name) for name in _CASE_FIELDS}
    values.update(
        status=case.status.value,
        level=case.level.value,
        alert_ids=list(case.alert_ids),
        report_ids=list(case.report_ids),
        photo_ids=list(case.photo_ids),
    )
    return values


def _event_row(event: CaseEvent) -> CaseEventRow:
    return CaseEventRow(
        case_id=event.case_id,
        command_id=event.command_id,
        action=event.action.value,
        from_status=None if event.from_status is None else event.from_status.value,
        to_status=event.to_status.value,
        actor=event.actor,
        actor_role=event.actor_role.value,
        unit_id=event.unit_id,
        at=event.at,
        note=event.note,
        result=None if event.result is None else event.result.value,
        photo_ids=list(event.photo_ids),
        step=event.step,
    )


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """``applied`` (with the new case), ``duplicate`` (command seen before) or ``rejected``
    (with the reason)."""

    outcome: str
    case: Case | None = None
    rejected: CaseRejected | None = None


def apply_and_store(
    engine: Engine, cmd: CaseCommand, limits: CaseLimits, units: Collection[str]
) -> StoreOutcome:
    """Apply one command and store the case and its timeline entry in one transaction."""
    with Session(engine) as session, session.begin():
        seen = session.scalars(
            select(CaseEventRow.id).where(CaseEventRow.command_id == cmd.command_id)
        ).first()
        if seen is not None:
            return StoreOutcome("duplicate")
        row = session.get(CaseRow, cmd.case_id, with_for_update=True)
        before = None if row is None else row_to_case(row)
        try:
            after, event = apply_case_command(before, cmd, limits, units)
        except CaseRejected as rejected:
            return StoreOutcome("rejected", before, rejected)
        values = _case_values(after)
        if row is None:
            session.add(CaseRow(**values))
            session.flush()
            for kind, refs in (("alert", after.alert_ids), ("report", after.report_ids)):
                for ref in dict.fromkeys(refs):
                    session.add(CaseLinkRow(case_id=after.case_id, kind=kind, ref_id=ref))
        else:
            for name, value in values.items():
                setattr(row, name, value)
        for photo_id in dict.fromkeys(event.photo_ids):
            # who may see the photo: the responders of this case's unit (api/routes/cases.py)
            if session.get(CaseLinkRow, (after.case_id, "photo", photo_id)) is None:
                session.add(CaseLinkRow(case_id=after.case_id, kind="photo", ref_id=photo_id))
        session.add(_event_row(event))
        return StoreOutcome("applied", after)


def load_case(engine: Engine, case_id: str) -> Case | None:
    with Session(engine) as session:
        row = session.get(CaseRow, case_id)
        return None if row is None else row_to_case(row)


def case_events(engine: Engine, case_id: str) -> list[CaseEvent]:
    """A case's timeline, oldest first."""
    with Session(engine) as session:
        rows = session.scalars(
            select(CaseEventRow).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.id)
        )
        return [
            CaseEvent(
                case_id=r.case_id,
                command_id=r.command_id,
                action=CaseAction(r.action),
                from_status=None if r.from_status is None else CaseStatus(r.from_status),
                to_status=CaseStatus(r.to_status),
                actor=r.actor,
                actor_role=ActorRole(r.actor_role),
                at=r.at,
                unit_id=r.unit_id,
                note=r.note,
                result=None if r.result is None else VerifyResult(r.result),
                photo_ids=tuple(r.photo_ids or ()),
                step=r.step,
            )
            for r in rows
        ]


_LEVEL_RANK = {"red": 4, "orange": 3, "yellow": 2, "blue": 1}


def list_cases(
    engine: Engine,
    *,
    statuses: Iterable[str] | None,
    units: Iterable[str] | None,
    zones: Iterable[str] | None,
    overdue: bool | None,
    now: datetime,
    limit: int,
    offset: int,
) -> tuple[list[Case], int]:
    """A page of the cases matching the filters, and how many match: open before done, red
    first, overdue first, then newest (sorted by the database)."""
    conditions: list[Any] = []
    if statuses is not None:
        conditions.append(CaseRow.status.in_(list(statuses)))
    if units is not None:
        conditions.append(CaseRow.unit_id.in_(list(units)))
    if zones is not None:
        conditions.append(CaseRow.zone_id.in_(list(zones)))
    open_values = [s.value for s in OPEN_STATUSES]
    is_overdue = and_(CaseRow.status.in_(open_values), CaseRow.due_at < now)
    if overdue is True:
        conditions.append(is_overdue)
    elif overdue is False:
        conditions.append(
            or_(CaseRow.status.not_in(open_values), CaseRow.due_at.is_(None), CaseRow.due_at >= now)
        )
    level_rank = case(_LEVEL_RANK, value=CaseRow.level, else_=0)
    order = (
        case((CaseRow.status.in_(open_values), 0), else_=1),
        level_rank.desc(),
        case((is_overdue, 0), else_=1),
        CaseRow.opened_at.desc(),
        CaseRow.case_id,
    )
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(CaseRow).where(*conditions)) or 0
        rows = session.scalars(
            select(CaseRow).where(*conditions).order_by(*order).limit(limit).offset(offset)
        )
        return [row_to_case(r) for r in rows], int(total)


def count_open(
    engine: Engine, *, units: Iterable[str] | None, zones: Iterable[str] | None, now: datetime
) -> dict[str, int]:
    """Open cases by status, their total (``open``) and the overdue ones (``overdue``)."""
    open_values = [s.value for s in OPEN_STATUSES]
    conditions: list[Any] = [CaseRow.status.in_(open_values)]
    if units is not None:
        conditions.append(CaseRow.unit_id.in_(list(units)))
    if zones is not None:
        conditions.append(CaseRow.zone_id.in_(list(zones)))
    overdue = case((CaseRow.due_at < now, 1), else_=0)
    counts = {s: 0 for s in open_values}
    with Session(engine) as session:
        rows = session.execute(
            select(CaseRow.status, func.count(), func.sum(overdue))
            .where(*conditions)
            .group_by(CaseRow.status)
        ).all()
    late = 0
    for status, n, o in rows:
        counts[status] = int(n)
        late += int(o or 0)
    counts["open"] = sum(counts[s] for s in open_values)
    counts["overdue"] = late
    return counts


def overdue_steps(engine: Engine, now: datetime) -> list[tuple[str, int]]:
    """``(case_id, step_seq)`` of open cases whose current step is past due and not escalated."""
    with Session(engine) as session:
        rows = session.execute(
            select(CaseRow.case_id, CaseRow.step_seq).where(
                CaseRow.status.in_([s.value for s in OPEN_STATUSES]),
                CaseRow.due_at < now,
                or_(CaseRow.escalated_step.is_(None), CaseRow.escalated_step != CaseRow.step_seq),
            )
        )
        return [(r[0], int(r[1])) for r in rows]


def cases_of_reports(engine: Engine, report_ids: Iterable[str]) -> Mapping[str, Case]:
    """The newest case of each report that is in one (report id -> case)."""
    ids = list(report_ids)
    if not ids:
        return {}
    with Session(engine) as session:
        rows = session.execute(
            select(CaseLinkRow.ref_id, CaseRow)
            .join(CaseRow, CaseRow.case_id == CaseLinkRow.case_id)
            .where(CaseLinkRow.kind == "report", CaseLinkRow.ref_id.in_(ids))
            .order_by(CaseRow.opened_at)
        ).all()
        return {ref: row_to_case(row) for ref, row in rows}


def cases_of_alerts(engine: Engine, alert_ids: Iterable[str]) -> dict[str, list[Case]]:
    ids = list(alert_ids)
    if not ids:
        return {}
    out: dict[str, list[Case]] = {}
    with Session(engine) as session:
        rows = session.execute(
            select(CaseLinkRow.ref_id, CaseRow)
            .join(CaseRow, CaseRow.case_id == CaseLinkRow.case_id)
            .where(CaseLinkRow.kind == "alert", CaseLinkRow.ref_id.in_(ids))
            .order_by(CaseRow.opened_at)
        ).all()
        for ref, row in rows:
            out.setdefault(ref, []).append(row_to_case(row))
    return out


def escalations_since(engine: Engine, since: datetime) -> list[tuple[CaseEventRow, CaseRow]]:
    """Escalation events (a step went overdue) at or after ``since``, oldest first, with their
    case (for the notifier)."""
    with Session(engine, expire_on_commit=False) as session:
        rows = session.execute(
            select(CaseEventRow, CaseRow)
            .join(CaseRow, CaseRow.case_id == CaseEventRow.case_id)
            .where(CaseEventRow.action == CaseAction.ESCALATE.value, CaseEventRow.at >= since)
            .order_by(CaseEventRow.id)
        ).all()
        return [(e, c) for e, c in rows]


def case_notification_ids(engine: Engine) -> set[str]:
    """Ids of the case notifications already decided (the notifier's ledger)."""
    with Session(engine) as session:
        return set(
            session.scalars(
                select(NotificationAttemptRow.notification_id)
                .where(NotificationAttemptRow.kind == "case_overdue")
                .distinct()
            )
        )


def unit_case_has_photo(engine: Engine, unit_id: str, photo_id: str) -> bool:
    """True when a case dispatched to ``unit_id`` refers to the photo ``photo_id``."""
    with Session(engine) as session:
        found = session.scalars(
            select(CaseLinkRow.case_id)
            .join(CaseRow, CaseRow.case_id == CaseLinkRow.case_id)
            .where(
                CaseLinkRow.kind == "photo",
                CaseLinkRow.ref_id == photo_id,
                CaseRow.unit_id == unit_id,
            )
            .limit(1)
        ).first()
        return found is not None


def case_times(engine: Engine, start: datetime, end: datetime) -> list[CaseTimes]:
    """The cases relevant to ``[start, end)`` for the daily report (opened before ``end`` and
    not closed or cancelled before ``start``), as :class:`alerts.daily.CaseTimes`. A case is on
    time when none of its steps finished after its due time (``late_steps`` 0); a cancelled
    case's cancellation time is its last change (nothing changes it after)."""
    cancelled = CaseStatus.CANCELLED.value
    with Session(engine) as session:
        rows = session.scalars(
            select(CaseRow).where(
                CaseRow.opened_at < end,
                or_(CaseRow.closed_at.is_(None), CaseRow.closed_at >= start),
                or_(CaseRow.status != cancelled, CaseRow.updated_at >= start),
            )
        ).all()
    return [
        CaseTimes(
            case_id=r.case_id,
            opened_at=r.opened_at,
            dispatched_at=r.dispatched_at,
            accepted_at=r.accepted_at,
            arrived_at=r.arrived_at,
            handled_at=r.handled_at,
            closed_at=r.closed_at,
            cancelled_at=r.updated_at if r.status == cancelled else None,
            due_at=r.due_at,
            on_time=r.late_steps == 0,
        )
        for r in rows
    ]
