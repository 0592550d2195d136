"""The simulator's producing half: readings and reports from :mod:`tools.simulator` to Kafka,
keyed by zone id, replaying event-time spacing at ``speed``× real time; and where a simulation
starts (just after the newest event time on the readings topic)."""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from infra.kafka_security import KafkaClient

from models.contracts import SensorReading, VolunteerReport
from models.timezone import BEIJING

__all__ = [
    "encode_reading",
    "encode_report",
    "newest_event_time",
    "run",
    "run_reports",
    "run_scenario",
    "simulation_start",
]


def encode_reading(reading: SensorReading) -> bytes:
    """The wire form of a reading: compact UTF-8 JSON of exactly the contract's fields, with
    ``observed_at`` as RFC 3339 in Beijing time (``+08:00``)."""
    local = reading.observed_at.astimezone(BEIJING)
    if reading.observed_at.utcoffset() != local.utcoffset():
        reading = reading.model_copy(update={"observed_at": local})
    return reading.model_dump_json().encode("utf-8")


def encode_report(report: VolunteerReport) -> bytes:
    """The wire form of a report: compact UTF-8 JSON of the contract's fields (optional ones only
    when set), with ``submitted_at`` as RFC 3339 in Beijing time (``+08:00``)."""
    local = report.submitted_at.astimezone(BEIJING)
    if report.submitted_at.utcoffset() != local.utcoffset():
        report = report.model_copy(update={"submitted_at": local})
    return report.model_dump_json(exclude_none=True).encode("utf-8")


_CLOSE_TIMEOUT_S: Final = 30.0


def _producer(bootstrap: Any) -> Any:
    """A kafka-python producer (imported here: only the ``run`` functions need kafka-python).
    ``bootstrap``: an ``infra.kafka_security.KafkaClient``, or a bare PLAINTEXT ``host:port``."""
    from kafka import KafkaProducer

    from infra.kafka_security import as_client

    return KafkaProducer(**as_client(bootstrap).kafka_python(), acks="all", linger_ms=5)


# (event time, topic, key, value, the record itself)
_Outgoing = tuple[datetime, str, bytes, bytes, Any]


def _produce(
    bootstrap: str | KafkaClient,
    items: Iterable[_Outgoing],
    *,
    speed: float,
    on_sent: Callable[[Any], None] | None,
    stop: threading.Event | None,
) -> int:
    if math.isnan(speed) or speed < 0:
        raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
    paced = 0 < speed < math.inf
    failures: list[BaseException] = []
    sent = 0
    producer = _producer(bootstrap)
    try:
        anchor: tuple[float, datetime] | None = None
        for at, topic, key, value, record in items:
            if stop is not None and stop.is_set():
                break
            if paced:
                if anchor is None:
                    anchor = (time.monotonic(), at)
                elapsed = (at - anchor[1]).total_seconds() / speed
                delay = anchor[0] + elapsed - time.monotonic()
                if delay > 0:
                    if stop is not None:
                        if stop.wait(delay):
                            break
                    else:
                        time.sleep(delay)
            future = producer.send(topic, key=key, value=value)
            future.add_errback(failures.append)
            sent += 1
            if on_sent is not None:
                on_sent(record)
        producer.flush()
    finally:
        producer.close(timeout=_CLOSE_TIMEOUT_S)
    if failures:
        raise failures[0]
    return sent


def _reading_items(topic: str, readings: Iterable[SensorReading]) -> Iterator[_Outgoing]:
    for r in readings:
        yield (r.observed_at, topic, r.zone_id.encode("utf-8"), encode_reading(r), r)


def _report_items(topic: str, reports: Iterable[VolunteerReport]) -> Iterator[_Outgoing]:
    for r in reports:
        yield (r.submitted_at, topic, r.zone_id.encode("utf-8"), encode_report(r), r)


