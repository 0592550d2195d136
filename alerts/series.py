"""Per-minute zone figures (the console's charts, the daily report): each minute keeps the
largest people count the zone had in it, in event time.

Why the maximum, not the last value: a crowd chart and a day's peak must not miss the busiest
moment of a minute, and the maximum is idempotent — writing the same minute again (a replay, a
second flush) never lowers it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["MinuteMax", "MinuteSample", "minute_start", "series_cutoff"]

MINUTE = 60


def minute_start(at: float) -> float:
    """The start (epoch seconds) of the minute ``at`` falls in."""
    return math.floor(at / MINUTE) * MINUTE


@dataclass(frozen=True, slots=True)
class MinuteSample:
    """A zone's largest people count in the minute starting at ``minute`` (epoch seconds)."""

    zone_id: str
    minute: float
    people: float


class MinuteMax:
    """Collects ``(zone, at, people)`` observations as per-minute maxima until drained."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[tuple[str, float], float] = {}

    def note(self, zone_id: str, at: float, people: float) -> None:
        """Count ``people`` in ``zone_id`` at event time ``at`` (epoch seconds)."""
        if not math.isfinite(people) or people < 0 or not math.isfinite(at):
            return
        key = (zone_id, minute_start(at))
        held = self._pending.get(key)
        if held is None or people > held:
            self._pending[key] = people

    def __len__(self) -> int:
        return len(self._pending)

    def drain(self) -> list[MinuteSample]:
        """The minutes noted since the last drain (zone, then time order), and forget them."""
        pending, self._pending = self._pending, {}
        return [MinuteSample(z, m, p) for (z, m), p in sorted(pending.items())]


def series_cutoff(now: datetime, newest: datetime | None, days: float) -> datetime:
    """Minutes older than the returned instant are past retention.

    Retention counts back from the newest minute stored when that is earlier than ``now`` (a
    replayed past day is not pruned the moment it is written), and from ``now`` otherwise (a
    sensor whose clock runs ahead cannot prune everything).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    anchor = now if newest is None or newest > now else newest
    return (anchor - timedelta(days=days)).astimezone(UTC)
