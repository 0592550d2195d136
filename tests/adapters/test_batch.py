"""The readings' batch path (``ReadingHandler.handle_batch``, ``streams/faust_compat/batches.py``).

Three guarantees: publish-then-save per zone (no zone's state reaches the table before its alert
records are acknowledged), per record the outcome of the per-record path, and a batch that runs
into a revocation stops and is not acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import zlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.config import RuleBook, default_rules
from alerts.engine import process_report
from models.contracts import ReportCategory, SensorReading, VolunteerReport
from models.zones import load_bundled_zones, load_zones
from streams.faust_compat.batches import handle_in_batches
from streams.handlers import ReadingHandler, Source, ZoneStates
from streams.metrics import PipelineMetrics
from tests.adapters.test_handlers import HeldBroker, Writer, nothing
from tools.bench import busy_evening, write_zones

TOPIC = "puhui.sensor-readings"
TAIKANG = "tianzifang-taikang-248"
ZONES = load_bundled_zones()


def reading(zone: str, sensor: str, kind: str, value: float, minute: int, rid: str) -> bytes:
    return (
        SensorReading.model_validate(
            {
                "reading_id": rid,
                "sensor_id": sensor,
                "zone_id": zone,
                "kind": kind,
                "value": value,
                "observed_at": f"2024-10-02T19:{minute:02d}:00+08:00",
            }
        )
        .model_dump_json()
        .encode()
    )


def at(zone: str, offset: int, partition: int = 0, key: bytes | None = None) -> Source:
    return Source(TOPIC, partition, offset, zone.encode() if key is None else key, 1.0)


class DeadLetters:
    """A dead-letter sender that remembers (key, reason); ``hold`` makes its sends wait."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, str]] = []
        self.hold: asyncio.Event | None = None

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self.sent.append((key, dict(headers or [])["error.reason"].decode()))
        if self.hold is not None:
            await self.hold.wait()


def handler_with(
    broker: Any, dead: Any = nothing, table: dict[str, Any] | None = None
) -> tuple[ReadingHandler, Writer]:
    table = {} if table is None else table
    writer = Writer(table)
    handler = ReadingHandler(
        zones=ZONES,
        rules=RuleBook(default_rules(), {}),
        states=ZoneStates(table, writer=writer),
        metrics=PipelineMetrics.create(CollectorRegistry()),
        send_alert=broker,
        send_dead_letter=dead,
        send_reading=nothing,
    )
    return handler, writer


