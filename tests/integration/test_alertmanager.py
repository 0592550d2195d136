"""Paging end to end: a real Prometheus (Debian's /usr/bin/prometheus) evaluates the project's
alerting rules and fires ``PuhuiWorkerDown`` (its worker target does not answer); a real
Alertmanager (Debian's /usr/bin/prometheus-alertmanager) with the project's configuration routes
it by team and severity and delivers it to a local webhook receiver; an alert the configuration
inhibits while a worker is down is held back.

The Alertmanager configuration is infra/alertmanager/alertmanager.yml with only its receivers'
URLs pointed at the local receiver and its group timers shortened; routes, matchers and
inhibitions are the shipped ones. The test waits on conditions (a delivery arriving, an alert's
inhibited state), never on time; ``PuhuiWorkerDown``'s own ``for: 1m`` makes it last about
70 seconds. Never skipped: without the binaries (``infra/scripts/prereqs.sh --test`` installs
them) the test fails.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.parts import REPO, free_port

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
AM_CONFIG = REPO / "infra" / "alertmanager" / "alertmanager.yml"
ALERT_RULES = REPO / "infra" / "prometheus" / "rules" / "puhui-alerts.yml"
RECORDING_RULES = REPO / "infra" / "prometheus" / "rules" / "puhui-recording.yml"


@dataclass
class Receiver:
    """A local webhook receiver: every POST's path and JSON body, in arrival order."""

    url: str
    server: ThreadingHTTPServer
    deliveries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(
        self, ok: Callable[[str, dict[str, Any]], bool], timeout: float
    ) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for path, body in self.deliveries:
                    if ok(path, body):
                        return path, body
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such delivery after {timeout}s: {self.deliveries}")
                self.changed.wait(left)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            self.send_response(200)
            self.end_headers()
            got = holder[0]
            with got.changed:
                got.deliveries.append((self.path, body))
                got.changed.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    holder.append(Receiver(f"http://127.0.0.1:{port}", server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@dataclass
class Server:
    """A Prometheus or Alertmanager process of this test."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as answer:
            return json.load(answer)

    def post(self, path: str, payload: Any) -> None:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200, answer.status

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[str, list[str], int], Server]]:
    """Starts a binary with ``args`` listening on ``port``, waits for ``/-/ready``; stops it
    (SIGTERM, then SIGKILL) at the end."""
    started: list[Server] = []

    def start(name: str, args: list[str], port: int) -> Server:
        log = tmp_path / f"{Path(name).name}.log"
        proc = subprocess.Popen([name, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", proc, log)
        started.append(server)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{server.tail()}"
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, f"{name} not ready:\n{server.tail()}"
            time.sleep(0.2)

    yield start
    for server in started:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def config_for_the_test(receiver_url: str) -> dict[str, Any]:
    """The shipped configuration, delivering to ``receiver_url/<receiver name>``, with group
    timers of a second."""
    config = yaml.safe_load(AM_CONFIG.read_text(encoding="utf-8"))
    for item in config["receivers"]:
        for webhook in item["webhook_configs"]:
            webhook["url"] = f"{receiver_url}/{item['name']}"

    def shorten(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    return config


def test_prometheus_fires_a_rule_and_alertmanager_pages_the_ops_critical_receiver(
    receiver: Receiver,
    start_server: Callable[[str, list[str], int], Server],
    tmp_path: Path,
) -> None:
    assert ALERTMANAGER.is_file(), (
        "no /usr/bin/prometheus-alertmanager: run `bash infra/scripts/prereqs.sh --test`"
    )
    assert PROMETHEUS.is_file(), "no /usr/bin/prometheus: run `bash infra/scripts/prereqs.sh`"

    am_file = tmp_path / "alertmanager.yml"
    am_file.write_text(yaml.safe_dump(config_for_the_test(receiver.url)), encoding="utf-8")
    check = subprocess.run(
        ["amtool", "check-config", str(am_file)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    am_port = free_port()
    alertmanager = start_server(
        str(ALERTMANAGER),
        [
            f"--config.file={am_file}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",  # no gossip port: a single Alertmanager
        ],
        am_port,
    )

    # A worker target nobody listens on: up{job="puhui-worker"} == 0.
    dead_worker = free_port()
    prom_port = free_port()
    prometheus_config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RECORDING_RULES), str(ALERT_RULES)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "puhui-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{dead_worker}"]}],
            }
        ],
    }
    prometheus_file = tmp_path / "prometheus.yml"
    prometheus_file.write_text(yaml.safe_dump(prometheus_config), encoding="utf-8")
    prometheus = start_server(
        str(PROMETHEUS),
        [
            f"--config.file={prometheus_file}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--rules.alert.resend-delay=1s",
        ],
        prom_port,
    )

    # PuhuiWorkerDown: pending, then firing after its `for: 1m`, then delivered.
    def worker_down(path: str, body: dict[str, Any]) -> bool:
        return body.get("status") == "firing" and any(
            alert["labels"].get("alertname") == "PuhuiWorkerDown" for alert in body["alerts"]
        )

    try:
        path, body = receiver.wait_for(worker_down, timeout=150)
    except AssertionError:
        raise AssertionError(
            f"prometheus:\n{prometheus.tail()}\nalertmanager:\n{alertmanager.tail()}"
        ) from None
    assert path == "/ops-critical"  # team ops, severity critical
    assert body["receiver"] == "ops-critical"
    [alert] = [a for a in body["alerts"] if a["labels"]["alertname"] == "PuhuiWorkerDown"]
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["team"] == "ops"
    assert alert["labels"]["instance"] == f"127.0.0.1:{dead_worker}"
    assert alert["annotations"]["runbook_url"] == "docs/runbooks.md#puhuiworkerdown"
    assert alert["annotations"]["summary"] == f"Puhui worker 127.0.0.1:{dead_worker} is down"
    assert body["groupLabels"] == {"alertname": "PuhuiWorkerDown", "job": "puhui-worker"}

    # While the worker is down, a silent zone is inhibited (docs/ops.md), a warning of
    # another kind is not: it goes to the warning receiver.
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
    alertmanager.post(
        "/api/v2/alerts",
        [
            {
                "labels": {
                    "alertname": "PuhuiZoneSilent",
                    "severity": "warning",
                    "team": "ops",
                    "zone": "tianzifang-taikang-210",
                    "site": "tianzifang",
                },
                "endsAt": ends,
            },
            {
                "labels": {
                    "alertname": "PuhuiDeadLettersHigh",
                    "severity": "warning",
                    "team": "ops",
                    "job": "puhui-worker",
                },
                "endsAt": ends,
            },
        ],
    )
    path, body = receiver.wait_for(
        lambda p, b: any(a["labels"]["alertname"] == "PuhuiDeadLettersHigh" for a in b["alerts"]),
        timeout=30,
    )
    assert (path, body["receiver"]) == ("/ops-warning", "ops-warning")
    deadline = time.monotonic() + 30
    while True:
        [silent] = alertmanager.get('/api/v2/alerts?filter=alertname="PuhuiZoneSilent"')
        if silent["status"]["state"] == "suppressed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert silent["status"]["state"] == "suppressed", silent["status"]
    [by] = silent["status"]["inhibitedBy"]
    [down] = alertmanager.get('/api/v2/alerts?filter=alertname="PuhuiWorkerDown"')
    assert by == down["fingerprint"]
    delivered = {a["labels"]["alertname"] for _, b in receiver.deliveries for a in b["alerts"]}
    assert "PuhuiZoneSilent" not in delivered
