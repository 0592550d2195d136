"""The worker's handlers write a zone's state only once its alert records are on the broker.

The state remembers which records it has processed and survives a crash through the table's
changelog; the alert records are separate sends. If the state reached the changelog first, a
crash before the alert records were acknowledged would make the replayed reading a duplicate and
the alert would never be published. These tests hold the broker's acknowledgement back and look
at the table meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.config import RuleBook, default_rules
from models.contracts import AlertCommand, CommandAction, SensorReading
from models.zones import load_bundled_zones
from streams.handlers import CommandHandler, ReadingHandler, Source, ZoneStates
from streams.metrics import PipelineMetrics

ZONE = "tianzifang-taikang-248"


class HeldBroker:
    """A sender whose deliveries complete only when ``release()`` is called."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.deliveries: list[asyncio.Future[None]] = []

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> asyncio.Future[None]:
        self.sent.append(value)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery

    def release(self) -> None:
        for delivery in self.deliveries:
            if not delivery.done():
                delivery.set_result(None)

    def fail(self, exc: Exception) -> None:
        for delivery in self.deliveries:
            if not delivery.done():
                delivery.set_exception(exc)


async def nothing(key: bytes | None, value: bytes, headers: Any = None) -> None:
    return None


def smoke(reading_id: str = "smoke-1:1", sensor: str = "smoke-1") -> bytes:
    return (
        SensorReading.model_validate(
            {
                "reading_id": reading_id,
                "sensor_id": sensor,
                "zone_id": ZONE,
                "kind": "smoke",
                "value": 1,
                "observed_at": "2024-10-02T19:00:00+08:00",
            }
        )
        .model_dump_json()
        .encode()
    )


def reading_handler(table: dict[str, Any], broker: HeldBroker) -> ReadingHandler:
    return ReadingHandler(
        zones=load_bundled_zones(),
        rules=RuleBook(default_rules(), {}),
        states=ZoneStates(table),
        metrics=PipelineMetrics.create(CollectorRegistry()),
        send_alert=broker,
        send_dead_letter=nothing,
        send_reading=nothing,
    )


SOURCE = Source("puhui.sensor-readings", 0, 7, ZONE.encode())


