"""Photos on disk and in the ``photos`` table: written atomically, found, attached to a report,
erased.

A photo is two files under the photo directory (``<dir>/<aa>/<id>.jpg`` and
``<id>.thumb.jpg``, ``aa`` = the id's first two hex digits) and one row. Writing: both files go
to temporary names in the same directory, are flushed to disk and renamed into place, and only
then is the row inserted; if the insert fails the files are removed. A photo is served only
when its row is there and not erased, so a crash between the two steps leaves at most files
nobody can reach, which :func:`sweep_orphans` removes. Erasing: the row is marked erased first
(its owner and digest blanked, the id kept so a report or case can say "photo erased"), then the
files are deleted.

Photos are personal data (a face, a number plate, a doorway): they go with their owner's
reports under retention, export and erasure (:mod:`infra.privacy`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from infra.db import Base, ReportRow, UTCDateTime, _insert
from infra.images import ProcessedPhoto
from models.contracts import VolunteerReport

__all__ = [
    "PHOTO_ID_PATTERN",
    "PhotoNotAttachable",
    "PhotoRow",
    "PhotoStore",
    "attach_problems",
    "delete_unsent_report",
    "get_photo",
    "insert_report_with_photos",
    "new_photo_id",
    "owned_problems",
    "photos_of_owner",
    "photos_of_reports",
    "save_photo",
    "sweep_orphans",
]

PHOTO_ID_PATTERN: Final = r"^ph_[0-9a-f]{32}$"
_PHOTO_ID = re.compile(PHOTO_ID_PATTERN)

#: What an erased photo's owner becomes.
ERASED_OWNER: Final = "erased"


class PhotoRow(Base):
    """One uploaded photo: who uploaded it and when, what came in, what is stored."""

    __tablename__ = "photos"

    photo_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)  # the uploader's principal
    owner_role: Mapped[str] = mapped_column(String(16))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source_format: Mapped[str] = mapped_column(String(8))  # JPEG | PNG | WEBP
    source_bytes: Mapped[int] = mapped_column(Integer)
    source_width: Mapped[int] = mapped_column(Integer)
    source_height: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(Integer)  # the stored JPEG
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    thumb_bytes: Mapped[int] = mapped_column(Integer)
    thumb_width: Mapped[int] = mapped_column(Integer)
    thumb_height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the stored JPEG
    #: The volunteer report the photo was attached to (at most one).
    report_id: Mapped[str | None] = mapped_column(String(128), index=True)
    #: Its place in the report's ``photo_ids`` (the order the volunteer chose).
    position: Mapped[int | None] = mapped_column(Integer)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def new_photo_id() -> str:
    """``ph_`` and 32 random hex digits (not guessable: the id is not a secret, but a
    guessable one would be an invitation to try)."""
    return f"ph_{secrets.token_hex(16)}"


def is_photo_id(value: str) -> bool:
    return bool(_PHOTO_ID.match(value))


class PhotoStore:
    """The photo files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def paths(self, photo_id: str) -> tuple[Path, Path]:
        """The photo's file and its thumbnail's."""
        if not is_photo_id(photo_id):
            raise ValueError("not a photo id")
        folder = self.root / photo_id[3:5]
        return folder / f"{photo_id}.jpg", folder / f"{photo_id}.thumb.jpg"

    def write(self, photo_id: str, photo: ProcessedPhoto) -> None:
        """Both files, each written whole to a temporary name, flushed and renamed into place:
        a reader never sees half a file."""
        full, thumb = self.paths(photo_id)
        full.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        written: list[Path] = []
        try:
            for path, data in ((thumb, photo.thumbnail), (full, photo.jpeg)):
                _atomic_write(path, data)
                written.append(path)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        _fsync_dir(full.parent)

    def read(self, photo_id: str, *, thumbnail: bool = False) -> bytes | None:
        full, thumb = self.paths(photo_id)
        try:
            return (thumb if thumbnail else full).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, photo_id: str) -> None:
        for path in self.paths(photo_id):
            path.unlink(missing_ok=True)

    def stored_ids(self) -> set[str]:
        """Ids of the photos with a file here (temporary files excluded)."""
        if not self.root.is_dir():
            return set()
        ids = set()
        for path in self.root.glob("*/ph_*.jpg"):
            photo_id = path.name.split(".", 1)[0]
            if is_photo_id(photo_id):
                ids.add(photo_id)
        return ids


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_photo(
    engine: Engine,
    store: PhotoStore,
    photo: ProcessedPhoto,
    *,
    owner: str,
    owner_role: str,
    now: datetime,
    photo_id: str | None = None,
) -> PhotoRow:
    """Files first, then the row; the files are removed again if the row is not written."""
    photo_id = photo_id or new_photo_id()
    store.write(photo_id, photo)
    row = PhotoRow(
        photo_id=photo_id,
        owner=owner,
        owner_role=owner_role,
        uploaded_at=now,
        source_format=photo.source_format,
        source_bytes=photo.source_bytes,
        source_width=photo.source_width,
        source_height=photo.source_height,
        bytes=len(photo.jpeg),
        width=photo.width,
        height=photo.height,
        thumb_bytes=len(photo.thumbnail),
        thumb_width=photo.thumb_width,
        thumb_height=photo.thumb_height,
        sha256=photo.sha256,
    )
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
    except BaseException:
        store.delete(photo_id)
        raise
    return row


