"""Metrics that read 0 rather than "No data", latency buckets that reach a minute, and HTTP
latency without the event stream.

Prometheus has no series for a labelled counter until its first increment: a healthy worker
would show no dead-letter rate at all, and the first reject would be a series born at 1, which
``rate()`` and ``increase()`` do not see. So every known label value starts at 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from alerts.notify import NotificationKind, load_bundled_escalation
from api.metrics import HttpMetrics, MetricsMiddleware
from infra.db import make_engine
from infra.settings import Settings
from models.contracts import REASONS, Change, CommandAction, Level, ReportCategory, Risk, SensorKind
from models.zones import load_bundled_zones
from notifier.service import ATTEMPT_OUTCOMES, Notifier
from streams import handlers
from streams.faust_compat.sensors import CachedPrometheusMonitor
from streams.metrics import LATENCY_BUCKETS, REJECT_REASONS, PipelineMetrics

pytestmark = pytest.mark.unit


def test_every_worker_counter_starts_at_zero_for_every_known_label() -> None:
    registry = CollectorRegistry()
    PipelineMetrics.create(registry)
    value = registry.get_sample_value
    assert handlers.INTERNAL_ERROR in REJECT_REASONS
    assert set(REASONS) < set(REJECT_REASONS)
    for reason in REJECT_REASONS:
        assert value("puhui_readings_rejected_total", {"reason": reason}) == 0, reason
    for kind in SensorKind:
        assert value("puhui_readings_processed_total", {"kind": kind.value}) == 0, kind
    for category in ReportCategory:
        assert value("puhui_reports_processed_total", {"category": category.value}) == 0
    for risk in Risk:
        for level in Level:
            assert value("puhui_alerts_total", {"risk": risk.value, "level": level.value}) == 0
    for change in Change:
        assert value("puhui_alert_records_total", {"change": change.value}) == 0, change
    for action in CommandAction:
        for outcome in ("applied", "duplicate", "not_open"):
            labels = {"action": action.value, "outcome": outcome}
            assert value("puhui_commands_total", labels) == 0, labels


def test_input_topics_read_zero_before_their_first_record_and_after_each_rebalance() -> None:
    registry = CollectorRegistry()
    topics = ("t1.puhui.sensor-readings", "t1.puhui.volunteer-reports")
    monitor = CachedPrometheusMonitor(
        metrics=FaustMetrics.create(registry, "faust"), known_topics=topics
    )
    received = "faust_messages_received_per_topic_total"
    for topic in topics:
        assert registry.get_sample_value(received, {"topic": topic}) == 0, topic
    monitor._clear_partition_related_metrics()  # what Faust does at every rebalance
    for topic in topics:
        assert registry.get_sample_value(received, {"topic": topic}) == 0, topic


def test_latency_buckets_reach_a_minute() -> None:
    assert max(LATENCY_BUCKETS) >= 60
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    metrics.alert_latency.observe(45.0)
    below_60 = registry.get_sample_value("puhui_alert_latency_seconds_bucket", {"le": "60.0"})
    below_30 = registry.get_sample_value("puhui_alert_latency_seconds_bucket", {"le": "30.0"})
    assert (below_30, below_60) == (0, 1)


def test_the_notifier_starts_every_target_and_outcome_at_zero(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'puhui.db'}",
        webhook_secret="not-a-real-secret",
        kafka_security_protocol="PLAINTEXT",  # never connects
    )
    registry = CollectorRegistry()
    engine = make_engine(settings.database_url)
    try:
        notifier = Notifier.from_settings(settings, engine, registry=registry)
    finally:
        engine.dispose()
    assert notifier is not None
    zones = load_bundled_zones()
    targets = set(load_bundled_escalation(set(zones.sites())).targets)
    assert targets
    value = registry.get_sample_value
    for kind in NotificationKind:
        assert value("puhui_notifications_total", {"kind": kind.value}) == 0, kind
    for target in targets:
        assert value("puhui_notifications_given_up_total", {"target": target}) == 0, target
        for outcome in ATTEMPT_OUTCOMES:
            labels = {"target": target, "outcome": outcome}
            assert value("puhui_webhook_attempts_total", labels) == 0, labels


def test_http_latency_leaves_event_streams_out() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics.create(registry)
    app = FastAPI()

    @app.get("/things")
    def things() -> dict[str, int]:
        return {"things": 1}

    @app.get("/things/stream")
    def stream() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            for n in range(3):
                await asyncio.sleep(0.05)
                yield f"data: {n}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    with TestClient(app) as client:
        assert client.get("/things").status_code == 200
        answer = client.get("/things/stream")
        assert answer.status_code == 200 and answer.text.count("data:") == 3

    value = registry.get_sample_value
    assert value("puhui_http_request_duration_seconds_count", {"route": "/things"}) == 1
    assert value("puhui_http_request_duration_seconds_count", {"route": "/things/stream"}) is None
    assert value("puhui_http_stream_duration_seconds_count", {"route": "/things/stream"}) == 1
    streamed = value("puhui_http_stream_duration_seconds_sum", {"route": "/things/stream"})
    assert streamed is not None and streamed >= 0.15
    for route in ("/things", "/things/stream"):
        labels = {"method": "GET", "route": route, "status": "200"}
        assert value("puhui_http_requests_total", labels) == 1, route
