"""Integration tests: a real Apache Kafka 4.x broker started by ``infra.broker``.

They run on non-default ports (19092/19093) in temporary state directories, so they do not
clash with a development broker on 9092. Nothing is skipped: if the broker cannot be
downloaded or started, the tests fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from infra.broker import KAFKA_VERSION, BrokerError, KafkaBroker, new_cluster_id
from infra.kafka_admin import (
    admin_client,
    ensure_topics,
    existing_topics,
    port_open,
    wait_for_metadata,
)

pytestmark = pytest.mark.integration

BOOTSTRAP = "127.0.0.1:19092"
CONTROLLER_PORT = 19093
REPO_ROOT = Path(__file__).resolve().parents[2]


def _proc_running(pid: int) -> bool:
    """True if ``pid`` is a live, non-zombie process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _kafka_pids_for(home: Path) -> list[int]:
    """Pids of live kafka.Kafka processes started for this broker home."""
    result = subprocess.run(
        ["pgrep", "-f", f"puhui.kafka.home={home} "], capture_output=True, text=True, check=False
    )
    pids = [int(p) for p in result.stdout.split()]
    return [p for p in pids if _proc_running(p)]


def _make(state_dir: Path, heap: str = "512m") -> KafkaBroker:
    return KafkaBroker(state_dir, bootstrap=BOOTSTRAP, controller_port=CONTROLLER_PORT, heap=heap)


