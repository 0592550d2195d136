"""What the agents do with one record: decode, call the core, then send / count.

Kept apart from the Faust wiring so it can be exercised with plain fakes. A handler never raises:
a record it cannot use goes to the dead-letter topic with its reason, and an unexpected error is
dead-lettered as ``internal_error`` (Faust would otherwise ack the message and lose it silently).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from alerts.config import RuleBook
from alerts.engine import (
    ZoneState,
    ZoneStep,
    ZoneView,
    admits_sensor,
    apply_command,
    check_silence,
    process_reading,
    process_report,
    release_reports,
)
from alerts.zone.keys import Outcome
from models.contracts import (
    TOO_MANY_SENSORS,
    AlertRecord,
    Change,
    RejectedRecord,
    SensorReading,
    VolunteerReport,
    decode_command,
    decode_reading,
    decode_report,
)
from models.zones import ZoneRegistry
from streams.metrics import PipelineMetrics

log = logging.getLogger("puhui.worker")
#: A stale reading is logged once in this many (the counter counts them all).
STALE_LOG_EVERY = 1000

INTERNAL_ERROR = "internal_error"
#: How far (event-time seconds) a partition's watermark moves between two silence sweeps.
SWEEP_EVERY_S = 15.0


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from (for the dead-letter headers)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp: float | None = None  # the record's Kafka timestamp, epoch seconds


class Sender(Protocol):
    """Sends raw bytes to a topic; awaiting the call means the producer has it buffered. The
    call may return an awaitable that completes when the broker has acknowledged the record."""

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
class Edge:
    """The guarded edge every input topic's handler shares: a record that cannot be used goes
    to the dead-letter topic with its reason, one whose handling raised goes there as
    ``internal_error`` (Faust would otherwise ack the message and lose it silently), a valid
    record on the wrong partition is re-sent keyed by its zone, a repeat is counted."""

    metrics: PipelineMetrics
    send_dead_letter: Sender

    async def guard(
        self,
        raw: bytes | None,
        source: Source,
        handle: Callable[..., Awaitable[None]],
        *args: Any,
        defer_internal: bool = False,
    ) -> str | None:
        """Run ``handle(data, *args)`` on the record's bytes; whatever it raises ends in a dead
        letter. ``handle`` raises :class:`RejectedRecord` only before it has changed anything.
        With ``defer_internal`` an internal error is not dead-lettered but its detail returned
        (a batch dead-letters its failed readings after its sends); None otherwise."""
        data = raw if raw is not None else b""
        try:
            await handle(data, *args)
        except RejectedRecord as rejected:
            log.info(
                "rejected %s[%d]@%d: %s", source.topic, source.partition, source.offset, rejected
            )
            await self.dead_letter(data, source, rejected.reason, rejected.detail)
        except Exception as exc:  # never let one escape
            log.exception(
                "internal error on %s[%d]@%d", source.topic, source.partition, source.offset
            )
            if defer_internal:
                return repr(exc)
            await self.dead_letter(data, source, INTERNAL_ERROR, repr(exc))
        return None

    async def dead_letter(self, raw: bytes, source: Source, reason: str, detail: str) -> None:
        self.metrics.dead_letters.labels(source.topic, reason).inc()
        self.metrics.readings_rejected.labels(reason).inc()  # deprecated name
        await self.send_dead_letter(source.key, raw, dead_letter_headers(source, reason, detail))

    async def rekeyed(self, source: Source, zone_id: str, raw: bytes, resend: Sender) -> bool:
        """Re-send a record keyed by its zone if it is not (all records of a zone must meet on
        the partition where its state lives); True if it was re-sent."""
        zone_key = zone_id.encode()
        if source.key == zone_key:
            return False
        self.metrics.readings_rekeyed.inc()
        await resend(zone_key, raw)
        return True

    def duplicate(self, source: Source | str, count: int = 1) -> None:
        """Count ``count`` repeats on the source's topic (or the topic named)."""
        topic = source if isinstance(source, str) else source.topic
        self.metrics.duplicates.labels(topic).inc(count)
        self.metrics.readings_duplicate.inc(count)  # deprecated name


#: Writes a zone's state to the table with its changelog record on an explicit partition.
TableWriter = Callable[[str, dict[str, Any], int], None]


