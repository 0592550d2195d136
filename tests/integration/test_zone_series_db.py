"""``zone_series`` on SQLite and on the real PostgreSQL: the migration creates it, a minute
written again keeps its larger count (the merge is the database's, in one statement), reads are
by window, pruning deletes only what is older, and the daily report's alert query counts the
day's alerts by their highest level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from alerts.daily import day_window
from api.routes.daily import alerts_of_day
from infra.db import (
    load_zone_series,
    newest_series_minute,
    prune_zone_series,
    upsert_zone_series,
    write_alert_records,
)
from models.contracts import Level, Risk
from tests.support.api import episode

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai


@pytest.fixture
def engine(sql_engine: Engine) -> Engine:
    """A migrated engine, once on SQLite and once on PostgreSQL (``tests.support.parts``)."""
    return sql_engine


def row(zone: str, at: datetime, people: float) -> dict[str, object]:
    return {"zone_id": zone, "minute": at, "people": people, "density": people / 100}


def test_minutes_merge_to_their_maximum_and_read_back_by_window(engine: Engine) -> None:
    minutes = [T0 + timedelta(minutes=m) for m in range(5)]
    upsert_zone_series(engine, [row("a", m, 10.0 * i) for i, m in enumerate(minutes)])
    upsert_zone_series(engine, [row("a", minutes[1], 5.0), row("a", minutes[2], 99.0)])
    upsert_zone_series(engine, [row("b", minutes[0], 1.0)])
    rows = load_zone_series(engine, minutes[1], minutes[4], "a")
    assert [(r.minute, r.people, r.density) for r in rows] == [
        (minutes[1], 10.0, 0.1),  # a smaller count later does not lower it
        (minutes[2], 99.0, 0.99),  # a larger one raises count and density together
        (minutes[3], 30.0, 0.3),
    ]
    everything = load_zone_series(engine, T0, T0 + timedelta(hours=1))
    assert [(r.zone_id, r.minute) for r in everything][:2] == [("a", minutes[0]), ("a", minutes[1])]
    assert everything[-1].zone_id == "b"
    assert newest_series_minute(engine) == minutes[4]


def test_pruning_deletes_only_older_minutes(engine: Engine) -> None:
    upsert_zone_series(
        engine, [row("a", T0 - timedelta(days=40), 1.0), row("a", T0 - timedelta(days=1), 2.0)]
    )
    assert prune_zone_series(engine, T0 - timedelta(days=35)) == 1
    assert prune_zone_series(engine, T0 - timedelta(days=35)) == 0
    left = load_zone_series(engine, T0 - timedelta(days=50), T0)
    assert [r.people for r in left] == [2.0]


def test_alerts_of_day_take_the_highest_level_reached_that_day(engine: Engine) -> None:
    start, end = day_window(T0.date())
    write_alert_records(engine, episode("z1", [Level.BLUE, Level.RED, Level.YELLOW], start=T0))
    write_alert_records(engine, episode("z2", [Level.YELLOW], risk=Risk.FIRE, start=T0, cause="f"))
    # opened just before the day ends, escalated after: that day it was blue
    write_alert_records(
        engine,
        episode("z3", [Level.BLUE, Level.RED], start=end - timedelta(seconds=30), cause="late"),
    )
    write_alert_records(
        engine, episode("z4", [Level.RED], start=start - timedelta(minutes=1), cause="before")
    )
    got = sorted((a.zone_id, a.risk, a.highest) for a in alerts_of_day(engine, start, end))
    assert got == [
        ("z1", Risk.CROWDING, Level.RED),
        ("z2", Risk.FIRE, Level.YELLOW),
        ("z3", Risk.CROWDING, Level.BLUE),
    ]
