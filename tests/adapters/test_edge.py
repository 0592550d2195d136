"""One guarded edge for the three input topics' handlers: a bad record is dead-lettered with its
reason and counted by topic, a handler that raises dead-letters the record as internal_error,
a record on the wrong partition is re-keyed, a repeat is counted as a duplicate of its topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.config import RuleBook, default_rules
from models.contracts import AlertCommand, CommandAction, SensorReading, VolunteerReport
from models.zones import load_bundled_zones
from streams.handlers import CommandHandler, ReadingHandler, ReportHandler, Source, ZoneStates
from streams.metrics import PipelineMetrics

pytestmark = pytest.mark.unit

ZONES = load_bundled_zones()
ZONE = "tianzifang-taikang-248"
READINGS, REPORTS, COMMANDS = "t.readings", "t.reports", "t.commands"


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self.records.append((key, value, dict(headers or [])))


class Rig:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics.create(self.registry)
        self.metrics.initialise_topics((READINGS, REPORTS, COMMANDS))
        self.dead, self.alerts, self.resent = Sent(), Sent(), Sent()
        self.stored: list[Any] = []
        states = ZoneStates({})
        rules = RuleBook(default_rules(), {})

        async def store(report: VolunteerReport, alert_id: str | None) -> None:
            self.stored.append((report.report_id, alert_id))

        self.readings = ReadingHandler(
            ZONES, rules, states, self.metrics, self.alerts, self.dead, self.resent
        )
        self.reports = ReportHandler(
            ZONES, rules, states, self.metrics, self.alerts, self.dead, self.resent, store
        )
        self.commands = CommandHandler(
            ZONES, states, self.metrics, self.alerts, self.dead, send_command=self.resent
        )

    def value(self, name: str, **labels: str) -> float:
        got = self.registry.get_sample_value(name, labels)
        return got if got is not None else -1.0


def src(topic: str, key: str | None = ZONE, offset: int = 3) -> Source:
    return Source(topic, 1, offset, key.encode() if key else None)


READING = SensorReading(
    reading_id="g-1",
    sensor_id="gas-1",
    zone_id=ZONE,
    kind="gas_lel",
    value=1.0,
    observed_at=datetime(2026, 10, 1, 11, 0, tzinfo=UTC),
).model_dump_json()
REPORT = VolunteerReport(
    report_id="rep-1",
    zone_id=ZONE,
    reporter_id="v-1",
    category="littering",
    description="垃圾",
    submitted_at=datetime(2026, 10, 1, 11, 0, tzinfo=UTC),
).model_dump_json()
COMMAND = AlertCommand(
    command_id="c-1",
    alert_id="al-unknown",
    zone_id=ZONE,
    action=CommandAction.ACKNOWLEDGE,
    actor="op-1",
    issued_at=datetime(2026, 10, 1, 11, 0, tzinfo=UTC),
).model_dump_json()


@pytest.mark.parametrize("topic", [READINGS, REPORTS, COMMANDS])
async def test_malformed_records_are_dead_lettered_and_counted_by_topic(topic: str) -> None:
    rig = Rig()
    handler = {READINGS: rig.readings, REPORTS: rig.reports, COMMANDS: rig.commands}[topic]
    await handler(b"{not json", src(topic))
    assert len(rig.dead.records) == 1
    key, value, headers = rig.dead.records[0]
    assert (key, value) == (ZONE.encode(), b"{not json")
    assert headers["error.reason"] == b"malformed_json"
    assert headers["source.topic"] == topic.encode()
    assert rig.value("puhui_dead_letters_total", topic=topic, reason="malformed_json") == 1
    others = [t for t in (READINGS, REPORTS, COMMANDS) if t != topic]
    for other in others:
        assert rig.value("puhui_dead_letters_total", topic=other, reason="malformed_json") == 0
    # the deprecated name still counts, one release
    assert rig.value("puhui_readings_rejected_total", reason="malformed_json") == 1


@pytest.mark.parametrize("topic", [READINGS, REPORTS, COMMANDS])
async def test_a_handler_that_raises_dead_letters_the_record_as_internal_error(
    topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ZoneStates, "get", boom)
    handler = {READINGS: rig.readings, REPORTS: rig.reports, COMMANDS: rig.commands}[topic]
    raw = {READINGS: READING, REPORTS: REPORT, COMMANDS: COMMAND}[topic].encode()
    await handler(raw, src(topic))
    assert [(r[1], r[2]["error.reason"]) for r in rig.dead.records] == [(raw, b"internal_error")]
    assert b"boom" in rig.dead.records[0][2]["error.detail"]
    assert rig.value("puhui_dead_letters_total", topic=topic, reason="internal_error") == 1


@pytest.mark.parametrize("topic", [READINGS, REPORTS, COMMANDS])
async def test_records_not_keyed_by_their_zone_are_rekeyed(topic: str) -> None:
    rig = Rig()
    handler = {READINGS: rig.readings, REPORTS: rig.reports, COMMANDS: rig.commands}[topic]
    raw = {READINGS: READING, REPORTS: REPORT, COMMANDS: COMMAND}[topic].encode()
    await handler(raw, src(topic, key=None))
    assert rig.resent.records == [(ZONE.encode(), raw, {})]
    assert rig.dead.records == [] and rig.alerts.records == []
    assert rig.value("puhui_readings_rekeyed_total") == 1


@pytest.mark.parametrize("topic", [READINGS, REPORTS, COMMANDS])
async def test_a_repeat_is_counted_as_a_duplicate_of_its_topic(topic: str) -> None:
    rig = Rig()
    handler = {READINGS: rig.readings, REPORTS: rig.reports, COMMANDS: rig.commands}[topic]
    raw = {READINGS: READING, REPORTS: REPORT, COMMANDS: COMMAND}[topic].encode()
    await handler(raw, src(topic, offset=3))
    await handler(raw, src(topic, offset=4))
    assert rig.value("puhui_duplicates_total", topic=topic) == 1
    for other in {READINGS, REPORTS, COMMANDS} - {topic}:
        assert rig.value("puhui_duplicates_total", topic=other) == 0
    assert rig.value("puhui_readings_duplicate_total") == 1  # deprecated name
    assert rig.dead.records == []