@dataclass
class ZoneStates:
    """Zone states in front of the worker's Faust table: a local cache of live objects, written
    to the table (whose changelog makes them survive restarts).

    Without ``writer`` every save writes through. With it, a save that names the partition
    its zone lives on (every handler's does: the record's own) is *staged*: the write happens
    at the next :meth:`flush`, once per zone however many records changed it. The worker calls
    :meth:`flush_settled` at the start of every offset commit (``PuhuiApp.before_commit``), so
    no input offset is committed past a record whose state is not in the changelog: every
    acknowledged record's state was staged, and the commit flushes the producer before it
    commits.
    """

    table: MutableMapping[str, Any]
    writer: TableWriter | None = None
    cache: dict[str, ZoneState] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # zones changed since the last status write
    staged: dict[str, int] = field(default_factory=dict)  # zone -> its partition, not written
    # zones whose cached state holds changes whose alert records are not yet acknowledged
    busy: dict[str, int] = field(default_factory=dict)
    #: bumped by :meth:`forget`: a batch that started under another epoch must stop (the
    #: partitions it read may belong to another worker now; see ReadingHandler.handle_batch)
    epoch: int = 0

    def get(self, zone_id: str) -> ZoneState:
        state = self.cache.get(zone_id)
        if state is None:
            stored = self.table.get(zone_id)
            state = ZoneState.from_dict(stored) if stored else ZoneState(zone_id)
            self.cache[zone_id] = state
        return state

    def save(self, state: ZoneState, partition: int | None = None) -> None:
        """Write ``state`` to the table now, or stage it (``partition`` given, and a writer)."""
        zone_id = state.zone_id
        self.dirty.add(zone_id)
        if partition is not None and self.writer is not None:
            self.staged[zone_id] = partition
            return
        self.staged.pop(zone_id, None)  # this write carries the staged changes too
        self.table[zone_id] = state.to_dict()

    def flush(self) -> int:
        """Write every staged state to the table (its changelog record goes to the producer's
        buffer). Synchronous: no other task runs in between. Returns how many were written.

        A staged zone that is busy (see :meth:`flush_settled`) must not be flushed: use that."""
        if not self.staged or self.writer is None:
            return 0
        staged, self.staged = self.staged, {}
        for zone_id, partition in staged.items():
            state = self.cache.get(zone_id)
            if state is not None:
                self.writer(zone_id, state.to_dict(), partition)
        return len(staged)

    async def flush_settled(self) -> int:
        """Flush once no staged zone is busy. A busy zone's cached state already holds a record's
        changes whose alert records the broker has not acknowledged yet; writing it now would
        break the publish-then-save order. Its own save (right after the acknowledgement)
        writes it through, so the wait is short."""
        while any(self.busy.get(z) for z in self.staged):
            await asyncio.sleep(0.001)
        return self.flush()

    def hold(self, zone_id: str) -> None:
        """Mark the zone busy: its cached state holds changes whose alert records the broker has
        not acknowledged yet, so no flush may write it until :meth:`let_go`."""
        self.busy[zone_id] = self.busy.get(zone_id, 0) + 1

    def let_go(self, zone_id: str) -> None:
        """Undo one :meth:`hold`."""
        left = self.busy[zone_id] - 1
        if left:
            self.busy[zone_id] = left
        else:
            del self.busy[zone_id]

    def take_dirty(self) -> list[ZoneState]:
        """The cached states changed since the last call (for the zone status table)."""
        changed = [self.cache[z] for z in sorted(self.dirty) if z in self.cache]
        self.dirty.clear()
        return changed

    def forget(self) -> None:
        """Drop the cache (after a rebalance the table is the truth). Flush first."""
        self.cache.clear()
        self.staged.clear()
        self.epoch += 1

    def open_alerts(self) -> Iterator[tuple[str, str]]:
        """(risk, level) of every open alert this worker holds."""
        for zone_id in list(self.staged):
            state = self.cache.get(zone_id)
            if state is not None:
                for alert in state.alerts.values():
                    yield alert.risk.value, alert.level.value
        for key, value in list(self.table.items()):
            if key in self.staged:
                continue
            for alert in (value or {}).get("alerts", {}).values():
                yield alert["risk"], alert["level"]


