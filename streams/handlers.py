"""What the agents do with one record: decode, call the core, then send / count.

Kept apart from the Faust wiring so it can be exercised with plain fakes. A handler never raises:
a record it cannot use goes to the dead-letter topic with its reason, and an unexpected error is
dead-lettered as ``internal_error`` (Faust would otherwise ack the message and lose it silently).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.engine import ZoneState, apply_command, process_reading
from alerts.rules import RuleSet
from models.contracts import (
    AlertRecord,
    Change,
    RejectedRecord,
    decode_command,
    decode_reading,
    decode_report,
)
from models.zones import ZoneRegistry
from streams.metrics import PipelineMetrics

log = logging.getLogger("puhui.worker")

INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from (for the dead-letter headers)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp: float | None = None  # the record's Kafka timestamp, epoch seconds


class Sender(Protocol):
    """Sends raw bytes to a topic; awaiting the call means the producer has it buffered."""

    def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> Awaitable[Any]: ...


def dead_letter_headers(source: Source, reason: str, detail: str) -> list[tuple[str, bytes]]:
    """The headers a dead letter carries (see the contract)."""
    return [
        ("error.reason", reason.encode()),
        ("error.detail", detail[:1000].encode()),
        ("source.topic", source.topic.encode()),
        ("source.partition", str(source.partition).encode()),
        ("source.offset", str(source.offset).encode()),
    ]


@dataclass
class ZoneStates:
    """Zone states in front of the worker's Faust table: a local cache of live objects, written
    through to the table (whose changelog makes them survive restarts)."""

    table: MutableMapping[str, Any]
    cache: dict[str, ZoneState] = field(default_factory=dict)

    def get(self, zone_id: str) -> ZoneState:
        state = self.cache.get(zone_id)
        if state is None:
            stored = self.table.get(zone_id)
            state = ZoneState.from_dict(stored) if stored else ZoneState(zone_id)
            self.cache[zone_id] = state
        return state

    def save(self, state: ZoneState) -> None:
        self.table[state.zone_id] = state.to_dict()

    def forget(self) -> None:
        """Drop the cache (after a rebalance the table is the truth)."""
        self.cache.clear()

    def open_alerts(self) -> Iterator[tuple[str, str]]:
        """(risk, level) of every open alert this worker holds."""
        for value in list(self.table.values()):
            for alert in (value or {}).get("alerts", {}).values():
                yield alert["risk"], alert["level"]


@dataclass
class ReadingHandler:
    """Handles one record of ``puhui.sensor-readings``."""

    zones: ZoneRegistry
    rules: RuleSet
    states: ZoneStates
    metrics: PipelineMetrics
    send_alert: Sender
    send_dead_letter: Sender
    send_reading: Sender
    now: Callable[[], float] = time.perf_counter
    wall: Callable[[], float] = time.time

    async def __call__(self, raw: bytes | None, source: Source) -> None:
        started = self.now()
        try:
            await self._handle(raw if raw is not None else b"", source)
        except Exception as exc:  # never let one escape: Faust would ack and lose the record
            log.exception(
                "internal error on %s[%d]@%d", source.topic, source.partition, source.offset
            )
            await self._dead_letter(raw or b"", source, INTERNAL_ERROR, repr(exc))
        finally:
            self.metrics.processing_latency.observe(self.now() - started)

    async def _dead_letter(self, raw: bytes, source: Source, reason: str, detail: str) -> None:
        self.metrics.readings_rejected.labels(reason).inc()
        await self.send_dead_letter(source.key, raw, dead_letter_headers(source, reason, detail))

    async def _handle(self, raw: bytes, source: Source) -> None:
        try:
            reading = decode_reading(raw, self.zones.ids())
        except RejectedRecord as rejected:
            log.info(
                "rejected %s[%d]@%d: %s", source.topic, source.partition, source.offset, rejected
            )
            await self._dead_letter(raw, source, rejected.reason, rejected.detail)
            return
        zone_key = reading.zone_id.encode()
        if source.key != zone_key:
            # All readings of a zone must meet on one partition, where its state lives.
            self.metrics.readings_rekeyed.inc()
            await self.send_reading(zone_key, raw)
            return
        zone = self.zones.get(reading.zone_id)
        assert zone is not None  # decode_reading checked it
        state = self.states.get(reading.zone_id)
        step = process_reading(state, reading, zone, self.rules)
        if step.duplicate:
            self.metrics.readings_duplicate.inc()
            return
        self.states.save(state)
        for record in step.records:
            await self.send_alert(zone_key, record.to_bytes())
            self._count(record)
            if source.timestamp is not None:
                self.metrics.alert_latency.observe(max(0.0, self.wall() - source.timestamp))
        self.metrics.readings_processed.labels(reading.kind.value).inc()
        if step.view is not None and step.view.people is not None:
            z = reading.zone_id
            self.metrics.zone_people.labels(z).set(step.view.people)
            self.metrics.zone_density.labels(z).set(step.view.density or 0.0)
            for window, peak in step.view.peaks.items():
                self.metrics.zone_people_peak.labels(z, window).set(peak)

    def _count(self, record: AlertRecord) -> None:
        self.metrics.alert_records.labels(record.change.value).inc()
        if record.change in (Change.RAISED, Change.ESCALATED):
            self.metrics.alerts.labels(record.risk.value, record.level.value).inc()
        log.info(
            "alert %s rev %d %s %s %s zone=%s",
            record.alert_id,
            record.revision,
            record.change.value,
            record.risk.value,
            record.level.value,
            record.zone_id,
        )


@dataclass
class ReportHandler:
    """Handles one record of ``puhui.volunteer-reports``: validates it (alerting on reports comes
    with the early-warning work); a bad record is dead-lettered like a bad reading."""

    zones: ZoneRegistry
    metrics: PipelineMetrics
    send_dead_letter: Sender

    async def __call__(self, raw: bytes | None, source: Source) -> None:
        try:
            report = decode_report(raw or b"", self.zones.ids())
        except RejectedRecord as rejected:
            self.metrics.readings_rejected.labels(rejected.reason).inc()
            await self.send_dead_letter(
                source.key,
                raw or b"",
                dead_letter_headers(source, rejected.reason, rejected.detail),
            )
            return
        except Exception as exc:
            log.exception("internal error on report")
            self.metrics.readings_rejected.labels(INTERNAL_ERROR).inc()
            await self.send_dead_letter(
                source.key, raw or b"", dead_letter_headers(source, INTERNAL_ERROR, repr(exc))
            )
            return
        self.metrics.reports_processed.labels(report.category.value).inc()


@dataclass
class CommandHandler:
    """Handles one record of ``puhui.alert-commands``: applies an operator's action to the open
    alert it names and publishes the resulting alert record."""

    zones: ZoneRegistry
    states: ZoneStates
    metrics: PipelineMetrics
    send_alert: Sender
    send_dead_letter: Sender

    async def __call__(self, raw: bytes | None, source: Source) -> None:
        try:
            command = decode_command(raw or b"")
            if command.zone_id not in self.zones:
                raise RejectedRecord("unknown_zone", f"zone_id: unknown zone {command.zone_id!r}")
        except RejectedRecord as rejected:
            self.metrics.readings_rejected.labels(rejected.reason).inc()
            await self.send_dead_letter(
                source.key,
                raw or b"",
                dead_letter_headers(source, rejected.reason, rejected.detail),
            )
            return
        try:
            state = self.states.get(command.zone_id)
            outcome = apply_command(state, command)
            self.metrics.commands.labels(command.action.value, outcome.outcome).inc()
            if outcome.outcome == "duplicate":
                return
            self.states.save(state)
            if outcome.record is not None:
                await self.send_alert(command.zone_id.encode(), outcome.record.to_bytes())
                self.metrics.alert_records.labels(outcome.record.change.value).inc()
            log.info(
                "command %s %s on alert %s by %s: %s",
                command.command_id,
                command.action.value,
                command.alert_id,
                command.actor,
                outcome.outcome,
            )
        except Exception as exc:
            log.exception("internal error on command")
            self.metrics.readings_rejected.labels(INTERNAL_ERROR).inc()
            await self.send_dead_letter(
                source.key, raw or b"", dead_letter_headers(source, INTERNAL_ERROR, repr(exc))
            )
