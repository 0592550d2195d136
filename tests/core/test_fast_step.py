"""The cheap step for a reading that changes nothing: never taken when the full step would
change something (a property test against the full step)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.config import default_rules
from alerts.engine import ZoneState, process_reading
from alerts.zone import step
from models.contracts import SensorKind, SensorReading
from models.zones import LocalizedText, Zone

pytestmark = pytest.mark.unit

T0 = datetime(2026, 10, 1, 19, 0, tzinfo=UTC)
ZONE = Zone(
    id="lane-1",
    name=LocalizedText(zh="一号弄", en="Lane 1"),
    site="tzf",
    grid="zhongtai",
    area_m2=100.0,
    capacity=300,
)
RULES = default_rules()

#: The zone's sensors, and values around their levels (quiet ones most of the time).
SENSORS: list[tuple[str, SensorKind, list[float]]] = [
    ("smoke-1", SensorKind.SMOKE, [0, 0, 0, 1]),
    ("smoke-2", SensorKind.SMOKE, [0, 0, 1]),
    ("gas-1", SensorKind.GAS_LEL, [0, 2, 5, 9.99, 10, 30, 60]),
    ("gas-2", SensorKind.GAS_LEL, [0, 3, 12]),
    ("temp-1", SensorKind.CIRCUIT_TEMP, [30, 45, 59.9, 61, 95]),
    ("leak-1", SensorKind.LEAK_CURRENT, [10, 100, 301]),
    ("water-1", SensorKind.WATER_DEPTH, [0, 1, 4.99, 5, 20]),
    ("tilt-1", SensorKind.MANHOLE_TILT, [0, 2, 12]),
    ("lane-cam", SensorKind.FIRE_LANE_BLOCKED, [0, 0, 1]),
    ("lift-1", SensorKind.EBIKE_IN_ELEVATOR, [0, 0, 1]),
    ("hb-1", SensorKind.HEARTBEAT, [1]),
    # last in a round, so that the quiet sensors are the first to see what time has done
    ("cam-1", SensorKind.PEOPLE_COUNT, [0, 40, 150, 300, 500]),
    ("gate-in", SensorKind.ENTRIES, [0, 5, 60]),
    ("gate-out", SensorKind.EXITS, [0, 5, 60]),
]

#: One round of the zone's sensors: seconds since the last round, then per sensor whether it
#: reports (a missing one goes silent after a while) and which of its values (mostly quiet).
round_ = st.tuples(
    st.sampled_from([0.5, 1.0, 15.0, 30.0, 30.0, 30.0, 60.0, 200.0, 320.0, 320.0, 400.0]),
    st.lists(
        st.tuples(st.sampled_from([True] * 6 + [False]), st.sampled_from([0] * 8 + [1, 2, 3, 4])),
        min_size=len(SENSORS),
        max_size=len(SENSORS),
    ),
    st.sampled_from([0.0] * 5 + [-45.0]),  # now and then one late reading (stale)
)


def _readings(rounds: list[tuple[float, list[tuple[bool, int]], float]]) -> list[SensorReading]:
    out: list[SensorReading] = []
    t = 0.0
    for dt, which, late in rounds:
        t += dt
        for i, (present, j) in enumerate(which):
            if not present:
                continue
            sensor_id, kind, values = SENSORS[i]
            out.append(
                SensorReading(
                    reading_id=f"r{len(out)}",
                    sensor_id=sensor_id,
                    zone_id=ZONE.id,
                    kind=kind,
                    value=values[j % len(values)],
                    observed_at=T0 + timedelta(seconds=t + i * 0.01 + (late if i == 2 else 0.0)),
                )
            )
    return out


QUIET = [(30.0, [(True, 0)] * len(SENSORS), 0.0)]


def _clone(state: ZoneState) -> ZoneState:
    return ZoneState.from_dict(copy.deepcopy(state.to_dict()))


def _run(readings: list[SensorReading]) -> None:
    """Feed the readings to a state through the cheap step and, at every reading, a copy of
    the same state through the full step: same records, same view, same state after."""
    state = ZoneState(ZONE.id)
    for reading in readings:
        shadow = _clone(state)
        full = process_reading(shadow, reading, ZONE, RULES, fast=False)
        got = process_reading(state, reading, ZONE, RULES)
        assert got.records == full.records, reading
        assert got.view == full.view
        assert (got.duplicate, got.stale, got.linked) == (full.duplicate, full.stale, full.linked)
        assert state.to_dict() == shadow.to_dict(), reading


@settings(max_examples=300, deadline=None)
@given(st.lists(round_, min_size=1, max_size=25))
def test_the_cheap_step_never_skips_a_reading_that_changes_something(
    rounds: list[tuple[float, list[tuple[bool, int]], float]],
) -> None:
    _run(_readings(rounds))


def test_a_quiet_zone_takes_the_cheap_step_and_an_alarm_does_not() -> None:
    # every sensor reports every 30 s, far below its levels: no alert, the cheap step
    readings = _readings(QUIET * 10)
    state = ZoneState(ZONE.id)
    for reading in readings:
        process_reading(state, reading, ZONE, RULES)
    gas = SensorReading(
        reading_id="gas-high",
        sensor_id="gas-1",
        zone_id=ZONE.id,
        kind=SensorKind.GAS_LEL,
        value=30.0,
        observed_at=readings[-1].observed_at + timedelta(seconds=1),
    )
    low = gas.model_copy(update={"reading_id": "gas-low", "value": 1.0})
    low = low.model_copy(update={"observed_at": gas.observed_at - timedelta(milliseconds=500)})
    assert process_reading(_clone(state), low, ZONE, RULES).records == []
    records = process_reading(state, gas, ZONE, RULES).records
    assert [(r.risk.value, r.level.value) for r in records] == [("gas", "orange")]


def test_the_cheap_step_is_taken_on_a_quiet_mix(monkeypatch: pytest.MonkeyPatch) -> None:
    # the busy evening's quiet sensors: their non-crowd readings take the cheap step
    full_steps: list[str] = []
    assess = step._assess_reading

    def counted(state: ZoneState, reading: SensorReading, zone: Zone, rules: object) -> object:
        full_steps.append(reading.sensor_id)
        return assess(state, reading, zone, rules)  # type: ignore[arg-type]

    monkeypatch.setattr(step, "_assess_reading", counted)
    readings = _readings(QUIET * 20)
    state = ZoneState(ZONE.id)
    for reading in readings:
        process_reading(state, reading, ZONE, RULES)
    crowd = {"cam-1", "gate-in", "gate-out", "lane-cam"}
    assert state.alerts == {}
    # the first round has no gaps learnt yet; after it, only the crowd and the fire lane
    assert set(full_steps[len(SENSORS) :]) <= crowd
    assert len(full_steps) < len(readings) // 2


def test_a_running_duration_is_assessed_on_a_quiet_reading() -> None:
    # the fire lane stays blocked; its camera reports after the quiet sensors of each round, so
    # a quiet sensor's reading is the first past the 5 minutes: it must raise the alert
    lane = SENSORS.index(("lane-cam", SensorKind.FIRE_LANE_BLOCKED, [0, 0, 1]))
    blocked = [(True, 2 if i == lane else 0) for i in range(len(SENSORS))]
    rounds = [(45.0, blocked, 0.0)] * 10
    _run(_readings(rounds))  # the cheap and the full step agree at every reading
    state = ZoneState(ZONE.id)
    raised = [
        (x.sensor_id, r.risk.value, r.level.value)
        for x in _readings(rounds)
        for r in process_reading(state, x, ZONE, RULES).records
    ]
    assert raised == [("smoke-1", "fire_lane", "orange")]