async def publish_then_save(
    states: ZoneStates,
    state: ZoneState,
    send_alert: Sender,
    records: list[AlertRecord],
    metrics: PipelineMetrics,
    partition: int | None = None,
    **ids: str | None,
) -> None:
    """Publish a zone's new alert records, wait until the broker has acknowledged them, and only
    then write the zone's state to the table.

    The order is what makes a crash lose nothing. The state remembers the records it has seen (a
    replayed one is a duplicate), and the table's changelog survives a crash. Were the state
    written first, a worker killed after its changelog reached the broker but before its alert
    records did would replay the record as a duplicate and never publish them. In this order a
    crash in between replays the record and publishes the same alert records again: the same ids
    and revisions, which the database and the API take idempotently.

    With ``partition`` the save is staged (:meth:`ZoneStates.save`), written at the next flush.
    """
    zone_id = state.zone_id
    if records:
        states.hold(zone_id)  # until the save (see flush_settled)
    try:
        pending = []
        for record in records:
            sent = await send_alert(state.zone_id.encode(), record.to_bytes())
            if inspect.isawaitable(sent):
                pending.append(sent)
            count_record(metrics, record, **ids)
        for delivery in pending:
            await delivery
        states.save(state, partition)
    finally:
        if records:
            states.let_go(zone_id)


@dataclass(slots=True)
class ZoneGauges:
    """One zone's children of the per-zone gauges, each made on first use (a child exists, and
    is exported, from its ``labels()`` call on)."""

    metrics: PipelineMetrics
    zone_id: str
    people: Any = None
    density: Any = None
    flows: tuple[Any, Any] | None = None  # inflow, outflow
    peaks: dict[str, Any] = field(default_factory=dict)

    def set_people(self, people: float, density: float) -> None:
        if self.people is None:
            self.people = self.metrics.zone_people.labels(self.zone_id)
            self.density = self.metrics.zone_density.labels(self.zone_id)
        self.people.set(people)
        self.density.set(density)

    def set_peak(self, window: str, peak: float) -> None:
        child = self.peaks.get(window)
        if child is None:
            child = self.peaks[window] = self.metrics.zone_people_peak.labels(self.zone_id, window)
        child.set(peak)

    def set_flows(self, inflow: float, outflow: float) -> None:
        if self.flows is None:
            self.flows = (
                self.metrics.zone_inflow.labels(self.zone_id),
                self.metrics.zone_outflow.labels(self.zone_id),
            )
        self.flows[0].set(inflow)
        self.flows[1].set(outflow)


@dataclass(slots=True)
class _ZoneBatch:
    """One zone's share of a batch of readings (:meth:`ReadingHandler.handle_batch`)."""

    state: ZoneState
    partition: int
    save: bool = False  # changed by the batch: saved (staged) once, after its acknowledgements
    busy: bool = False  # counted in ZoneStates.busy
    failed: str | None = None  # why its alert records were not all acknowledged
    # the figures of its last reading that had them, for the gauges (as the per-record path
    # leaves them: people and density, each peak window, the flows, each from its last view)
    people: tuple[float, float] | None = None
    peaks: dict[str, float] = field(default_factory=dict)
    flows: tuple[float, float] | None = None

    def view(self, view: ZoneView) -> None:
        assert view.people is not None
        self.people = (view.people, view.density or 0.0)
        self.peaks.update(view.peaks)
        if view.inflow_per_min is not None:
            self.flows = (view.inflow_per_min, view.outflow_per_min or 0.0)


