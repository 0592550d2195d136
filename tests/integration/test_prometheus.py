"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes a real worker and a real API (its
notifier on, paging a local webhook receiver) every second and evaluates the project's rule
files while an evening surge in 田子坊 is replayed; its HTTP API then answers with the surge
lanes' 1-hour crowd-flow peaks, exactly as computed here from the readings, and every query of
every Grafana dashboard panel, with the dashboard's variables set to a site and a zone, returns
data (the per-zone ones of that zone only).

Every read of a recorded series waits for the condition (the rules are evaluated every second,
but not necessarily since the value they record changed), never for time.

Never skipped: without the prometheus binary (``infra/scripts/prereqs.sh --test`` installs it) or
a broker, the test fails.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from models.contracts import SensorKind, SensorReading
from models.zones import load_bundled_zones
from tests.support.parts import REPO, Worker, free_port, kafka_kwargs
from tools.producing import encode_reading
from tools.simulator import generate, plan

pytestmark = pytest.mark.integration

PROMETHEUS = Path("/usr/bin/prometheus")
RULE_FILES = sorted((REPO / "infra" / "prometheus" / "rules").glob("*.yml"))
DASHBOARD = REPO / "infra" / "grafana" / "dashboards" / "puhui-overview.json"
CST = timezone(timedelta(hours=8))
START = datetime(2026, 10, 1, 18, 30, tzinfo=CST)
#: What makes the people counts (cameras; gates where a zone has no camera) and a fire alarm.
REPLAYED_KINDS = {SensorKind.PEOPLE_COUNT, SensorKind.ENTRIES, SensorKind.EXITS, SensorKind.SMOKE}


@dataclass
class Prometheus:
    """A Prometheus server of this test, and its HTTP API."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now: [{"metric": {...}, "value": [ts, "v"]}, ...]."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])

    def values(self, expr: str) -> dict[frozenset[tuple[str, str]], float]:
        return {
            frozenset(item["metric"].items()): float(item["value"][1]) for item in self.query(expr)
        }

    def wait_for(
        self, expr: str, ok: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result = self.query(expr)
        while not ok(result):
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr}: not as expected after {timeout}s: {result}")
            time.sleep(0.5)
            result = self.query(expr)
        return result

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Starts Prometheus on a free loopback port, scraping ``worker`` (and the API at
    ``api_port``, if given) every second with the project's rule files evaluated every second;
    stopped (SIGTERM, then SIGKILL) at the end."""
    assert PROMETHEUS.is_file(), (
        "no /usr/bin/prometheus: run `bash infra/scripts/prereqs.sh --test`"
    )
    started: list[Prometheus] = []

    def start(worker: Worker, api_port: int | None = None) -> Prometheus:
        port = free_port()
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in RULE_FILES],
            "scrape_configs": [
                {
                    "job_name": "puhui-worker",  # the job name the alerting rules expect
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{worker.env['PUHUI_WORKER_PORT']}"]}
                    ],
                }
            ],
        }
        if api_port is not None:
            config["scrape_configs"].append(
                {
                    "job_name": "puhui-api",
                    "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}],
                }
            )
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        log = tmp_path / "prometheus.log"
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = Prometheus(f"http://127.0.0.1:{port}", proc, log)
        started.append(server)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"prometheus exited {proc.returncode}:\n{server.tail()}"
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, f"prometheus not ready:\n{server.tail()}"
            time.sleep(0.2)

    yield start
    for server in started:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[str]]]:
    """A local webhook receiver answering 200 to every POST: (its URL, the paths posted)."""
    posted: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            posted.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", posted
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[[Worker, str], int]]:
    """Starts ``puhui api`` with the worker's settings and the notifier on (a webhook secret and
    an escalation policy paging ``receiver``); returns its port once ``/readyz`` answers 200."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(worker: Worker, receiver: str) -> int:
        policy = tmp_path / "escalation.yaml"
        policy.write_text(
            yaml.safe_dump(
                {
                    "targets": {"duty-desk": {"url": f"{receiver}/hooks/duty-desk"}},
                    "defaults": {
                        "notify_from": "yellow",
                        "escalate_from": "orange",
                        "repeat": "10m",
                        "steps": [{"after": 0, "targets": ["duty-desk"]}],
                    },
                }
            ),
            encoding="utf-8",
        )
        port = free_port()
        env = {
            **worker.env,
            "PUHUI_HTTP_HOST": "127.0.0.1",
            "PUHUI_HTTP_PORT": str(port),
            "PUHUI_WEBHOOK_SECRET": "a-test-secret-of-32-characters!!",
            "PUHUI_ESCALATION_FILE": str(policy),
        }
        log = tmp_path / "api.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "api"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        procs.append(proc)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"puhui api exited:\n{log.read_text(errors='replace')}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return port
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
            time.sleep(0.3)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title and refId, PromQL) of every panel's every query, rows' inner panels too."""
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield f"{inner['title']} {target['refId']}", target["expr"]