async def until(condition: Any, what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


async def test_no_zone_of_a_batch_is_saved_before_its_alert_records_are_acknowledged() -> None:
    """Records of three zones, a repeat, a rejected one, a stale one; the broker holds every
    alert record. Nothing of the batch may reach the table meanwhile — not even through a
    commit's flush_settled, though the smoke zone was staged by an earlier batch."""
    zones = sorted(z.id for z in ZONES)
    calm, other = next(z for z in zones if z != TAIKANG), zones[-1]
    broker, dead = HeldBroker(), DeadLetters()
    handler, writer = handler_with(broker, dead)
    states = handler.states
    earlier = [(reading(TAIKANG, "cam-1", "people_count", 10, 1, "cam-1:1"), at(TAIKANG, 1))]
    assert await handler.handle_batch(earlier)
    assert states.staged == {TAIKANG: 0} and writer.writes == []

    batch = [
        (reading(TAIKANG, "smoke-1", "smoke", 1, 1, "smoke-1:1"), at(TAIKANG, 2)),
        (reading(calm, "cam-1", "people_count", 12, 1, "cam-1:1"), at(calm, 3)),
        (b"{not json", at(TAIKANG, 4)),
        (reading(TAIKANG, "smoke-1", "smoke", 1, 1, "smoke-1:1"), at(TAIKANG, 5)),  # repeat
        (reading(TAIKANG, "cam-1", "people_count", 9, 0, "cam-1:old"), at(TAIKANG, 6)),  # stale
        (reading(other, "smoke-9", "smoke", 1, 2, "smoke-9:2"), at(other, 7)),
        (reading(TAIKANG, "smoke-2", "smoke", 1, 2, "smoke-2:2"), at(TAIKANG, 8)),  # escalates
    ]
    handling = asyncio.create_task(handler.handle_batch(batch))
    await until(lambda: len(broker.sent) == 3, "the three alert records sent")
    assert not handling.done(), "the batch waits for the broker's acknowledgements"
    assert states.busy == {TAIKANG: 1, other: 1}
    flushing = asyncio.create_task(states.flush_settled())
    for _ in range(20):
        await asyncio.sleep(0.002)
    assert not flushing.done(), "a commit must wait while a staged zone's records are unacked"
    assert writer.writes == [] and states.staged == {TAIKANG: 0}
    assert dead.sent == [(TAIKANG.encode(), "malformed_json")], "dead-lettered at once"

    broker.release()
    assert await asyncio.wait_for(handling, 5) is True
    assert await asyncio.wait_for(flushing, 5) == 3
    assert not states.busy
    written = {zone: state for zone, _, state in writer.writes}
    assert sorted(written) == sorted([TAIKANG, calm, other])
    assert written[TAIKANG]["alerts"] and written[other]["alerts"] and not written[calm]["alerts"]
    sent = [json.loads(v) for v in broker.sent]
    assert [(r["zone_id"], r["change"]) for r in sent] == [
        (TAIKANG, "raised"),
        (other, "raised"),
        (TAIKANG, "escalated"),
    ]
    metrics = handler.metrics
    assert metrics.duplicates.labels(TOPIC)._value.get() == 1
    assert metrics.readings_stale._value.get() == 1
    assert metrics.readings_processed.labels("smoke")._value.get() == 3
    assert metrics.readings_processed.labels("people_count")._value.get() == 2  # earlier + calm


async def test_a_revocation_during_a_batch_stops_it_and_it_is_not_acknowledged() -> None:
    """The zone cache is forgotten (partitions revoked) while the batch waits on a dead
    letter: the readings after it are not applied, nothing is sent or staged, and the batch
    reports that none of it may be acknowledged."""
    zones = sorted(z.id for z in ZONES)
    calm = next(z for z in zones if z != TAIKANG)
    broker, dead = HeldBroker(), DeadLetters()
    handler, writer = handler_with(broker, dead)
    dead.hold = asyncio.Event()
    batch = [
        (reading(calm, "cam-1", "people_count", 12, 1, "cam-1:1"), at(calm, 3)),
        (b"{not json", at(TAIKANG, 4)),
        (reading(TAIKANG, "smoke-1", "smoke", 1, 1, "smoke-1:1"), at(TAIKANG, 5)),
    ]
    handling = asyncio.create_task(handler.handle_batch(batch))
    await until(lambda: dead.sent, "the dead letter sent")
    handler.states.flush()  # what _forget_cache does (flush_settled, then forget)
    handler.states.forget()
    dead.hold.set()
    assert await asyncio.wait_for(handling, 5) is False
    assert broker.sent == [], "the smoke reading after the revocation was not applied"
    assert TAIKANG not in handler.states.cache and not handler.states.staged
    assert writer.writes == [] and not handler.states.busy
    assert handler.metrics.readings_processed.labels("people_count")._value.get() == 0


async def test_a_revocation_while_alert_records_wait_saves_nothing() -> None:
    broker = HeldBroker()
    handler, writer = handler_with(broker)
    batch = [(reading(TAIKANG, "smoke-1", "smoke", 1, 1, "smoke-1:1"), at(TAIKANG, 5))]
    handling = asyncio.create_task(handler.handle_batch(batch))
    await until(lambda: broker.sent, "the alert record sent")
    handler.states.forget()
    broker.release()
    assert await asyncio.wait_for(handling, 5) is False
    assert not handler.states.staged and not handler.states.busy and writer.writes == []


class FakeMessage:
    """The part of a Faust message the acks look at: ``Message.ack`` does nothing once it is
    marked ``acked`` (``faust/types/tuples.py``)."""

    def __init__(self, offset: int, generation_id: int) -> None:
        self.offset = offset
        self.generation_id = generation_id
        self.acked = False


class FakeEvent:
    def __init__(self, offset: int, generation_id: int) -> None:
        self.message = FakeMessage(offset, generation_id)


class FakeApp:
    """The app's consumer generation and flow control, as ``handle_in_batches`` reads them."""

    def __init__(self) -> None:
        self.consumer_generation_id = 1
        self.active = True
        self.flow_control = self

    def is_active(self) -> bool:
        return self.active


class FakeStream:
    """What ``handle_in_batches`` uses of a Faust stream: ``take_events``, which yields the
    batches and then acks each of their events as faust-streaming 0.15.3 does (every one, in
    its ``finally``), through ``Message.ack``."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.app = FakeApp()
        self.batches = batches
        self.committable: list[int] = []  # what Consumer.ack would have recorded
        self.asked: tuple[int, float] | None = None

    async def take_events(self, size: int, within: float) -> AsyncIterator[list[FakeEvent]]:
        self.asked = (size, within)
        for offsets in self.batches:
            # taken (and generation-checked) now; handed over after the previous batch
            events = [FakeEvent(offset, self.app.consumer_generation_id) for offset in offsets]
            try:
                yield events
            finally:
                for event in events:
                    if not event.message.acked:
                        event.message.acked = True
                        self.committable.append(event.message.offset)


async def test_a_stopped_batch_is_not_acknowledged() -> None:
    stream = FakeStream([[0, 1, 2], [3, 4, 5], [6]])
    seen: list[list[int]] = []

    async def handle(events: list[FakeEvent]) -> bool:
        seen.append([event.message.offset for event in events])
        return seen[-1] != [3, 4, 5]  # this batch ran into a revocation

    await asyncio.wait_for(handle_in_batches(stream, 3, 0.01, handle), 5)
    assert stream.asked == (3, 0.01)
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]
    assert stream.committable == [0, 1, 2, 6], "the stopped batch's offsets never committable"


async def test_a_batch_taken_before_a_rebalance_is_not_handled_nor_acknowledged() -> None:
    """A batch buffered before the revocation is handed over during the rebalance (the flow
    suspended) or after it (a new generation): it is neither handled nor acknowledged."""
    stream = FakeStream([[0, 1], [2, 3], [4, 5], [6]])
    seen: list[list[int]] = []

    async def handle(events: list[FakeEvent]) -> bool:
        seen.append([event.message.offset for event in events])
        if seen[-1] == [0, 1]:
            stream.app.active = False  # a rebalance starts while [2, 3] is being buffered
        return True

    original = stream.take_events

    async def take_events(size: int, within: float) -> AsyncIterator[list[FakeEvent]]:
        async for events in original(size, within):
            if events[0].message.offset == 4:
                # taken in the old generation; the new assignment comes before it is handed over
                stream.app.active = True
                stream.app.consumer_generation_id = 2
            yield events

    stream.take_events = take_events  # type: ignore[method-assign]
    await asyncio.wait_for(handle_in_batches(stream, 2, 0.01, handle), 5)
    assert seen == [[0, 1], [6]]
    assert stream.committable == [0, 1, 6]


# -- the batch path against the per-record path on a busy evening ------------------------------


class Recorder:
    """A sender that records (key, value[, reason]) and acknowledges at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes, str | None]] = []

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> asyncio.Future[None]:
        reason = dict(headers)["error.reason"].decode() if headers else None
        self.sent.append((key, value, reason))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def busy_stream(seed: int) -> tuple[Any, list[tuple[bytes, Source]]]:
    """A busy evening (3 000 readings, 30 zones: surges, alarms, repeats, invalid records), with
    late copies (stale) and records keyed by the wrong key (re-keyed) mixed in, and a zone
    that falls silent (sensor_offline from the watermark's sweeps); 4 partitions."""
    path = Path(tempfile.mkdtemp()) / "zones.yaml"
    areas = write_zones(path, 30, seed)
    records = list(busy_evening(areas, 3000, seed, "batch").records)
    silent = sorted(areas)[3].encode()  # falls silent after a third: the sweeps notice it
    records = [r for i, r in enumerate(records) if r[0] != silent or i < 1000]
    rng = random.Random(seed)
    for i in range(450, len(records), 97):  # a late copy of an earlier reading: stale
        key, raw = records[i - 400]
        records.insert(i, (key, raw.replace(b'"reading_id":"', b'"reading_id":"late-')))
    for i in range(7, len(records), 211):
        records[i] = (b"", records[i][1])  # keyed wrongly: re-sent keyed by its zone
    stream = []
    for offset, (key, raw) in enumerate(records):
        partition = zlib.crc32(key) % 4 if key else rng.randrange(4)
        stream.append((raw, Source(TOPIC, partition, offset, key, 1.0)))
    return load_zones(path), stream


