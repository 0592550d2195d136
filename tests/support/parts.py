"""Shared fixtures (a plugin of tests/conftest.py): the real broker, the real PostgreSQL,
and worker processes.

Integration tests talk to real parts. The broker and PostgreSQL are started here if they are not
running (``make test`` starts them first, so this is for a developer running pytest alone); if
they cannot be started, the tests fail — they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_BOOTSTRAP = os.environ.setdefault("PUHUI_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:39092")


# Every broker the tests start (the shared one, private ones), by bootstrap address: how to
# connect to it as its super user. Brokers are SASL_SSL (SCRAM-SHA-512, ACLs), as in production.
_BROKERS: dict[str, Any] = {}


def register_broker(broker: Any) -> None:
    _BROKERS[broker.bootstrap] = broker


def kafka_client(bootstrap: str) -> Any:
    """The ``infra.kafka_security.KafkaClient`` of a test broker's super user (``admin``)."""
    broker = _BROKERS.get(bootstrap)
    if broker is None:
        raise AssertionError(f"no test broker started at {bootstrap}")
    return broker.client()


def kafka_kwargs(bootstrap: str) -> dict[str, Any]:
    """kafka-python connection kwargs (bootstrap servers, SASL_SSL, credentials, CA) for the
    test broker at ``bootstrap``."""
    return dict(kafka_client(bootstrap).kafka_python())


def kafka_env(bootstrap: str) -> dict[str, str]:
    """``PUHUI_KAFKA_*`` settings of a process connecting to the test broker at ``bootstrap``
    as its super user (the tests' workers create and use prefixed topics)."""
    broker = _BROKERS.get(bootstrap)
    if broker is None:
        raise AssertionError(f"no test broker started at {bootstrap}")
    return dict(broker.client_env())


def shared_broker_state_dir() -> Path:
    _, port = TEST_BOOTSTRAP.rsplit(":", 1)
    return REPO / "var" / f"test-{port}"


