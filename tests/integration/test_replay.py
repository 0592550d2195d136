"""Event time drives every rule: a recorded scenario replayed as fast as possible gives the same
alert records as the same scenario produced with its real spacing — compressed (60× for the surge
hour, 240× for the others), so that the test stays short: the worker sees readings and reports
arrive over a minute or more, interleaved with its own commits, table writes, watermark sweeps and
quiet-partition timers, instead of all at once."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kafka import KafkaProducer

from models.zones import load_bundled_zones
from tests.support.parts import Worker, consume, kafka_kwargs
from tools.producing import encode_reading, encode_report
from tools.simulator import generate, generate_reports

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))


def metric(worker: Worker, name: str) -> float:
    body = urllib.request.urlopen(worker.metrics_url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


def replay(bootstrap: str, worker: Worker, items: list[Any], speed: float | None) -> None:
    """Produce readings and reports in event-time order with kafka-python, optionally paced."""
    producer = KafkaProducer(**kafka_kwargs(bootstrap), acks="all", linger_ms=5)
    try:
        start_wall, start_event = time.monotonic(), items[0][0]
        for moment, kind, record in items:
            if speed is not None:
                due = start_wall + (moment - start_event).total_seconds() / speed
                if (delay := due - time.monotonic()) > 0:
                    time.sleep(delay)
            if kind == 0:
                producer.send(
                    worker.topics.readings,
                    key=record.zone_id.encode(),
                    value=encode_reading(record),
                )
            else:
                producer.send(
                    worker.topics.reports, key=record.zone_id.encode(), value=encode_report(record)
                )
        producer.flush()
    finally:
        producer.close()


def run(
    make_worker: Callable[..., Worker], bootstrap: str, items: list[Any], speed: float | None
) -> list[dict[str, Any]]:
    worker = make_worker()
    replay(bootstrap, worker, items, speed)
    readings = sum(1 for _, kind, _ in items if kind == 0)
    reports = len(items) - readings
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        taken = (
            metric(worker, "puhui_readings_processed_total")
            + metric(worker, "puhui_readings_duplicate_total")
            + metric(worker, "puhui_readings_stale_total")
        )
        if taken >= readings and metric(worker, "puhui_reports_processed_total") >= reports:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"worker did not take every record\n{worker.tail()}")
    time.sleep(2.0)
    msgs = consume(bootstrap, worker.topics.alerts, until=lambda ms: True, timeout=10)
    time.sleep(1.0)
    msgs = consume(bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= len(msgs))
    records = [json.loads(m.value) for m in msgs]
    return sorted(records, key=lambda r: (r["alert_id"], r["revision"]))


@pytest.mark.parametrize(
    ("scenario", "start", "speed", "expect"),
    [
        ("surge", datetime(2026, 10, 1, 18, 30, tzinfo=CST), 60.0, {"yellow", "orange", "red"}),
        ("fire_report", datetime(2024, 5, 4, 9, 5, tzinfo=CST), 240.0, {"orange", "red"}),
        ("dropout", datetime(2024, 5, 4, 9, 5, tzinfo=CST), 240.0, {"blue"}),
    ],
)
def test_fast_replay_equals_paced_replay(
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    scenario: str,
    start: datetime,
    speed: float,
    expect: set[str],
) -> None:
    zones = load_bundled_zones()
    window = timedelta(hours=1)
    readings = generate(zones, start, window, scenario=scenario, seed=11)
    reports = [
        r
        for r in generate_reports(zones, start, window, scenario=scenario, seed=11)
        if r.submitted_at < start + window
    ]
    items = sorted(
        [(r.observed_at, 0, r) for r in readings] + [(p.submitted_at, 1, p) for p in reports],
        key=lambda x: (x[0], x[1]),
    )
    fast = run(make_worker, kafka_bootstrap, items, speed=None)
    paced = run(make_worker, kafka_bootstrap, items, speed=speed)
    assert {r["level"] for r in fast} >= expect, fast
    assert fast == paced  # every field: the records carry event time only
