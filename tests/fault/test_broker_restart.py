"""Stop and restart the broker in the middle of a stream: no reading lost, no duplicate alert.

A private broker (this test's alone) carries a steady stream in which every reading raises an
alert of its own (a distinct zone and risk each), so "no reading lost" can be checked reading by
reading: each must have produced its alert, with the id derived from it. The broker is stopped
while the stream flows (the producer buffers and retries, as a sensor gateway would) and started
again. Records may be repeated on the alerts topic (at-least-once), but the database must hold
every alert once, and no episode may get a second alert id.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.zone.alert import alert_id_for
from infra.broker import KafkaBroker
from models.contracts import Risk
from tests.support.fault import (
    T0,
    PacedProducer,
    TopicTap,
    alert_id_episodes,
    assert_history_consistent,
    db_rows,
    metric,
    reading,
    wait_until,
    write_zones,
    zone_ids,
)
from tests.support.parts import Worker

pytestmark = pytest.mark.fault

#: One reading per (zone, kind); each raises its own alert (none 红, so nothing is inhibited).
KINDS: list[tuple[str, float, Risk]] = [
    ("gas_lel", 30, Risk.GAS),  # 橙
    ("water_depth", 20, Risk.FLOODING),  # 黄
    ("manhole_tilt", 15, Risk.MANHOLE),  # 橙
    ("ebike_in_elevator", 1, Risk.EBIKE),  # 黄
    ("circuit_temp", 80, Risk.ELECTRICAL),  # 橙
    ("smoke", 1, Risk.FIRE),  # 橙: one detector
]
ZONES = 100
RATE = 20.0  # readings a second: a 30 s stream
STOP_AFTER_S = 8.0
DOWN_FOR_S = 6.0


def stream(ids: list[str]) -> tuple[list[tuple[bytes, bytes]], dict[str, tuple[str, str]]]:
    """The readings (event time 0.1 s apart: no sensor looks silent) and, per expected alert id,
    its (zone, risk)."""
    records = []
    expected: dict[str, tuple[str, str]] = {}
    i = 0
    for kind, value, risk in KINDS:
        for zone in ids:
            rid = f"{zone}-{kind}"
            at = T0 + timedelta(seconds=0.1 * i)
            records.append(reading(rid, zone, kind, value, at, sensor=f"{kind}-1"))
            expected[alert_id_for(zone, risk, rid)] = (zone, risk.value)
            i += 1
    return records, expected


def test_broker_stop_and_start_mid_stream_loses_no_reading_and_duplicates_no_alert(
    private_kafka: KafkaBroker, make_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    bootstrap = private_kafka.bootstrap
    ids = zone_ids("bz", ZONES)
    zones_file = write_zones(tmp_path / "zones.yaml", ids)
    worker = make_worker(PUHUI_KAFKA_BOOTSTRAP=bootstrap, PUHUI_ZONES_FILE=str(zones_file))
    records, expected = stream(ids)

    with TopicTap(bootstrap, worker.topics.alerts) as tap:
        producer = PacedProducer(bootstrap, worker.topics.readings, records, RATE).start()
        try:
            wait_until(lambda: tap.count() > 0, 60, "the first alerts")
            time.sleep(max(0.0, STOP_AFTER_S - producer.sent / RATE))
            sent_at_stop = producer.sent
            private_kafka.stop()
            assert not private_kafka.status().serving
            time.sleep(DOWN_FOR_S)
            private_kafka.start(timeout=120)
            restarted = time.monotonic()
            producer.join(timeout=240)
        finally:
            producer.stop()

        def all_in_db() -> bool:
            return db_rows(worker.database_url, "select count(*) from alerts")[0][0] >= len(records)

        try:
            wait_until(all_in_db, 180, "every reading's alert in the database")
        except AssertionError as exc:
            processed = metric(worker.metrics_url, "puhui_readings_processed_total")
            raise AssertionError(
                f"{exc}\nworker alive: {worker.proc is not None and worker.proc.poll() is None}; "
                f"processed {processed:.0f}/{len(records)}; alert records on the topic: "
                f"{tap.count()}\n--- worker log ---\n{worker.tail(80)}"
            ) from exc
        drained_after = time.monotonic() - restarted
        time.sleep(2.0)  # anything still in flight lands now (and would be an extra alert)
        on_topic = tap.values()

    print(
        f"\nbroker stopped after {sent_at_stop}/{len(records)} readings, down {DOWN_FOR_S:.0f}s; "
        f"all {len(records)} alerts in the database {drained_after:.1f}s after it was back; "
        f"{len(on_topic)} alert records on the topic"
    )
    assert 0 < sent_at_stop < len(records), "the broker was not stopped mid-stream"

    # Every reading processed exactly once by the engine (a re-delivered one is inert).
    assert metric(worker.metrics_url, "puhui_readings_processed_total") == len(records)
    assert metric(worker.metrics_url, "puhui_readings_rejected_total") == 0

    # The database: every expected alert once, nothing else.
    alerts = assert_history_consistent(worker.database_url)
    assert {a.alert_id: (a.zone_id, a.risk) for a in alerts} == expected
    assert {a.revision for a in alerts} == {1}
    hist = db_rows(worker.database_url, "select count(*) from alert_history")[0][0]
    assert hist == len(records)

    # The topic: repeats allowed, but one alert id per (zone, risk) episode and vice versa.
    assert {r["alert_id"] for r in on_topic} == set(expected)
    assert all(len(e) == 1 for e in alert_id_episodes(on_topic).values())