@dataclass
class ReadingHandler:
    """Handles one record of ``puhui.sensor-readings``."""

    zones: ZoneRegistry
    rules: RuleBook  # swapped whole when the rules file is reloaded
    states: ZoneStates
    metrics: PipelineMetrics
    send_alert: Sender
    send_dead_letter: Sender
    send_reading: Sender
    now: Callable[[], float] = time.perf_counter
    wall: Callable[[], float] = time.time
    store_report: Callable[[VolunteerReport, str | None], Awaitable[None]] | None = None
    on_zone_reading: Callable[[str], None] | None = None  # freshness hook for ops metrics
    max_sensors: int = 256  # distinct sensor ids a zone tracks (PUHUI_MAX_SENSORS_PER_ZONE)
    # per partition: event-time watermark, the last sweep's watermark, the zones seen there
    watermarks: dict[int, float] = field(default_factory=dict)
    last_activity: dict[int, float] = field(default_factory=dict)  # partition -> wall time
    swept: dict[int, float] = field(default_factory=dict)
    partition_zones: dict[int, set[str]] = field(default_factory=dict)
    # the metrics' label children, looked up once (prometheus_client's labels() is not free)
    _processed: dict[str, Any] = field(default_factory=dict)
    _zone_gauges: dict[str, ZoneGauges] = field(default_factory=dict)
    _stale_seen: int = 0
    edge: Edge = field(init=False)

    def _note_stale(self, reading: SensorReading, state: ZoneState) -> None:
        """Log a stale reading at a sampled rate: the first, then one in ``STALE_LOG_EVERY``."""
        self._stale_seen += 1
        if self._stale_seen % STALE_LOG_EVERY != 1 and STALE_LOG_EVERY > 1:
            return
        sensor = state.sensors.get(reading.sensor_id)
        latest = datetime.fromtimestamp(sensor.at, UTC).isoformat() if sensor else "?"
        log.warning(
            "stale reading (older than its sensor's latest; %d so far, 1 in %d logged): "
            "sensor %s at %s, its latest %s",
            self._stale_seen,
            STALE_LOG_EVERY,
            reading.sensor_id,
            reading.observed_at.isoformat(),
            latest,
        )

    def forget_zone_gauges(self) -> None:
        """Call after the zone gauges were cleared: their cached children are detached."""
        self._zone_gauges.clear()

    def __post_init__(self) -> None:
        self.edge = Edge(self.metrics, self.send_dead_letter)

    async def __call__(self, raw: bytes | None, source: Source) -> None:
        started = self.now()
        try:
            await self.edge.guard(raw, source, self._handle, source)
        finally:
            self.metrics.processing_latency.observe(self.now() - started)

    async def handle_batch(self, batch: Sequence[tuple[bytes | None, Source]]) -> bool:
        """Handle a batch of readings (in their order) with per record the outcome of
        :meth:`__call__`: the same alert records in the same order per zone, dead letters with
        their reasons, re-keying, repeats and stale readings counted, the same zone states.

        The work is per batch: every reading is stepped first (a rejected one dead-lettered, a
        re-keyed one re-sent, at once); then the batch's alert records are sent, zone by zone
        in the order they were made, and the broker's acknowledgements awaited together, once;
        then each changed zone is saved (staged) once. A zone is ``busy`` from its first alert
        record of the batch until that save, so no commit's ``flush_settled`` writes its state
        before its records are acknowledged (publish-then-save per zone, as
        :func:`publish_then_save`). Counters are incremented once per batch, the zone gauges
        set once per zone with the batch's last figures.

        An error in one reading dead-letters it as ``internal_error``; the rest of the batch is
        handled. A zone whose alert record could not be sent or was refused is not saved in
        this batch, its later records are not sent (their order is kept) and every reading
        whose records of it were not all acknowledged is dead-lettered as ``internal_error``.

        Returns False if the zone cache was forgotten (``ZoneStates.forget``: partitions
        revoked) while the batch ran: it stops at the next await, sends and saves nothing more,
        and none of its records may be acknowledged — the partitions' owner replays them
        from the last commit (see ``streams/faust_compat/batches.py``)."""
        started = self.now()
        run = _BatchRun(self, batch, self.states.epoch)
        try:
            for index, (raw, source) in enumerate(batch):
                await run.step(index, raw, source)
                if run.moved():
                    return False
            run.touch_partitions()
            if not await run.publish() or not await run.dead_letter_failed():
                return False
            run.save()
        finally:
            run.release()
        for index, report, alert_id in run.links:
            if index not in run.failed and self.store_report is not None:
                try:
                    await self.store_report(report, alert_id)
                except Exception as exc:  # as the per-record path's guard: internal_error
                    raw, source = batch[index]
                    log.exception("storing a linked report failed (reading %d of a batch)", index)
                    run.failed[index] = repr(exc)
                    await self.edge.dead_letter(raw or b"", source, INTERNAL_ERROR, repr(exc))
        run.count()  # after the links: a reading whose report failed is not counted processed
        elapsed = self.now() - started
        observe = self.metrics.processing_latency.observe
        for _ in batch:
            observe(elapsed)
        return not run.moved()

    def _processed_for(self, kind: str) -> Any:
        """The ``readings_processed`` counter of ``kind`` (its label child, looked up once)."""
        processed = self._processed.get(kind)
        if processed is None:
            processed = self._processed[kind] = self.metrics.readings_processed.labels(kind)
        return processed

    def _zone_gauges_for(self, zone_id: str) -> ZoneGauges:
        gauges = self._zone_gauges.get(zone_id)
        if gauges is None:
            gauges = self._zone_gauges[zone_id] = ZoneGauges(self.metrics, zone_id)
        return gauges

    def step(self, reading: SensorReading) -> tuple[ZoneState, ZoneStep]:
        """A decoded reading through its zone's engine: the zone's state (changed) and the step.
        Raises RejectedRecord, before any change, for a sensor over the zone's limit."""
        zone = self.zones.get(reading.zone_id)
        assert zone is not None  # decode_reading checked it
        state = self.states.get(reading.zone_id)
        if not admits_sensor(state, reading.sensor_id, self.max_sensors):
            detail = (
                f"sensor_id: zone {zone.id!r} already tracks {len(state.sensors)} sensors "
                f"(PUHUI_MAX_SENSORS_PER_ZONE={self.max_sensors})"
            )
            raise RejectedRecord(TOO_MANY_SENSORS, detail)
        return state, process_reading(state, reading, zone, self.rules.for_zone(zone.id))

    async def _handle(self, raw: bytes, source: Source) -> None:
        reading = decode_reading(raw, self.zones)
        if await self.edge.rekeyed(source, reading.zone_id, raw, self.send_reading):
            return
        state, step = self.step(reading)
        if step.stale:
            self.metrics.readings_stale.inc()
            self._note_stale(reading, state)
            return
        if step.duplicate:
            self.edge.duplicate(source)
            return
        self.last_activity[source.partition] = self.wall()
        await publish_then_save(
            self.states,
            state,
            self.send_alert,
            step.records,
            self.metrics,
            partition=source.partition,
            reading_id=reading.reading_id,
        )
        if source.timestamp is not None:
            for _ in step.records:
                self.metrics.alert_latency.observe(max(0.0, self.wall() - source.timestamp))
        await self._store_links(step)
        self._processed_for(reading.kind.value).inc()
        if self.on_zone_reading is not None:
            self.on_zone_reading(reading.zone_id)
        view = step.view
        if view is not None and view.people is not None:
            gauges = self._zone_gauges_for(reading.zone_id)
            gauges.set_people(view.people, view.density or 0.0)
            for window, peak in view.peaks.items():
                gauges.set_peak(window, peak)
            if view.inflow_per_min is not None:
                gauges.set_flows(view.inflow_per_min, view.outflow_per_min or 0.0)
        await self._sweep(source.partition, reading.zone_id, reading.observed_at.timestamp())

    async def _sweep(self, partition: int, zone_id: str, at: float) -> None:
        """Advance the partition's event-time watermark; every SWEEP_EVERY_S of it, re-assess
        the partition's other zones, so a zone whose sensors all fell silent is noticed."""
        for state, step in self._silence_steps(partition, zone_id, at):
            if step.records or step.linked:
                await publish_then_save(
                    self.states, state, self.send_alert, step.records, self.metrics, partition
                )
            await self._store_links(step)

    def _silence_steps(
        self, partition: int, zone_id: str, at: float
    ) -> Iterator[tuple[ZoneState, ZoneStep]]:
        """The watermark part of :meth:`_sweep`: each of the partition's zones re-assessed (a
        step each, lazily) when a sweep is due, nothing otherwise."""
        self.partition_zones.setdefault(partition, set()).add(zone_id)
        mark = max(self.watermarks.get(partition, at), at)
        self.watermarks[partition] = mark
        last = self.swept.setdefault(partition, mark)
        if mark - last < SWEEP_EVERY_S:
            return
        self.swept[partition] = mark
        for other in sorted(self.partition_zones[partition]):
            zone = self.zones.get(other)
            if zone is None:
                continue
            state = self.states.get(other)
            yield state, check_silence(state, zone, self.rules.for_zone(other), mark)

    async def _store_links(self, step: ZoneStep) -> None:
        if self.store_report is not None:
            for report, alert_id in step.linked:
                await self.store_report(report, alert_id)


