"""Event time drives every rule: a recorded hour replayed as fast as possible gives the same alert
records as the same hour produced with its real spacing (compressed 60×: one minute of wall time
per hour of event time, so that the test stays short — the worker sees readings arrive over a
minute, interleaved with its own commits and table writes, instead of all at once)."""

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
from streams.simulator import encode_reading, generate

from conftest import Worker, consume

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))


def processed(worker: Worker) -> float:
    body = urllib.request.urlopen(worker.metrics_url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("puhui_readings_processed_total")
    )


def replay(bootstrap: str, topic: str, readings: list[Any], speed: float | None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        start_wall, start_event = time.monotonic(), readings[0].observed_at
        for r in readings:
            if speed is not None:
                due = start_wall + (r.observed_at - start_event).total_seconds() / speed
                if (delay := due - time.monotonic()) > 0:
                    time.sleep(delay)
            producer.send(topic, key=r.zone_id.encode(), value=encode_reading(r))
        producer.flush()
    finally:
        producer.close()


def run_hour(
    make_worker: Callable[..., Worker], bootstrap: str, readings: list[Any], speed: float | None
) -> list[dict[str, Any]]:
    worker = make_worker()
    replay(bootstrap, worker.topics.readings, readings, speed)
    deadline = time.monotonic() + 120
    while processed(worker) < len(readings) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processed(worker) == len(readings), worker.tail()
    time.sleep(1.0)
    msgs = consume(bootstrap, worker.topics.alerts, until=lambda ms: len(ms) > 0, timeout=30)
    time.sleep(2.0)  # let any late record arrive, then read everything once more
    msgs = consume(bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= len(msgs))
    records = [json.loads(m.value) for m in msgs]
    return sorted(records, key=lambda r: (r["alert_id"], r["revision"]))


def test_fast_replay_equals_paced_replay(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    zones = load_bundled_zones()
    readings = generate(
        zones,
        datetime(2026, 10, 1, 18, 30, tzinfo=CST),
        timedelta(hours=1),
        scenario="surge",
        seed=11,
    )
    fast = run_hour(make_worker, kafka_bootstrap, readings, speed=None)
    paced = run_hour(make_worker, kafka_bootstrap, readings, speed=60.0)
    assert len(fast) >= 5, fast  # the surge raised and escalated alerts
    assert {r["level"] for r in fast} >= {"yellow", "orange", "red"}
    assert fast == paced  # every field: the records carry event time only
