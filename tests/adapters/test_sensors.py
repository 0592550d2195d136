"""The worker's Faust monitor exports exactly what Faust's own Prometheus monitor exports."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.faust_compat.sensors import CachedPrometheusMonitor


class Thing:
    """Stands for a message, a stream, a table, a producer (hashable, takes attributes)."""

    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)


def samples(registry: CollectorRegistry) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
        and "latency" not in s.name  # timings differ from run to run
        and "runtime" not in s.name
    )


def drive(monitor: PrometheusMonitor) -> None:
    stream = Thing(shortlabel="Stream: Topic: puhui.sensor-readings", task_owner=Thing())
    table = Thing(name="zone-state")
    for round_ in range(2):
        for i in range(5):
            tp = TP("puhui.sensor-readings", i % 2)
            message = Thing(time_in=None)
            monitor.on_message_in(tp, i, message)
            state = monitor.on_stream_event_in(tp, i, stream, Thing())  # type: ignore[arg-type]
            monitor.on_table_get(table, "z")  # type: ignore[arg-type]
            monitor.on_table_set(table, "z", {})  # type: ignore[arg-type]
            sent = monitor.on_send_initiated(None, "zone-state-changelog", None, 1, 2)  # type: ignore[arg-type]
            monitor.on_send_completed(None, sent, None)  # type: ignore[arg-type]
            monitor.on_stream_event_out(tp, i, stream, Thing(), state)  # type: ignore[arg-type]
            monitor.on_message_out(tp, i, message)  # type: ignore[arg-type]
        if round_ == 0:
            monitor.on_rebalance_start(Thing(rebalancing_count=1))  # type: ignore[arg-type]


def test_cached_monitor_exports_what_faust_exports_across_a_rebalance() -> None:
    plain, cached = CollectorRegistry(), CollectorRegistry()
    drive(PrometheusMonitor(metrics=FaustMetrics.create(plain, "faust")))
    drive(CachedPrometheusMonitor(metrics=FaustMetrics.create(cached, "faust")))
    assert samples(cached) == samples(plain)
    names = {name for name, _, _ in samples(plain)}
    assert "faust_messages_received_per_topic_total" in names
