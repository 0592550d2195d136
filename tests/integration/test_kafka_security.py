"""Kafka security on the real test broker (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer): who
gets in, who may do what, and ``puhui kafka client`` for outside systems.

Every test uses topics behind a prefix of its own, so the ACLs it creates concern only them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError

from entrypoints.cli import provision_components
from infra.broker import KafkaBroker
from infra.kafka_admin import ensure_topics
from infra.settings import Settings
from models.topics import TopicNames
from tests.support.parts import (
    REPO,
    TEST_BOOTSTRAP,
    Worker,
    consume,
    kafka_client,
    produce,
    shared_broker_state_dir,
)

pytestmark = pytest.mark.integration

FAST_FAIL = {"bootstrap_timeout_ms": 5000, "max_block_ms": 5000}


@pytest.fixture
def prefix(kafka_bootstrap: str) -> str:
    """A fresh topic prefix with its five public topics created (by the super user)."""
    name = f"sec{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_client(kafka_bootstrap), TopicNames.with_prefix(name).partitions(2))
    return name


def shared_broker() -> KafkaBroker:
    _, port = TEST_BOOTSTRAP.rsplit(":", 1)
    return KafkaBroker(
        shared_broker_state_dir(), bootstrap=TEST_BOOTSTRAP, controller_port=int(port) + 1
    )


def send(kwargs: dict[str, Any], topic: str, value: bytes = b"{}", key: bytes = b"k") -> Any:
    """Produce one record with kafka-python (acks=all) and return its metadata (or raise)."""
    producer = KafkaProducer(**kwargs, acks="all", **FAST_FAIL)
    try:
        return producer.send(topic, key=key, value=value).get(timeout=20)
    finally:
        producer.close(timeout=5)


def puhui(*args: str, prefix: str) -> subprocess.CompletedProcess[str]:
    """``puhui ARGS`` as a user of the local test broker would run it: settings found under
    the state directory, nothing about Kafka credentials in the environment."""
    _, port = TEST_BOOTSTRAP.rsplit(":", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")}
    env.update(
        PUHUI_STATE_DIR=str(shared_broker_state_dir()),
        PUHUI_KAFKA_BOOTSTRAP=TEST_BOOTSTRAP,
        PUHUI_KAFKA_CONTROLLER_PORT=str(int(port) + 1),
        PUHUI_TOPIC_PREFIX=prefix,
    )
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_plaintext_client_is_refused(kafka_bootstrap: str, prefix: str) -> None:
    topic = TopicNames.with_prefix(prefix).readings
    with pytest.raises(KafkaTimeoutError):
        KafkaProducer(bootstrap_servers=kafka_bootstrap, security_protocol="PLAINTEXT", **FAST_FAIL)
    # The same producer with the super user's SASL_SSL settings gets in.
    assert send(kafka_client(kafka_bootstrap).kafka_python(), topic).topic == topic


def test_a_wrong_password_is_refused(
    kafka_bootstrap: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = kafka_client(kafka_bootstrap)
    wrong = dataclasses.replace(admin, password=admin.password + "x")
    with pytest.raises(KafkaTimeoutError):
        KafkaProducer(**wrong.kafka_python(), **FAST_FAIL)

    async def aiokafka_start() -> None:
        producer = AIOKafkaProducer(**wrong.aiokafka(), request_timeout_ms=5000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        asyncio.run(aiokafka_start())
    assert "SaslAuthenticationFailed" in caplog.text  # refused for the password, nothing else


def test_kafka_client_gateway_writes_readings_only(kafka_bootstrap: str, prefix: str) -> None:
    topics = TopicNames.with_prefix(prefix)
    name = f"gw-{uuid.uuid4().hex[:6]}"
    done = puhui("kafka", "client", "--name", name, "--role", "gateway", prefix=prefix)
    assert done.returncode == 0, done.stderr
    kwargs = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(kwargs) == {
        "bootstrap_servers",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "ssl_cafile",
    }
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == name
    assert Path(kwargs["ssl_cafile"]).is_absolute() and Path(kwargs["ssl_cafile"]).is_file()
    assert kwargs["sasl_plain_password"] not in done.stderr
    stored = shared_broker().security_files.password_file(name)
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600

    # The JSON line, as is, is what kafka-python takes: a reading gets in ...
    reading = json.dumps({"reading_id": name}).encode()
    assert send(kwargs, topics.readings, reading).topic == topics.readings
    got = consume(kafka_bootstrap, topics.readings, until=lambda ms: len(ms) >= 1)
    assert [m.value for m in got] == [reading]
    assert send(kwargs, topics.reports).topic == topics.reports
    # ... but no forged alert and no forged operator command.
    for topic in (topics.alerts, topics.commands):
        with pytest.raises(TopicAuthorizationFailedError):
            send(kwargs, topic)

    revoked = puhui("kafka", "client", "--revoke", name, prefix=prefix)
    assert revoked.returncode == 0, revoked.stderr
    assert not stored.exists()
    with pytest.raises(KafkaTimeoutError):
        send(kwargs, topics.readings)
    again = puhui("kafka", "client", "--revoke", name, prefix=prefix)
    assert again.returncode == 1


def test_kafka_client_reader_reads_alerts_but_writes_nothing(
    kafka_bootstrap: str, prefix: str
) -> None:
    from kafka import KafkaConsumer

    topics = TopicNames.with_prefix(prefix)
    name = f"rd-{uuid.uuid4().hex[:6]}"
    done = puhui("kafka", "client", "--name", name, "--role", "reader", prefix=prefix)
    assert done.returncode == 0, done.stderr
    kwargs = json.loads(done.stdout.strip().splitlines()[-1])
    try:
        produce(kafka_bootstrap, topics.alerts, [(b"z", b"alert-1")])
        consumer = KafkaConsumer(
            topics.alerts,
            **kwargs,
            group_id=f"{name}-console",
            auto_offset_reset="earliest",
            consumer_timeout_ms=20_000,
        )
        try:
            assert next(iter(consumer)).value == b"alert-1"
        finally:
            consumer.close()
        for topic in (topics.readings, topics.alerts):
            # (no write on any topic: refused already at the idempotent producer's id)
            with pytest.raises(KafkaError, match="AuthorizationFailed"):
                send(kwargs, topic)
    finally:
        puhui("kafka", "client", "--revoke", name, prefix=prefix)


def test_each_component_has_only_its_acls(kafka_bootstrap: str, prefix: str) -> None:
    """Nothing but the worker may write alerts; the API writes commands, reports and case
    commands (the worker too: escalations); the simulator readings and reports."""
    broker = shared_broker()
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, app_id=f"app-{prefix[:-1]}"
    )
    provision_components(settings, broker)
    topics = TopicNames.with_prefix(prefix)
    may_write = {
        "worker": {topics.alerts, topics.dead_letters, topics.cases},
        "api": {topics.reports, topics.commands, topics.cases},
        "notifier": set(),
        "simulator": {topics.readings, topics.reports},
    }
    for component, allowed in may_write.items():
        kwargs = broker.client(component).kafka_python()
        for topic in topics.all():
            if topic in allowed:
                assert send(kwargs, topic).topic == topic, (component, topic)
            else:
                with pytest.raises(KafkaError, match="AuthorizationFailed"):
                    send(kwargs, topic)


def test_the_worker_runs_as_its_own_principal(
    kafka_bootstrap: str, prefix: str, make_worker: Callable[..., Worker]
) -> None:
    """The worker's ACLs are enough for Faust: its group, changelog and tick topics."""
    broker = shared_broker()
    app_id = f"app-{prefix[:-1]}"
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, app_id=app_id)
    provision_components(settings, broker)
    worker = make_worker(
        PUHUI_TOPIC_PREFIX=prefix,
        PUHUI_APP_ID=app_id,
        PUHUI_KAFKA_USERNAME="worker",
        PUHUI_KAFKA_PASSWORD_FILE=str(broker.security_files.password_file("worker")),
    )
    reading = {
        "reading_id": "sec-1",
        "sensor_id": "cam-1",
        "zone_id": "riyueguang-atrium",
        "kind": "people_count",
        "value": 2500,
        "observed_at": "2026-10-01T12:00:00+08:00",
    }
    simulator = broker.client("simulator").kafka_python()
    send(simulator, worker.topics.readings, json.dumps(reading).encode(), key=b"riyueguang-atrium")
    alerts = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 1)
    assert json.loads(alerts[0].value)["zone_id"] == "riyueguang-atrium", worker.tail()
    # ... and its persist agent reads them back into the database.
    deadline = time.monotonic() + 60
    rows = 0
    while rows < 1 and time.monotonic() < deadline:
        rows = db_count(worker.database_url, "select count(*) from alert_history")
        time.sleep(0.3)
    assert rows >= 1, worker.tail()


def db_count(url: str, query: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            try:
                return int(conn.execute(text(query)).scalar_one())
            except Exception:  # the table is not there yet: the worker migrates at start
                return 0
    finally:
        engine.dispose()
