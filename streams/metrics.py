"""Prometheus metrics of the worker, on a registry that is passed in (tests use a fresh one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alerts.zone.keys import Outcome
from models.contracts import (
    REASONS,
    Change,
    CommandAction,
    Level,
    ReportCategory,
    Risk,
    SensorKind,
)

#: Up to a minute: a backlog after a broker or database outage delays alerts by tens of seconds,
#: and a histogram whose last bucket is 2.5 s reads every such delay as "2.5 s" (then +Inf).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
#: Dead-letter reason codes: the validation codes of models/contracts.py and the worker's own
#: (streams/handlers.py: a record whose handling raised).
REJECT_REASONS = (*REASONS, "internal_error")
#: Outcomes of an operator command (alerts/zone/commands.py: apply_command).
COMMAND_OUTCOMES = tuple(outcome.value for outcome in Outcome)


@dataclass(frozen=True, slots=True)
class PipelineMetrics:
    """The worker's own metrics (Faust's sensor metrics sit beside them on ``/metrics``)."""

    readings_processed: Counter
    dead_letters: Counter
    duplicates: Counter
    readings_rejected: Counter  # deprecated: dead_letters (kept one release)
    readings_duplicate: Counter  # deprecated: duplicates (kept one release)
    readings_stale: Counter
    readings_rekeyed: Counter
    reports_processed: Counter
    zone_people: Gauge
    zone_density: Gauge
    zone_people_peak: Gauge
    zone_inflow: Gauge
    zone_outflow: Gauge
    alerts: Counter
    alert_records: Counter
    processing_latency: Histogram
    alert_latency: Histogram
    commands: Counter
    db_batches: Counter
    db_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        """Register every metric on ``registry``, every labelled counter with a series per
        known label value (see :meth:`initialise`)."""
        metrics = cls._register(registry)
        metrics.initialise()
        return metrics

    def initialise(self) -> None:
        """Create each labelled counter's series for every known label value, at 0: a healthy
        worker then shows a rate of 0 dead letters (not "No data"), and the first reject is an
        increase Prometheus can see (a series born at 1 has no rate)."""
        for reason in REJECT_REASONS:
            self.readings_rejected.labels(reason)
        for kind in SensorKind:
            self.readings_processed.labels(kind.value)
        for category in ReportCategory:
            self.reports_processed.labels(category.value)
        for risk in Risk:
            for level in Level:
                self.alerts.labels(risk.value, level.value)
        for change in Change:
            self.alert_records.labels(change.value)
        for action in CommandAction:
            for outcome in COMMAND_OUTCOMES:
                self.commands.labels(action.value, outcome)

    def initialise_topics(self, topics: Iterable[str]) -> None:
        """The same for the counters labelled by input topic (their names are known later)."""
        for topic in topics:
            self.duplicates.labels(topic)
            for reason in REJECT_REASONS:
                self.dead_letters.labels(topic, reason)

    @classmethod
    def _register(cls, registry: CollectorRegistry) -> PipelineMetrics:
        return cls(
            readings_processed=Counter(
                "puhui_readings_processed",
                "Valid, first-seen readings processed, by sensor kind",
                ["kind"],
                registry=registry,
            ),
            dead_letters=Counter(
                "puhui_dead_letters",
                "Input records sent to the dead-letter topic, by the topic they came from and "
                "reason code",
                ["topic", "reason"],
                registry=registry,
            ),
            duplicates=Counter(
                "puhui_duplicates",
                "Input records that changed nothing because they were seen before (a reading "
                "of the same sensor and time, a report or command id already handled), by topic",
                ["topic"],
                registry=registry,
            ),
            readings_rejected=Counter(
                "puhui_readings_rejected",
                "DEPRECATED (use puhui_dead_letters_total): records of every input topic sent "
                "to the dead-letter topic, by reason code",
                ["reason"],
                registry=registry,
            ),
            readings_duplicate=Counter(
                "puhui_readings_duplicate",
                "DEPRECATED (use puhui_duplicates_total): repeated records of every input topic",
                registry=registry,
            ),
            readings_stale=Counter(
                "puhui_readings_stale",
                "Readings older than their sensor's latest (out of order, or older data "
                "replayed), dropped: they cannot change the present",
                registry=registry,
            ),
            readings_rekeyed=Counter(
                "puhui_readings_rekeyed",
                "Valid readings re-sent keyed by their zone id (producer did not key them)",
                registry=registry,
            ),
            reports_processed=Counter(
                "puhui_reports_processed",
                "Volunteer reports accepted",
                ["category"],
                registry=registry,
            ),
            zone_people=Gauge(
                "puhui_zone_people", "People in the zone now", ["zone"], registry=registry
            ),
            zone_density=Gauge(
                "puhui_zone_density",
                "Crowd density in the zone now, persons per m² of walkable area",
                ["zone"],
                registry=registry,
            ),
            zone_people_peak=Gauge(
                "puhui_zone_people_peak",
                "Largest people count in the zone over the window of event time (5m, 1h, day)",
                ["zone", "window"],
                registry=registry,
            ),
            zone_inflow=Gauge(
                "puhui_zone_inflow_per_minute",
                "People entering the zone per minute through its gates (last 5 min, event time)",
                ["zone"],
                registry=registry,
            ),
            zone_outflow=Gauge(
                "puhui_zone_outflow_per_minute",
                "People leaving the zone per minute through its gates (last 5 min, event time)",
                ["zone"],
                registry=registry,
            ),
            alerts=Counter(
                "puhui_alerts",
                "Alerts raised or escalated, by risk and the level reached",
                ["risk", "level"],
                registry=registry,
            ),
            alert_records=Counter(
                "puhui_alert_records",
                "Records published on puhui.alerts, by change",
                ["change"],
                registry=registry,
            ),
            processing_latency=Histogram(
                "puhui_processing_latency_seconds",
                "Wall time the worker spends on one record, from receipt to alerts sent",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            alert_latency=Histogram(
                "puhui_alert_latency_seconds",
                "End to end: from the reading's produce time (Kafka timestamp) to its alert "
                "record handed to the producer",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            commands=Counter(
                "puhui_commands",
                "Operator commands, by action and outcome (applied, duplicate, not_open)",
                ["action", "outcome"],
                registry=registry,
            ),
            db_batches=Counter(
                "puhui_db_batches",
                "Batches of alert records written to the database",
                registry=registry,
            ),
            db_errors=Counter(
                "puhui_db_errors",
                "Failed attempts to write a batch to the database (retried)",
                registry=registry,
            ),
        )


class OpenAlertsCollector(Collector):
    """``puhui_alerts_open{risk,level}``, counted at scrape time from the engine's own state, so
    it is right after a restart too. ``open_alerts`` yields (risk, level) of each open alert."""

    def __init__(self, open_alerts: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self._open_alerts = open_alerts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = {(risk.value, level.value): 0 for risk in Risk for level in Level}
        for key in self._open_alerts():
            counts[key] = counts.get(key, 0) + 1
        family = GaugeMetricFamily(
            "puhui_alerts_open", "Alerts open now, by risk and level", labels=["risk", "level"]
        )
        for (risk, level), n in sorted(counts.items()):
            family.add_metric([risk, level], n)
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "puhui_alerts_open", "Alerts open now, by risk and level", labels=["risk", "level"]
        )