def outcome(
    registry: CollectorRegistry, states: ZoneStates, sends: dict[str, Recorder], writer: Writer
) -> dict[str, Any]:
    states.flush()
    metrics = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if family.name.startswith("puhui_")
        and not sample.name.endswith("_created")
        # wall times differ; how many were observed must not
        and not (family.type == "histogram" and not sample.name.endswith("_count"))
    }
    return {
        "alerts": [(k, json.loads(v)) for k, v, _ in sends["alert"].sent],
        "dead": sends["dead"].sent,
        "rekeyed": [(k, v) for k, v, _ in sends["reading"].sent],
        "table": {zone: json.dumps(state, sort_keys=True) for zone, state in writer.table.items()},
        "metrics": metrics,
    }


def run_handler(zones: Any, stream: list[tuple[bytes, Source]], batches: list[int] | None) -> Any:
    sends = {name: Recorder() for name in ("alert", "dead", "reading")}
    table: dict[str, Any] = {}
    writer = Writer(table)
    registry = CollectorRegistry()
    handler = ReadingHandler(
        zones=zones,
        rules=RuleBook(default_rules(), {}),
        states=ZoneStates(table, writer=writer),
        metrics=PipelineMetrics.create(registry),
        send_alert=sends["alert"],
        send_dead_letter=sends["dead"],
        send_reading=sends["reading"],
    )

    async def go() -> None:
        if batches is None:
            for raw, source in stream:
                await handler(raw, source)
            return
        start = 0
        for size in batches:
            assert await handler.handle_batch(stream[start : start + size])
            start += size

    asyncio.run(go())
    return outcome(registry, handler.states, sends, writer)