#: (alert record, its zone, index of the reading it came from, reading id, Kafka timestamp of
#: that reading when the record is the reading's own: for alert_latency)
_Send = tuple[AlertRecord, _ZoneBatch, int, str | None, float | None]


@dataclass
class _BatchRun:
    """One :meth:`ReadingHandler.handle_batch` call: what its readings did, until it is sent,
    saved and counted."""

    handler: ReadingHandler
    batch: Sequence[tuple[bytes | None, Source]]
    epoch: int  # ZoneStates.epoch when the batch started
    zones: dict[str, _ZoneBatch] = field(default_factory=dict)
    sends: list[_Send] = field(default_factory=list)
    links: list[tuple[int, VolunteerReport, str | None]] = field(default_factory=list)
    kinds: list[tuple[int, str]] = field(default_factory=list)  # processed: index, kind
    stale: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)  # topic -> repeats
    partitions: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)  # index -> internal error detail
    sent_at: list[float] = field(default_factory=list)  # Kafka timestamps, for alert_latency

    def moved(self) -> bool:
        """The zone cache was forgotten since the batch started (a rebalance)."""
        return self.handler.states.epoch != self.epoch

    def zone(self, state: ZoneState, partition: int) -> _ZoneBatch:
        entry = self.zones.get(state.zone_id)
        if entry is None:
            entry = self.zones[state.zone_id] = _ZoneBatch(state, partition)
        entry.save = True
        return entry

    def collect(
        self,
        entry: _ZoneBatch,
        step: ZoneStep,
        index: int,
        reading_id: str | None,
        timestamp: float | None,
    ) -> None:
        if step.records and not entry.busy:
            entry.busy = True
            self.handler.states.hold(entry.state.zone_id)  # until its save
        for record in step.records:
            self.sends.append((record, entry, index, reading_id, timestamp))
        for report, alert_id in step.linked:
            self.links.append((index, report, alert_id))

    def release(self) -> None:
        for entry in self.zones.values():
            if entry.busy:
                entry.busy = False
                self.handler.states.let_go(entry.state.zone_id)

    async def step(self, index: int, raw: bytes | None, source: Source) -> None:
        """One reading, as the per-record path up to its publish, behind the Edge's guard (an
        internal error is kept in ``failed``, dead-lettered after the batch's sends)."""
        failed = await self.handler.edge.guard(
            raw, source, self._decoded, index, source, defer_internal=True
        )
        if failed is not None:
            self.failed[index] = failed

    async def _decoded(self, data: bytes, index: int, source: Source) -> None:
        handler = self.handler
        reading = decode_reading(data, handler.zones)
        if not await handler.edge.rekeyed(source, reading.zone_id, data, handler.send_reading):
            self.apply(index, reading, source)

    def apply(self, index: int, reading: SensorReading, source: Source) -> None:
        """A decoded reading, keyed by its zone: the engine's step and the watermark's sweep,
        their alert records and links collected. Raises RejectedRecord before any change."""
        handler = self.handler
        state, step = handler.step(reading)
        if step.stale:
            self.stale += 1
            handler._note_stale(reading, state)
            return
        if step.duplicate:
            self.duplicates[source.topic] = self.duplicates.get(source.topic, 0) + 1
            return
        self.partitions.add(source.partition)
        entry = self.zone(state, source.partition)
        self.collect(entry, step, index, reading.reading_id, source.timestamp)
        self.kinds.append((index, reading.kind.value))
        if handler.on_zone_reading is not None:
            handler.on_zone_reading(reading.zone_id)
        view = step.view
        if view is not None and view.people is not None:
            entry.view(view)
        at = reading.observed_at.timestamp()
        for other, silence in handler._silence_steps(source.partition, reading.zone_id, at):
            if silence.records or silence.linked:
                self.collect(self.zone(other, source.partition), silence, index, None, None)

    def touch_partitions(self) -> None:
        if self.partitions:
            wall = self.handler.wall()
            for partition in self.partitions:
                self.handler.last_activity[partition] = wall

    async def publish(self) -> bool:
        """Send every zone's records in the order they were made, then wait once for all the
        acknowledgements (nothing of the batch is acknowledged to Faust before the last one
        anyway). False if the batch must stop (:meth:`moved`)."""
        handler = self.handler
        pending: list[tuple[Awaitable[Any], _ZoneBatch]] = []
        for record, entry, _, reading_id, timestamp in self.sends:
            if entry.failed is not None:
                continue  # the zone's order: nothing after a record that was not sent
            try:
                delivery = await handler.send_alert(entry.state.zone_id.encode(), record.to_bytes())
            except Exception as exc:
                log.exception("sending an alert record of zone %s failed", entry.state.zone_id)
                entry.failed = repr(exc)
                continue
            if self.moved():
                return False
            if inspect.isawaitable(delivery):
                pending.append((delivery, entry))
            count_record(handler.metrics, record, reading_id=reading_id)
            if timestamp is not None:
                self.sent_at.append(timestamp)
        if pending:
            results = await asyncio.gather(*(d for d, _ in pending), return_exceptions=True)
            if self.moved():
                return False
            for (_, entry), result in zip(pending, results, strict=True):
                if isinstance(result, BaseException) and entry.failed is None:
                    log.error(
                        "an alert record of zone %s was not acknowledged: %r",
                        entry.state.zone_id,
                        result,
                    )
                    entry.failed = repr(result)
        for _, entry, index, _, _ in self.sends:
            if entry.failed is not None:
                self.failed.setdefault(index, entry.failed)
        return True

    async def dead_letter_failed(self) -> bool:
        """Dead-letter the readings whose handling failed as internal_error, in their order."""
        for index, detail in sorted(self.failed.items()):
            raw, source = self.batch[index]
            await self.handler.edge.dead_letter(
                raw if raw is not None else b"", source, INTERNAL_ERROR, detail
            )
            if self.moved():
                return False
        return True

    def save(self) -> None:
        """Stage each changed zone once (its records are acknowledged), then it is not busy."""
        states = self.handler.states
        for entry in self.zones.values():
            if entry.save and entry.failed is None:
                states.save(entry.state, entry.partition)
        self.release()

    def count(self) -> None:
        """The batch's metrics, each touched once (the gauges once per zone)."""
        handler, metrics = self.handler, self.handler.metrics
        wall = handler.wall()
        for timestamp in self.sent_at:
            metrics.alert_latency.observe(max(0.0, wall - timestamp))
        if self.stale:
            metrics.readings_stale.inc(self.stale)
        for topic, count in self.duplicates.items():
            handler.edge.duplicate(topic, count)
        counts: dict[str, int] = {}
        for index, kind in self.kinds:
            if index not in self.failed:
                counts[kind] = counts.get(kind, 0) + 1
        for kind, count in counts.items():
            handler._processed_for(kind).inc(count)
        for entry in self.zones.values():
            if entry.people is not None and entry.failed is None:
                gauges = handler._zone_gauges_for(entry.state.zone_id)
                gauges.set_people(*entry.people)
                for window, peak in entry.peaks.items():
                    gauges.set_peak(window, peak)
                if entry.flows is not None:
                    gauges.set_flows(*entry.flows)


