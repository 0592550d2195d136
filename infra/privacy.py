"""Volunteers' personal data in the database: kept only as long as configured, given out or
erased on request, and every operator read of it recorded (PIPL; see docs/privacy.md).

Personal data here is a volunteer's id (their token's principal; the token's name is their
display name), description, coordinates and photo link on ``reports``, their photos (files under
the photo directory, rows in ``photos``: see :mod:`infra.photos`), and volunteer ids in alert
evidence (``reporters``). Erasing keeps what statistics need: the report's category, zone, times
and the alert it went to, and the counts. A photo is erased whole (its files deleted, its row
kept as an erased stub so a report can say it had one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Engine, Integer, String, Text, cast, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import flag_modified

from infra.db import AlertHistoryRow, AlertRow, Base, ReportRow, TokenRow, UTCDateTime
from infra.photos import PhotoRow, PhotoStore, mark_erased, photos_of_owner

#: What an erased report's reporter and description become.
ERASED = "erased"


class PersonalDataAccessRow(Base):
    """One access to volunteers' personal data: an operator's read of reports (which ones),
    an export or an erasure (whose)."""

    __tablename__ = "personal_data_access"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))  # read | export | erase | retention
    what: Mapped[str] = mapped_column(String(256))  # the endpoint or command
    report_ids: Mapped[list[str]] = mapped_column(JSON)


def record_access(
    engine: Engine, actor: str, action: str, what: str, report_ids: Sequence[str], at: datetime
) -> None:
    """Record that ``actor`` saw (or exported, erased) the personal fields of ``report_ids``."""
    if not report_ids and action == "read":
        return
    with Session(engine) as session, session.begin():
        session.add(
            PersonalDataAccessRow(
                at=at, actor=actor, action=action, what=what[:256], report_ids=list(report_ids)
            )
        )


def access_log(engine: Engine, report_id: str | None = None) -> list[PersonalDataAccessRow]:
    """Recorded accesses, oldest first (those touching ``report_id`` only, if given)."""
    with Session(engine, expire_on_commit=False) as session:
        rows = list(
            session.scalars(select(PersonalDataAccessRow).order_by(PersonalDataAccessRow.id))
        )
    if report_id is None:
        return rows
    return [r for r in rows if report_id in (r.report_ids or [])]


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure changed."""

    reports: int
    alerts: int
    history: int
    tokens: int
    photos: int = 0


def _delete_files(store: PhotoStore | None, ids: Sequence[str]) -> None:
    # After the rows are committed as erased: a file left by a crash here has no live row and
    # is removed by infra.photos.sweep_orphans.
    if store is not None:
        for photo_id in ids:
            store.delete(photo_id)


def _scrub(evidence: dict[str, Any], volunteer: str | None) -> bool:
    """Drop volunteer ids from one evidence dict (one volunteer's, or all of them); True if it
    changed. Counts stay."""
    reporters = evidence.get("reporters")
    if not isinstance(reporters, list):
        return False
    if volunteer is None:
        del evidence["reporters"]
        return True
    if volunteer not in reporters:
        return False
    evidence["reporters"] = [r for r in reporters if r != volunteer]
    return True


def _scrub_alerts(
    session: Session, volunteer: str | None, before: datetime | None
) -> tuple[int, int]:
    alerts = select(AlertRow).where(cast(AlertRow.evidence, Text).like('%"reporters"%'))
    history = select(AlertHistoryRow).where(
        cast(AlertHistoryRow.record, Text).like('%"reporters"%')
    )
    if before is not None:
        alerts = alerts.where(AlertRow.updated_at < before)
        history = history.where(AlertHistoryRow.at < before)
    changed_alerts = changed_history = 0
    for alert in session.scalars(alerts):
        evidence = dict(alert.evidence or {})
        if _scrub(evidence, volunteer):
            alert.evidence = evidence
            flag_modified(alert, "evidence")
            changed_alerts += 1
    for row in session.scalars(history):
        record = dict(row.record or {})
        evidence = dict(record.get("evidence") or {})
        if _scrub(evidence, volunteer):
            record["evidence"] = evidence
            row.record = record
            flag_modified(row, "record")
            changed_history += 1
    return changed_alerts, changed_history


_ANONYMOUS = {
    "reporter_id": ERASED,
    "description": "",
    "lat": None,
    "lon": None,
    "photo_url": None,
}


def erase_expired(
    engine: Engine, now: datetime, days: float, photos: PhotoStore | None = None
) -> Erased:
    """The retention job: erase the personal fields of reports submitted more than ``days``
    ago, photos uploaded more than ``days`` ago (their files in ``photos``), and volunteer ids
    from the evidence of alerts last changed before then."""
    cutoff = now - timedelta(days=days)
    with Session(engine) as session, session.begin():
        old_photos = list(
            session.scalars(
                select(PhotoRow.photo_id).where(
                    PhotoRow.uploaded_at < cutoff, PhotoRow.erased_at.is_(None)
                )
            )
        )
        mark_erased(session, old_photos, now)
        expired = [
            r
            for (r,) in session.execute(
                select(ReportRow.report_id).where(
                    ReportRow.submitted_at < cutoff, ReportRow.erased_at.is_(None)
                )
            )
        ]
        if expired:
            session.execute(
                update(ReportRow)
                .where(ReportRow.report_id.in_(expired))
                .values(**_ANONYMOUS, erased_at=now)
            )
        alerts, history = _scrub_alerts(session, None, cutoff)
        if expired or old_photos:
            session.add(
                PersonalDataAccessRow(
                    at=now,
                    actor="retention",
                    action="retention",
                    what=f"PUHUI_REPORT_RETENTION_DAYS={days:g}",
                    report_ids=[*expired, *old_photos],
                )
            )
    _delete_files(photos, old_photos)
    return Erased(
        reports=len(expired), alerts=alerts, history=history, tokens=0, photos=len(old_photos)
    )