def get_photo(engine: Engine, photo_id: str) -> PhotoRow | None:
    """The photo's row, unless it is unknown or erased."""
    if not is_photo_id(photo_id):
        return None
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(PhotoRow, photo_id)
    return row if row is not None and row.erased_at is None else None


def photos_of_reports(engine: Engine, report_ids: Iterable[str]) -> dict[str, list[str]]:
    """The ids of the photos (not erased) attached to each report, oldest upload first."""
    ids = list(report_ids)
    if not ids:
        return {}
    out: dict[str, list[str]] = {}
    with Session(engine) as session:
        rows = session.execute(
            select(PhotoRow.report_id, PhotoRow.photo_id)
            .where(PhotoRow.report_id.in_(ids), PhotoRow.erased_at.is_(None))
            .order_by(PhotoRow.position, PhotoRow.uploaded_at, PhotoRow.photo_id)
        )
        for report_id, photo_id in rows:
            out.setdefault(str(report_id), []).append(photo_id)
    return out


def attached_ids(engine: Engine, report_id: str) -> list[str]:
    """Every photo ever attached to ``report_id`` (erased ones too), sorted."""
    with Session(engine) as session:
        return sorted(
            session.scalars(select(PhotoRow.photo_id).where(PhotoRow.report_id == report_id))
        )


def photos_of_owner(engine: Engine, owner: str) -> list[PhotoRow]:
    """The photos ``owner`` uploaded (not erased), oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.scalars(
                select(PhotoRow)
                .where(PhotoRow.owner == owner, PhotoRow.erased_at.is_(None))
                .order_by(PhotoRow.uploaded_at, PhotoRow.photo_id)
            )
        )


class PhotoNotAttachable(Exception):
    """A photo id a report may not carry: ``index`` is its position in the list."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def owned_problems(
    engine: Engine, photo_ids: Sequence[str], owner: str
) -> PhotoNotAttachable | None:
    """Why ``photo_ids`` are not all ``owner``'s live photos, or ``None`` (for anything other
    than a report that refers to photos, e.g. a case's "handled" step; a photo in a report may
    be referred to again there). Another person's photo reads like an unknown one."""
    return _problems(engine, photo_ids, owner, None)


def attach_problems(
    engine: Engine, photo_ids: Sequence[str], owner: str, report_id: str
) -> PhotoNotAttachable | None:
    """Why ``owner``'s report may not carry ``photo_ids``, or ``None``. Another person's photo
    reads exactly like an unknown one (no existence oracle)."""
    return _problems(engine, photo_ids, owner, report_id)


