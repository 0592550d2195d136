"""Download, start, stop and check a real single-node Apache Kafka broker (KRaft).

The broker is the genuine ``kafka.Kafka`` main class from Maven Central's
``org.apache.kafka:kafka_2.13`` artifacts, run on the local JVM as one combined
broker+controller node listening on loopback only. Nothing here needs Docker or a Kafka
tarball: :meth:`KafkaBroker.ensure_jars` resolves the classpath once with Maven
(``infra/kafka/pom.xml``) and caches it.

Layout under ``state_dir / "kafka"``::

    server.properties   written on every start from the constructor arguments (0600: it holds
                        the broker's own SCRAM password)
    security/           CA, broker certificate, principals' passwords, client.json
                        (infra/kafka_security.py; SASL_SSL brokers only)
    data/               KRaft metadata log and topic data (formatted once)
    logs/kafka.out      the JVM's stdout/stderr (WARN and above, plus JVM errors)
    logs/server.log     the broker's INFO log (rolled, see infra/kafka/log4j2.yaml)
    kafka.pid           pid of the running broker

Security (the default, ``security="SASL_SSL"``): the client listener is SASL_SSL with
SCRAM-SHA-512 and the broker's certificate from a CA of its own; the KRaft controller listener
is mutual TLS (only the broker's certificate gets in); the ``StandardAuthorizer`` denies
everything no ACL allows, with ``admin`` (created when the storage is formatted) and the broker's
certificate as super users. ``security="PLAINTEXT"`` only when asked for.

Command line: ``python -m infra.broker start|stop|status [--state-dir DIR]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.kafka_admin import port_open, split_bootstrap, wait_for_metadata
from infra.kafka_security import (
    ADMIN_USER,
    BROKER_CN,
    DEFAULT_MECHANISM,
    KafkaClient,
    SecurityFiles,
    create_tls_material,
    write_secret,
)
from models.errors import PuhuiError

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "BrokerStatus",
    "KafkaBroker",
    "new_cluster_id",
]

KAFKA_VERSION = "4.1.1"

_KAFKA_FILES = Path(__file__).resolve().parent / "kafka"
POM_PATH = _KAFKA_FILES / "pom.xml"
LOG4J_CONFIG = _KAFKA_FILES / "log4j2.yaml"

_JARS_MARKER = ".puhui-jars-complete"
_NODE_ID = 1
_LOG_TAIL_LINES = 25


class BrokerError(PuhuiError, RuntimeError):
    """The broker could not be prepared, started or stopped."""


@dataclass(frozen=True)
class BrokerStatus:
    """Snapshot of a broker's state.

    ``running``: our broker process (pid file, process alive and really ``kafka.Kafka``).
    ``serving``: something at ``bootstrap`` answered a metadata request (checked even when
    ``running`` is False, so ``running=False, serving=True`` means another broker holds the
    port).
    """

    running: bool
    pid: int | None
    serving: bool
    bootstrap: str


def new_cluster_id() -> str:
    """Return a fresh KRaft cluster id: 16 random bytes, base64url, no padding, no leading '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def default_cache_dir() -> Path:
    """Where the jars of :data:`KAFKA_VERSION` are cached unless told otherwise."""
    return Path.home() / ".cache" / "puhui" / f"kafka-{KAFKA_VERSION}" / "libs"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KafkaBroker:
    """One single-node Kafka broker (KRaft, combined broker+controller) on loopback.

    ``bootstrap`` is the PLAINTEXT listener (``host:port``, a loopback host), the KRaft
    CONTROLLER listener is on the same host at ``controller_port``. ``heap`` is the JVM heap
    (``-Xms``/``-Xmx``).
    """

    def __init__(
        self,
        state_dir: Path,
        bootstrap: str = "127.0.0.1:9092",
        controller_port: int = 9093,
        cache_dir: Path | None = None,
        heap: str = "512m",
        security: str = "SASL_SSL",
    ) -> None:
        host, port = split_bootstrap(bootstrap)
        if "," in bootstrap:
            raise ValueError("a single-node broker takes one host:port, not a list")
        if not _is_loopback(host):
            raise ValueError(f"the broker listens on loopback only; {host!r} is not loopback")
        if controller_port == port:
            raise ValueError("controller_port must differ from the bootstrap port")
        # Absolute, so the generated config, the pid check and a later `stop` from another
        # working directory all agree on the paths.
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.bootstrap = bootstrap
        self.host = host
        self.port = port
        self.controller_port = int(controller_port)
        self.cache_dir = (
            Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir()
        )
        if security not in ("SASL_SSL", "PLAINTEXT"):
            raise ValueError(f"security must be SASL_SSL or PLAINTEXT, not {security!r}")
        self.security = security
        self.heap = heap
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """``state_dir / "kafka"``: everything this broker writes lives here."""
        return self.state_dir / "kafka"

    @property
    def security_files(self) -> SecurityFiles:
        """CA, certificates and passwords of a SASL_SSL broker (``home / "security"``)."""
        return SecurityFiles(self.home / "security")

    @property
    def secured(self) -> bool:
        return self.security == "SASL_SSL"

    def client(self, user: str = ADMIN_USER) -> KafkaClient:
        """How ``user`` (default the super user ``admin``) connects to this broker."""
        if not self.secured:
            return KafkaClient(self.bootstrap)
        password = self.security_files.password(user)
        if password is None:
            raise BrokerError(f"no password for {user!r} in {self.security_files.root}")
        return KafkaClient(
            self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=DEFAULT_MECHANISM,
            username=user,
            password=password,
            ca_file=self.security_files.ca_cert,
        )

    def client_env(self, user: str = ADMIN_USER) -> dict[str, str]:
        """``PUHUI_KAFKA_*`` settings of a process connecting as ``user`` (the password by
        file, never in the environment)."""
        if not self.secured:
            return {
                "PUHUI_KAFKA_BOOTSTRAP": self.bootstrap,
                "PUHUI_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            }
        files = self.security_files
        return {
            "PUHUI_KAFKA_BOOTSTRAP": self.bootstrap,
            "PUHUI_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PUHUI_KAFKA_SASL_MECHANISM": DEFAULT_MECHANISM,
            "PUHUI_KAFKA_USERNAME": user,
            "PUHUI_KAFKA_PASSWORD_FILE": str(files.password_file(user)),
            "PUHUI_KAFKA_CA_FILE": str(files.ca_cert),
        }

    @property
    def data_dir(self) -> Path:
        """KRaft metadata log and topic partitions (``log.dirs``)."""
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        """Directory of ``kafka.out`` and ``server.log``."""
        return self.home / "logs"

    @property
    def config_file(self) -> Path:
        """The generated ``server.properties``."""
        return self.home / "server.properties"

    @property
    def pid_file(self) -> Path:
        """File holding the pid of the running broker."""
        return self.home / "kafka.pid"

    @property
    def out_file(self) -> Path:
        """The JVM's captured stdout/stderr."""
        return self.logs_dir / "kafka.out"

    @property
    def server_log(self) -> Path:
        """The broker's own INFO log."""
        return self.logs_dir / "server.log"

    # -- jars --------------------------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Return the directory of the broker's jars, downloading them with Maven once.

        A marker file (naming the Kafka version and a digest of the pom, comments aside)
        records a complete download; with it present nothing is fetched. If the pom's
        dependencies change, the jars are fetched again and the directory is replaced: restart
        a broker that runs from it. Downloads go to a temporary sibling
        directory that is renamed into place, under a file lock, so concurrent callers and
        interrupted downloads never leave a half-filled classpath behind.
        """
        libs = self.cache_dir
        expected = self._jars_marker_text()
        if self._jars_complete(libs, expected):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven ('mvn') is not on PATH; it is needed to fetch the Kafka jars")
        libs.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(libs.parent / f".{libs.name}.lock"):
            if self._jars_complete(libs, expected):
                return libs
            tmp = Path(tempfile.mkdtemp(prefix=f".{libs.name}-", dir=libs.parent))
            try:
                tmp.chmod(0o755)
                cmd = [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(POM_PATH),
                    f"-Dkafka.version={KAFKA_VERSION}",
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={tmp}",
                ]
                result = subprocess.run(
                    cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
                )
                if result.returncode != 0:
                    output = (result.stdout + result.stderr).strip().splitlines()
                    raise BrokerError(
                        f"mvn dependency:copy-dependencies failed (exit {result.returncode}):\n"
                        + "\n".join(output[-_LOG_TAIL_LINES:])
                    )
                if not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
                    raise BrokerError(
                        f"Maven finished but kafka_2.13-{KAFKA_VERSION}.jar is missing"
                    )
                (tmp / _JARS_MARKER).write_text(expected)
                if libs.exists():
                    shutil.rmtree(libs)
                tmp.rename(libs)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return libs

    @staticmethod
    def _jars_marker_text() -> str:
        # Comments and layout do not change the classpath, so they do not count.
        pom = re.sub(rb"<!--.*?-->", b"", POM_PATH.read_bytes(), flags=re.DOTALL)
        digest = hashlib.sha256(b"".join(pom.split())).hexdigest()
        return f"kafka {KAFKA_VERSION}\npom-sha256 {digest}\n"

    @staticmethod
    def _jars_complete(libs: Path, expected: str) -> bool:
        marker = libs / _JARS_MARKER
        try:
            return marker.read_text() == expected
        except OSError:
            return False

    # -- configuration -----------------------------------------------------------------------

    def server_properties(self) -> str:
        """Text of the ``server.properties`` this broker runs with."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        name = "CLIENT" if self.secured else "PLAINTEXT"
        client = f"{name}://{host}:{self.port}"
        controller = f"CONTROLLER://{host}:{self.controller_port}"
        settings: list[tuple[str, object]] = [
            # KRaft, one node that is both broker and the only controller (static quorum).
            ("process.roles", "broker,controller"),
            ("node.id", _NODE_ID),
            ("controller.quorum.voters", f"{_NODE_ID}@{host}:{self.controller_port}"),
            ("listeners", f"{client},{controller}"),
            ("advertised.listeners", client),
            ("inter.broker.listener.name", name),
            ("controller.listener.names", "CONTROLLER"),
        ]
        if self.secured:
            files = self.security_files
            password = files.password(ADMIN_USER)
            settings += [
                ("listener.security.protocol.map", "CONTROLLER:SSL,CLIENT:SASL_SSL"),
                ("sasl.enabled.mechanisms", DEFAULT_MECHANISM),
                ("sasl.mechanism.inter.broker.protocol", DEFAULT_MECHANISM),
                (
                    f"listener.name.client.{DEFAULT_MECHANISM.lower()}.sasl.jaas.config",
                    "org.apache.kafka.common.security.scram.ScramLoginModule required"
                    f' username="{ADMIN_USER}" password="{password}";',
                ),
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", files.keystore),
                ("ssl.truststore.type", "PEM"),
                ("ssl.truststore.location", files.ca_cert),
                ("ssl.enabled.protocols", "TLSv1.3,TLSv1.2"),
                # The controller listener takes only the broker's own certificate.
                ("listener.name.controller.ssl.client.auth", "required"),
                (
                    "authorizer.class.name",
                    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                ),
                ("super.users", f"User:{ADMIN_USER};User:CN={BROKER_CN}"),
                ("allow.everyone.if.no.acl.found", "false"),
            ]
        else:
            settings += [
                ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
            ]
        settings += [
            ("log.dirs", self.data_dir),
            # One node: every internal topic has replication factor 1 and min ISR 1.
            ("offsets.topic.replication.factor", 1),
            ("transaction.state.log.replication.factor", 1),
            ("transaction.state.log.min.isr", 1),
            ("share.coordinator.state.topic.replication.factor", 1),
            ("share.coordinator.state.topic.min.isr", 1),
            ("default.replication.factor", 1),
            ("min.insync.replicas", 1),
            # Topics are created explicitly (infra.kafka_admin.ensure_topics).
            ("auto.create.topics.enable", "false"),
            ("num.partitions", 1),
            ("group.initial.rebalance.delay.ms", 0),
            # Small-ish but sane retention for a development/CI broker.
            ("log.retention.hours", 72),
            ("log.retention.bytes", 1024 * 1024 * 1024),
            ("log.segment.bytes", 64 * 1024 * 1024),
            ("log.retention.check.interval.ms", 5 * 60 * 1000),
            ("num.network.threads", 2),
            ("num.io.threads", 4),
            ("num.recovery.threads.per.data.dir", 1),
        ]
        lines = ["# Generated by infra/broker.py; rewritten on every start.\n"]
        lines += [f"{key}={value}\n" for key, value in settings]
        return "".join(lines)

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self.secured:
            files = self.security_files
            create_tls_material(files, [self.host])
            files.password(ADMIN_USER, create=True)
            files.write_client_file(self.bootstrap, "SASL_SSL")
        else:
            self.security_files.write_client_file(self.bootstrap, "PLAINTEXT")
        write_secret(self.config_file, self.server_properties())

    def is_formatted(self) -> bool:
        """True if the KRaft storage under ``data_dir`` has been formatted."""
        return (self.data_dir / "meta.properties").is_file()

    # -- process helpers ---------------------------------------------------------------------

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").is_file():
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if java is None:
            raise BrokerError("no 'java' on PATH (and no usable JAVA_HOME); Kafka needs Java 17+")
        return java

    def _jvm_command(self, libs: Path, main_class: str, *args: str, server: bool) -> list[str]:
        cmd = [self._java()]
        if server:
            cmd += [
                f"-Xms{self.heap}",
                f"-Xmx{self.heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:InitiatingHeapOccupancyPercent=35",
                "-XX:+ExplicitGCInvokesConcurrent",
            ]
        else:
            cmd += ["-Xmx256m", "-XX:TieredStopAtLevel=1"]
        cmd += [
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            # Tags the process so a pid can be told apart from an unrelated reused one.
            f"-Dpuhui.kafka.home={self.home}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]
        return cmd

    def _format_storage(self, libs: Path, timeout: float) -> None:
        cmd = self._jvm_command(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.config_file),
            "-g",
            *self._scram_bootstrap(),
            server=False,
        )
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=max(timeout, 1.0),
                check=False,
                cwd=self.home,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting KRaft storage timed out after {timeout:.0f}s") from exc
        if result.returncode != 0 or not self.is_formatted():
            output = (result.stdout + result.stderr).strip().splitlines()
            raise BrokerError(
                f"kafka.tools.StorageTool format failed (exit {result.returncode}):\n"
                + "\n".join(output[-_LOG_TAIL_LINES:])
            )

    def _scram_bootstrap(self) -> list[str]:
        """``--add-scram`` for the super user: its credential is in the metadata log from the
        start (the password is on this short-lived command line for a second or two)."""
        if not self.secured:
            return []
        password = self.security_files.password(ADMIN_USER)
        return ["--add-scram", f"{DEFAULT_MECHANISM}=[name={ADMIN_USER},password={password}]"]

    def _check_security_matches(self) -> None:
        """A formatted storage keeps the mode it was formatted with."""
        if not self.is_formatted():
            return
        has_tls = self.security_files.has_tls()
        if self.secured and not has_tls:
            raise BrokerError(
                f"{self.data_dir} was formatted for a PLAINTEXT broker; start it with"
                " PUHUI_KAFKA_SECURITY_PROTOCOL=PLAINTEXT, or remove the state directory"
                f" {self.home} to make a new SASL_SSL broker"
            )
        if not self.secured and has_tls:
            raise BrokerError(
                f"{self.home} holds a SASL_SSL broker; PLAINTEXT was asked for. Remove the state"
                " directory to make a new PLAINTEXT broker"
            )

    def _read_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _live_pid(self) -> int | None:
        """The pid from the pid file if that process is alive and is this broker."""
        pid = self._read_pid()
        if pid is None or not _pid_alive(pid):
            return None
        cmdline = _cmdline(pid)
        if cmdline is not None and (
            "kafka.Kafka" not in cmdline or f"-Dpuhui.kafka.home={self.home}" not in cmdline
        ):
            return None  # the pid was reused by some other process
        return pid

    def _log_tail(self) -> str:
        parts = []
        for path in (self.out_file, self.server_log):
            lines = _tail(path, _LOG_TAIL_LINES)
            if lines:
                parts.append(f"--- last lines of {path} ---\n" + "\n".join(lines))
        return "\n".join(parts) if parts else f"(no log output in {self.logs_dir})"

    # -- public lifecycle --------------------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        """Start the broker (formatting storage first if needed) and wait until it serves.

        Returns once the broker answers a metadata request at ``bootstrap``. If this broker is
        already running, it only waits for it to serve. Raises :class:`BrokerError` if the
        process exits during start-up (quoting its log) or the port is held by another
        process, and ``TimeoutError`` (after stopping the process) if it does not serve within
        ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        self._check_security_matches()
        pid = self._live_pid()
        if pid is not None:
            try:
                wait_for_metadata(self.client(), max(deadline - time.monotonic(), 1.0))
            except TimeoutError as exc:
                raise TimeoutError(
                    f"Kafka (pid {pid}) is running but does not serve at {self.bootstrap}\n"
                    + self._log_tail()
                ) from exc
            return

        self.pid_file.unlink(missing_ok=True)  # stale
        for port in (self.port, self.controller_port):
            if port_open(f"{self.host}:{port}", timeout=0.5):
                raise BrokerError(
                    f"port {self.host}:{port} is already in use by another process; stop it or"
                    " choose other ports (bootstrap=..., controller_port=...)"
                )

        libs = self.ensure_jars()
        self._write_config()
        if not self.is_formatted():
            self._format_storage(libs, deadline - time.monotonic())

        cmd = self._jvm_command(libs, "kafka.Kafka", str(self.config_file), server=True)
        with self.out_file.open("ab") as out:
            out.write(f"\n=== starting Kafka {KAFKA_VERSION} at {time.ctime()} ===\n".encode())
            out.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
                close_fds=True,
            )
        self._proc = proc
        _atomic_write(self.pid_file, f"{proc.pid}\n")

        while True:
            code = proc.poll()
            if code is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"Kafka exited with code {code} during start-up\n{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise TimeoutError(
                    f"Kafka did not serve at {self.bootstrap} within {timeout:.0f}s\n"
                    + self._log_tail()
                )
            if port_open(self.bootstrap, timeout=0.5):
                try:
                    wait_for_metadata(self.client(), min(5.0, remaining))
                    return
                except TimeoutError:
                    pass
            else:
                time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.

        Harmless if the broker is not running; a stale pid file is removed.
        """
        pid = self._live_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            self._proc = None
            return
        _signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            _signal(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 10.0):
                raise BrokerError(f"Kafka (pid {pid}) survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        self._proc = None

    def status(self) -> BrokerStatus:
        """Report whether this broker's process runs and whether ``bootstrap`` serves."""
        pid = self._live_pid()
        serving = False
        if port_open(self.bootstrap, timeout=0.5):
            try:
                wait_for_metadata(self._status_client(), 5.0)
                serving = True
            except TimeoutError:
                serving = False
        return BrokerStatus(
            running=pid is not None, pid=pid, serving=serving, bootstrap=self.bootstrap
        )

    def _status_client(self) -> KafkaClient:
        if self.secured and self.security_files.password(ADMIN_USER) is None:
            return KafkaClient(self.bootstrap)  # not ours: at best a plaintext broker answers
        return self.client()

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=0.1)
            if not _pid_alive(pid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


# -- module helpers ------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (not zombie) process; reaps it if it is our exited child."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (or it vanished): trust kill(0)
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"] and state != ["X"]


def _cmdline(pid: int) -> str | None:
    """The command line of ``pid`` joined by spaces, or None where procfs is unavailable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- command line --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m infra.broker start|stop|status [--state-dir DIR] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m infra.broker",
        description=f"Run a single-node Apache Kafka {KAFKA_VERSION} broker (KRaft) locally.",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "jars"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("var"),
        help="state directory; the broker uses STATE_DIR/kafka (default: var)",
    )
    parser.add_argument(
        "--bootstrap",
        default="127.0.0.1:9092",
        help="PLAINTEXT listener host:port (default: 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--controller-port", type=int, default=9093, help="KRaft controller port (default: 9093)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help=f"jar cache (default: {default_cache_dir()})"
    )
    parser.add_argument("--heap", default="512m", help="JVM heap (default: 512m)")
    parser.add_argument(
        "--security",
        choices=["SASL_SSL", "PLAINTEXT"],
        default="SASL_SSL",
        help="client listener: SASL_SSL (SCRAM-SHA-512, ACLs; default) or PLAINTEXT",
    )
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for start/stop (default: 90)"
    )
    args = parser.parse_args(argv)

    broker = KafkaBroker(
        args.state_dir.resolve(),
        bootstrap=args.bootstrap,
        controller_port=args.controller_port,
        cache_dir=args.cache_dir,
        heap=args.heap,
        security=args.security,
    )
    try:
        if args.command == "jars":
            print(broker.ensure_jars())
        elif args.command == "start":
            started = time.monotonic()
            broker.start(timeout=args.timeout)
            st = broker.status()
            print(
                f"kafka {KAFKA_VERSION} serving at {st.bootstrap} (pid {st.pid}) "
                f"after {time.monotonic() - started:.1f}s; logs in {broker.logs_dir}"
            )
        elif args.command == "stop":
            broker.stop(timeout=min(args.timeout, 30.0))
            print("kafka stopped")
        else:
            st = broker.status()
            print(
                f"running={st.running} pid={st.pid} serving={st.serving} bootstrap={st.bootstrap}"
            )
            return 0 if st.running and st.serving else 3
    except (BrokerError, TimeoutError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
