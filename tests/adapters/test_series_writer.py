"""The worker's zone_series writer (streams/series.py) over real zone states and a real SQLite
database: a reading's people land in its minute, the minute keeps its largest count, the pending
gauge counts what is not yet written, and pruning keeps a replayed past day."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alerts.config import default_rules
from alerts.engine import ZoneState, process_reading
from infra.db import load_zone_series, make_engine, migrate, upsert_zone_series
from models.contracts import SensorKind, SensorReading
from models.zones import load_bundled_zones
from streams.metrics import PipelineMetrics
from streams.series import SeriesPendingCollector, ZoneSeriesWriter

pytestmark = pytest.mark.unit

ZONES = load_bundled_zones()
LANE = "tianzifang-taikang-210"
T0 = datetime(2024, 5, 4, 9, 0, tzinfo=UTC)


def camera(state: ZoneState, sensor: str, value: float, at: datetime) -> None:
    reading = SensorReading(
        reading_id=f"{sensor}-{at.timestamp()}",
        sensor_id=sensor,
        zone_id=LANE,
        kind=SensorKind.PEOPLE_COUNT,
        value=value,
        observed_at=at,
    )
    process_reading(state, reading, ZONES[LANE], default_rules())


def test_readings_become_minutes_of_their_largest_count(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    migrate(url)
    engine = make_engine(url)
    registry = CollectorRegistry()
    writer = ZoneSeriesWriter(ZONES, engine, PipelineMetrics.create(registry), 35)
    registry.register(SeriesPendingCollector(writer.pending))
    state = ZoneState(LANE)
    for sensor, value, seconds in [
        ("cam-a", 100, 0),
        ("cam-b", 50, 10),
        ("cam-a", 80, 30),  # minute 0: 150 at most
        ("cam-b", 70, 65),  # minute 1: 80 + 70
    ]:
        camera(state, sensor, value, T0 + timedelta(seconds=seconds))
        writer.note(LANE, state)
    writer.note(LANE, None)  # a zone not cached: nothing
    assert registry.get_sample_value("puhui_zone_series_pending_minutes") == 2
    asyncio.run(writer.flush())
    assert registry.get_sample_value("puhui_zone_series_pending_minutes") == 0
    rows = load_zone_series(engine, T0, T0 + timedelta(hours=1), LANE)
    assert [(r.minute, r.people) for r in rows] == [
        (T0, 150.0),
        (T0 + timedelta(minutes=1), 150.0),
    ]
    assert rows[0].density == pytest.approx(150 / ZONES[LANE].area_m2)


def test_pruning_counts_back_from_the_newest_minute_of_a_replayed_day(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    migrate(url)
    engine = make_engine(url)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    writer = ZoneSeriesWriter(
        ZONES, engine, PipelineMetrics.create(CollectorRegistry()), 35, now=lambda: now
    )
    old = T0 - timedelta(days=36)
    upsert_zone_series(
        engine,
        [
            {"zone_id": LANE, "minute": m, "people": 1.0, "density": 0.1}
            for m in (old, T0 - timedelta(days=2), T0)
        ],
    )
    assert asyncio.run(writer.prune()) == 1  # the replayed day (2024) stays
    left = load_zone_series(engine, old, now)
    assert [r.minute for r in left] == [T0 - timedelta(days=2), T0]
