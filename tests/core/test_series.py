"""Per-minute maxima (alerts/series.py) and the retention cut-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.series import MinuteMax, minute_start, series_cutoff

pytestmark = pytest.mark.unit

T = datetime(2026, 10, 1, 3, 0, tzinfo=UTC).timestamp()


def test_each_minute_keeps_its_largest_count_per_zone() -> None:
    m = MinuteMax()
    m.note("a", T + 1, 10)
    m.note("a", T + 30, 25)
    m.note("a", T + 59.9, 5)
    m.note("a", T + 60, 7)  # the next minute
    m.note("b", T + 10, 3)
    samples = m.drain()
    assert [(s.zone_id, s.minute - T, s.people) for s in samples] == [
        ("a", 0, 25),
        ("a", 60, 7),
        ("b", 0, 3),
    ]
    assert m.drain() == [] and len(m) == 0


def test_non_finite_or_negative_counts_are_ignored() -> None:
    m = MinuteMax()
    for bad in (float("nan"), float("inf"), -1.0):
        m.note("a", T, bad)
    m.note("a", float("nan"), 3)
    assert m.drain() == []


@given(st.lists(st.tuples(st.floats(0, 3600), st.floats(0, 1e5)), min_size=1, max_size=60))
def test_drained_minutes_are_the_maxima_whatever_the_order(obs: list[tuple[float, float]]) -> None:
    m = MinuteMax()
    for at, people in reversed(obs):
        m.note("z", T + at, people)
    expected: dict[float, float] = {}
    for at, people in obs:
        key = minute_start(T + at)
        expected[key] = max(expected.get(key, people), people)
    assert {s.minute: s.people for s in m.drain()} == expected


def test_retention_counts_back_from_the_newest_minute_when_that_is_in_the_past() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    replayed = datetime(2024, 5, 4, 16, tzinfo=UTC)
    assert series_cutoff(now, replayed, 35) == replayed - timedelta(days=35)
    assert series_cutoff(now, None, 35) == now - timedelta(days=35)
    future = now + timedelta(days=400)  # a sensor clock far ahead cannot prune everything
    assert series_cutoff(now, future, 35) == now - timedelta(days=35)
    with pytest.raises(ValueError, match="aware"):
        series_cutoff(now.replace(tzinfo=None), None, 1)
