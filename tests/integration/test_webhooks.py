"""Webhook delivery against a local receiver on 127.0.0.1 that fails at first, with alert records
on the real broker (produced with kafka-python) and every attempt in a real database."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from alerts.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    decide,
    load_escalation,
    observe,
    target_secret,
    verify_delivery,
)
from infra.db import (
    load_notification_attempts,
    make_engine,
    migrate,
    write_alert_records,
)
from infra.kafka_admin import ensure_topics
from models.contracts import AlertRecord, AlertStatus, Change, Level, Risk, Summary
from notifier.service import Notifier
from tests.support.parts import kafka_client, produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = b"integration-test-webhook-secret"
FAIL_FIRST = 2  # the "first" receiver answers 500 to the first two attempts of every notification
STEP_AFTER = 4.0  # seconds: the second step of the test policy


# ------------------------------------------------------------------------------------ receiver


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: per path, fail the first N attempts of each notification
    with 500, or always answer a fixed status."""

    fail_first: dict[str, int] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            if path in self.always:
                status = self.always[path]
            else:
                nid = headers.get("X-Puhui-Notification-Id", "")
                seen = sum(1 for h in self.hits if h.headers.get("X-Puhui-Notification-Id") == nid)
                status = 500 if seen < self.fail_first.get(path, 0) else 200
            self.hits.append(Hit(path, headers, body, status))
            return status

    def delivered(self, path: str | None = None) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.status == 200 and path in (None, h.path)]

    def snapshot(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(fail_first={"/first": FAIL_FIRST})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.answer(self.path, dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ------------------------------------------------------------------------------------ database


@pytest.fixture
def pg_engine(pg_schema_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_schema_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


# --------------------------------------------------------------------------------------- helpers


T0 = datetime.now(UTC).replace(microsecond=0)


def record(
    alert_id: str,
    revision: int,
    level: Level,
    status: AlertStatus = AlertStatus.FIRING,
    change: Change = Change.RAISED,
    zone: str = "tianzifang-taikang-210",
) -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id,
        revision=revision,
        zone_id=zone,
        risk=Risk.CROWDING,
        level=level,
        status=status,
        change=change,
        at=T0 + timedelta(seconds=revision),
        opened_at=T0,
        summary=Summary(zh=f"{alert_id} {level.zh}色预警", en=f"{alert_id} {level.value}"),
        actor="op-1" if change is Change.ACKNOWLEDGED else None,
    )


def policy_file(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "escalation.yaml"
    path.write_text(
        f"""
targets:
  first: {{url: "{receiver.url("/first")}"}}
  second: {{url: "{receiver.url("/second")}"}}
  broken: {{url: "{receiver.url("/broken")}"}}
  gone: {{url: "{receiver.url("/gone")}"}}
  nobody: {{url: "http://127.0.0.1:9/nobody"}}
defaults:
  steps:
    - {{after: 0, targets: [first]}}
    - {{after: {STEP_AFTER:g}s, targets: [first, second]}}
""",
        encoding="utf-8",
    )
    return path


def make_notifier(engine: Engine, config_path: Path, **overrides: Any) -> Notifier:
    kwargs: dict[str, Any] = {
        "bootstrap": "127.0.0.1:1",
        "topic": "unused",
        "group_id": "unused",
        "engine": engine,
        "config": load_escalation(config_path),
        "secret": SECRET,
        "silenced": lambda _r, _n: False,
        "tick_seconds": 0.2,
        "timeout": 2.0,
        "max_attempts": 5,
        "backoff": 0.1,
        "backoff_max": 0.4,
    }
    kwargs.update(overrides)
    return Notifier(**kwargs)


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)


async def publish(bootstrap: str, topic: str, *records: AlertRecord) -> None:
    items = [(r.zone_id.encode(), r.to_bytes()) for r in records]
    await asyncio.to_thread(produce, bootstrap, topic, items)


def keys(hits: list[Hit]) -> set[tuple[str, str, str]]:
    return {(h.json["alert_id"], h.json["key"], h.json["target"]) for h in hits}


def assert_signed(hit: Hit) -> None:
    # Signed with the target's own secret, the timestamp covered: what a receiver checks.
    body = hit.json
    verify_delivery(
        target_secret(SECRET, body["target"]),
        hit.body,
        hit.headers[TIMESTAMP_HEADER],
        hit.headers[SIGNATURE_HEADER],
        now=datetime.now(UTC),
    )
    assert hit.headers[SIGNATURE_HEADER].startswith("v1=")
    assert hit.headers["X-Puhui-Notification-Id"] == body["notification_id"]
    assert hit.headers["X-Puhui-Attempt"] == str(body["attempt"])
    assert abs(int(hit.headers["X-Puhui-Timestamp"]) - time.time()) < 120
    assert hit.headers["Content-Type"].startswith("application/json")
    AlertRecord.model_validate({k: v for k, v in body.items() if k in AlertRecord.model_fields})


# ----------------------------------------------------------------------------------------- tests


async def test_escalation_retries_and_resolve_end_to_end(
    kafka_bootstrap: str, pg_engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    """Four alerts through the broker: an unacknowledged 红 climbs to the second target, an
    acknowledged 橙 does not, a 黄 gets one notice, a 蓝 nothing; resolves give the all-clear;
    the "first" receiver fails twice per notification and every attempt is in PostgreSQL."""
    run = uuid.uuid4().hex[:8]
    topic = f"t{run}.puhui.alerts"
    await asyncio.to_thread(ensure_topics, kafka_client(kafka_bootstrap), {topic: 2})
    notifier = make_notifier(
        pg_engine,
        policy_file(tmp_path, receiver),
        bootstrap=kafka_client(kafka_bootstrap),
        topic=topic,
        group_id=f"puhui-t{run}-notifier",
    )
    red, orange, yellow, blue = (f"{name}-{run}" for name in ("red", "orange", "yellow", "blue"))
    started = time.monotonic()
    await notifier.start()
    try:
        await notifier.wait_ready(60)
        await publish(
            kafka_bootstrap,
            topic,
            record(red, 1, Level.RED),
            record(orange, 1, Level.ORANGE, zone="riyueguang-atrium"),
            record(yellow, 1, Level.YELLOW, zone="luone-atrium"),
            record(blue, 1, Level.BLUE, zone="yinxing-residential"),
        )
        # The 橙's first page gets through on the third attempt; the operator acknowledges it.
        await until(
            lambda: (orange, "e1/step/0", "first") in keys(receiver.delivered()),
            "the 橙 alert's first page delivered",
        )
        await publish(
            kafka_bootstrap,
            topic,
            record(
                orange,
                2,
                Level.ORANGE,
                AlertStatus.ACKNOWLEDGED,
                Change.ACKNOWLEDGED,
                zone="riyueguang-atrium",
            ),
        )
        # The unacknowledged 红 moves on to the second target after STEP_AFTER seconds.
        await until(
            lambda: (red, "e1/step/1", "second") in keys(receiver.delivered("/second")),
            "the 红 alert escalated to the second target",
        )
        await asyncio.sleep(1.5)  # well past the 橙's own second step, had it not been acked
        await publish(
            kafka_bootstrap,
            topic,
            record(red, 2, Level.RED, AlertStatus.RESOLVED, Change.RESOLVED),
            record(
                yellow, 2, Level.YELLOW, AlertStatus.RESOLVED, Change.RESOLVED, zone="luone-atrium"
            ),
            record(
                blue,
                2,
                Level.BLUE,
                AlertStatus.RESOLVED,
                Change.RESOLVED,
                zone="yinxing-residential",
            ),
        )
        expected = {
            (red, "e1/step/0", "first"),
            (red, "e1/step/1", "first"),
            (red, "e1/step/1", "second"),
            (red, "resolved", "first"),
            (red, "resolved", "second"),
            (orange, "e1/step/0", "first"),
            (yellow, "notice/yellow", "first"),
            (yellow, "resolved", "first"),
        }
        await until(lambda: keys(receiver.delivered()) >= expected, "every expected delivery")
        await asyncio.sleep(0.5)  # nothing else trickles in
        assert set(notifier.tracks) == {orange}  # the acknowledged 橙 is still open
    finally:
        await notifier.stop()
    elapsed = time.monotonic() - started

    hits = receiver.snapshot()
    for hit in hits:
        assert_signed(hit)
    delivered = receiver.delivered()
    assert keys(delivered) == expected
    assert len(delivered) == len(expected)  # each delivered exactly once
    assert not [h for h in hits if h.json["alert_id"] == blue]
    assert not [h for h in hits if h.json["alert_id"] == orange and h.json["step"] > 0]
    by_id = {h.json["notification_id"]: h for h in delivered}
    red_step1 = next(h for h in delivered if h.json["key"] == "e1/step/1")
    red_step0 = next(
        h for h in delivered if (h.json["alert_id"], h.json["key"]) == (red, "e1/step/0")
    )
    gap = datetime.fromisoformat(red_step1.json["sent_at"]) - datetime.fromisoformat(
        red_step0.json["sent_at"]
    )
    assert timedelta(seconds=STEP_AFTER - 1) <= gap < timedelta(seconds=STEP_AFTER + 5)
    resolved = next(
        h
        for h in delivered
        if (h.json["alert_id"], h.json["target"]) == (red, "second")
        and h.json["kind"] == "resolved"
    )
    assert resolved.json["status"] == "resolved" and resolved.json["revision"] == 2

    # Every attempt the receiver saw is a row, with its outcome; nothing else is.
    rows = await asyncio.to_thread(load_notification_attempts, pg_engine)
    assert sorted((r.notification_id, r.attempt) for r in rows) == sorted(
        (h.json["notification_id"], h.json["attempt"]) for h in hits
    )
    for row in rows:
        assert row.delivered == (row.status_code == 200)
        assert row.error is None if row.delivered else row.error == "HTTP 500 Internal Server Error"
        assert row.at.tzinfo is not None
    for nid, hit in by_id.items():
        attempts = sorted(
            (r.attempt, r.status_code, r.delivered) for r in rows if r.notification_id == nid
        )
        if hit.path == "/first":
            assert attempts == [(1, 500, False), (2, 500, False), (3, 200, True)]
        else:
            assert attempts == [(1, 200, True)]
        row = next(r for r in rows if r.notification_id == nid)
        assert (row.alert_id, row.key, row.target, row.kind) == (
            hit.json["alert_id"],
            hit.json["key"],
            hit.json["target"],
            hit.json["kind"],
        )
    print(f"end-to-end webhook scenario: {elapsed:.1f}s, {len(hits)} attempts")


async def test_restart_resumes_without_repeating_and_keeps_the_clock(
    kafka_bootstrap: str, pg_engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    """Stop after the first page; a new notifier in the same group picks the open alert up from
    the database (as the worker stored it) and the ledger, escalates it on the original clock and
    sends the all-clear, without paging step 0 again."""
    run = uuid.uuid4().hex[:8]
    topic = f"t{run}.puhui.alerts"
    await asyncio.to_thread(ensure_topics, kafka_client(kafka_bootstrap), {topic: 2})
    receiver.fail_first.clear()
    options: dict[str, Any] = {
        "bootstrap": kafka_client(kafka_bootstrap),
        "topic": topic,
        "group_id": f"puhui-t{run}-notifier",
    }
    path = policy_file(tmp_path, receiver)
    alert = f"restart-{run}"
    raised = record(alert, 1, Level.RED)

    first = make_notifier(pg_engine, path, **options)
    await first.start()
    try:
        await first.wait_ready(60)
        await publish(kafka_bootstrap, topic, raised)
        await asyncio.to_thread(write_alert_records, pg_engine, [raised])  # the worker's part
        await until(lambda: len(receiver.delivered()) == 1, "the first page")
    finally:
        await first.stop()
    await asyncio.sleep(2.0)  # down for a while: a restarted clock would show

    second = make_notifier(pg_engine, path, **options)
    await second.start()
    try:
        assert alert in second.tracks  # from the database, before the broker answers
        await second.wait_ready(60)
        await until(
            lambda: (alert, "e1/step/1", "second") in keys(receiver.delivered()),
            "the second step after the restart",
        )
        sent = {h.json["key"]: h.json["sent_at"] for h in receiver.delivered("/first")}
        gap = datetime.fromisoformat(sent["e1/step/1"]) - datetime.fromisoformat(sent["e1/step/0"])
        # the clock was not restarted (that would make it STEP_AFTER + 2 s and more)
        assert timedelta(seconds=STEP_AFTER) <= gap < timedelta(seconds=STEP_AFTER + 1.5)
        await publish(kafka_bootstrap, topic, record(alert, 2, Level.RED, AlertStatus.RESOLVED))
        await until(
            lambda: (
                {(alert, "resolved", "first"), (alert, "resolved", "second")}
                <= keys(receiver.delivered())
            ),
            "the all-clear after the restart",
        )
    finally:
        await second.stop()
    assert sorted(h.json["key"] for h in receiver.delivered() if h.json["target"] == "first") == [
        "e1/step/0",
        "e1/step/1",
        "resolved",
    ]


async def test_failures_are_retried_within_bounds_and_recorded(
    sqlite_engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    """A receiver that keeps failing gets max_attempts; one that refuses (404) gets one; one
    that is not there is retried and the connection error is recorded."""
    config_path = policy_file(tmp_path, receiver)
    receiver.always.update({"/broken": 503, "/gone": 404})
    notifier = make_notifier(sqlite_engine, config_path, max_attempts=3)
    policy = notifier._config.default  # the test policy: step 0 to "first"
    track = observe(None, record("fail-1", 1, Level.RED), policy)
    _, (note,) = decide(track, policy, datetime.now(UTC))
    try:
        results = {}
        for target in ("broken", "gone", "nobody", "first"):
            one = replace(note, notification_id=str(uuid.uuid4()), target=target)
            results[target] = await notifier.deliver(one)
    finally:
        await notifier.stop()
    assert results == {"broken": False, "gone": False, "nobody": False, "first": True}
    rows = await asyncio.to_thread(load_notification_attempts, sqlite_engine)
    by_target: dict[str, list[tuple[int, int | None, bool]]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append((row.attempt, row.status_code, row.delivered))
    assert by_target["broken"] == [(1, 503, False), (2, 503, False), (3, 503, False)]
    assert by_target["gone"] == [(1, 404, False)]
    assert [(a, s, d) for a, s, d in by_target["nobody"]] == [
        (1, None, False),
        (2, None, False),
        (3, None, False),
    ]
    assert all(r.error and r.error.startswith("ConnectError") for r in rows if r.target == "nobody")
    assert by_target["first"] == [(1, 500, False), (2, 500, False), (3, 200, True)]


def test_the_api_runs_a_notifier_only_with_a_secret(tmp_path: Path, kafka_bootstrap: str) -> None:
    from entrypoints.apps import build_api
    from infra.settings import Settings

    base: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
    }
    assert build_api(Settings(**base, webhook_secret=None)).state.notifier is None
    app = build_api(Settings(**base, webhook_secret="a-secret-of-sixteen+"))
    assert isinstance(app.state.notifier, Notifier)
    settings = Settings(**base, webhook_secret="a-secret-of-sixteen+", notifier_in_api=False)
    assert build_api(settings).state.notifier is None  # a separate `puhui notifier` runs


def test_puhui_notifier_runs_as_its_own_process(
    kafka_bootstrap: str, receiver: Receiver, tmp_path: Path
) -> None:
    """`puhui notifier`: consumes the alerts topic, pages the policy's target (signed), counts it
    on its own /metrics, and stops cleanly on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.support.parts import REPO, free_port, kafka_env

    run = uuid.uuid4().hex[:8]
    prefix = f"t{run}."
    ensure_topics(kafka_client(kafka_bootstrap), {f"{prefix}puhui.alerts": 2})
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")},
        **kafka_env(kafka_bootstrap),
        "PUHUI_TOPIC_PREFIX": prefix,
        "PUHUI_STATE_DIR": str(tmp_path),
        "PUHUI_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}",
        "PUHUI_WEBHOOK_SECRET": SECRET.decode(),
        "PUHUI_ESCALATION_FILE": str(policy_file(tmp_path, receiver)),
        "PUHUI_WEBHOOK_BACKOFF_SECONDS": "0.1",
        "PUHUI_NOTIFY_TICK_SECONDS": "0.2",
        "PUHUI_NOTIFIER_PORT": str(port),
    }
    log = tmp_path / "notifier.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "notifier"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    try:
        # The group starts at the topic's end: publish a new 红 alert until one is paged.
        deadline = time.monotonic() + 120
        published, next_publish = 0, 0.0
        while not receiver.delivered("/first"):
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            if time.monotonic() >= next_publish:
                alert = record(f"red-{run}-{published}", 1, Level.RED)
                items = [(alert.zone_id.encode(), alert.to_bytes())]
                produce(kafka_bootstrap, f"{prefix}puhui.alerts", items)
                published, next_publish = published + 1, time.monotonic() + 3
            time.sleep(0.2)
        hit = receiver.delivered("/first")[0]
        assert hit.json["alert_id"].startswith(f"red-{run}-")
        assert_signed(hit)
        deadline = time.monotonic() + 30
        line = 'puhui_webhook_attempts_total{outcome="delivered",target="first"}'
        while line not in metrics():
            assert time.monotonic() < deadline, metrics()
            time.sleep(0.2)
        delivered = float(metrics().split(line, 1)[1].split()[0])
        assert delivered >= 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
