"""Integration: the simulator's producing loop against a real Kafka broker.

The broker is not started here: point ``PUHUI_TEST_KAFKA_BOOTSTRAP`` at one (default
``127.0.0.1:9092``; ``python -m infra.broker start`` runs one there). Without a broker these tests
FAIL — they are never skipped.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaConsumer

from infra.kafka_admin import ensure_topics, wait_for_metadata
from models.contracts import SensorKind, SensorReading, decode_reading, decode_report
from models.zones import ZoneRegistry, load_bundled_zones
from tests.support.parts import kafka_client, kafka_kwargs
from tools.producing import encode_reading, encode_report, run, run_scenario
from tools.simulator import generate, generate_reports

pytestmark = pytest.mark.integration

BOOTSTRAP = os.environ.get("PUHUI_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
CST = timezone(timedelta(hours=8))
PARTITIONS = 3


@pytest.fixture(scope="module")
def zones() -> ZoneRegistry:
    return load_bundled_zones()


def new_topic() -> str:
    wait_for_metadata(
        kafka_client(BOOTSTRAP), timeout=30
    )  # raises (the test fails) without a broker
    name = f"test.simulator.{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_client(BOOTSTRAP), {name: PARTITIONS})
    return name


@pytest.fixture
def topic() -> str:
    return new_topic()


def consume(topic: str, expected: int, timeout: float = 60.0) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of the topic's first ``expected`` records, in partition order."""
    consumer = KafkaConsumer(
        topic,
        **kafka_kwargs(BOOTSTRAP),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    records: list[tuple[int, bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            for message in consumer:
                records.append((message.partition, message.key, message.value))
                if len(records) >= expected:
                    break
    finally:
        consumer.close()
    return records


def test_produced_readings_come_back_byte_for_byte(zones: ZoneRegistry, topic: str) -> None:
    start = datetime(2024, 5, 4, 19, 0, tzinfo=CST)
    readings = generate(zones, start, timedelta(minutes=3), scenario="demo", seed=5)
    assert len(readings) > 100
    seen: list[SensorReading] = []
    assert run(kafka_client(BOOTSTRAP), topic, readings, speed=0, on_sent=seen.append) == len(
        readings
    )
    assert seen == readings

    records = consume(topic, len(readings))
    assert len(records) == len(readings)

    ids = zones.ids()
    back: dict[str, list[SensorReading]] = defaultdict(list)
    partition_of: dict[str, set[int]] = defaultdict(set)
    expected_bytes = {r.reading_id: encode_reading(r) for r in readings}
    for partition, key, value in records:
        reading = decode_reading(value, ids)
        assert key == reading.zone_id.encode("utf-8")
        assert value == expected_bytes[reading.reading_id]
        assert value.decode("utf-8").count("+08:00") == 1
        back[reading.zone_id].append(reading)
        partition_of[reading.zone_id].add(partition)

    # Keyed by zone: each zone lives in one partition, in the order it was produced.
    assert all(len(parts) == 1 for parts in partition_of.values())
    sent: dict[str, list[SensorReading]] = defaultdict(list)
    for reading in readings:
        sent[reading.zone_id].append(reading)
    assert back == sent


def test_paced_run_replays_event_time(zones: ZoneRegistry, topic: str) -> None:
    """Two minutes of event time at speed 60 take about two seconds."""
    start = datetime(2024, 5, 4, 12, 0, tzinfo=CST)
    small = ZoneRegistry([zones["tianzifang-taikang-274"], zones["riyueguang-atrium"]])
    readings = generate(small, start, timedelta(minutes=2), seed=9)
    span = (readings[-1].observed_at - readings[0].observed_at).total_seconds()
    began = time.monotonic()
    assert run(kafka_client(BOOTSTRAP), topic, readings, speed=60) == len(readings)
    elapsed = time.monotonic() - began
    assert span / 60 - 0.05 <= elapsed < span / 60 + 5.0

    records = consume(topic, len(readings))
    assert sorted(decode_reading(v, zones.ids()).reading_id for _, _, v in records) == sorted(
        r.reading_id for r in readings
    )


def test_a_scenario_goes_out_with_its_reports(zones: ZoneRegistry, topic: str) -> None:
    """``run_scenario``: readings on one topic, volunteer reports on the other, keyed by zone,
    byte for byte what ``encode_reading`` / ``encode_report`` give."""
    reports_topic = new_topic()
    start = datetime(2024, 5, 4, 9, 0, tzinfo=CST)
    duration = timedelta(minutes=20)
    kinds = {SensorKind.SMOKE, SensorKind.PEOPLE_COUNT, SensorKind.HEARTBEAT}
    readings = generate(zones, start, duration, scenario="fire_report", seed=5, kinds=kinds)
    reports = generate_reports(zones, start, duration, scenario="fire_report", seed=5)
    assert len(reports) == 2
    assert run_scenario(
        kafka_client(BOOTSTRAP), topic, readings, reports_topic, reports, speed=0
    ) == (
        len(readings),
        len(reports),
    )

    ids = zones.ids()
    back = consume(reports_topic, len(reports))
    assert len(back) == len(reports)
    expected = {r.report_id: encode_report(r) for r in reports}
    for _, key, value in back:
        report = decode_report(value, ids)
        assert key == report.zone_id.encode("utf-8")
        assert value == expected[report.report_id]
        assert value.decode("utf-8").count("+08:00") == 1
    by_id = {r.report_id: r for r in reports}
    assert {(r := decode_report(v, ids)).report_id: r for _, _, v in back} == by_id

    records = consume(topic, len(readings))
    assert sorted(decode_reading(v, ids).reading_id for _, _, v in records) == sorted(
        r.reading_id for r in readings
    )


def test_the_newest_event_time_on_a_topic(zones: ZoneRegistry, topic: str) -> None:
    """``puhui simulate`` without ``--start`` begins after what the topic already holds."""
    from datetime import UTC

    from tools.producing import newest_event_time, simulation_start

    assert newest_event_time(kafka_client(BOOTSTRAP), topic) is None  # empty
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    readings = generate(zones, ahead, timedelta(minutes=3), scenario="demo", seed=5)
    assert run(kafka_client(BOOTSTRAP), topic, readings, speed=0) == len(readings)
    newest = newest_event_time(kafka_client(BOOTSTRAP), topic)
    assert newest == max(r.observed_at for r in readings)
    start = simulation_start(datetime.now(UTC), newest)
    assert start > newest and start - newest <= timedelta(seconds=1)