@dataclass
class ReportHandler:
    """Handles one record of ``puhui.volunteer-reports``: the report opens or joins an alert in
    the zone engine; the report and the alert it went to are stored for the volunteer's status
    page. A bad record is dead-lettered like a bad reading; an unkeyed one is re-keyed."""

    zones: ZoneRegistry
    rules: RuleBook
    states: ZoneStates
    metrics: PipelineMetrics
    send_alert: Sender
    send_dead_letter: Sender
    send_report: Sender
    store_report: Callable[[VolunteerReport, str | None], Awaitable[None]]
    wall: Callable[[], float] = time.time
    # zones with reports waiting for their sensors: zone -> (partition, since when, wall time)
    waiting: dict[str, tuple[int, float]] = field(default_factory=dict)
    edge: Edge = field(init=False)

    async def release(self, zone_id: str, partition: int | None = None) -> None:
        """Handle a zone's waiting reports now (its partition has gone quiet: no reading will
        bring its clock forward soon). Called from the tick agent, in stream context, with the
        tick's partition (the zone's)."""
        self.waiting.pop(zone_id, None)
        zone = self.zones.get(zone_id)
        if zone is None:
            return
        state = self.states.get(zone_id)
        records, linked = release_reports(state, zone, self.rules.for_zone(zone_id), math.inf)
        if not records and not linked:
            return
        await publish_then_save(
            self.states, state, self.send_alert, records, self.metrics, partition
        )
        for report, alert_id in linked:
            await self.store_report(report, alert_id)

    def due(self, quiet: dict[int, float], grace: float) -> list[str]:
        """Zones whose reports have waited ``grace`` s while their partition saw no reading."""
        now = self.wall()
        return sorted(
            zone
            for zone, (partition, since) in self.waiting.items()
            if now - since > grace and now - quiet.get(partition, 0.0) > grace
        )

    def __post_init__(self) -> None:
        self.edge = Edge(self.metrics, self.send_dead_letter)

    async def __call__(self, raw: bytes | None, source: Source) -> None:
        await self.edge.guard(raw, source, self._handle, source)

    async def _handle(self, raw: bytes, source: Source) -> None:
        report = decode_report(raw, self.zones)
        if await self.edge.rekeyed(source, report.zone_id, raw, self.send_report):
            return
        zone = self.zones.get(report.zone_id)
        assert zone is not None
        state = self.states.get(report.zone_id)
        step = process_report(state, report, zone, self.rules.for_zone(zone.id))
        if step.duplicate:
            self.edge.duplicate(source)
            return
        await publish_then_save(
            self.states,
            state,
            self.send_alert,
            step.records,
            self.metrics,
            partition=source.partition,
            report_id=report.report_id,
        )
        if step.pending:
            self.waiting[report.zone_id] = (source.partition, self.wall())
            await self.store_report(report, None)
        for linked, alert_id in step.linked:
            await self.store_report(linked, alert_id)
        self.metrics.reports_processed.labels(report.category.value).inc()
        log.info(
            "report %s (%s) in %s went to alert %s",
            report.report_id,
            report.category.value,
            report.zone_id,
            step.alert_id,
            extra={
                "report_id": report.report_id,
                "zone_id": report.zone_id,
                "alert_id": step.alert_id,
            },
        )


