"""Persistence: SQLAlchemy 2.0 tables for alerts (incidents), their history and API tokens.

The schema is owned by the Alembic migrations in ``infra/migrations``; :func:`migrate` brings a
database up to date. Writes of alert records are idempotent: the history is keyed by
``(alert_id, revision)`` and an alert's current row only moves forward in revision, so replaying
the same records changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from alerts.silences import Silence
from models.contracts import AlertRecord, VolunteerReport

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite has no time zones: store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class AlertRow(Base):
    """An alert's current state: one row per alert episode (an incident)."""

    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone_id: Mapped[str] = mapped_column(String(128))
    risk: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer)
    predicted: Mapped[bool]
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    summary_zh: Mapped[str] = mapped_column(Text)
    summary_en: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Resolved on its own before anyone acknowledged it: stays on the board until someone does.
    latched: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (
        Index("ix_alerts_zone_risk", "zone_id", "risk"),
        Index("ix_alerts_status", "status"),
        Index("ix_alerts_latched", "latched"),
    )


class AlertHistoryRow(Base):
    """One change of one alert, exactly as published on ``puhui.alerts``."""

    __tablename__ = "alert_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    change: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("alert_id", "revision", name="uq_history_alert_rev"),)


class ReportRow(Base):
    """A volunteer's report and the alert it opened or joined (``alert_id``, once known)."""

    __tablename__ = "reports"

    report_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    reporter_id: Mapped[str] = mapped_column(String(128), index=True)
    zone_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    photo_url: Mapped[str | None] = mapped_column(String(2048))
    alert_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # When the personal fields were erased (retention or a volunteer's request); None: kept.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ZoneStatusRow(Base):
    """The latest crowd figures of a zone, written by the worker every few seconds (event time)."""

    __tablename__ = "zone_status"

    zone_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    people: Mapped[float | None]
    density: Mapped[float | None]
    occupancy: Mapped[float | None]
    level: Mapped[str | None] = mapped_column(String(16))
    peak_5m: Mapped[float | None]
    peak_1h: Mapped[float | None]
    peak_day: Mapped[float | None]
    inflow_per_min: Mapped[float | None]
    outflow_per_min: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Wall clock when the worker took in the zone's latest reading (feed freshness).
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ZoneSeriesRow(Base):
    """A zone's largest people count in one minute of event time (``minute``: its start)."""

    __tablename__ = "zone_series"

    zone_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    people: Mapped[float]
    density: Mapped[float]

    __table_args__ = (Index("ix_zone_series_minute", "minute"),)


class TokenRow(Base):
    """An API bearer token, stored as its SHA-256 digest only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who the token belongs to (stable; several tokens may share it), and when it stops working.
    principal: Mapped[str] = mapped_column(String(128), index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A responder's unit (models/data/units.yaml); None for other roles.
    unit_id: Mapped[str | None] = mapped_column(String(64))


class InvitationRow(Base):
    """A one-time sign-in invitation, stored as its SHA-256 digest only (``infra/invitations.py``).

    ``token_id`` is the token its first use created; ``used_at`` marks it spent.
    """

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id"))
    #: A responder invitation's unit: the token it makes is bound to it.
    unit_id: Mapped[str | None] = mapped_column(String(64))


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout so worker and API share it."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the packaged migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (harmless when it is there already)."""
    if url.startswith("sqlite"):
        make_engine(url).dispose()  # creates the folder of a SQLite file
    command.upgrade(alembic_config(url), "head")


def ping(engine: Engine) -> None:
    """Raise unless the database answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _insert(engine: Engine, table: Any) -> Any:
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    if engine.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no idempotent insert for {engine.dialect.name}")


def write_alert_records(engine: Engine, records: Sequence[AlertRecord]) -> None:
    """Persist alert records in one transaction, idempotently: a replayed record adds nothing,
    and an alert's current row never moves back to an older revision."""
    if not records:
        return
    latest: dict[str, AlertRecord] = {}
    for rec in records:
        have = latest.get(rec.alert_id)
        if have is None or rec.revision > have.revision:
            latest[rec.alert_id] = rec
    alert_rows = [
        {
            "alert_id": r.alert_id,
            "zone_id": r.zone_id,
            "risk": r.risk.value,
            "level": r.level.value,
            "status": r.status.value,
            "revision": r.revision,
            "predicted": r.predicted,
            "opened_at": r.opened_at,
            "updated_at": r.at,
            "summary_zh": r.summary.zh,
            "summary_en": r.summary.en,
            "evidence": r.evidence,
            "acknowledged_by": r.acknowledged_by,
            "acknowledged_at": r.acknowledged_at,
            "latched": r.latched,
        }
        for r in latest.values()
    ]
    history_rows = [
        {
            "alert_id": r.alert_id,
            "revision": r.revision,
            "change": r.change.value,
            "level": r.level.value,
            "status": r.status.value,
            "at": r.at,
            "actor": r.actor,
            "note": r.note,
            "record": r.model_dump(mode="json"),
        }
        for r in records
    ]
    alerts = AlertRow.__table__
    history = AlertHistoryRow.__table__
    up = _insert(engine, alerts)
    up = up.on_conflict_do_update(
        index_elements=[alerts.c.alert_id],
        set_={
            col: up.excluded[col]
            for col in (
                "level",
                "status",
                "revision",
                "predicted",
                "updated_at",
                "summary_zh",
                "summary_en",
                "evidence",
                "acknowledged_by",
                "acknowledged_at",
                "latched",
            )
        },
        where=alerts.c.revision < up.excluded.revision,
    )
    ins = _insert(engine, history).on_conflict_do_nothing(
        index_elements=[history.c.alert_id, history.c.revision]
    )
    with engine.begin() as conn:
        conn.execute(up, alert_rows)
        conn.execute(ins, history_rows)


