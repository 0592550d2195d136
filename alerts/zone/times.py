"""Event time as the zone engine holds it: epoch seconds (floats), read and written here only."""

from __future__ import annotations

from datetime import UTC, datetime

from models.timezone import BEIJING


def to_epoch(moment: datetime) -> float:
    return moment.timestamp()


def from_epoch(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def beijing_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=BEIJING).date().isoformat()
