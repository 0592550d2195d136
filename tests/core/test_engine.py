"""The zone engine: readings of one zone in, alert records out, event time only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.config import default_rules
from alerts.engine import ZoneState, apply_command, process_reading
from alerts.rules import crowding_level, fire_level, level_for
from models.contracts import (
    AlertCommand,
    AlertStatus,
    Change,
    Level,
    Risk,
    SensorKind,
    SensorReading,
)
from models.zones import LocalizedText, Zone

pytestmark = pytest.mark.unit

T0 = datetime(2026, 10, 1, 19, 0, tzinfo=UTC)
ZONE = Zone(
    id="lane-1",
    name=LocalizedText(zh="一号弄", en="Lane 1"),
    site="tzf",
    grid="zhongtai",
    area_m2=100.0,
)
CAPPED = Zone(
    id="lane-2",
    name=LocalizedText(zh="二号弄", en="Lane 2"),
    site="tzf",
    grid="zhongtai",
    area_m2=100.0,
    capacity=300,
)
RULES = default_rules()
_n = 0


def reading(
    kind: SensorKind,
    value: float,
    minute: float,
    sensor: str = "cam-1",
    zone: str = "lane-1",
    rid: str | None = None,
) -> SensorReading:
    global _n
    _n += 1
    return SensorReading(
        reading_id=rid or f"r{_n}",
        sensor_id=sensor,
        zone_id=zone,
        kind=kind,
        value=value,
        observed_at=T0 + timedelta(minutes=minute),
    )


def people(count: float, minute: float, **kw: str) -> SensorReading:
    return reading(SensorKind.PEOPLE_COUNT, count, minute, **kw)


def feed(state: ZoneState, readings: list[SensorReading], zone: Zone = ZONE) -> list:
    out = []
    for r in readings:
        out.extend(process_reading(state, r, zone, RULES).records)
    return out


def test_thresholds_from_domain() -> None:
    density = RULES.density_levels()
    assert level_for(1.99, density) is None
    assert [level_for(d, density) for d in (2, 3, 4, 5, 9)] == [
        Level.BLUE,
        Level.YELLOW,
        Level.ORANGE,
        Level.RED,
        Level.RED,
    ]
    assert crowding_level(1.0, 1.0) == Level.ORANGE  # capacity reached
    assert crowding_level(4.5, 0.5) == Level.ORANGE  # density wins when worse
    assert crowding_level(1.0, 0.5) is None


def test_crowding_escalates_in_order_and_resolves_after_hold() -> None:
    state = ZoneState("lane-1")
    counts = [150, 210, 310, 410, 520, 430, 300, 100, 100, 100, 100, 100]
    records = feed(state, [people(c, i) for i, c in enumerate(counts)])
    # minute 5: 430 (orange) starts a hold below red; ...
    changes = [(r.change, r.level) for r in records]
    assert changes[:4] == [
        (Change.RAISED, Level.BLUE),
        (Change.ESCALATED, Level.YELLOW),
        (Change.ESCALATED, Level.ORANGE),
        (Change.ESCALATED, Level.RED),
    ]
    assert changes[4] == (Change.DEESCALATED, Level.ORANGE)  # minute 10: 5 min after minute 5
    assert records[0].evidence["density"] == 2.1
    assert "人群密度" in records[0].summary.zh and "persons/m²" in records[0].summary.en
    state2 = ZoneState("lane-1")
    recs = feed(state2, [people(500, 0), *[people(0, m) for m in range(1, 7)]])
    assert [r.change for r in recs] == [Change.RAISED, Change.RESOLVED]
    assert recs[-1].at == T0 + timedelta(minutes=6)


def test_repeated_reading_id_changes_nothing() -> None:
    state = ZoneState("lane-1")
    first = people(450, 0, rid="same")
    assert len(feed(state, [first])) == 1
    before = json.dumps(state.to_dict(), sort_keys=True)
    step = process_reading(state, first, ZONE, RULES)
    assert step.duplicate and step.records == []
    assert json.dumps(state.to_dict(), sort_keys=True) == before


def test_two_cameras_are_summed_and_late_reading_ignored() -> None:
    state = ZoneState("lane-1")
    feed(state, [people(120, 0, sensor="a"), people(100, 1, sensor="b")])
    assert state.counted_people() == 220
    feed(state, [people(999, 0.5, sensor="b")])  # older than b's latest: ignored
    assert state.counted_people() == 220


def test_occupancy_rule_uses_capacity() -> None:
    state = ZoneState("lane-2")
    recs = feed(state, [people(300, 0, zone="lane-2")], zone=CAPPED)
    assert recs[0].level == Level.ORANGE and recs[0].evidence["occupancy"] == 1.0


def test_one_smoke_detector_orange_second_red() -> None:
    state = ZoneState("lane-1")
    recs = feed(
        state,
        [
            reading(SensorKind.SMOKE, 0, 0, sensor="s1"),
            reading(SensorKind.SMOKE, 1, 1, sensor="s1"),
            reading(SensorKind.SMOKE, 1, 3, sensor="s2"),
        ],
    )
    assert [(r.change, r.level, r.risk) for r in recs] == [
        (Change.RAISED, Level.ORANGE, Risk.FIRE),
        (Change.ESCALATED, Level.RED, Risk.FIRE),
    ]
    assert recs[1].evidence["detectors_in_alarm"] == ["s1", "s2"]


def test_second_detector_after_window_stays_orange() -> None:
    t = {"s1": T0, "s2": T0 + timedelta(minutes=6)}
    assert fire_level(t) == Level.ORANGE
    t["s2"] = T0 + timedelta(minutes=5)
    assert fire_level(t) == Level.RED
    assert fire_level({}) is None


def test_fire_resolves_when_detectors_clear_and_other_sensors_advance_time() -> None:
    state = ZoneState("lane-1")
    recs = feed(
        state,
        [
            reading(SensorKind.SMOKE, 1, 0, sensor="s1"),
            reading(SensorKind.SMOKE, 0, 1, sensor="s1"),
            people(10, 3),
            people(10, 5),
            people(10, 6),
        ],
    )
    fire = [r.change for r in recs if r.risk == Risk.FIRE]
    assert fire == [Change.RAISED, Change.RESOLVED]
    # 5 quiet minutes are normal for a smoke detector (it reports every 5 min): not offline
    assert [r for r in recs if r.risk != Risk.FIRE] == []


def test_state_round_trips_through_dict() -> None:
    state = ZoneState("lane-1")
    feed(state, [people(450, 0), reading(SensorKind.SMOKE, 1, 1, sensor="s1"), people(100, 2)])
    data = json.loads(json.dumps(state.to_dict()))
    again = ZoneState.from_dict(data)
    assert again.to_dict() == state.to_dict()
    # and it behaves the same afterwards
    more = [people(0, m) for m in range(3, 10)]
    assert [r.model_dump() for r in feed(state, list(more))] == [
        r.model_dump() for r in feed(again, list(more))
    ]


def test_peaks_follow_event_time() -> None:
    state = ZoneState("lane-1")
    step = None
    for minute, count in [(0, 100), (1, 180), (2, 120), (6.5, 90)]:
        step = process_reading(state, people(count, minute), ZONE, RULES)
    assert step is not None and step.view is not None
    assert step.view.peaks == {"5m": 120, "1h": 180, "day": 180}
    assert step.view.people == 90 and step.view.density == 0.9


@given(st.lists(st.integers(0, 800), min_size=1, max_size=40))
def test_replaying_twice_is_identical_and_duplicates_are_inert(counts: list[int]) -> None:
    rs = [people(c, i * 0.5, rid=f"p{i}") for i, c in enumerate(counts)]
    a, b = ZoneState("lane-1"), ZoneState("lane-1")
    first = feed(a, rs)
    doubled = []
    for r in rs:
        doubled.extend(process_reading(b, r, ZONE, RULES).records)
        doubled.extend(process_reading(b, r, ZONE, RULES).records)
    assert [r.model_dump() for r in first] == [r.model_dump() for r in doubled]


def test_commands_apply_to_the_open_alert_once() -> None:
    from models.contracts import AlertCommand

    state = ZoneState("lane-1")
    (raised,) = feed(state, [people(450, 0)])

    def cmd(cid: str, action: str, alert_id: str = raised.alert_id) -> AlertCommand:
        return AlertCommand(
            command_id=cid,
            alert_id=alert_id,
            zone_id="lane-1",
            action=action,
            actor="op",
            issued_at=T0 + timedelta(minutes=1),
            assignee="w",
        )

    from alerts.engine import apply_command

    ack = apply_command(state, cmd("c1", "acknowledge"))
    assert ack.outcome == "applied" and ack.record is not None
    assert ack.record.change == Change.ACKNOWLEDGED and ack.record.revision == 2
    assert apply_command(state, cmd("c1", "acknowledge")).outcome == "duplicate"
    assert apply_command(state, cmd("c2", "assign")).record.assignee == "w"  # type: ignore[union-attr]
    assert apply_command(state, cmd("c3", "acknowledge", "nope")).outcome == "not_open"
    done = apply_command(state, cmd("c4", "resolve"))
    assert done.record is not None and done.record.revision == 4 and not state.alerts
    assert done.record.acknowledged_by == "op"  # closing it is acknowledging it
    # the crowd is still there: the same alert reopens (same id, next revision), no twin
    (again,) = feed(state, [people(460, 2)])
    assert again.change == Change.REOPENED and again.alert_id == raised.alert_id
    assert again.revision == 5 and again.status == AlertStatus.FIRING
    assert again.acknowledged_by is None and again.assignee == "w"


def _command(alert_id: str, cid: str, action: str, minute: float) -> AlertCommand:
    return AlertCommand(
        command_id=cid,
        alert_id=alert_id,
        zone_id="lane-1",
        action=action,
        actor="op-li",
        issued_at=T0 + timedelta(minutes=minute),
    )


def test_a_red_alert_that_clears_on_its_own_latches_until_acknowledged() -> None:
    state = ZoneState("lane-1")
    (raised,) = feed(state, [people(550, 0)])
    assert raised.level == Level.RED and not raised.acknowledged and not raised.latched
    records = feed(state, [people(50, 1), people(50, 7)])
    (resolved,) = records
    assert resolved.status == AlertStatus.RESOLVED and resolved.actor is None
    assert resolved.latched and not resolved.acknowledged
    assert list(state.latched) == [raised.alert_id]
    # the latch survives the state store
    state = ZoneState.from_dict(json.loads(json.dumps(state.to_dict())))
    # resolving a latched alert is not an acknowledgement: only acknowledge takes it off
    assert apply_command(state, _command(raised.alert_id, "c0", "resolve", 8)).outcome == (
        "not_open"
    )
    ack = apply_command(state, _command(raised.alert_id, "c1", "acknowledge", 9))
    assert ack.outcome == "applied" and ack.record is not None
    assert ack.record.change == Change.ACKNOWLEDGED and ack.record.status == AlertStatus.RESOLVED
    assert ack.record.revision == resolved.revision + 1
    assert not ack.record.latched and ack.record.acknowledged_by == "op-li"
    assert ack.record.acknowledged_at == T0 + timedelta(minutes=9)
    assert not state.latched
    assert apply_command(state, _command(raised.alert_id, "c2", "acknowledge", 9)).outcome == (
        "not_open"
    )


def test_latching_follows_the_peak_level_and_skips_acknowledged_alerts() -> None:
    # red, lowered to yellow, then clear: the red it reached latches it
    state = ZoneState("lane-1")
    feed(state, [people(550, 0)])
    down = feed(state, [people(350, 1), people(350, 7)])
    assert [r.change for r in down] == [Change.DEESCALATED] and down[0].level == Level.YELLOW
    (gone,) = feed(state, [people(10, 8), people(10, 14)])
    assert gone.latched
    # yellow only: not latched by the default latch levels
    state = ZoneState("lane-1")
    feed(state, [people(350, 0)])
    (gone,) = feed(state, [people(10, 1), people(10, 7)])
    assert gone.status == AlertStatus.RESOLVED and not gone.latched and not state.latched
    # acknowledged red: a person has seen it, it may leave the board
    state = ZoneState("lane-1")
    (raised,) = feed(state, [people(550, 0)])
    apply_command(state, _command(raised.alert_id, "c1", "acknowledge", 0.5))
    (gone,) = feed(state, [people(10, 1), people(10, 7)])
    assert gone.acknowledged and gone.acknowledged_by == "op-li" and not gone.latched


def test_an_escalation_clears_the_acknowledgement() -> None:
    state = ZoneState("lane-1")
    (raised,) = feed(state, [people(450, 0)])
    ack = apply_command(state, _command(raised.alert_id, "c1", "acknowledge", 0.5)).record
    assert ack is not None and ack.acknowledged and ack.status == AlertStatus.ACKNOWLEDGED
    (up,) = feed(state, [people(560, 1)])
    assert up.change == Change.ESCALATED and up.status == AlertStatus.FIRING
    assert not up.acknowledged and up.acknowledged_at is None


def test_resolved_by_an_operator_reopens_only_within_the_hold_time() -> None:
    state = ZoneState("lane-1")
    (raised,) = feed(state, [people(450, 0)])
    apply_command(state, _command(raised.alert_id, "c1", "resolve", 1))
    # the crowd went away and came back much later: a new episode, a new alert
    assert feed(state, [people(10, 2)]) == []
    (later,) = feed(state, [people(450, 1 + RULES.hold_seconds / 60 + 1)])
    assert later.change == Change.RAISED and later.alert_id != raised.alert_id


def test_an_older_reading_is_stale_a_repeat_is_not() -> None:
    state = ZoneState("lane-1")
    latest = people(100, 5, rid="p5")
    process_reading(state, latest, ZONE, RULES)
    repeat = process_reading(state, latest, ZONE, RULES)
    assert repeat.duplicate and not repeat.stale
    older = process_reading(state, people(900, 4, rid="p4"), ZONE, RULES)
    assert older.duplicate and older.stale and older.records == []
