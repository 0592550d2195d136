"""Sliding-window maxima over event time: the crowd-flow peak of the last 5 minutes / hour."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class WindowMax:
    """Largest value seen in the last ``span`` seconds of event time.

    A monotonic deque: amortised O(1) per sample, and at most one entry per distinct "record so
    far" in the window. Times are epoch seconds; samples arriving late (older than the newest)
    are still counted while they are inside the window.
    """

    __slots__ = ("_items", "span")

    def __init__(self, span: float, items: Iterable[tuple[float, float]] = ()) -> None:
        self.span = span
        self._items: deque[tuple[float, float]] = deque(items)

    def add(self, at: float, value: float) -> None:
        """Count ``value`` observed at ``at``."""
        items = self._items
        if items and at < items[-1][0]:
            # A late sample: keep the deque ordered by time, values decreasing.
            if any(t >= at and v >= value for t, v in items):
                return
            merged = sorted([*items, (at, value)])
            items.clear()
            for sample in merged:
                self._push(*sample)
            return
        self._push(at, value)

    def _push(self, at: float, value: float) -> None:
        items = self._items
        while items and items[-1][1] <= value:
            items.pop()
        items.append((at, value))

    def value(self, now: float) -> float | None:
        """The maximum over ``(now - span, now]``, or ``None`` when the window is empty."""
        items = self._items
        while items and items[0][0] <= now - self.span:
            items.popleft()
        return items[0][1] if items else None

    def dump(self) -> list[list[float]]:
        """The deque as plain lists (for the state store)."""
        return [[t, v] for t, v in self._items]