def load_alerts(engine: Engine, zone_id: str | None = None) -> list[AlertRow]:
    """Alerts, newest first (optionally of one zone)."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(AlertRow).order_by(AlertRow.updated_at.desc())
        if zone_id is not None:
            query = query.where(AlertRow.zone_id == zone_id)
        return list(session.scalars(query))


def load_history(engine: Engine, alert_ids: Iterable[str] | None = None) -> list[AlertHistoryRow]:
    """History rows ordered by alert and revision."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(AlertHistoryRow).order_by(AlertHistoryRow.alert_id, AlertHistoryRow.revision)
        if alert_ids is not None:
            query = query.where(AlertHistoryRow.alert_id.in_(list(alert_ids)))
        return list(session.scalars(query))


def upsert_reports(engine: Engine, links: Sequence[tuple[VolunteerReport, str | None]]) -> None:
    """Store reports with the alert each one opened or joined; idempotent. A report stored
    earlier (by the API at submission) gains its ``alert_id``; a known ``alert_id`` is kept."""
    if not links:
        return
    reports = ReportRow.__table__
    rows = [
        {
            "report_id": r.report_id,
            "reporter_id": r.reporter_id,
            "zone_id": r.zone_id,
            "category": r.category.value,
            "description": r.description,
            "submitted_at": r.submitted_at,
            "lat": r.lat,
            "lon": r.lon,
            "photo_url": r.photo_url,
            "alert_id": alert_id,
        }
        for r, alert_id in links
    ]
    stmt = _insert(engine, reports)
    stmt = stmt.on_conflict_do_update(
        index_elements=[reports.c.report_id],
        set_={"alert_id": func.coalesce(reports.c.alert_id, stmt.excluded.alert_id)},
    )
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def upsert_zone_status(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Replace the stored status of each zone in ``rows`` (keys: ZoneStatusRow's columns)."""
    if not rows:
        return
    table = ZoneStatusRow.__table__
    stmt = _insert(engine, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.zone_id],
        set_={
            c.name: (
                # a sweep-only update (no reading) keeps when the latest reading came in
                func.coalesce(stmt.excluded[c.name], c)
                if c.name == "received_at"
                else stmt.excluded[c.name]
            )
            for c in table.c
            if c.name != "zone_id"
        },
    )
    with engine.begin() as conn:
        conn.execute(stmt, list(rows))


def upsert_zone_series(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Merge per-minute figures (keys: zone_id, minute, people, density): a minute already
    stored keeps the larger people count (and its density), so writing again changes nothing."""
    if not rows:
        return
    table = ZoneSeriesRow.__table__
    stmt = _insert(engine, table)
    larger = stmt.excluded.people > table.c.people
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.zone_id, table.c.minute],
        set_={
            "people": case((larger, stmt.excluded.people), else_=table.c.people),
            "density": case((larger, stmt.excluded.density), else_=table.c.density),
        },
    )
    with engine.begin() as conn:
        conn.execute(stmt, list(rows))


def load_zone_series(
    engine: Engine, since: datetime, until: datetime, zone_id: str | None = None
) -> list[ZoneSeriesRow]:
    """Stored minutes in ``[since, until)``, of one zone or all, by zone then time."""
    query = select(ZoneSeriesRow).where(ZoneSeriesRow.minute >= since, ZoneSeriesRow.minute < until)
    if zone_id is not None:
        query = query.where(ZoneSeriesRow.zone_id == zone_id)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query.order_by(ZoneSeriesRow.zone_id, ZoneSeriesRow.minute)))


def newest_series_minute(engine: Engine) -> datetime | None:
    """The newest minute stored, any zone."""
    with engine.connect() as conn:
        value = conn.execute(select(func.max(ZoneSeriesRow.minute))).scalar()
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def prune_zone_series(engine: Engine, before: datetime) -> int:
    """Delete the minutes older than ``before``; returns how many."""
    with engine.begin() as conn:
        result = conn.execute(delete(ZoneSeriesRow).where(ZoneSeriesRow.minute < before))
    return int(result.rowcount or 0)


# -- HTTP API: report intake and silences ------------------------------------------------------


class SilenceRow(Base):
    """A silence: matchers on zone, site, risk and level (``None`` = any) and a time window.
    A deleted silence keeps its row (who deleted it, when) but no longer silences anything."""

    __tablename__ = "silences"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    zone_id: Mapped[str | None] = mapped_column(String(128))
    site: Mapped[str | None] = mapped_column(String(128))
    risk: Mapped[str | None] = mapped_column(String(32))
    level: Mapped[str | None] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    comment: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[str | None] = mapped_column(String(128))

    def to_silence(self) -> Silence:
        """The pure-core value the notifier matches alerts against."""
        return Silence(
            id=self.id,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            zone_id=self.zone_id,
            site=self.site,
            risk=self.risk,
            level=self.level,
            comment=self.comment,
            created_by=self.created_by,
        )


def insert_report(engine: Engine, report: VolunteerReport) -> bool:
    """Store a report as submitted (no alert yet); idempotent. True if this call inserted it."""
    table = ReportRow.__table__
    stmt = _insert(engine, table).on_conflict_do_nothing(index_elements=[table.c.report_id])
    row = {
        "report_id": report.report_id,
        "reporter_id": report.reporter_id,
        "zone_id": report.zone_id,
        "category": report.category.value,
        "description": report.description,
        "submitted_at": report.submitted_at,
        "lat": report.lat,
        "lon": report.lon,
        "photo_url": report.photo_url,
        "alert_id": None,
    }
    with engine.begin() as conn:
        return bool(conn.execute(stmt, row).rowcount)


def delete_report(engine: Engine, report_id: str) -> None:
    """Remove a report the pipeline never received (its produce failed); linked ones stay."""
    with engine.begin() as conn:
        conn.execute(
            delete(ReportRow).where(ReportRow.report_id == report_id, ReportRow.alert_id.is_(None))
        )


def insert_silence(engine: Engine, row: SilenceRow) -> SilenceRow:
    """Store a new silence and return it."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(row)
    return row


def list_silences(
    engine: Engine, *, now: datetime | None = None, include_deleted: bool = False
) -> list[SilenceRow]:
    """Silences, newest first. With ``now``, only those that have not ended by then (in effect or
    pending); deleted ones only with ``include_deleted``."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(SilenceRow).order_by(SilenceRow.created_at.desc(), SilenceRow.id)
        if now is not None:
            query = query.where(SilenceRow.ends_at > now)
        if not include_deleted:
            query = query.where(SilenceRow.deleted_at.is_(None))
        return list(session.scalars(query))


def load_silences(engine: Engine, now: datetime) -> list[Silence]:
    """The silences that are in effect or pending at ``now`` (not deleted), as pure values for
    :func:`alerts.silences.is_silenced`."""
    return [row.to_silence() for row in list_silences(engine, now=now)]


def delete_silence(engine: Engine, silence_id: str, actor: str, now: datetime) -> bool:
    """Mark a silence deleted by ``actor`` at ``now``. False if unknown or deleted already."""
    with engine.begin() as conn:
        result = conn.execute(
            update(SilenceRow)
            .where(SilenceRow.id == silence_id, SilenceRow.deleted_at.is_(None))
            .values(deleted_at=now, deleted_by=actor)
        )
        return bool(result.rowcount)


# -- Notifications: webhook delivery attempts (notifier/service.py) ----------------------------


class NotificationAttemptRow(Base):
    """One attempt to deliver one webhook notification; ``(notification_id, attempt)`` is unique,
    so writing the same attempt twice adds nothing."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(36))
    alert_id: Mapped[str] = mapped_column(String(64), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    delivered: Mapped[bool]

    __table_args__ = (
        UniqueConstraint("notification_id", "attempt", name="uq_notification_attempt"),
    )


def record_notification_attempts(engine: Engine, rows: Sequence[dict[str, Any]]) -> None:
    """Store delivery attempts (keys: NotificationAttemptRow's columns but ``id``); idempotent."""
    if not rows:
        return
    table = NotificationAttemptRow.__table__
    stmt = _insert(engine, table).on_conflict_do_nothing(
        index_elements=[table.c.notification_id, table.c.attempt]
    )
    with engine.begin() as conn:
        conn.execute(stmt, list(rows))


def load_notification_attempts(
    engine: Engine, alert_ids: Iterable[str] | None = None
) -> list[NotificationAttemptRow]:
    """Delivery attempts in the order they were made (optionally of some alerts only)."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(NotificationAttemptRow).order_by(
            NotificationAttemptRow.at, NotificationAttemptRow.id
        )
        if alert_ids is not None:
            query = query.where(NotificationAttemptRow.alert_id.in_(list(alert_ids)))
        return list(session.scalars(query))


def load_open_alert_records(engine: Engine) -> list[AlertRecord]:
    """Every stored record of the alerts that are not resolved, by alert and revision: what the
    notifier folds to pick up open alerts again after a restart."""
    with Session(engine) as session:
        query = (
            select(AlertHistoryRow.record)
            .join(AlertRow, AlertRow.alert_id == AlertHistoryRow.alert_id)
            .where(AlertRow.status != "resolved")
            .order_by(AlertHistoryRow.alert_id, AlertHistoryRow.revision)
        )
        return [AlertRecord.model_validate(record) for record in session.scalars(query)]