async def test_reading_state_is_written_after_its_alert_is_acknowledged() -> None:
    table: dict[str, Any] = {}
    broker = HeldBroker()
    handling = asyncio.create_task(reading_handler(table, broker)(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(broker.sent) == 1, "the smoke alarm raises one alert record"
    assert not handling.done(), "the handler waits for the broker's acknowledgement"
    assert ZONE not in table, "the state must not reach the changelog before the alert does"
    broker.release()
    await asyncio.wait_for(handling, 5)
    assert ZONE in table
    assert json.loads(broker.sent[0])["change"] == "raised"


async def test_replay_after_a_crash_before_the_ack_publishes_the_alert_again() -> None:
    """The crash: the process dies while the alert is unacknowledged. The restarted worker's
    table is what reached the changelog (nothing), so the replayed reading raises it again."""
    table: dict[str, Any] = {}
    broker = HeldBroker()
    handling = asyncio.create_task(reading_handler(table, broker)(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    handling.cancel()  # killed before the broker acknowledged

    again = HeldBroker()
    replay = asyncio.create_task(reading_handler(dict(table), again)(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    again.release()
    await asyncio.wait_for(replay, 5)
    assert [json.loads(v)["alert_id"] for v in again.sent] == [
        json.loads(v)["alert_id"] for v in broker.sent
    ]


async def test_duplicate_reading_after_the_state_was_written_publishes_nothing() -> None:
    table: dict[str, Any] = {}
    first = HeldBroker()
    handling = asyncio.create_task(reading_handler(table, first)(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    first.release()
    await handling
    second = HeldBroker()
    await reading_handler(table, second)(smoke(), SOURCE)
    assert second.sent == []


async def test_command_state_is_written_after_its_record_is_acknowledged() -> None:
    table: dict[str, Any] = {}
    raised = HeldBroker()
    handling = asyncio.create_task(reading_handler(table, raised)(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    raised.release()
    await handling
    alert = json.loads(raised.sent[0])
    before = json.dumps(table[ZONE], sort_keys=True)

    broker = HeldBroker()
    command = AlertCommand.model_validate(
        {
            "command_id": "c-1",
            "alert_id": alert["alert_id"],
            "zone_id": ZONE,
            "action": CommandAction.ACKNOWLEDGE.value,
            "actor": "op-1",
            "issued_at": "2024-10-02T19:01:00+08:00",
        }
    )
    handler = CommandHandler(
        zones=load_bundled_zones(),
        states=ZoneStates(table),
        metrics=PipelineMetrics.create(CollectorRegistry()),
        send_alert=broker,
        send_dead_letter=nothing,
    )
    source = Source("puhui.alert-commands", 0, 1, ZONE.encode())
    handling = asyncio.create_task(handler(command.model_dump_json().encode(), source))
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(broker.sent) == 1
    assert json.dumps(table[ZONE], sort_keys=True) == before
    broker.release()
    await asyncio.wait_for(handling, 5)
    assert json.dumps(table[ZONE], sort_keys=True) != before
    assert json.loads(broker.sent[0])["change"] == "acknowledged"


# -- staged writes: once per zone per commit, never ahead of the alert records -----------------


def people(reading_id: str, value: int, minute: int) -> bytes:
    return (
        SensorReading.model_validate(
            {
                "reading_id": reading_id,
                "sensor_id": "cam-1",
                "zone_id": ZONE,
                "kind": "people_count",
                "value": value,
                "observed_at": f"2024-10-02T19:{minute:02d}:00+08:00",
            }
        )
        .model_dump_json()
        .encode()
    )


class Writer:
    """A table writer that records (zone, partition, state) and writes the table."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.writes: list[tuple[str, int, dict[str, Any]]] = []

    def __call__(self, key: str, value: dict[str, Any], partition: int) -> None:
        self.writes.append((key, partition, json.loads(json.dumps(value))))
        self.table[key] = value


def staging_handler(table: dict[str, Any], broker: HeldBroker) -> tuple[ReadingHandler, Writer]:
    handler = reading_handler(table, broker)
    writer = Writer(table)
    handler.states.writer = writer
    return handler, writer


async def test_readings_stage_their_state_and_a_flush_writes_each_zone_once() -> None:
    table: dict[str, Any] = {}
    handler, writer = staging_handler(table, HeldBroker())
    source = Source("puhui.sensor-readings", 3, 7, ZONE.encode())
    for i in range(5):
        await handler(people(f"cam-1:{i}", 10 + i, i), source)
    assert ZONE not in table and writer.writes == [], "staged, not yet written"
    assert handler.states.flush() == 1
    assert [(zone, partition) for zone, partition, _ in writer.writes] == [(ZONE, 3)]
    assert writer.writes[0][2]["clock"] == handler.states.get(ZONE).clock
    assert handler.states.flush() == 0, "nothing left staged"


async def test_a_flush_waits_while_a_staged_zone_has_unacknowledged_alert_records() -> None:
    """Reading 1 stages the zone; reading 2 of the same zone raises an alert whose record the
    broker holds. The cached state already holds reading 2; a flush now would put it in the
    changelog before its alert record. The flush waits for the acknowledgement."""
    table: dict[str, Any] = {}
    broker = HeldBroker()
    handler, writer = staging_handler(table, broker)
    await handler(people("cam-1:0", 10, 0), SOURCE)
    assert ZONE in handler.states.staged
    handling = asyncio.create_task(handler(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(broker.sent) == 1 and not handling.done()
    flushing = asyncio.create_task(handler.states.flush_settled())
    for _ in range(20):
        await asyncio.sleep(0.002)
    assert not flushing.done(), "the flush must wait for the alert's acknowledgement"
    assert writer.writes == []
    broker.release()
    await asyncio.wait_for(handling, 5)
    assert await asyncio.wait_for(flushing, 5) == 1
    ((zone, partition, state),) = writer.writes
    assert (zone, partition) == (ZONE, SOURCE.partition)
    assert state["alerts"], "written after the ack, with the alert it raised"
    assert not handler.states.busy


async def test_a_failed_alert_send_leaves_the_zone_not_busy() -> None:
    table: dict[str, Any] = {}
    broker = HeldBroker()
    handler, _ = staging_handler(table, broker)
    handling = asyncio.create_task(handler(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    broker.fail(RuntimeError("broker gone"))
    await asyncio.wait_for(handling, 5)  # dead-lettered as internal_error
    assert not handler.states.busy
    assert ZONE not in handler.states.staged, "a reading whose alert failed is not staged"


async def test_open_alerts_counts_staged_states() -> None:
    table: dict[str, Any] = {}
    broker = HeldBroker()
    handler, _ = staging_handler(table, broker)
    handling = asyncio.create_task(handler(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    broker.release()
    await asyncio.wait_for(handling, 5)
    assert ZONE not in table, "staged, not written"
    record = json.loads(broker.sent[0])
    assert list(handler.states.open_alerts()) == [(record["risk"], record["level"])]


async def test_zone_gauges_are_exported_again_after_a_rebalance_cleared_them() -> None:
    """The handler keeps the gauges' label children; a rebalance clears the gauges (the zones
    may have moved), which detaches those children. The next reading must export again."""
    registry = CollectorRegistry()
    handler = reading_handler({}, HeldBroker())
    handler.metrics = PipelineMetrics.create(registry)

    def people_now() -> float | None:
        return registry.get_sample_value("puhui_zone_people", {"zone": ZONE})

    await handler(people("cam-1:0", 10, 0), SOURCE)
    assert people_now() == 10
    assert registry.get_sample_value("puhui_zone_inflow_per_minute", {"zone": ZONE}) is None
    handler.metrics.zone_people.clear()
    handler.metrics.zone_density.clear()
    handler.forget_zone_gauges()  # what the app's partitions-revoked handler does
    assert people_now() is None
    await handler(people("cam-1:1", 12, 1), SOURCE)
    assert people_now() == 12


async def test_a_command_during_a_readings_unacknowledged_alert_does_not_write_it_through() -> None:
    """An operator's command on a zone whose reading's alert record the broker still holds: the
    command's save must not put the reading's changes in the changelog ahead of that record. It
    is staged on the command's partition (the zone's) and flushed once the reading's is acked."""
    table: dict[str, Any] = {}
    raised = HeldBroker()
    handler, writer = staging_handler(table, raised)
    first = asyncio.create_task(handler(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    raised.release()
    await first
    alert = json.loads(raised.sent[0])
    handler.states.flush()
    writes_before = len(writer.writes)

    held = HeldBroker()
    handler.send_alert = held
    escalating = asyncio.create_task(handler(smoke("smoke-2:1", "smoke-2"), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    assert held.sent and not escalating.done(), "the reading waits for its record's ack"

    acked = HeldBroker()
    commands = CommandHandler(
        zones=load_bundled_zones(),
        states=handler.states,
        metrics=PipelineMetrics.create(CollectorRegistry()),
        send_alert=acked,
        send_dead_letter=nothing,
    )
    command = AlertCommand.model_validate(
        {
            "command_id": "c-2",
            "alert_id": alert["alert_id"],
            "zone_id": ZONE,
            "action": CommandAction.ACKNOWLEDGE.value,
            "actor": "op-1",
            "issued_at": "2024-10-02T19:01:00+08:00",
        }
    )
    source = Source("puhui.alert-commands", SOURCE.partition, 1, ZONE.encode())
    commanding = asyncio.create_task(commands(command.model_dump_json().encode(), source))
    for _ in range(50):
        await asyncio.sleep(0)
    acked.release()
    await asyncio.wait_for(commanding, 5)
    assert len(writer.writes) == writes_before, "nothing written while the reading's record waits"
    assert handler.states.staged == {ZONE: SOURCE.partition}
    assert handler.states.busy, "the reading's alert record is still unacknowledged"
    held.release()
    await asyncio.wait_for(escalating, 5)
    assert await asyncio.wait_for(handler.states.flush_settled(), 5) == 1


async def test_an_older_reading_is_counted_stale_not_duplicate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A repeat (same time) is a duplicate; a reading older than its sensor's latest is stale:
    its own counter, and a sampled log line (the first is logged)."""
    table: dict[str, Any] = {}
    broker = HeldBroker()
    handler = reading_handler(table, broker)
    handling = asyncio.create_task(handler(smoke(), SOURCE))
    for _ in range(50):
        await asyncio.sleep(0)
    broker.release()
    await handling
    older = (
        SensorReading.model_validate(
            {
                "reading_id": "smoke-1:0",
                "sensor_id": "smoke-1",
                "zone_id": ZONE,
                "kind": "smoke",
                "value": 0,
                "observed_at": "2024-10-02T18:59:00+08:00",
            }
        )
        .model_dump_json()
        .encode()
    )
    with caplog.at_level("WARNING", logger="puhui.worker"):
        await handler(smoke(), SOURCE)  # the same reading again
        await handler(older, SOURCE)
        await handler(older.replace(b"smoke-1:0", b"smoke-1:0b"), SOURCE)
    assert handler.metrics.readings_duplicate._value.get() == 1
    assert handler.metrics.readings_stale._value.get() == 2
    stale_lines = [r for r in caplog.records if "stale reading" in r.getMessage()]
    assert len(stale_lines) == 1  # sampled: the first of every 1000
    assert "smoke-1" in stale_lines[0].getMessage()
    assert len(broker.sent) == 1  # neither published anything