def _cli(command: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m infra.broker COMMAND`` against the test ports."""
    argv = [sys.executable, "-m", "infra.broker", command, "--state-dir", str(state_dir)]
    argv += ["--bootstrap", BOOTSTRAP, "--controller-port", str(CONTROLLER_PORT)]
    return subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False
    )


def _partition_counts(bootstrap: Any, names: list[str]) -> dict[str, int]:
    with admin_client(bootstrap, timeout=10) as admin:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}


# -- no broker needed -------------------------------------------------------------------------


def test_cluster_id_shape() -> None:
    for _ in range(200):
        cid = new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert "=" not in cid


def test_ensure_jars_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = _make(tmp_path)
    libs = b.ensure_jars()
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert any(libs.glob("log4j-slf4j-impl-*.jar")), "an SLF4J binding must be on the classpath"

    def no_maven(*args: object, **kwargs: object) -> None:
        raise AssertionError("ensure_jars ran a process although the jars are cached")

    monkeypatch.setattr(subprocess, "run", no_maven)
    started = time.monotonic()
    assert b.ensure_jars() == libs
    assert time.monotonic() - started < 1.0


def test_server_properties_settings(tmp_path: Path) -> None:
    text = _make(tmp_path).server_properties()
    props = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == (f"CLIENT://{BOOTSTRAP},CONTROLLER://127.0.0.1:{CONTROLLER_PORT}")
    # Secured by default: SCRAM over TLS for clients, mutual TLS for the controller, ACLs.
    assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,CLIENT:SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    plain = KafkaBroker(
        tmp_path, bootstrap=BOOTSTRAP, controller_port=CONTROLLER_PORT, security="PLAINTEXT"
    ).server_properties()
    assert f"listeners=PLAINTEXT://{BOOTSTRAP}," in plain
    assert "authorizer" not in plain
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{CONTROLLER_PORT}"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "1"


def test_paths_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    b = KafkaBroker(Path("rel-state"), bootstrap=BOOTSTRAP, controller_port=CONTROLLER_PORT)
    assert b.home == tmp_path.resolve() / "rel-state" / "kafka"
    assert f"log.dirs={b.data_dir}" in b.server_properties()


def test_rejects_non_loopback_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        KafkaBroker(tmp_path, bootstrap="0.0.0.0:19092")


def test_wait_for_metadata_times_out_without_broker() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        wait_for_metadata("127.0.0.1:19099", timeout=1.5)
    assert time.monotonic() - started < 5


def test_start_fails_clearly_when_the_jvm_dies(tmp_path: Path) -> None:
    b = _make(tmp_path, heap="1k")  # the JVM refuses such a heap at once
    with pytest.raises(BrokerError, match="exited with code") as info:
        b.start(timeout=60)
    assert "heap" in str(info.value).lower(), "the error should quote the log"
    assert not b.pid_file.exists()
    assert b.status().running is False


def test_start_refuses_a_port_held_by_someone_else(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 19092))
        holder.listen(1)
        with pytest.raises(BrokerError, match="already in use"):
            _make(tmp_path).start(timeout=30)


# -- lifecycle of a real broker ---------------------------------------------------------------


def test_lifecycle(tmp_path: Path) -> None:
    b = _make(tmp_path)
    try:
        before = b.status()
        assert (before.running, before.pid, before.serving) == (False, None, False)
        assert before.bootstrap == BOOTSTRAP

        b.start(timeout=120)
        assert b.is_formatted()
        st = b.status()
        assert st.running and st.serving and st.pid is not None
        pid = st.pid
        assert b.pid_file.read_text().strip() == str(pid)
        assert _kafka_pids_for(b.home) == [pid]
        assert "Kafka Server started" in b.server_log.read_text()

        # A second start, also from a fresh object, is harmless, quick and keeps the pid.
        again = _make(tmp_path)
        started = time.monotonic()
        again.start(timeout=30)
        assert time.monotonic() - started < 10
        assert again.status().pid == pid
        b.start(timeout=30)
        assert b.status().pid == pid

        b.stop()
        after = b.status()
        assert (after.running, after.pid, after.serving) == (False, None, False)
        assert not _proc_running(pid)
        assert _kafka_pids_for(b.home) == []
        assert not b.pid_file.exists()
        assert not port_open(BOOTSTRAP)
        b.stop()  # harmless when stopped

        # A stale pid file (this test's own pid: alive, but not Kafka) means "stopped".
        b.pid_file.write_text(f"{os.getpid()}\n")
        assert b.status().running is False
        b.stop()
        assert not b.pid_file.exists()
        b.pid_file.write_text("999999999\n")  # no such process
        assert b.status().running is False

        # Warm restart on the formatted storage, through the command line; the broker must
        # outlive the `python -m infra.broker start` process that launched it.
        done = _cli("start", tmp_path)
        assert done.returncode == 0, done.stderr
        assert "serving at" in done.stdout
        st2 = b.status()
        assert st2.running and st2.serving and st2.pid not in (None, pid)
        status = _cli("status", tmp_path)
        assert status.returncode == 0 and "running=True" in status.stdout
        stop = _cli("stop", tmp_path)
        assert stop.returncode == 0, stop.stderr
        assert st2.pid is not None and not _proc_running(st2.pid)
        status = _cli("status", tmp_path)
        assert status.returncode == 3 and "running=False" in status.stdout
    finally:
        b.stop()
    assert _kafka_pids_for(b.home) == []


# -- topics and records on a running broker ---------------------------------------------------


@pytest.fixture(scope="module")
def running_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    b = _make(tmp_path_factory.mktemp("broker-state"))
    b.start(timeout=120)
    try:
        yield b
    finally:
        b.stop()
        assert _kafka_pids_for(b.home) == []


def test_ensure_topics_creates_with_partitions_and_is_idempotent(
    running_broker: KafkaBroker,
) -> None:
    wanted = {"puhui.test.events": 3, "puhui.test.alerts": 1}
    ensure_topics(running_broker.client(), wanted)
    assert set(wanted) <= existing_topics(running_broker.client())
    assert _partition_counts(running_broker.client(), list(wanted)) == wanted

    ensure_topics(running_broker.client(), wanted)  # again: nothing changes, nothing raises
    # An existing topic is left alone even if asked for with another partition count.
    ensure_topics(running_broker.client(), {"puhui.test.events": 6})
    assert _partition_counts(running_broker.client(), list(wanted)) == wanted


def test_ensure_topics_concurrently(running_broker: KafkaBroker) -> None:
    wanted = {f"puhui.test.race-{i}": 2 for i in range(3)}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            ensure_topics(running_broker.client(), wanted)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _partition_counts(running_broker.client(), list(wanted)) == wanted


def test_topics_are_not_auto_created(running_broker: KafkaBroker) -> None:
    name = f"puhui.test.never-{uuid.uuid4().hex[:8]}"
    with admin_client(running_broker.client(), timeout=10) as admin:
        admin.describe_topics([name])
    assert name not in existing_topics(running_broker.client())


def test_produce_and_consume_one_record(running_broker: KafkaBroker) -> None:
    topic = "puhui.test.roundtrip"
    ensure_topics(running_broker.client(), {topic: 2})
    value = f"hello-{uuid.uuid4()}".encode()

    producer = KafkaProducer(**running_broker.client().kafka_python(), acks="all")
    try:
        meta = producer.send(topic, key=b"zone-1", value=value).get(timeout=30)
        producer.flush(10)
    finally:
        producer.close(timeout=10)
    assert meta.topic == topic

    consumer = KafkaConsumer(
        topic,
        **running_broker.client().kafka_python(),
        group_id=f"puhui-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        got: list[Any] = []
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                got.extend(records)
        assert [(r.key, r.value) for r in got] == [(b"zone-1", value)]
        assert got[0].partition == meta.partition
        consumer.commit()
        assert consumer.committed(TopicPartition(topic, meta.partition)) == meta.offset + 1
    finally:
        consumer.close()