def _problems(
    engine: Engine, photo_ids: Sequence[str], owner: str, report_id: str | None
) -> PhotoNotAttachable | None:
    if not photo_ids:
        return None
    with Session(engine) as session:
        rows = {
            r.photo_id: r
            for r in session.scalars(select(PhotoRow).where(PhotoRow.photo_id.in_(photo_ids)))
        }
    for index, photo_id in enumerate(photo_ids):
        row = rows.get(photo_id)
        if row is None or row.owner != owner:
            return PhotoNotAttachable(index, f"no photo {photo_id} of yours: upload it first")
        if row.erased_at is not None:
            return PhotoNotAttachable(index, f"photo {photo_id} has been erased")
        if report_id is not None and row.report_id is not None and row.report_id != report_id:
            return PhotoNotAttachable(index, f"photo {photo_id} belongs to another report")
    return None


def insert_report_with_photos(
    engine: Engine, report: VolunteerReport, photo_ids: Sequence[str]
) -> bool:
    """Store a report as submitted and attach its photos, in one transaction. False if a
    report with this id exists already (nothing changed). Raises :class:`PhotoNotAttachable`
    (nothing changed) when a photo was taken by another report or erased meanwhile."""
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
        if not conn.execute(stmt, row).rowcount:
            return False
        for position, photo_id in enumerate(photo_ids):
            claimed = conn.execute(
                update(PhotoRow)
                .where(
                    PhotoRow.photo_id == photo_id,
                    PhotoRow.owner == report.reporter_id,
                    PhotoRow.erased_at.is_(None),
                    PhotoRow.report_id.is_(None),
                )
                .values(report_id=report.report_id, position=position)
            ).rowcount
            if claimed != 1:  # leaving the block rolls the insert back
                raise PhotoNotAttachable(
                    position, f"photo {photo_id} was taken by another report or erased meanwhile"
                )
        return True


def delete_unsent_report(engine: Engine, report_id: str) -> None:
    """Remove a report the pipeline never received (its produce failed) and free its photos
    for the resend; a report the pipeline linked already stays."""
    with engine.begin() as conn:
        gone = conn.execute(
            delete(ReportRow).where(ReportRow.report_id == report_id, ReportRow.alert_id.is_(None))
        ).rowcount
        if gone:
            conn.execute(
                update(PhotoRow)
                .where(PhotoRow.report_id == report_id)
                .values(report_id=None, position=None)
            )


def mark_erased(session: Session, ids: Sequence[str], now: datetime) -> None:
    """Blank the rows of ``ids`` (owner, digest); the caller deletes the files after commit."""
    if ids:
        session.execute(
            update(PhotoRow)
            .where(PhotoRow.photo_id.in_(list(ids)))
            .values(owner=ERASED_OWNER, sha256=None, erased_at=now)
        )


def sweep_orphans(engine: Engine, store: PhotoStore, older_than: datetime) -> int:
    """Delete files that have no live row (a crash between writing the files and the row, or
    between erasing the row and the files), if their files are older than ``older_than`` (so
    an upload in progress is left alone). Also removes stale temporary files. Returns the
    number of photos whose files were removed."""
    on_disk = store.stored_ids()
    if not store.root.is_dir():
        return 0
    cutoff = older_than.timestamp()
    for tmp in store.root.glob("*/.tmp-*.part"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
    if not on_disk:
        return 0
    with Session(engine) as session:
        live = set(
            session.scalars(
                select(PhotoRow.photo_id).where(
                    PhotoRow.photo_id.in_(sorted(on_disk)), PhotoRow.erased_at.is_(None)
                )
            )
        )
    removed = 0
    for photo_id in sorted(on_disk - live):
        times = []
        for path in store.paths(photo_id):
            with contextlib.suppress(FileNotFoundError):
                times.append(path.stat().st_mtime)
        if not times or max(times) >= cutoff:
            continue
        store.delete(photo_id)
        removed += 1
    return removed