def run(
    bootstrap: str | KafkaClient,
    topic: str,
    readings: Iterable[SensorReading],
    *,
    speed: float = 1.0,
    on_sent: Callable[[SensorReading], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Produce ``readings`` to ``topic`` at ``bootstrap``; return how many were sent.

    Each record is :func:`encode_reading` of the reading, keyed by its ``zone_id`` (UTF-8), sent
    with ``acks="all"``. The first reading goes out at once; each later one when
    ``(observed_at - first observed_at) / speed`` seconds have passed, so event-time spacing is
    replayed at ``speed``× real time (readings whose time has passed go out at once).
    ``speed`` 0 or ``math.inf`` means as fast as possible. ``on_sent`` is called (in this thread)
    after each reading is handed to the producer. Setting ``stop`` ends the run early, also
    during a wait. The producer is flushed and closed at the end, on stop and on error; if
    Kafka rejected any record the first error is raised after closing. Raises ``ValueError``
    for a negative or NaN ``speed``.
    """
    return _produce(
        bootstrap, _reading_items(topic, readings), speed=speed, on_sent=on_sent, stop=stop
    )


def run_reports(
    bootstrap: str | KafkaClient,
    topic: str,
    reports: Iterable[VolunteerReport],
    *,
    speed: float = 1.0,
    on_sent: Callable[[VolunteerReport], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Produce volunteer ``reports`` to ``topic`` (``puhui.volunteer-reports``) as :func:`run`
    does readings: :func:`encode_report`, keyed by ``zone_id``, paced on ``submitted_at``."""
    return _produce(
        bootstrap, _report_items(topic, reports), speed=speed, on_sent=on_sent, stop=stop
    )


def run_scenario(
    bootstrap: str | KafkaClient,
    readings_topic: str,
    readings: Iterable[SensorReading],
    reports_topic: str,
    reports: Iterable[VolunteerReport],
    *,
    speed: float = 1.0,
    on_sent: Callable[[SensorReading | VolunteerReport], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[int, int]:
    """Produce readings and reports through one producer, interleaved in event time (a reading
    before a report of the same instant), paced as :func:`run`; return ``(readings sent,
    reports sent)``. Both inputs must be sorted by time, as :func:`generate` and
    :func:`generate_reports` return them."""
    counts = [0, 0]

    def tally(item: SensorReading | VolunteerReport) -> None:
        counts[isinstance(item, VolunteerReport)] += 1
        if on_sent is not None:
            on_sent(item)

    merged = heapq.merge(
        ((item[0], 0, n, item) for n, item in enumerate(_reading_items(readings_topic, readings))),
        ((item[0], 1, n, item) for n, item in enumerate(_report_items(reports_topic, reports))),
    )
    _produce(bootstrap, (entry[3] for entry in merged), speed=speed, on_sent=tally, stop=stop)
    return counts[0], counts[1]


#: How many of each partition's last records :func:`newest_event_time` reads.
_TAIL_RECORDS: Final = 256


def newest_event_time(kafka: Any, topic: str, timeout: float = 15.0) -> datetime | None:
    """The newest ``observed_at`` among the last records of each partition of ``topic`` (a
    readings topic), or ``None`` when it is empty or missing. Records that are not readings are
    skipped. Producers (this simulator among them) send in event-time order per zone, so a
    partition's tail holds its newest times. (The simulator's principal may read the readings
    topic for this; a bare ``host:port`` is a plaintext broker.)"""
    import json

    from kafka import KafkaConsumer, TopicPartition

    from infra.kafka_security import as_client

    consumer = KafkaConsumer(
        **as_client(kafka).kafka_python(), enable_auto_commit=False, consumer_timeout_ms=500
    )
    newest: datetime | None = None
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            return None
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > begins[tp]}
        for tp in tps:
            consumer.seek(tp, max(begins[tp], ends[tp] - _TAIL_RECORDS))
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=300).items():
                for message in batch:
                    try:
                        observed = json.loads(message.value)["observed_at"]
                        moment = datetime.fromisoformat(observed)
                    except (ValueError, KeyError, TypeError):
                        continue
                    if moment.tzinfo is not None and (newest is None or moment > newest):
                        newest = moment
                    if message.offset >= ends[tp] - 1:
                        pending.discard(tp)
    finally:
        consumer.close()
    return newest


def simulation_start(now: datetime, newest: datetime | None) -> datetime:
    """Where a simulation without ``--start`` begins: now, or just after the newest event time
    already on the topic if that is later — older readings would be dropped as stale."""
    if newest is None or newest < now:
        return now
    return (newest + timedelta(seconds=1)).astimezone(UTC)
