"""The Grafana dashboard and the Prometheus rules query only metrics the project exports.

Exported names are gathered from live registries — the worker's metrics, the API's, the ops
collector of ``streams/lag.py`` and Faust's sensor metrics — expanded to the sample names
Prometheus stores for each metric type (a counter ``x`` is queried as ``x_total``, a histogram
as ``x_bucket`` / ``x_sum`` / ``x_count``), plus the recording rules' names and ``up``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from faust.types import TP
from prometheus_client import CollectorRegistry

from api.metrics import HttpMetrics
from entrypoints.apps import build_api
from infra.settings import Settings
from models.zones import load_bundled_zones
from notifier.service import NotifierMetrics
from streams.app import create_app
from streams.cases import case_commands_counter
from streams.lag import PartitionLag, WorkerCollector, ZoneActivity, faust_consumer_lag
from streams.metrics import OpenAlertsCollector, PipelineMetrics
from streams.series import SeriesPendingCollector

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "infra" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULE_FILES = sorted((REPO / "infra" / "prometheus" / "rules").glob("*.yml"))

#: Sample names Prometheus stores for each metric type (OpenMetrics / prometheus_client).
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}
#: Series Prometheus itself writes for every target.
PROMETHEUS_SERIES = {"up"}

# ---------------------------------------------------------------- PromQL metric names ----
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$", re.DOTALL)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels left out)."""
    if match := _LABEL_VALUES.match(expr):  # a Grafana variable query
        expr = match.group(1)
    for pattern in (_STRING, _VARIABLE, _MATCHERS, _RANGE, _GROUPING):
        expr = pattern.sub(" ", expr)
    return {
        name
        for name, call in _IDENTIFIER.findall(expr)
        if not call and name.lower() not in _KEYWORDS
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('sum by (job) (rate(x_total{topic=~".*puhui\\\\.a"}[5m]))', {"x_total"}),
        ("a:b:c > 100 and deriv(a:b:c[10m]) >= 0", {"a:b:c"}),
        ("max by (zone) (m) * on (zone) group_left (site, grid) info", {"m", "info"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
        ("count(age > 600) or vector(0)", {"age"}),
        ("time() - max_over_time(ts[1h] offset 10m) > 1e3", {"ts"}),
        ("sum without (instance) (x) / ignoring (reason) y", {"x", "y"}),
        ('label_values(zone:info:max{site=~"$site"}, zone)', {"zone:info:max"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# ------------------------------------------------------------------ what is exported ----
def sample_names(registry: CollectorRegistry) -> set[str]:
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SAMPLE_SUFFIXES[family.type]
    }


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def _registries() -> tuple[CollectorRegistry, CollectorRegistry]:
    """The worker's metrics (its own, the ops collector, Faust's) and the API's."""
    worker = CollectorRegistry()
    PipelineMetrics.create(worker)
    worker.register(OpenAlertsCollector(list))
    worker.register(WorkerCollector(load_bundled_zones(), lag=list, last_reading=dict))
    worker.register(SeriesPendingCollector(lambda: 0))
    FaustMetrics.create(worker, "faust")  # streams/app.py: name_prefix="faust"
    case_commands_counter(worker)  # streams/cases.py
    api = CollectorRegistry()
    HttpMetrics.create(api)
    NotifierMetrics.create(api)  # with PUHUI_WEBHOOK_SECRET set
    return worker, api


@pytest.fixture(scope="module")
def exported() -> set[str]:
    worker, api = _registries()
    return sample_names(worker) | sample_names(api)


def test_the_gathered_names_are_what_the_worker_and_api_serve(
    exported: set[str], tmp_path: Path
) -> None:
    """The registries above are the ones the real factories build (nothing missing, nothing
    extra), so the name check below cannot drift from the code."""
    settings = Settings(
        state_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'puhui.db'}",
        webhook_secret="not-a-real-secret",  # the notifier (and its metrics) on
        kafka_security_protocol="PLAINTEXT",  # never connects
    )
    worker = create_app(settings).registry
    api = build_api(settings).state.metrics_registry
    assert sample_names(worker) | sample_names(api) == exported


def test_exported_names_include_the_ops_metrics(exported: set[str]) -> None:
    assert {
        "puhui_consumer_lag",
        "puhui_zone_info",
        "puhui_zone_last_reading_timestamp_seconds",
        "puhui_zone_people_peak",
        "puhui_alert_latency_seconds_bucket",
        "puhui_readings_processed_total",
        "puhui_http_requests_total",
        "faust_messages_received_per_topic_total",
    } <= exported
    assert "puhui_readings_processed" not in exported  # a counter is only queried as _total


def test_docs_ops_describes_every_puhui_metric(exported: set[str]) -> None:
    """docs/ops.md lists every metric of the worker and the API with its meaning."""
    text = (REPO / "docs" / "ops.md").read_text(encoding="utf-8")
    families = {
        family.name + ("_total" if family.type == "counter" else "")
        for registry in _registries()
        for family in registry.collect()
        if family.name.startswith("puhui_")
    }
    assert families
    assert sorted(name for name in families if f"`{name}" not in text) == []


# ------------------------------------------------------------------------- dashboard ----
def load_dashboard(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep theirs inside


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']}",
                query["query"] if isinstance(query, dict) else query,
            )


@pytest.fixture(scope="module", params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_dashboard(request.param)


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["puhui-overview.json"]


def test_dashboard_queries_use_exported_metrics_only(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    known = exported | recorded_names() | PROMETHEUS_SERIES
    unknown = {
        where: sorted(metric_names(expr) - known)
        for where, expr in queries(dashboard)
        if metric_names(expr) - known
    }
    assert unknown == {}
    assert all(metric_names(expr) for _, expr in queries(dashboard)), "a query selects nothing"


def test_dashboard_covers_the_overview(dashboard: dict[str, Any]) -> None:
    """People and density per zone and site, peaks, alerts by level, throughput, lag, dead
    letters, latency quantiles."""
    used = set().union(*(metric_names(expr) for _, expr in queries(dashboard)))
    assert {
        "zone:puhui_zone_people:max",
        "zone:puhui_zone_density:max",
        "site:puhui_zone_people:sum",
        "site:puhui_zone_density:ratio",
        "zone:puhui_zone_people_peak:max",
        "puhui_alerts_total",
        "risk_level:puhui_alerts_open:sum",
        "kind:puhui_readings_processed:rate5m",
        "topic:puhui_consumer_lag:sum",
        "reason:puhui_dead_letters:rate5m",
        "quantile:puhui_alert_latency_seconds:histogram_quantile",
        "puhui_notifications_total",
        "puhui_webhook_attempts_total",
        "puhui_notifications_given_up_total",
        "puhui_notifier_open_alerts",
    } <= used


def test_zone_variable_filters_every_per_zone_panel(dashboard: dict[str, Any]) -> None:
    """A panel that shows zones (any zone: record) follows both the site and the zone picked;
    site, grid and district panels follow the site at most."""
    unfiltered = [
        where
        for where, expr in queries(dashboard)
        if where.startswith("panel")
        and any(name.startswith("zone:") for name in metric_names(expr))
        and not ('zone=~"$zone"' in expr and 'site=~"$site"' in expr)
    ]
    assert unfiltered == []


def test_dashboard_queries_parse(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """Every query, with Grafana's variables filled in, is valid PromQL (promtool parses it as
    the expression of a recording rule)."""
    fill = {"$__rate_interval": "1m", "$site": ".*", "$zone": ".*"}
    rules = []
    for i, (_, expr) in enumerate(queries(dashboard)):
        if match := _LABEL_VALUES.match(expr):
            expr = match.group(1)
        for variable, value in fill.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}), encoding="utf-8")
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: run `bash infra/scripts/prereqs.sh --test`"
    result = subprocess.run(
        [exe, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_importable_and_provisionable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "puhui-overview"
    assert dashboard["title"]
    assert dashboard["id"] is None  # Grafana assigns it
    assert dashboard["schemaVersion"] >= 39  # Grafana 11
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_dashboard_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_rules_query_exported_metrics_only(exported: set[str]) -> None:
    known = exported | recorded_names() | PROMETHEUS_SERIES
    unknown = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                names = metric_names(rule["expr"])
                assert names, rule
                if names - known:
                    unknown[rule.get("record") or rule["alert"]] = sorted(names - known)
    assert unknown == {}


# ---------------------------------------------------------------------- provisioning ----
def test_grafana_provisioning() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    [source] = datasources["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    prometheus = yaml.safe_load(
        (REPO / "infra" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    assert source["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "puhui.yml").read_text(encoding="utf-8")
    )
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


# --------------------------------------------- the ops collector behind those queries ----
class FakeConsumer:
    """What faust_consumer_lag reads of Faust's consumer."""

    def __init__(self, assigned: dict[Any, tuple[int | None, int | None]]) -> None:
        self._assigned = assigned
        self._committed_offset = {tp: c for tp, (_, c) in assigned.items()}

    def assignment(self) -> set[Any]:
        return set(self._assigned)

    def highwater(self, tp: Any) -> int | None:
        highwater = self._assigned[tp][0]
        if highwater is None:
            raise AssertionError("Partition is not assigned")  # as aiokafka does
        return highwater


def fake_app(consumer: FakeConsumer, *, started: bool = True, seen: dict[Any, int] | None = None):  # type: ignore[no-untyped-def]
    return SimpleNamespace(
        started=started,
        consumer=consumer,
        monitor=SimpleNamespace(tp_end_offsets=seen or {}),
        topics=SimpleNamespace(acks_enabled_for=lambda topic: "changelog" not in topic),
    )


def test_consumer_lag_is_highwater_minus_committed() -> None:
    readings0, readings1, alerts0 = TP("r", 0), TP("r", 1), TP("a", 0)
    changelog = TP("puhui-zone-state-changelog", 0)
    unfetched = TP("r", 2)
    consumer = FakeConsumer(
        {
            readings0: (1104, 1000),
            readings1: (80, None),  # never committed: counted from offset 0
            alerts0: (12, 12),
            changelog: (500, None),  # read, never committed: not a lag
            unfetched: (None, 3),  # no highwater yet, none seen by the monitor either
        }
    )
    read = faust_consumer_lag(fake_app(consumer))  # type: ignore[arg-type]
    assert read() == [PartitionLag("a", 0, 0), PartitionLag("r", 0, 104), PartitionLag("r", 1, 80)]
    seen = {unfetched: 10}
    read = faust_consumer_lag(fake_app(consumer, seen=seen))  # type: ignore[arg-type]
    assert PartitionLag("r", 2, 7) in read()
    assert faust_consumer_lag(fake_app(consumer, started=False))() == []  # type: ignore[arg-type]


def test_worker_collector_families() -> None:
    zones = load_bundled_zones()
    registry = CollectorRegistry()
    registry.register(
        WorkerCollector(
            zones,
            lag=lambda: [PartitionLag("puhui.sensor-readings", 3, 42)],
            last_reading=lambda: {"tianzifang-taikang-210": 1_790_000_000.5},
        )
    )
    value = registry.get_sample_value
    assert value("puhui_consumer_lag", {"topic": "puhui.sensor-readings", "partition": "3"}) == 42
    assert (
        value(
            "puhui_zone_info",
            {
                "zone": "tianzifang-taikang-210",
                "site": "tianzifang",
                "grid": "zhongtai",
                "name_zh": "田子坊 泰康路210弄",
                "name_en": "Tianzifang, Lane 210 Taikang Road",
            },
        )
        == 1
    )
    assert value("puhui_zone_area_square_meters", {"zone": "tianzifang-taikang-210"}) == 420
    assert value("puhui_zone_capacity_persons", {"zone": "tianzifang-taikang-210"}) == 1260
    assert value("puhui_zone_capacity_persons", {"zone": "yinxing-residential"}) is None
    assert (
        value("puhui_zone_last_reading_timestamp_seconds", {"zone": "tianzifang-taikang-210"})
        == 1_790_000_000.5
    )
    assert value("puhui_zone_last_reading_timestamp_seconds", {"zone": "luone-atrium"}) is None
    info = [s for f in registry.collect() if f.name == "puhui_zone_info" for s in f.samples]
    assert len(info) == len(zones)


def test_worker_collector_serves_the_rest_when_a_source_fails() -> None:
    def broken() -> list[PartitionLag]:
        raise RuntimeError("consumer not started")

    registry = CollectorRegistry()
    registry.register(WorkerCollector(load_bundled_zones(), lag=broken, last_reading=dict))
    families = {f.name: f for f in registry.collect()}
    assert families["puhui_consumer_lag"].samples == []
    assert families["puhui_zone_info"].samples
    registry.collect()  # and again (logged once)


def test_zone_activity_notes_readings_of_known_zones() -> None:
    now = iter([100.0, 160.0, 200.0])
    activity = ZoneActivity(
        "t.puhui.sensor-readings", {"luone-atrium", "mengxi-residential"}, now.__next__
    )

    def event(key: bytes | None) -> Any:
        return SimpleNamespace(message=SimpleNamespace(key=key))

    readings, other = TP("t.puhui.sensor-readings", 1), TP("t.puhui.alerts", 1)
    activity.on_stream_event_out(readings, 5, None, event(b"luone-atrium"))
    activity.on_stream_event_out(readings, 6, None, event(b"nowhere"))  # not a zone
    activity.on_stream_event_out(readings, 7, None, event(None))  # unkeyed (re-sent keyed)
    activity.on_stream_event_out(other, 7, None, event(b"mengxi-residential"))  # not a reading
    activity.on_stream_event_out(readings, 8, None, event(b"luone-atrium"))
    assert activity.last_seen() == {"luone-atrium": 160.0}