def _needs_real_parts(session: pytest.Session) -> bool:
    return any(
        item.get_closest_marker(name) is not None
        for item in session.items
        for name in ("integration", "fault", "e2e")
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A serving Apache Kafka broker (SASL_SSL, SCRAM-SHA-512, ACLs). One is started on empty
    storage under ``var/test-<port>`` if none serves there, and left running for the next
    session (``make test`` stops it at the end; by hand: ``python -m infra.broker --state-dir
    var/test-<port> --bootstrap ... stop``). The ``PUHUI_KAFKA_*`` settings of its super user
    are put in the environment, so that ``Settings()`` built in a test connects to it."""
    from infra.broker import KafkaBroker

    _, port = TEST_BOOTSTRAP.rsplit(":", 1)
    broker = KafkaBroker(
        shared_broker_state_dir(), bootstrap=TEST_BOOTSTRAP, controller_port=int(port) + 1
    )
    if not broker.status().serving:
        # Not running: start from empty storage (the state of earlier sessions is disposable).
        broker.stop()
        shutil.rmtree(broker.home, ignore_errors=True)
        broker.start()
    register_broker(broker)
    env = kafka_env(TEST_BOOTSTRAP)
    env.pop("PUHUI_KAFKA_BOOTSTRAP")
    os.environ.update(env)
    return TEST_BOOTSTRAP


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of a real PostgreSQL database (the project's script starts one if needed)."""
    url = os.environ.get("PUHUI_TEST_DATABASE_URL")
    if url:
        return url
    script = REPO / "infra" / "scripts" / "postgres.sh"
    subprocess.run(["bash", str(script), "start"], check=True)
    out = subprocess.run(["bash", str(script), "url"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture(autouse=True, scope="session")
def _real_parts_for_integration(request: pytest.FixtureRequest) -> None:
    if _needs_real_parts(request.session):
        request.getfixturevalue("kafka_bootstrap")


@pytest.fixture(autouse=True)
def _unit_tests_see_no_test_broker(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test broker's ``PUHUI_KAFKA_*`` settings are put in the environment for the real
    parts; a unit test in the same session must not see them (it tests the defaults)."""
    if request.node.get_closest_marker("unit"):
        for key in [k for k in os.environ if k.startswith("PUHUI_KAFKA_")]:
            monkeypatch.delenv(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Worker:
    """A ``puhui worker`` process with its own topics (prefix), group and state."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.env["PUHUI_TOPIC_PREFIX"]

    @property
    def topics(self) -> Any:
        from models.topics import TopicNames

        return TopicNames.with_prefix(self.prefix)

    @property
    def database_url(self) -> str:
        return self.env["PUHUI_DATABASE_URL"]

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PUHUI_WORKER_PORT']}/metrics"

    def start(self, timeout: float = 90.0) -> None:
        n = len(self.logs)
        path = self.log_path.with_suffix(f".{n}.log")
        self.logs.append(path)
        out = path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "worker"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            if b"[^Worker]: Ready" in path.read_bytes():
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready in {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        if not self.logs:
            return ""
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture
def make_worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def make(start: bool = True, **overrides: str) -> Worker:
        run = uuid.uuid4().hex[:8]
        state = tmp_path / f"worker-{len(workers)}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")},
            "PUHUI_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "PUHUI_TOPIC_PREFIX": f"t{run}.",
            "PUHUI_APP_ID": f"puhui-t{run}",
            "PUHUI_STATE_DIR": str(state),
            "PUHUI_DATABASE_URL": f"sqlite:///{tmp_path / 'puhui.db'}",
            "PUHUI_WORKER_PORT": str(free_port()),
            "PUHUI_TOPIC_PARTITIONS": "4",
            "PUHUI_DB_BATCH_SECONDS": "0.2",
        }
        env.update(kafka_env(overrides.get("PUHUI_KAFKA_BOOTSTRAP", kafka_bootstrap)))
        env.update(overrides)
        worker = Worker(env=env, log_path=state / "worker")
        state.mkdir(parents=True, exist_ok=True)
        workers.append(worker)
        if start:
            worker.start()
        return worker

    yield make
    for worker in workers:
        worker.stop()


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    """Produce with kafka-python (not the project's own producer code), acks=all, then flush."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_kwargs(bootstrap), acks="all", linger_ms=5)
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def consume(
    bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], timeout: float = 60.0
) -> list[Any]:
    """Read ``topic`` from the beginning until ``until(messages)`` holds (or fail on timeout)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **kafka_kwargs(bootstrap), enable_auto_commit=False, consumer_timeout_ms=500
    )
    try:
        deadline = time.monotonic() + 30
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = consumer.partitions_for_topic(topic)
        assert parts, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                messages.extend(batch)
            if until(messages):
                return messages
        raise AssertionError(f"{topic}: condition not met in {timeout}s; got {len(messages)}")
    finally:
        consumer.close()


def alert_records(messages: list[Any]) -> list[dict[str, Any]]:
    """Alert records in per-alert revision order (topic order across partitions is not global)."""
    records = [json.loads(m.value) for m in messages]
    return sorted(records, key=lambda r: (r["opened_at"], r["alert_id"], r["revision"]))


# -- fault tests (tests/fault): a private broker and database they may stop ---------------------


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[Any]:
    """A Kafka broker of this test alone (in ``tmp_path``, on free ports), which the test may stop
    and start again; stopped at teardown. Never the shared test broker."""
    from infra.broker import KafkaBroker

    broker = KafkaBroker(
        tmp_path / "private-kafka",
        bootstrap=f"127.0.0.1:{free_port()}",
        controller_port=free_port(),
        heap="384m",
    )
    broker.start(timeout=120)
    register_broker(broker)
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of this test alone (``infra/scripts/postgres.sh`` with its own state
    directory and port), which the test may stop and start again."""

    state_dir: Path
    port: int

    def _run(self, action: str) -> str:
        env = {
            **os.environ,
            "PUHUI_STATE_DIR": str(self.state_dir),
            "PUHUI_PG_PORT": str(self.port),
        }
        script = REPO / "infra" / "scripts" / "postgres.sh"
        out = subprocess.run(
            ["bash", str(script), action],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return out.stdout.strip()

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")
        # postgres.sh says "not running" (exit 0) when the postgres user cannot reach the data
        # directory, so check that the server really went away.
        deadline = time.monotonic() + 30
        while _port_open(self.port):
            if time.monotonic() > deadline:
                # Ours: stop it by its pid (fast shutdown) rather than leak it, then say so.
                pid_file = self.state_dir / "postgres" / "data" / "postmaster.pid"
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
                raise RuntimeError(f"postgres.sh stop returned but port {self.port} still served")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return self._run("url")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL (see :class:`PrivatePostgres`), stopped and removed at
    teardown. Its state lives in a fresh folder under the system temp dir, not in ``tmp_path``:
    every pytest session resets ``/tmp/pytest-of-<user>`` to 0700, which would lock the
    ``postgres`` user out of a cluster kept there."""
    import shutil
    import tempfile

    pg = PrivatePostgres(Path(tempfile.mkdtemp(prefix="puhui-fault-pg-")), free_port())
    try:
        pg.start()
        yield pg
    finally:
        try:
            pg.stop()
        finally:
            shutil.rmtree(pg.state_dir, ignore_errors=True)


@pytest.fixture
def fresh_pg_database(pg_url: str) -> Iterator[str]:
    """URL of a new, empty database on the shared test PostgreSQL, dropped at teardown (the
    server itself is never stopped)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"puhui_fault_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """URL of a migrated, private schema on the shared test PostgreSQL (dropped at teardown)."""
    from sqlalchemy import text

    from infra.db import make_engine, migrate

    admin = make_engine(pg_url)
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    migrate(url)
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated database engine, once on SQLite (a file in ``tmp_path``) and once on a
    private PostgreSQL schema."""
    from infra.db import make_engine, migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'puhui.db'}"
        migrate(url)
    else:
        url = request.getfixturevalue("pg_schema_url")
    engine = make_engine(url)
    assert engine.dialect.name == request.param
    try:
        yield engine
    finally:
        engine.dispose()
