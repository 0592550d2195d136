"""The alert state machine: raise, escalate at once, lower or resolve only after the hold time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.zone.alert import AlertState, Assessment, alert_id_for, operator_action, transition
from models.contracts import AlertStatus, Change, Level, Risk

pytestmark = pytest.mark.unit

T0 = datetime(2026, 10, 1, 19, 0, tzinfo=UTC)
HOLD = timedelta(minutes=5)


def a(level: Level | None, minutes: float, cause: str = "r") -> Assessment:
    return Assessment("z1", Risk.CROWDING, level, T0 + timedelta(minutes=minutes), cause)


def run(levels: list[tuple[float, Level | None]]) -> tuple[AlertState | None, list]:
    state: AlertState | None = None
    records = []
    for i, (minute, level) in enumerate(levels):
        state, out = transition(state, a(level, minute, f"r{i}"), HOLD)
        records.extend(out)
    return state, records


def test_nothing_happens_while_clear() -> None:
    state, records = run([(0, None), (1, None)])
    assert state is None and records == []


def test_raise_escalate_deescalate_resolve_in_order() -> None:
    state, records = run(
        [
            (0, Level.BLUE),
            (1, Level.YELLOW),
            (2, Level.RED),
            (3, Level.YELLOW),  # below red: hold starts
            (7, Level.YELLOW),  # 4 min < hold: nothing yet
            (8, Level.YELLOW),  # 5 min: de-escalate to the highest level seen in the hold
            (9, None),
            (13.9, None),
            (14, None),  # clear for 5 min: resolved
        ]
    )
    assert state is None
    assert [(r.change, r.level, r.revision) for r in records] == [
        (Change.RAISED, Level.BLUE, 1),
        (Change.ESCALATED, Level.YELLOW, 2),
        (Change.ESCALATED, Level.RED, 3),
        (Change.DEESCALATED, Level.YELLOW, 4),
        (Change.RESOLVED, Level.YELLOW, 5),
    ]
    assert len({r.alert_id for r in records}) == 1
    assert records[-1].status == AlertStatus.RESOLVED
    assert all(r.opened_at == T0 for r in records)


def test_back_at_level_restarts_the_hold() -> None:
    state, records = run([(0, Level.ORANGE), (1, None), (4, Level.ORANGE), (6, None), (10, None)])
    assert state is not None and state.level == Level.ORANGE
    assert [r.change for r in records] == [Change.RAISED]


def test_deescalation_goes_to_peak_seen_during_hold() -> None:
    state, records = run(
        [(0, Level.RED), (1, Level.BLUE), (2, Level.ORANGE), (3, Level.BLUE), (6, Level.BLUE)]
    )
    assert records[-1].change == Change.DEESCALATED
    assert records[-1].level == Level.ORANGE
    assert state is not None and state.below_since is not None  # still below orange


def test_new_episode_gets_new_id() -> None:
    _, records = run([(0, Level.BLUE), (1, None), (6, None), (7, Level.BLUE)])
    raised = [r for r in records if r.change == Change.RAISED]
    assert len(raised) == 2 and raised[0].alert_id != raised[1].alert_id


def test_alert_id_is_deterministic() -> None:
    assert alert_id_for("z", Risk.FIRE, "r1") == alert_id_for("z", Risk.FIRE, "r1")
    assert alert_id_for("z", Risk.FIRE, "r1") != alert_id_for("z", Risk.CROWDING, "r1")


def test_operator_actions() -> None:
    state, _ = run([(0, Level.ORANGE)])
    assert state is not None
    acked, rec = operator_action(state, Change.ACKNOWLEDGED, T0, "op1", "on it")
    assert acked is not None and acked.status == AlertStatus.ACKNOWLEDGED
    assert rec.actor == "op1" and rec.note == "on it" and rec.revision == 2
    # escalation re-fires an acknowledged alert
    up, out = transition(acked, a(Level.RED, 1), HOLD)
    assert up is not None and up.status == AlertStatus.FIRING and out[0].revision == 3
    gone, rec = operator_action(up, Change.RESOLVED, T0, "op1")
    assert gone is None and rec.status == AlertStatus.RESOLVED
    with pytest.raises(ValueError):
        operator_action(up, Change.ESCALATED, T0, "op1")


levels = st.sampled_from([None, *Level])


@settings(max_examples=300)
@given(st.lists(st.tuples(st.floats(0, 20), levels), min_size=1, max_size=40))
def test_levels_never_drop_without_the_hold_time(steps: list[tuple[float, Level | None]]) -> None:
    """Property: a de-escalation or resolve only happens after the condition has been below the
    alert's level for the whole hold time, revisions rise by one, and ids are stable per episode."""
    steps = sorted(steps, key=lambda s: s[0])
    state: AlertState | None = None
    minute_of_last_at_level: float | None = None
    for i, (minute, level) in enumerate(steps):
        before = state
        state, out = transition(state, a(level, minute, f"r{i}"), HOLD)
        for rec in out:
            if rec.change in (Change.DEESCALATED, Change.RESOLVED):
                assert before is not None and before.below_since is not None
                assert rec.at - before.below_since >= HOLD
                assert minute_of_last_at_level is None or minute - minute_of_last_at_level >= 5
            if before is not None:
                assert rec.revision == before.revision + 1
                assert rec.alert_id == before.alert_id
            else:
                assert rec.change == Change.RAISED and rec.revision == 1
        if state is not None and level is not None and level.rank >= state.level.rank:
            minute_of_last_at_level = minute


@given(st.lists(st.tuples(st.floats(0, 20), levels), min_size=1, max_size=30))
def test_same_assessment_twice_changes_nothing(steps: list[tuple[float, Level | None]]) -> None:
    steps = sorted(steps, key=lambda s: s[0])
    state: AlertState | None = None
    for i, (minute, level) in enumerate(steps):
        state, _ = transition(state, a(level, minute, f"r{i}"), HOLD)
        again, out = transition(state, a(level, minute, f"r{i}"), HOLD)
        assert out == [] or state is None
        if state is not None:
            assert again == state