@pytest.mark.parametrize("seed", [7, 11])
def test_batches_give_what_records_one_at_a_time_give_on_a_busy_evening(seed: int) -> None:
    zones, stream = busy_stream(seed)
    rng = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < len(stream):
        sizes.append(rng.choice([1, 2, 7, 50, 500]))
    one_by_one = run_handler(zones, stream, None)
    batched = run_handler(zones, stream, sizes)
    assert one_by_one["alerts"], "the evening raises alerts"
    risks = {record["risk"] for _, record in one_by_one["alerts"]}
    assert "sensor_offline" in risks, "the silent zone's sensors went offline"
    assert one_by_one["dead"] and one_by_one["rekeyed"], "dead letters, re-keyed records"
    stale = [
        v for (name, _), v in one_by_one["metrics"].items() if name == "puhui_readings_stale_total"
    ]
    assert stale and stale[0] > 0, "late copies were stale"
    for part in ("alerts", "dead", "rekeyed", "table", "metrics"):
        assert batched[part] == one_by_one[part], part


@pytest.mark.parametrize("batched", [False, True])
async def test_a_linked_report_that_cannot_be_stored_dead_letters_its_reading(
    batched: bool,
) -> None:
    """A reading releases a report that was waiting for the zone's clock; storing the report
    fails. One at a time, the guard dead-letters that reading as internal_error and does not
    count it processed; a batch must do the same, and handle the batch's other readings."""
    zones = sorted(z.id for z in ZONES)
    other = next(z for z in zones if z != TAIKANG)
    dead = DeadLetters()
    handler, _ = handler_with(nothing, dead)
    stored: list[str] = []

    async def store(report: VolunteerReport, alert_id: str | None) -> None:
        if report.report_id == "rep-1" and alert_id is not None:
            raise RuntimeError("database refused it")
        stored.append(report.report_id)

    handler.store_report = store
    first = [(reading(TAIKANG, "cam-1", "people_count", 10, 1, "cam-1:1"), at(TAIKANG, 1))]
    assert await handler.handle_batch(first)
    state = handler.states.get(TAIKANG)
    report = VolunteerReport(
        report_id="rep-1",
        reporter_id="v-1",
        zone_id=TAIKANG,
        category=ReportCategory.FIRE,
        description="看到冒烟",
        submitted_at=datetime.fromisoformat("2024-10-02T19:05:00+08:00"),
    )
    zone = ZONES.get(TAIKANG)
    assert zone is not None
    assert process_report(state, report, zone, handler.rules.for_zone(TAIKANG)).pending

    batch = [
        (reading(TAIKANG, "cam-1", "people_count", 11, 6, "cam-1:6"), at(TAIKANG, 2)),
        (reading(other, "cam-1", "people_count", 12, 6, "cam-1:6"), at(other, 3)),
    ]
    if batched:
        assert await handler.handle_batch(batch)
    else:
        for raw, source in batch:
            await handler(raw, source)

    assert dead.sent == [(TAIKANG.encode(), "internal_error")]
    processed = handler.metrics.readings_processed.labels("people_count")._value.get()
    assert processed == 2  # the first reading and the other zone's, not the one that failed
    assert stored == []
