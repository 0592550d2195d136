"""The API against the real things: a real broker, a real ``puhui worker`` process, the API
served by uvicorn with its own aiokafka producer and alert feed.

- a volunteer's report lands on ``puhui.volunteer-reports`` keyed by zone, and the worker takes it;
- each operator action (acknowledge, assign, resolve) becomes an alert record on ``puhui.alerts``
  and an ``alert_history`` row with the actor and the note, and reaches a live SSE stream;
- when the broker cannot take a report, the answer is 503 and nothing is stored;
- the API's queries run on PostgreSQL as they do on SQLite.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_api
from infra.db import make_engine, migrate
from infra.settings import Settings
from models.contracts import Change, Level, decode_report
from tests.support.api import (
    ATRIUM,
    LANE,
    NAMES,
    T0,
    Clock,
    act,
    episode,
    make_tokens,
    store,
    wait_for,
)
from tests.support.parts import Worker, alert_records, consume, free_port, produce

pytestmark = pytest.mark.integration


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free local port (lifespan included) while in the block."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30, every=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def api_for(worker: Worker, tmp_path: Path, **overrides: Any) -> tuple[FastAPI, dict[str, str]]:
    settings = Settings(
        kafka_bootstrap=worker.env["PUHUI_KAFKA_BOOTSTRAP"],
        topic_prefix=worker.prefix,
        database_url=worker.database_url,
        state_dir=tmp_path / "api",
        **overrides,
    )
    migrate(settings.resolved_database_url())  # the worker did it already; harmless
    engine = make_engine(settings.resolved_database_url())
    tokens = make_tokens(engine, datetime.now(UTC))
    engine.dispose()
    return create_api(settings), tokens


def bearer(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


def wait_connected(app: FastAPI) -> None:
    wait_for(lambda: app.state.bus.connected, timeout=30)


def metric(worker: Worker, name: str) -> float:
    body = urllib.request.urlopen(worker.metrics_url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


def db_rows(url: str, query: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(query)))
    finally:
        engine.dispose()


# -- reports ----------------------------------------------------------------------------------


def test_a_report_goes_onto_the_topic_keyed_by_zone_and_the_worker_takes_it(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker = make_worker()
    app, tokens = api_for(worker, tmp_path)
    with serving(app) as base:
        wait_connected(app)
        response = httpx.post(
            f"{base}/api/reports",
            headers=bearer(tokens, "volunteer"),
            json={"zone_id": LANE, "category": "crowding", "description": "弄堂口人挤人"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        report_id = response.json()["report_id"]

        messages = consume(
            kafka_bootstrap,
            worker.topics.reports,
            until=lambda ms: any(report_id.encode() in m.value for m in ms),
        )
        (message,) = [m for m in messages if report_id.encode() in m.value]
        assert message.key == LANE.encode()
        report = decode_report(message.value, {LANE})
        # Filed under the volunteer's principal (a stable id), not the display name.
        principal = httpx.get(
            f"{base}/api/me", headers=bearer(tokens, "volunteer"), timeout=10
        ).json()["principal"]
        assert principal != NAMES["volunteer"]
        assert report.reporter_id == principal and report.description == "弄堂口人挤人"
        rows = db_rows(worker.database_url, "select report_id, reporter_id from reports")
        assert (report_id, principal) in [tuple(r) for r in rows]
        # the worker decoded it (a bad record would have been dead-lettered instead)
        wait_for(lambda: metric(worker, "puhui_reports_processed_total") >= 1, timeout=30)
        mine = httpx.get(
            f"{base}/api/reports/{report_id}", headers=bearer(tokens, "volunteer"), timeout=10
        )
        assert mine.status_code == 200 and mine.json()["report_id"] == report_id


def test_when_the_broker_cannot_take_a_report_it_is_503_and_nothing_is_stored(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # A real broker, but topics that do not exist (auto-creation is off): the produce times out.
    url = f"sqlite:///{tmp_path / 'api.db'}"
    migrate(url)
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"missing-{uuid.uuid4().hex[:8]}.",
        database_url=url,
        state_dir=tmp_path,
        publish_timeout_seconds=2.0,
    )
    engine = make_engine(url)
    tokens = make_tokens(engine, datetime.now(UTC))
    app = create_api(settings, engine=engine)
    with TestClient(app) as client:
        wait_connected(app)
        started = time.monotonic()
        response = client.post(
            "/api/reports",
            headers=bearer(tokens, "volunteer"),
            json={"zone_id": LANE, "category": "fire", "description": "冒烟了"},
        )
        assert time.monotonic() - started < 10
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from reports")).scalar() == 0
    engine.dispose()


# -- operator actions -------------------------------------------------------------------------


class SseReader:
    """Reads an SSE stream in a thread; events and comments land in ``lines``."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.lines: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self.ended = threading.Event()
        """Set when the server has ended the response."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=60)) as client,
            client.stream("GET", self.url, headers=self.headers) as response,
        ):
            self.lines.put(f"status: {response.status_code}")
            for line in response.iter_lines():
                self.lines.put(line)
                if self._stop.is_set():
                    return
            self.ended.set()

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the stream did not deliver the expected line")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(line):
                return line

    def close(self) -> None:
        self._stop.set()


def reading(rid: str, zone: str, count: int, minute: float) -> tuple[bytes, bytes]:
    body = {
        "reading_id": rid,
        "sensor_id": "cam-1",
        "zone_id": zone,
        "kind": "people_count",
        "value": count,
        "observed_at": (T0 + timedelta(minutes=minute)).isoformat(),
    }
    return zone.encode(), json.dumps(body).encode()


def test_each_operator_action_becomes_an_alert_record_an_audit_entry_and_a_live_event(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    worker = make_worker()
    app, tokens = api_for(worker, tmp_path)
    op = bearer(tokens, "operator")
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        wait_connected(app)
        stream = SseReader(f"{base}/api/alerts/stream", bearer(tokens, "operator"))
        try:
            assert stream.wait_line(lambda s: s.startswith("status:")) == "status: 200"
            stream.wait_line(lambda s: s == ": live")

            # 2500 people in 600 m²: 4.2 persons/m², orange
            produce(kafka_bootstrap, worker.topics.readings, [reading("r1", ATRIUM, 2500, 0)])
            raised = json.loads(stream.wait_line(lambda s: s.startswith("data:"))[len("data: ") :])
            assert raised["change"] == "raised" and raised["level"] == "orange"
            alert_id = raised["alert_id"]
            board = wait_for(
                lambda: http.get("/api/alerts", headers=op).json()["items"], timeout=30
            )
            assert [a["alert_id"] for a in board] == [alert_id]

            actions = [
                ("ack", {"note": "已派人前往"}, "acknowledged"),
                ("assign", {"assignee": "网格员 王", "note": "请到弄堂口疏导"}, "assigned"),
                ("resolve", {"note": "人群已疏散"}, "resolved"),
            ]
            for revision, (path, body, change) in enumerate(actions, start=2):
                response = http.post(f"/api/alerts/{alert_id}/{path}", headers=op, json=body)
                assert response.status_code == 202, response.text
                event_id = stream.wait_line(lambda s: s.startswith("id:"))
                assert event_id == f"id: {alert_id}:{revision}"
                data = json.loads(stream.wait_line(lambda s: s.startswith("data:"))[6:])
                assert (data["change"], data["actor"], data["note"]) == (
                    change,
                    NAMES["operator"],
                    body["note"],
                )
        finally:
            stream.close()

        # on the topic
        messages = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 4)
        records = alert_records(messages)
        assert [(r["change"], r["status"], r["actor"], r["note"]) for r in records] == [
            ("raised", "firing", None, None),
            ("acknowledged", "acknowledged", NAMES["operator"], "已派人前往"),
            ("assigned", "acknowledged", NAMES["operator"], "请到弄堂口疏导"),
            ("resolved", "resolved", NAMES["operator"], "人群已疏散"),
        ]
        assert records[2]["assignee"] == "网格员 王"
        assert {m.key for m in messages} == {ATRIUM.encode()}

        # in the audit trail, in the database and through the API
        history = wait_for(
            lambda: (
                rows
                if len(
                    rows := db_rows(
                        worker.database_url,
                        "select revision, change, actor, note from alert_history order by revision",
                    )
                )
                == 4
                else None
            ),
            timeout=30,
        )
        assert [tuple(r) for r in history][1:] == [
            (2, "acknowledged", NAMES["operator"], "已派人前往"),
            (3, "assigned", NAMES["operator"], "请到弄堂口疏导"),
            (4, "resolved", NAMES["operator"], "人群已疏散"),
        ]
        detail = http.get(f"/api/alerts/{alert_id}", headers=op).json()
        assert detail["status"] == "resolved"
        assert [(h["change"], h["actor"], h["note"]) for h in detail["history"]][1:] == [
            ("acknowledged", NAMES["operator"], "已派人前往"),
            ("assigned", NAMES["operator"], "请到弄堂口疏导"),
            ("resolved", NAMES["operator"], "人群已疏散"),
        ]
        assert detail["history"][2]["assignee"] == "网格员 王"
        # closed now: no more actions
        assert http.post(f"/api/alerts/{alert_id}/ack", headers=op).status_code == 409
        assert http.get("/api/alerts", headers=op).json()["items"] == []
        incidents = http.get("/api/incidents", headers=op).json()["items"]
        assert [i["status"] for i in incidents] == ["resolved"]
        assert metric(worker, 'puhui_commands_total{action="resolve",outcome="applied"}') == 1


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_engine_url(pg_schema_url: str) -> str:
    return pg_schema_url


def test_the_read_side_works_on_postgresql(
    pg_engine_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_engine_url)
    assert engine.dialect.name == "postgresql"
    clock = Clock()
    tokens = make_tokens(engine, clock())
    lane = episode(LANE, [Level.BLUE, Level.RED], cause="pg-lane")
    atrium = episode(ATRIUM, [Level.YELLOW], cause="pg-atr")
    ack = act(atrium[-1], Change.ACKNOWLEDGED, NAMES["operator"], T0 + timedelta(minutes=2), "好")
    store(engine, [*lane, *atrium, ack])
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"pg-{uuid.uuid4().hex[:8]}.",
        database_url=pg_engine_url,
        state_dir=tmp_path,
    )
    app = create_api(settings, engine=engine, now=clock)
    op = bearer(tokens, "operator")
    with TestClient(app) as client:
        board = client.get("/api/alerts", headers=op).json()
        assert [a["alert_id"] for a in board["items"]] == [lane[0].alert_id, atrium[0].alert_id]
        assert client.get("/api/alerts?status=acknowledged", headers=op).json()["total"] == 1
        detail = client.get(f"/api/alerts/{atrium[0].alert_id}", headers=op).json()
        assert detail["history"][-1]["actor"] == NAMES["operator"]
        assert client.get("/api/incidents", headers=op).json()["total"] == 2
        zones = client.get("/api/zones", headers=op).json()["items"]
        assert {z["id"]: z["alert_level"] for z in zones}[LANE] == "red"
        cap = client.get(f"/api/alerts/{lane[0].alert_id}/cap", headers=op)
        assert cap.status_code == 200 and b"<msgType>Update</msgType>" in cap.content
        created = client.post(
            "/api/silences",
            headers=bearer(tokens, "admin"),
            json={"site": "tianzifang", "ends_at": "2026-10-02T00:00:00+08:00", "comment": "演练"},
        )
        assert created.status_code == 201, created.text
        assert len(client.get("/api/silences", headers=op).json()["items"]) == 1
        gone = client.delete(
            f"/api/silences/{created.json()['id']}", headers=bearer(tokens, "admin")
        )
        assert gone.status_code == 204
        assert client.get("/api/reports", headers=bearer(tokens, "volunteer")).json()["total"] == 0
    engine.dispose()


def test_a_revoked_tokens_open_stream_ends_within_5_s_with_the_default_recheck(
    make_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    """A real server, a real HTTP client holding the stream open, the default settings: the
    token is revoked while the stream runs, and the server ends it within 5 s."""
    from infra.tokens import revoke_token, verify_token

    worker = make_worker()
    app, tokens = api_for(worker, tmp_path)
    with serving(app) as base:
        wait_connected(app)
        stream = SseReader(f"{base}/api/alerts/stream", bearer(tokens, "operator"))
        try:
            assert stream.wait_line(lambda s: s.startswith("status:")) == "status: 200"
            stream.wait_line(lambda s: s == ": live")
            engine = make_engine(worker.database_url)
            try:
                info = verify_token(engine, tokens["operator"])
                assert info is not None
                revoked_at = time.monotonic()
                revoke_token(engine, info.id, datetime.now(UTC))
            finally:
                engine.dispose()
            assert stream.wait_line(lambda s: s == "event: revoked", timeout=5) == "event: revoked"
            stream.ended.wait(timeout=5 - (time.monotonic() - revoked_at))
            assert stream.ended.is_set(), "the server kept the stream open"
            assert time.monotonic() - revoked_at < 5.0
            # and the token no longer opens one
            refused = httpx.get(
                f"{base}/api/alerts/stream", headers=bearer(tokens, "operator"), timeout=10
            )
            assert refused.status_code == 401
        finally:
            stream.close()