def _public_report(row: ReportRow) -> dict[str, Any]:
    return {
        "report_id": row.report_id,
        "reporter_id": row.reporter_id,
        "zone_id": row.zone_id,
        "category": row.category,
        "description": row.description,
        "submitted_at": row.submitted_at.isoformat(),
        "lat": row.lat,
        "lon": row.lon,
        "photo_url": row.photo_url,
        "alert_id": row.alert_id,
    }


def _public_photo(row: PhotoRow) -> dict[str, Any]:
    return {
        "photo_id": row.photo_id,
        "uploaded_at": row.uploaded_at.isoformat(),
        "report_id": row.report_id,
        "width": row.width,
        "height": row.height,
        "bytes": row.bytes,
        "sha256": row.sha256,
        "url": f"/api/photos/{row.photo_id}",
    }


def export_volunteer(engine: Engine, volunteer: str, actor: str, now: datetime) -> dict[str, Any]:
    """Everything stored about ``volunteer`` (their reports, their photos' ids and metadata, the
    alerts naming them, who read their reports or photos), as JSON-ready data; the export itself
    is recorded. The photo files themselves are read with the volunteer's token
    (``GET /api/photos/{id}``) or copied from the photo directory by the administrator."""
    with Session(engine, expire_on_commit=False) as session:
        reports = list(
            session.scalars(
                select(ReportRow)
                .where(ReportRow.reporter_id == volunteer)
                .order_by(ReportRow.submitted_at)
            )
        )
        naming = [
            a.alert_id
            for a in session.scalars(
                select(AlertRow).where(cast(AlertRow.evidence, Text).like('%"reporters"%'))
            )
            if volunteer in ((a.evidence or {}).get("reporters") or [])
        ]
    ids = [r.report_id for r in reports]
    photos = photos_of_owner(engine, volunteer)
    photo_ids = [p.photo_id for p in photos]
    reads = [
        {"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "what": a.what}
        for a in access_log(engine)
        if set(ids + photo_ids) & set(a.report_ids or [])
    ]
    record_access(
        engine, actor, "export", f"puhui volunteer export {volunteer}", ids + photo_ids, now
    )
    return {
        "volunteer": volunteer,
        "exported_at": now.isoformat(),
        "reports": [_public_report(r) for r in reports],
        "photos": [_public_photo(p) for p in photos],
        "alerts_naming_the_volunteer": naming,
        "accesses": reads,
        "not_here": (
            "Kafka topics keep records until their retention ends "
            "(puhui.volunteer-reports, puhui.alerts, puhui.dead-letters: "
            "PUHUI_REPORT_RETENTION_DAYS); see docs/privacy.md"
        ),
    }


def erase_volunteer(
    engine: Engine,
    volunteer: str,
    actor: str,
    now: datetime,
    photos: PhotoStore | None = None,
) -> Erased:
    """Erase ``volunteer`` from the database: their reports' personal fields, their photos
    (rows marked erased, files in ``photos`` deleted), their id in alert evidence, their
    volunteer tokens (revoked, name erased). Recorded (by report and photo id only)."""
    with Session(engine) as session, session.begin():
        photo_ids = list(
            session.scalars(
                select(PhotoRow.photo_id).where(
                    PhotoRow.owner == volunteer, PhotoRow.erased_at.is_(None)
                )
            )
        )
        mark_erased(session, photo_ids, now)
        ids = [
            r
            for (r,) in session.execute(
                select(ReportRow.report_id).where(ReportRow.reporter_id == volunteer)
            )
        ]
        if ids:
            session.execute(
                update(ReportRow)
                .where(ReportRow.report_id.in_(ids))
                .values(**_ANONYMOUS, erased_at=now)
            )
        alerts, history = _scrub_alerts(session, volunteer, None)
        tokens = session.execute(
            update(TokenRow)
            .where(TokenRow.principal == volunteer, TokenRow.role == "volunteer")
            .values(name=ERASED, revoked_at=func.coalesce(TokenRow.revoked_at, now))
        ).rowcount
        session.add(
            PersonalDataAccessRow(
                at=now,
                actor=actor,
                action="erase",
                what="puhui volunteer erase",
                report_ids=[*ids, *photo_ids],
            )
        )
    _delete_files(photos, photo_ids)
    return Erased(
        reports=len(ids),
        alerts=alerts,
        history=history,
        tokens=int(tokens or 0),
        photos=len(photo_ids),
    )


def report_ids(rows: Iterable[Any]) -> list[str]:
    """The ids of report rows (for :func:`record_access`)."""
    return [str(r.report_id) for r in rows]
