"""The worker's collector: the registry's families are built once, the live ones every scrape."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from models.zones import load_bundled_zones
from streams.lag import PartitionLag, WorkerCollector

pytestmark = pytest.mark.unit


def test_static_zone_families_are_cached_and_live_ones_are_not() -> None:
    zones = load_bundled_zones()
    seen: dict[str, float] = {}
    lags = [PartitionLag("t", 0, 5)]
    collector = WorkerCollector(zones, lag=lambda: list(lags), last_reading=lambda: dict(seen))
    registry = CollectorRegistry()
    registry.register(collector)
    first = generate_latest(registry).decode()
    zone = next(iter(zones))
    assert f'puhui_zone_area_square_meters{{zone="{zone.id}"}} {zone.area_m2}' in first
    assert first.count("puhui_zone_info{") == len(list(zones))
    assert 'puhui_consumer_lag{partition="0",topic="t"} 5.0' in first
    seen[zone.id] = 1234.0
    lags[0] = PartitionLag("t", 0, 2)
    second = generate_latest(registry).decode()
    assert second.count("puhui_zone_info{") == len(list(zones))  # not added twice
    assert f'puhui_zone_last_reading_timestamp_seconds{{zone="{zone.id}"}} 1234.0' in second
    assert 'puhui_consumer_lag{partition="0",topic="t"} 2.0' in second
    static = [f for f in collector.collect() if f.name == "puhui_zone_info"]
    again = [f for f in collector.collect() if f.name == "puhui_zone_info"]
    assert static[0] is again[0]