def count_record(
    metrics: PipelineMetrics,
    record: AlertRecord,
    *,
    reading_id: str | None = None,
    report_id: str | None = None,
) -> None:
    """Count and log one published alert record."""
    metrics.alert_records.labels(record.change.value).inc()
    if record.change in (Change.RAISED, Change.ESCALATED):
        metrics.alerts.labels(record.risk.value, record.level.value).inc()
    extra: dict[str, str] = {"zone_id": record.zone_id, "alert_id": record.alert_id}
    if reading_id:
        extra["reading_id"] = reading_id
    if report_id:
        extra["report_id"] = report_id
    log.info(
        "alert %s rev %d %s %s %s%s zone=%s",
        record.alert_id,
        record.revision,
        record.change.value,
        record.risk.value,
        record.level.value,
        " (predicted)" if record.predicted else "",
        record.zone_id,
        extra=extra,
    )


@dataclass
class CommandHandler:
    """Handles one record of ``puhui.alert-commands``: applies an operator's action to the open
    alert it names and publishes the resulting alert record."""

    zones: ZoneRegistry
    states: ZoneStates
    metrics: PipelineMetrics
    send_alert: Sender
    send_dead_letter: Sender

    send_command: Sender | None = None  # re-keys a command not keyed by its zone
    edge: Edge = field(init=False)

    def __post_init__(self) -> None:
        self.edge = Edge(self.metrics, self.send_dead_letter)

    async def __call__(self, raw: bytes | None, source: Source) -> None:
        await self.edge.guard(raw, source, self._handle, source)

    async def _handle(self, raw: bytes, source: Source) -> None:
        command = decode_command(raw)
        if command.zone_id not in self.zones:
            raise RejectedRecord("unknown_zone", f"zone_id: unknown zone {command.zone_id!r}")
        if self.send_command is not None and await self.edge.rekeyed(
            source, command.zone_id, raw, self.send_command
        ):
            return
        state = self.states.get(command.zone_id)
        outcome = apply_command(state, command)
        self.metrics.commands.labels(command.action.value, outcome.outcome.value).inc()
        if outcome.outcome is Outcome.DUPLICATE:
            self.edge.duplicate(source)
            return
        records = [outcome.record] if outcome.record is not None else []
        await publish_then_save(
            self.states, state, self.send_alert, records, self.metrics, source.partition
        )
        log.info(
            "command %s %s on alert %s by %s: %s",
            command.command_id,
            command.action.value,
            command.alert_id,
            command.actor,
            outcome.outcome.value,
        )