def people_peaks(readings: list[SensorReading]) -> dict[str, float]:
    """Each zone's largest people count: the sum of its cameras' latest counts after each
    reading (readings in event-time order, as the engine sees them per zone)."""
    latest: dict[str, dict[str, float]] = defaultdict(dict)
    peaks: dict[str, float] = {}
    for reading in readings:
        if reading.kind == SensorKind.PEOPLE_COUNT:
            latest[reading.zone_id][reading.sensor_id] = reading.value
            people = sum(latest[reading.zone_id].values())
            peaks[reading.zone_id] = max(peaks.get(reading.zone_id, 0.0), people)
    return peaks


def produce(bootstrap: str, topic: str, readings: list[SensorReading]) -> None:
    producer = KafkaProducer(**kafka_kwargs(bootstrap), acks="all", linger_ms=5)
    try:
        for reading in readings:
            producer.send(topic, key=reading.zone_id.encode(), value=encode_reading(reading))
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def value_of(result: list[dict[str, Any]]) -> float:
    [item] = result
    return float(item["value"][1])


def test_prometheus_answers_the_surge_peaks_and_records_the_rules(
    make_worker: Callable[..., Worker],
    start_prometheus: Callable[..., Prometheus],
    start_api: Callable[[Worker, str], int],
    webhook_receiver: tuple[str, list[str]],
    kafka_bootstrap: str,
) -> None:
    zones = load_bundled_zones()
    hour = generate(zones, START, timedelta(hours=1), scenario="surge", seed=11)
    # The hour's cameras, gates and smoke detectors. The other kinds the simulator adds
    # (heartbeats, circuits, manholes, ...: 70 % of the hour's records) change no people count,
    # only the test's length.
    readings = [r for r in hour if r.kind in REPLAYED_KINDS]
    surges = plan(zones, START, timedelta(hours=1), scenario="surge", seed=11).surges
    expected = people_peaks(readings)
    lanes = [surge.zone_id for surge in surges]
    assert lanes, "the surge scenario surges no lane"
    # A surge crowds a lane past 5 persons/m² (红), far above any ordinary zone.
    for lane in lanes:
        assert expected[lane] >= 5 * zones[lane].area_m2 * 0.9, (lane, expected[lane])

    worker = make_worker()
    receiver_url, posted = webhook_receiver
    api_port = start_api(worker, receiver_url)
    prometheus = start_prometheus(worker, api_port)
    prometheus.wait_for('up{job=~"puhui-.*"} == 1', lambda r: len(r) == 2, timeout=30)

    produce(kafka_bootstrap, worker.topics.readings, readings)
    prometheus.wait_for(
        "sum(puhui_readings_processed_total)",
        lambda r: bool(r) and value_of(r) == len(readings),
        timeout=90,
    )

    # The 1-hour crowd-flow peak of each surge lane: the worker's gauge, and the recording rule
    # with the lane's site and grid joined from the zone registry.
    for lane in lanes:
        zone = zones[lane]
        raw = prometheus.wait_for(
            f'puhui_zone_people_peak{{window="1h", zone="{lane}"}}',
            lambda r, lane=lane: bool(r) and value_of(r) == expected[lane],
        )
        assert raw[0]["metric"]["job"] == "puhui-worker"
        recorded = prometheus.wait_for(
            f'zone:puhui_zone_people_peak:max{{window="1h", zone="{lane}"}}',
            lambda r, lane=lane: bool(r) and value_of(r) == expected[lane],
        )
        labels = recorded[0]["metric"]
        assert (labels["site"], labels["grid"]) == (zone.site, zone.grid.value)
        assert (labels["name_zh"], labels["name_en"]) == (zone.name.zh, zone.name.en)

    site = zones[lanes[0]].site
    assert value_of(
        prometheus.query(f'site:puhui_zone_people_peak:max{{window="1h", site="{site}"}}')
    ) == max(expected[lane] for lane in lanes)

    # Recording rules produce series: sites, grids, district, throughput, latency, lag, ages.
    reported = {z.id for z in zones}
    assert {
        item["metric"]["zone"] for item in prometheus.query("zone:puhui_zone_people:max")
    } == reported
    sites = prometheus.values("site:puhui_zone_people:sum")
    assert {dict(key)["site"] for key in sites} == {z.site for z in zones}
    grids = prometheus.values("grid:puhui_zone_people:sum")
    assert {dict(key)["grid"] for key in grids} == {z.grid.value for z in zones}
    [district] = prometheus.values("district:puhui_zone_people:sum").values()
    assert district == pytest.approx(sum(sites.values()))
    assert value_of(prometheus.query("district:puhui_zone_people:max_over_time1h")) >= district
    assert len(prometheus.query("site:puhui_zone_density:ratio")) == len(sites)
    # Rates recorded over 5 minutes: wait for the evaluation that has seen every kind's readings
    # (every kind has a series from the start, at 0).
    replayed = {kind.value for kind in REPLAYED_KINDS}
    kinds = prometheus.wait_for(
        "kind:puhui_readings_processed:rate5m > 0",
        lambda r: {item["metric"]["kind"] for item in r} == replayed,
    )
    assert len(kinds) == len(replayed)
    assert {
        item["metric"]["kind"] for item in prometheus.query("kind:puhui_readings_processed:rate5m")
    } == {kind.value for kind in SensorKind}
    latency = prometheus.wait_for(
        "quantile:puhui_alert_latency_seconds:histogram_quantile",
        lambda r: (
            {item["metric"]["quantile"] for item in r} == {"0.5", "0.9", "0.99"}
            and all(math.isfinite(float(item["value"][1])) for item in r)
        ),
    )
    assert all(float(item["value"][1]) >= 0 for item in latency), latency
    ages = prometheus.wait_for(
        "zone:puhui_zone_last_reading:age_seconds",
        lambda r: {item["metric"]["zone"] for item in r} == reported,
    )
    assert all(0 <= float(item["value"][1]) < 120 for item in ages), ages
    assert prometheus.query("risk_level:puhui_alerts_open:sum")

    # Consumer lag per partition: the readings topic is worked off to 0 on all 4 partitions.
    topic = worker.topics.readings
    lag = prometheus.wait_for(
        f'puhui_consumer_lag{{topic="{topic}"}}',
        lambda r: len(r) == 4 and all(float(i["value"][1]) == 0 for i in r),
        timeout=30,
    )
    assert sorted(item["metric"]["partition"] for item in lag) == ["0", "1", "2", "3"]
    prometheus.wait_for(  # recorded at the next evaluation
        f'topic:puhui_consumer_lag:sum{{topic="{topic}"}}',
        lambda r: bool(r) and value_of(r) == 0,
        timeout=10,
    )

    # Every rule evaluates without error, and no pipeline alert fires on a healthy run.
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == sum(
        len(g["rules"]) for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"]
    )
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    firing = prometheus.query('ALERTS{alertstate="firing"}')
    assert [item["metric"]["alertname"] for item in firing] == []

    # The notifier paged the receiver about the surge's alerts, and says so.
    prometheus.wait_for(
        'sum(puhui_webhook_attempts_total{outcome="delivered"})',
        lambda r: bool(r) and value_of(r) >= 1,
    )
    assert posted and all(path == "/hooks/duty-desk" for path in posted), posted

    # Every query of every dashboard panel returns data, with the dashboard's variables set to
    # the first surge lane and its site, as Grafana sends them; panels that show zones show
    # that zone only.
    lane = lanes[0]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {"$__rate_interval": "1m", "$site": zones[lane].site, "$zone": lane}
    empty: dict[str, str] = {}
    checked = 0
    for where, template in panel_queries(dashboard):
        expr = template
        for name, value in variables.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, (where, expr)
        try:
            result = prometheus.wait_for(expr, bool, timeout=20)
        except AssertionError:
            empty[where] = expr
            continue
        checked += 1
        if 'zone=~"$zone"' in template:
            assert {item["metric"].get("zone", lane) for item in result} == {lane}, where
    assert empty == {}, "dashboard queries without data"
    assert checked >= 40
