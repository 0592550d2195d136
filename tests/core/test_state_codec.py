"""The zone state's stored form carries its format version; every earlier format upgrades."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.config import default_rules
from alerts.engine import ZoneState, apply_command, process_reading, process_report
from alerts.zone.codec import STATE_VERSION, UnknownStateVersion, upgrade
from alerts.zone.keys import Outcome, is_report_key, report_key, risk_key
from models.contracts import (
    AlertCommand,
    CommandAction,
    ReportCategory,
    Risk,
    SensorKind,
    SensorReading,
    VolunteerReport,
)
from models.zones import LocalizedText, Zone

pytestmark = pytest.mark.unit

T0 = datetime(2026, 10, 1, 11, 0, tzinfo=UTC)
ZONE = Zone(
    id="lane-1",
    name=LocalizedText(zh="一号弄", en="Lane 1"),
    site="tzf",
    grid="zhongtai",
    area_m2=100.0,
)
RULES = default_rules()


def busy_state() -> ZoneState:
    """A state holding every part: sensors, samples, a sensor alert, a report alert, a closed
    and a latched alert, a waiting report."""
    state = ZoneState(ZONE.id)
    for i, (sensor, kind, value) in enumerate(
        [
            ("cam", SensorKind.PEOPLE_COUNT, 120.0),
            ("gas", SensorKind.GAS_LEL, 30.0),
            ("smoke", SensorKind.SMOKE, 1.0),
            ("cam", SensorKind.PEOPLE_COUNT, 130.0),
            ("smoke", SensorKind.SMOKE, 0.0),
        ]
    ):
        reading = SensorReading(
            reading_id=f"r{i}",
            sensor_id=sensor,
            zone_id=ZONE.id,
            kind=kind,
            value=value,
            observed_at=T0 + timedelta(seconds=30 * i),
        )
        process_reading(state, reading, ZONE, RULES)
    report = VolunteerReport(
        report_id="rep-1",
        zone_id=ZONE.id,
        reporter_id="v-1",
        category=ReportCategory.LITTERING,
        description="垃圾",
        submitted_at=T0 + timedelta(seconds=60),
    )
    process_report(state, report, ZONE, RULES)
    late = report.model_copy(update={"report_id": "rep-2", "submitted_at": T0 + timedelta(hours=1)})
    process_report(state, late, ZONE, RULES)
    gas = state.alerts[risk_key(Risk.GAS)]
    command = AlertCommand(
        command_id="c-1",
        alert_id=gas.alert_id,
        zone_id=ZONE.id,
        action=CommandAction.RESOLVE,
        actor="op",
        issued_at=T0 + timedelta(minutes=3),
    )
    assert apply_command(state, command).outcome is Outcome.APPLIED
    assert apply_command(state, command).outcome is Outcome.DUPLICATE
    return state


def test_the_current_format_carries_its_version_and_round_trips() -> None:
    state = busy_state()
    data = state.to_dict()
    assert data["v"] == STATE_VERSION == 1
    assert report_key(ReportCategory.LITTERING) in state.alerts
    assert risk_key(Risk.GAS) in state.closed and state.pending_reports
    assert ZoneState.from_dict(copy.deepcopy(data)).to_dict() == data
    assert upgrade(data) == data


def test_the_unversioned_format_upgrades_to_the_current_one() -> None:
    data = busy_state().to_dict()
    old: dict[str, Any] = copy.deepcopy(data)
    del old["v"]
    # the earliest states lacked the keys added since, with these defaults
    for key in ("sample_source", "pending_reports", "latched", "closed"):
        del old[key]
    for alert in old["alerts"].values():
        for key in ("assignee", "inhibited", "acknowledged_by", "acknowledged_at", "latched"):
            del alert[key]
    frozen = copy.deepcopy(old)
    upgraded = upgrade(old)
    assert old == frozen, "upgrade must not change what it was given"
    assert upgraded["v"] == STATE_VERSION
    assert upgraded["closed"] == {} and upgraded["latched"] == {}
    state = ZoneState.from_dict(old)
    assert state.to_dict()["v"] == STATE_VERSION
    assert state.alerts.keys() == ZoneState.from_dict(data).alerts.keys()
    # an unversioned state of today's shape reads exactly as the versioned one
    today = copy.deepcopy(data)
    del today["v"]
    assert ZoneState.from_dict(today).to_dict() == data


@pytest.mark.parametrize("version", [STATE_VERSION + 1, -1, "1"])
def test_a_state_of_an_unknown_version_is_refused(version: object) -> None:
    data = busy_state().to_dict()
    data["v"] = version
    with pytest.raises(UnknownStateVersion):
        ZoneState.from_dict(data)


def test_alert_keys() -> None:
    assert risk_key(Risk.GAS) == "gas"
    assert report_key(ReportCategory.FIRE_LANE) == "report:fire_lane"
    assert is_report_key(report_key(ReportCategory.OTHER))
    assert not is_report_key(risk_key(Risk.FIRE_LANE))
