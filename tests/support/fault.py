"""Helpers of the fault tests: zone registries, readings, a topic tap, metrics, the database.

Every wait here is bounded by a deadline; every thread started here is stopped by its owner.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

from infra.db import make_engine
from tests.support.parts import kafka_kwargs

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 10, 1, 19, 0, tzinfo=CST)  # 国庆 evening

Record = tuple[bytes | None, bytes | None]


def zone_ids(prefix: str, count: int) -> list[str]:
    """``count`` zone ids such as ``fz-007`` (slugs the registry accepts)."""
    return [f"{prefix}-{i:03d}" for i in range(count)]


def write_zones(path: Path, ids: Sequence[str], area_m2: float = 100.0) -> Path:
    """A zone registry of ``ids``, each ``area_m2`` walkable m² with no capacity (density rules
    only): 500 people = 5 persons/m² = 红."""
    zones = [
        {
            "id": zid,
            "name": {"zh": f"测试区 {zid}", "en": f"Test zone {zid}"},
            "site": "fault-test",
            "grid": ("zhongtai", "zhongshun", "zhonghai", "zhonghui")[i % 4],
            "area_m2": float(area_m2),
        }
        for i, zid in enumerate(ids)
    ]
    path.write_text(yaml.safe_dump({"zones": zones}, allow_unicode=True), encoding="utf-8")
    return path


def reading(
    rid: str, zone: str, kind: str, value: Any, at: datetime, sensor: str = "cam-1"
) -> tuple[bytes, bytes]:
    """A reading keyed by its zone, as a sensor gateway sends it."""
    body = {
        "reading_id": rid,
        "sensor_id": sensor,
        "zone_id": zone,
        "kind": kind,
        "value": value,
        "observed_at": at.isoformat(),
    }
    return zone.encode(), json.dumps(body).encode()


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    """Poll ``condition`` until it is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = condition()
        except Exception as exc:  # a scrape or a query that failed this time: try again
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not met within {timeout:.0f}s (last: {last!r})")
        time.sleep(every)


def scrape(url: str, timeout: float = 5.0) -> str:
    return str(urllib.request.urlopen(url, timeout=timeout).read().decode())


def metric_sum(body: str, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets) in a Prometheus text exposition."""
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def metric(url: str, name: str) -> float:
    return metric_sum(scrape(url), name)


def label_values(body: str, name: str, label: str) -> set[str]:
    """Values of ``label`` over the samples of ``name``."""
    found = set()
    marker = f'{label}="'
    for line in body.splitlines():
        if line.startswith(name + "{") and marker in line:
            found.add(line.split(marker, 1)[1].split('"', 1)[0])
    return found


def db_rows(url: str, query: str, **params: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query), params))
    finally:
        engine.dispose()


def produce_all(
    bootstrap: str, topic: str, records: Iterable[Record], timeout: float = 60.0
) -> list[Any]:
    """Produce with kafka-python (acks=all) and return every record's metadata; raises if any
    record was not acknowledged by the broker."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_kwargs(bootstrap), acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in records]
        producer.flush(timeout=timeout)
        return [f.get(timeout=timeout) for f in futures]
    finally:
        producer.close(timeout=10)


@dataclass
class PacedProducer:
    """Produces ``records`` at ``rate`` records/s in a thread (kafka-python, acks=all, retrying
    through a broker outage), so a stream keeps flowing while a test breaks something."""

    bootstrap: str
    topic: str
    records: list[Record]
    rate: float
    sent: int = 0
    error: BaseException | None = None
    metadata: list[Any] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> PacedProducer:
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from kafka import KafkaProducer

        try:
            producer = KafkaProducer(
                **kafka_kwargs(self.bootstrap),
                acks="all",
                linger_ms=5,
                delivery_timeout_ms=180_000,
                request_timeout_ms=10_000,
                reconnect_backoff_max_ms=1_000,
            )
        except BaseException as exc:
            self.error = exc
            return
        try:
            futures = []
            began = time.monotonic()
            for i, (key, value) in enumerate(self.records):
                if self._stop.is_set():
                    break
                delay = began + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(producer.send(self.topic, key=key, value=value))
                self.sent = i + 1
            producer.flush(timeout=180)
            self.metadata = [f.get(timeout=180) for f in futures]
        except BaseException as exc:
            self.error = exc
        finally:
            producer.close(timeout=10)

    def join(self, timeout: float) -> list[Any]:
        """Wait until every record is acknowledged; raise what went wrong, if anything."""
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"producer still running after {timeout:.0f}s")
        if self.error is not None:
            raise AssertionError(f"producer failed: {self.error!r}")
        assert len(self.metadata) == len(self.records)
        return self.metadata

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(200)


