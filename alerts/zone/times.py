"""Event time as the zone engine holds it: epoch seconds (floats), read and written here only."""

from __future__ import annotations

from datetime import UTC, datetime

from models.timezone import BEIJING


def to_epoch(moment: datetime) -> float:
    """Seconds since the epoch of an aware ``moment``."""
    return moment.timestamp()


def from_epoch(ts: float) -> datetime:
    """The UTC moment of epoch seconds ``ts``."""
    return datetime.fromtimestamp(ts, tz=UTC)


def beijing_day(ts: float) -> str:
    """The calendar day in Beijing (ISO date) of epoch seconds ``ts``: a day's peak is of it."""
    return datetime.fromtimestamp(ts, tz=BEIJING).date().isoformat()
