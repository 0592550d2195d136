"""Nothing grows without bound (issue 10): an alert's revisions and evidence under a stream of
reports, and a zone's sensors under made-up sensor ids."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.config import RuleBook, default_rules
from alerts.engine import ZoneState, admits_sensor, process_reading, process_report
from alerts.zone.alert import KEPT_IDS
from models.contracts import (
    AlertRecord,
    Change,
    ReportCategory,
    SensorKind,
    SensorReading,
    VolunteerReport,
)
from models.zones import load_bundled_zones
from streams.handlers import ReadingHandler, Source, ZoneStates
from streams.metrics import PipelineMetrics

pytestmark = pytest.mark.unit

ZONES = load_bundled_zones()
ZONE = ZONES.get("tianzifang-taikang-248")
assert ZONE is not None
RULES = default_rules()
T0 = datetime(2026, 10, 1, 19, 0, tzinfo=timezone(timedelta(hours=8)))


def report(i: int, who: str, category: str = "littering") -> VolunteerReport:
    return VolunteerReport(
        report_id=f"rep-{i:04d}",
        reporter_id=who,
        zone_id=ZONE.id,
        category=ReportCategory(category),
        description="还在",
        submitted_at=T0 + timedelta(seconds=10 * i),
    )


def reports_from_three(state: ZoneState, category: str, count: int = 60) -> list[AlertRecord]:
    """``count`` reports, 10 s apart, from three volunteers taking turns (v1, v2, v3, v1, …)."""
    records: list[AlertRecord] = []
    for i in range(count):
        records += process_report(state, report(i, f"v{i % 3 + 1}", category), ZONE, RULES).records
    return records


def test_sixty_reports_from_three_volunteers_make_three_revisions_of_a_report_alert() -> None:
    state = ZoneState(ZONE.id)
    records = reports_from_three(state, "littering")
    # raised by v1 (蓝), v2 joins (a new reporter), v3 is the third distinct reporter: 黄
    assert [(r.change, r.level.value) for r in records] == [
        (Change.RAISED, "blue"),
        (Change.CORROBORATED, "blue"),
        (Change.ESCALATED, "yellow"),
    ]
    assert {r.alert_id for r in records} == {records[0].alert_id}
    alert = state.alerts["report:littering"]
    assert alert.revision == 3
    assert alert.evidence["report_count"] == 60
    assert alert.evidence["reporter_count"] == 3
    assert alert.evidence["reporters"] == ["v1", "v2", "v3"]
    assert alert.evidence["reports"] == [f"rep-{i:04d}" for i in range(50, 60)]
    assert "description" not in alert.evidence  # the volunteer's words stay with the report


def test_sixty_reports_on_a_sensor_alert_corroborate_it_once_per_new_reporter() -> None:
    state = ZoneState(ZONE.id)
    gas = SensorReading(
        reading_id="gas-1",
        sensor_id="gas-a",
        zone_id=ZONE.id,
        kind=SensorKind.GAS_LEL,
        value=30,
        observed_at=T0 + timedelta(minutes=30),  # the reports are not newer: none waits
    )
    (raised,) = process_reading(state, gas, ZONE, RULES).records
    records = reports_from_three(state, "gas")
    assert [r.change for r in records] == [Change.CORROBORATED] * 3
    assert [r.revision for r in records] == [2, 3, 4]
    alert = state.alerts["gas"]
    assert alert.alert_id == raised.alert_id and alert.revision == 4
    assert alert.evidence["report_count"] == 60 and len(alert.evidence["reports"]) == KEPT_IDS


def test_an_alerts_record_stays_the_same_size_however_many_volunteers_report() -> None:
    state = ZoneState(ZONE.id)
    sizes = []
    for i in range(400):
        records = process_report(state, report(i, f"vol-{i}"), ZONE, RULES).records
        sizes += [len(r.to_bytes()) for r in records]
    alert = state.alerts["report:littering"]
    assert alert.evidence["reporter_count"] == 400 and alert.evidence["report_count"] == 400
    assert len(alert.evidence["reports"]) == len(alert.evidence["reporters"]) == KEPT_IDS
    # once the id lists are full, every record is as large as the last (ids are equally long)
    assert max(sizes) - min(sizes[KEPT_IDS + 1 :]) < 100, (min(sizes), max(sizes))


def test_a_zone_admits_a_bounded_number_of_distinct_sensors() -> None:
    state = ZoneState(ZONE.id)
    for i in range(3):
        reading = SensorReading(
            reading_id=f"r{i}",
            sensor_id=f"s{i}",
            zone_id=ZONE.id,
            kind=SensorKind.HEARTBEAT,
            value=1,
            observed_at=T0 + timedelta(seconds=i),
        )
        assert admits_sensor(state, reading.sensor_id, limit=3)
        process_reading(state, reading, ZONE, RULES)
    assert not admits_sensor(state, "s-new", limit=3)
    assert admits_sensor(state, "s1", limit=3)  # a known sensor always


async def test_a_reading_from_one_sensor_too_many_is_dead_lettered() -> None:
    letters: list[tuple[bytes, dict[str, bytes]]] = []

    async def dead(key: bytes | None, value: bytes, headers: Any = None) -> None:
        letters.append((value, dict(headers)))

    async def sent(key: bytes | None, value: bytes, headers: Any = None) -> None:
        return None

    table: dict[str, Any] = {}
    handler = ReadingHandler(
        zones=ZONES,
        rules=RuleBook(RULES, {}),
        states=ZoneStates(table),
        metrics=PipelineMetrics.create(CollectorRegistry()),
        send_alert=sent,
        send_dead_letter=dead,
        send_reading=sent,
        max_sensors=2,
    )

    def raw(i: int) -> bytes:
        body = {
            "reading_id": f"r{i}",
            "sensor_id": f"made-up-{i}",
            "zone_id": ZONE.id,
            "kind": "heartbeat",
            "value": 1,
            "observed_at": (T0 + timedelta(seconds=i)).isoformat(),
        }
        return json.dumps(body).encode()

    for i in range(5):
        await handler(raw(i), Source("puhui.sensor-readings", 0, i, ZONE.id.encode()))
    assert len(handler.states.get(ZONE.id).sensors) == 2
    assert [json.loads(v)["sensor_id"] for v, _ in letters] == [
        "made-up-2",
        "made-up-3",
        "made-up-4",
    ]
    assert {h["error.reason"] for _, h in letters} == {b"too_many_sensors"}
    assert letters[0][1]["error.detail"].startswith(b"sensor_id:")