@dataclass
class Tapped:
    value: bytes | None
    key: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int
    seen_at: float  # time.monotonic() when the tap got it


class TopicTap:
    """Reads a topic from the beginning in a background thread (kafka-python, no group), so a
    test can watch records arrive while it kills things; survives a broker restart."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._items: list[Tapped] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"tap-{topic}", daemon=True)

    def __enter__(self) -> TopicTap:
        self._thread.start()
        if not self._ready.wait(40):
            self.close()
            raise AssertionError(f"tap on {self.topic}: no partitions in 40s ({self.error!r})")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        try:
            consumer = KafkaConsumer(
                **kafka_kwargs(self.bootstrap),
                enable_auto_commit=False,
                reconnect_backoff_max_ms=1_000,
            )
        except BaseException as exc:
            self.error = exc
            return
        try:
            deadline = time.monotonic() + 40
            parts = consumer.partitions_for_topic(self.topic)
            while not parts and time.monotonic() < deadline and not self._stop.is_set():
                time.sleep(0.2)
                parts = consumer.partitions_for_topic(self.topic)
            if not parts:
                return
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            self._ready.set()
            while not self._stop.is_set():
                try:
                    batches = consumer.poll(timeout_ms=200)
                except Exception as exc:  # the broker is away: keep trying until told to stop
                    self.error = exc
                    time.sleep(0.5)
                    continue
                now = time.monotonic()
                got = [
                    Tapped(m.value, m.key, dict(m.headers or []), m.partition, m.offset, now)
                    for batch in batches.values()
                    for m in batch
                ]
                if got:
                    with self._lock:
                        self._items.extend(got)
        except BaseException as exc:
            self.error = exc
        finally:
            consumer.close()

    def items(self) -> list[Tapped]:
        with self._lock:
            return list(self._items)

    def count(self) -> int:
        with self._lock:
            return len(self._items)

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(t.value) for t in self.items() if t.value is not None]


def alert_id_episodes(records: Iterable[dict[str, Any]]) -> dict[str, set[tuple[str, str, str]]]:
    """alert_id → the (zone, risk, opened_at) episodes it was used for (one each, or a bug)."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    for r in records:
        out.setdefault(r["alert_id"], set()).add((r["zone_id"], r["risk"], r["opened_at"]))
    return out


def assert_history_consistent(url: str) -> list[Any]:
    """Every alert's history in the database: revisions 1..n once each, first one raised, and
    the current row at the newest revision. Returns the alerts rows."""
    alerts = db_rows(url, "select alert_id, zone_id, risk, level, status, revision from alerts")
    hist = db_rows(
        url, "select alert_id, revision, change from alert_history order by alert_id, revision"
    )
    by_alert: dict[str, list[tuple[int, str]]] = {}
    for alert_id, revision, change in hist:
        by_alert.setdefault(alert_id, []).append((revision, change))
    assert set(by_alert) == {a[0] for a in alerts}
    for alert_id, zone_id, _risk, _level, _status, revision in alerts:
        revs = [r for r, _ in by_alert[alert_id]]
        assert revs == list(range(1, revision + 1)), (zone_id, alert_id, revs)
        assert by_alert[alert_id][0][1] == "raised", (zone_id, by_alert[alert_id])
    return alerts


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offsets (next record to read) on ``topic``'s partitions."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_kwargs(bootstrap))
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def group_state(bootstrap: str, group: str) -> tuple[str, int]:
    """The consumer group's state (``Stable``, ``PreparingRebalance``, …) and member count."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_kwargs(bootstrap))
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return str(described["group_state"]), len(described["members"])


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The highwater (offset the next record will get) of each partition of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_kwargs(bootstrap))
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def start_group(make_worker: Callable[..., Any], count: int, **env: str) -> list[Any]:
    """``count`` workers of one consumer group (same app id and topics; own state dirs and
    ports), started one after the other; returns once the group is stable with all of them."""
    first = make_worker(**env)
    shared = {"PUHUI_APP_ID": first.env["PUHUI_APP_ID"], "PUHUI_TOPIC_PREFIX": first.prefix}
    workers = [first] + [make_worker(**env, **shared) for _ in range(count - 1)]
    bootstrap = first.env["PUHUI_KAFKA_BOOTSTRAP"]
    wait_until(
        lambda: group_state(bootstrap, shared["PUHUI_APP_ID"]) == ("Stable", count),
        90,
        f"a stable group of {count} workers",
    )
    return workers
