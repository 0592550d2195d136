"""The case state machine, its time limits and the units file (pure core, no clock inside)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.cases import (
    CaseLimitsError,
    CaseRejected,
    CaseStatus,
    apply_case_command,
    is_overdue,
    load_bundled_case_limits,
    parse_case_limits,
)
from models.cases import ActorRole, CaseAction, CaseCommand, VerifyResult
from models.contracts import Level
from models.units import UnitsFileError, load_bundled_units, load_units
from models.zones import load_bundled_zones

pytestmark = pytest.mark.unit

T0 = datetime(2026, 10, 1, 11, 0, tzinfo=UTC)
CASE = "cs_" + "a" * 32
LIMITS = load_bundled_case_limits()
UNITS = {"grid-zhongtai", "dapuqiao-police"}


def cmd(action: CaseAction, minute: float, role: ActorRole = ActorRole.OPERATOR, **kw: object):
    fields: dict[str, object] = {
        "command_id": str(uuid.uuid4()),
        "case_id": CASE,
        "action": action,
        "actor": "值班员 张伟" if role is not ActorRole.RESPONDER else "网格员 李",
        "actor_role": role,
        "issued_at": T0 + timedelta(minutes=minute),
    }
    fields.update(kw)
    return CaseCommand(**fields)  # type: ignore[arg-type]


def opened(level: Level = Level.ORANGE):
    case, _ = apply_case_command(
        None,
        cmd(
            CaseAction.OPEN,
            0,
            title="泰康路210弄 人群拥挤",
            category="crowding",
            level=level,
            zone_id="tianzifang-taikang-210",
            alert_ids=("a1",),
        ),
        LIMITS,
        UNITS,
    )
    return case


def responder(action: CaseAction, minute: float, unit: str = "grid-zhongtai", **kw: object):
    return cmd(action, minute, ActorRole.RESPONDER, actor_unit=unit, **kw)


def test_the_whole_loop_with_a_return() -> None:
    case = opened()
    assert case.status is CaseStatus.REGISTERED
    assert case.due_at == T0 + timedelta(minutes=5)  # orange: 5 min to dispatch
    steps = [
        (cmd(CaseAction.DISPATCH, 1, unit_id="grid-zhongtai"), CaseStatus.DISPATCHED),
        (responder(CaseAction.ACCEPT, 2), CaseStatus.ACCEPTED),
        (responder(CaseAction.ARRIVE, 10), CaseStatus.ON_SITE),
        (responder(CaseAction.HANDLE, 20, note="已疏导"), CaseStatus.HANDLED),
        (cmd(CaseAction.VERIFY, 25, result=VerifyResult.RETURNED), CaseStatus.DISPATCHED),
        (responder(CaseAction.ACCEPT, 26), CaseStatus.ACCEPTED),
        (responder(CaseAction.ARRIVE, 27), CaseStatus.ON_SITE),
        (responder(CaseAction.HANDLE, 30, note="已拉警戒线"), CaseStatus.HANDLED),
        (cmd(CaseAction.VERIFY, 31, result=VerifyResult.CLOSED), CaseStatus.CLOSED),
    ]
    for command, expected in steps:
        before = case.status
        case, event = apply_case_command(case, command, LIMITS, UNITS)
        assert case.status is expected
        assert (event.from_status, event.to_status) == (before, expected)
        assert event.actor == command.actor
    assert case.returns == 1
    assert case.accepted_at == T0 + timedelta(minutes=2)  # the first acceptance counts
    assert case.closed_at == T0 + timedelta(minutes=31)
    assert case.due_at is None and not case.open


def test_only_the_assigned_units_responder_moves_it_and_only_operators_verify() -> None:
    case = opened()
    with pytest.raises(CaseRejected) as err:
        apply_case_command(case, responder(CaseAction.ACCEPT, 1), LIMITS, UNITS)
    assert err.value.code == "forbidden"  # not dispatched yet: nobody's
    case, _ = apply_case_command(
        case, cmd(CaseAction.DISPATCH, 1, unit_id="grid-zhongtai"), LIMITS, UNITS
    )
    with pytest.raises(CaseRejected) as err:
        apply_case_command(
            case, responder(CaseAction.ACCEPT, 2, unit="dapuqiao-police"), LIMITS, UNITS
        )
    assert err.value.code == "forbidden"
    with pytest.raises(CaseRejected) as err:
        apply_case_command(case, cmd(CaseAction.ACCEPT, 2), LIMITS, UNITS)
    assert err.value.code == "forbidden"  # an operator does not accept for the unit
    with pytest.raises(CaseRejected) as err:
        apply_case_command(case, responder(CaseAction.ARRIVE, 2), LIMITS, UNITS)
    assert err.value.code == "conflict"  # arrive before accept
    with pytest.raises(CaseRejected) as err:
        apply_case_command(
            case, responder(CaseAction.VERIFY, 2, result=VerifyResult.CLOSED), LIMITS, UNITS
        )
    assert err.value.code == "forbidden"
    with pytest.raises(CaseRejected) as err:
        apply_case_command(
            case, cmd(CaseAction.VERIFY, 2, result=VerifyResult.CLOSED), LIMITS, UNITS
        )
    assert err.value.code == "conflict"  # closes only after 核查 of a handled case
    with pytest.raises(CaseRejected) as err:
        apply_case_command(case, cmd(CaseAction.DISPATCH, 2, unit_id="nobody"), LIMITS, UNITS)
    assert (err.value.code, err.value.field) == ("invalid", "unit_id")


def test_cancel_from_any_open_state_and_nothing_after() -> None:
    case = opened()
    case, _ = apply_case_command(case, cmd(CaseAction.CANCEL, 1, note="误报"), LIMITS, UNITS)
    assert case.status is CaseStatus.CANCELLED
    for action in (CaseAction.DISPATCH, CaseAction.CANCEL):
        with pytest.raises(CaseRejected) as err:
            apply_case_command(case, cmd(action, 2, unit_id="grid-zhongtai"), LIMITS, UNITS)
        assert err.value.code == "conflict"


def test_limits_by_category_and_level_and_overdue() -> None:
    red = opened(Level.RED)
    assert red.due_at == T0 + timedelta(minutes=1)  # crowding red: 1 min to dispatch
    assert not is_overdue(red, T0 + timedelta(minutes=1))
    assert is_overdue(red, T0 + timedelta(minutes=1, seconds=1))
    dispatched, _ = apply_case_command(
        red, cmd(CaseAction.DISPATCH, 0.5, unit_id="grid-zhongtai"), LIMITS, UNITS
    )
    assert dispatched.due_at == T0 + timedelta(minutes=2.5)  # crowding red: 2 min to accept
    assert LIMITS.limit("fire", Level.BLUE, CaseStatus.ACCEPTED) == timedelta(minutes=8)
    assert LIMITS.limit("other", Level.BLUE, CaseStatus.ON_SITE) == timedelta(hours=4)


def test_escalation_once_per_overdue_step() -> None:
    case = opened()  # due at +5 min
    early = cmd(CaseAction.ESCALATE, 4, ActorRole.SYSTEM, step=case.step_seq)
    with pytest.raises(CaseRejected):
        apply_case_command(case, early, LIMITS, UNITS)
    late = cmd(CaseAction.ESCALATE, 6, ActorRole.SYSTEM, step=case.step_seq)
    escalated, event = apply_case_command(case, late, LIMITS, UNITS)
    assert escalated.escalated_step == case.step_seq and escalated.status is case.status
    assert event.action is CaseAction.ESCALATE
    again = cmd(CaseAction.ESCALATE, 7, ActorRole.SYSTEM, step=case.step_seq)
    with pytest.raises(CaseRejected):
        apply_case_command(escalated, again, LIMITS, UNITS)
    by_operator = cmd(CaseAction.ESCALATE, 7, step=case.step_seq)
    with pytest.raises(CaseRejected):
        apply_case_command(case, by_operator, LIMITS, UNITS)


def test_limits_file_errors_name_the_field() -> None:
    with pytest.raises(CaseLimitsError) as err:
        parse_case_limits(
            {
                "defaults": {"registered": "5m"},
                "levels": {"purple": {}},
                "categories": {"crowding": {"red": {"dispatched": "soon"}}},
            },
            "limits.yaml",
        )
    text = str(err.value)
    assert "defaults: every step needs a limit" in text
    assert "levels.purple" in text
    assert "categories.crowding.red.dispatched" in text
    assert "limits.yaml" in text


def test_units_file_loads_and_rejects_unknown_sites(tmp_path: Path) -> None:
    zones = load_bundled_zones()
    units = load_bundled_units(zones)
    assert {u.kind.value for u in units} == {
        "grid",
        "property",
        "urban_management",
        "police",
        "fire",
        "medical",
    }
    bad = tmp_path / "units.yaml"
    bad.write_text(
        "units:\n"
        "  - {id: a-team, name_zh: 甲, name_en: A, kind: grid, grids: [zhongtai],\n"
        "     sites: [nowhere]}\n"
        "  - {id: a-team, name_zh: 乙, name_en: B, kind: army, grids: [zhongtai]}\n",
        encoding="utf-8",
    )
    with pytest.raises(UnitsFileError) as err:
        load_units(bad, zones)
    text = str(err.value)
    assert "unknown site 'nowhere'" in text
    assert "a-team: kind" in text


def test_units_serving_a_place_nearest_first() -> None:
    units = load_bundled_units(load_bundled_zones())
    lane = [u.id for u in units.serving("zhongtai", "tianzifang")]
    assert lane[:2] == ["tianzifang-management", "grid-zhongtai"]
    assert "grid-zhonghai" not in lane and "riyueguang-property" not in lane
    estate = [u.id for u in units.serving("zhonghai", "haihuayuan")]
    assert estate[0] == "grid-zhonghai" and "tianzifang-management" not in estate


def test_a_step_finished_after_its_due_time_counts_as_late() -> None:
    case = opened()  # orange: 5 min to dispatch
    case, _ = apply_case_command(
        case, cmd(CaseAction.DISPATCH, 6, unit_id="grid-zhongtai"), LIMITS, UNITS
    )
    assert case.late_steps == 1 and not case.on_time
    case, _ = apply_case_command(case, responder(CaseAction.ACCEPT, 7), LIMITS, UNITS)
    assert case.late_steps == 1  # accepted within its 5 minutes
    on_time = opened()
    on_time, _ = apply_case_command(
        on_time, cmd(CaseAction.DISPATCH, 4, unit_id="grid-zhongtai"), LIMITS, UNITS
    )
    assert on_time.late_steps == 0 and on_time.on_time
