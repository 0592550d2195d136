"""The daily report's arithmetic (alerts/daily.py): the Shanghai day, peaks per zone and site,
alerts by risk and level, and case figures (按期处置率, mean step times)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from alerts.daily import (
    CARRY_MINUTES,
    AlertOfDay,
    CaseTimes,
    SeriesMinute,
    alert_figures,
    case_figures,
    daily_report,
    day_window,
    peak_figures,
)
from models.contracts import Level, Risk
from models.zones import load_bundled_zones

pytestmark = pytest.mark.unit

ZONES = load_bundled_zones()
DAY = date(2026, 10, 1)
START, END = day_window(DAY)
L210, L248 = "tianzifang-taikang-210", "tianzifang-taikang-248"


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def test_the_day_is_midnight_to_midnight_in_shanghai() -> None:
    assert datetime(2026, 9, 30, 16, tzinfo=UTC) == START
    assert timedelta(days=1) == END - START


def test_zone_peak_is_its_largest_minute_and_the_first_of_equal_ones() -> None:
    minutes = [
        SeriesMinute(L210, at(-1), 5000),  # the evening before
        SeriesMinute(L210, at(10), 300),
        SeriesMinute(L210, at(600), 840),
        SeriesMinute(L210, at(700), 840),
        SeriesMinute(L210, at(24 * 60), 9000),  # the next day
    ]
    figures = peak_figures(ZONES, minutes, START, END)
    lane = next(z for z in figures["zones"] if z["zone_id"] == L210)
    assert lane["peak_people"] == 840 and lane["peak_at"] == at(600)
    assert lane["minutes"] == 3
    assert lane["peak_density"] == pytest.approx(840 / 420, abs=1e-4)
    assert lane["peak_occupancy"] == pytest.approx(840 / 1260, abs=1e-4)
    assert lane["hourly"][0] == 300 and lane["hourly"][10] == 840 and lane["hourly"][11] == 840
    assert lane["hourly"][1] is None
    quiet = next(z for z in figures["zones"] if z["zone_id"] == L248)
    assert quiet["peak_people"] is None and quiet["minutes"] == 0
    no_capacity = next(z for z in figures["zones"] if z["zone_id"] == "haihuayuan-estate")
    assert no_capacity["peak_occupancy"] is None


def test_site_peak_sums_its_zones_per_minute_carrying_a_late_one_briefly() -> None:
    minutes = [
        SeriesMinute(L210, at(100), 400),
        SeriesMinute(L248, at(101), 500),  # 210's minute 100 still counts at 101
        SeriesMinute(L210, at(200), 450),
        SeriesMinute(L248, at(200 + CARRY_MINUTES + 1), 100),  # too late for 210's 450
    ]
    site = next(
        s for s in peak_figures(ZONES, minutes, START, END)["sites"] if s["site"] == "tianzifang"
    )
    assert site["peak_people"] == 900 and site["peak_at"] == at(101)
    assert site["hourly"][1] == 900 and site["hourly"][3] == 450
    empty = next(
        s for s in peak_figures(ZONES, minutes, START, END)["sites"] if s["site"] == "luone"
    )
    assert empty["peak_people"] is None


def test_alerts_count_by_risk_and_the_highest_level_reached() -> None:
    alerts = [
        AlertOfDay("a1", L210, Risk.CROWDING, (Level.BLUE, Level.ORANGE, Level.YELLOW)),
        AlertOfDay("a2", L210, Risk.CROWDING, (Level.YELLOW,), predicted=True),
        AlertOfDay("a3", L248, Risk.FIRE, (Level.RED,)),
    ]
    figures = alert_figures(alerts)
    assert figures["total"] == 3 and figures["predicted"] == 1
    assert figures["by_level"] == {"blue": 0, "yellow": 1, "orange": 1, "red": 1}
    assert [r["risk"] for r in figures["by_risk"]] == ["crowding", "fire"]
    assert figures["by_risk"][0]["by_level"] == {"blue": 0, "yellow": 1, "orange": 1, "red": 0}
    assert figures["by_risk"][0]["total"] == 2
    with pytest.raises(ValueError, match="no level"):
        _ = AlertOfDay("x", L210, Risk.FIRE, ()).highest


def case(n: int, **steps: float | bool | None) -> CaseTimes:
    """A case opened ``opened`` minutes into the day, its steps minutes after opening."""
    opened = at(float(steps.pop("opened", 60) or 0))
    times = {
        k: (opened + timedelta(minutes=float(v)) if v is not None else None)
        for k, v in steps.items()
        if k != "on_time"
    }
    on_time = steps.get("on_time")
    return CaseTimes(
        case_id=f"c{n}",
        opened_at=opened,
        on_time=on_time if isinstance(on_time, bool) else None,
        **times,  # type: ignore[arg-type]
    )


def test_case_figures_on_time_rate_and_mean_step_times() -> None:
    cases = [
        # closed on time by its deadline: dispatch 5, accept 7, arrive 20, close 60
        case(
            1, dispatched_at=5, accepted_at=7, arrived_at=20, handled_at=40, closed_at=60, due_at=90
        ),
        # closed late (past its deadline): accept 13 after dispatch, arrive 35, close 120
        case(
            2,
            dispatched_at=5,
            accepted_at=18,
            arrived_at=40,
            handled_at=100,
            closed_at=120,
            due_at=90,
        ),
        # the case service's own verdict wins over due_at
        case(
            3, dispatched_at=0, accepted_at=1, arrived_at=10, closed_at=30, due_at=10, on_time=True
        ),
        case(4, dispatched_at=1),  # still open at the end of the day
        case(5, cancelled_at=3),
        case(6, opened=-120, closed_at=180, due_at=None),  # opened the day before, closed today
        case(7, opened=24 * 60 + 1),  # the next day: nothing
    ]
    f = case_figures(cases, START, END)
    assert f["opened"] == 5
    assert f["closed"] == 4
    assert f["closed_on_time"] == 3  # 1, 3 and 6 (no limit set)
    assert f["on_time_rate"] == 0.75
    assert f["cancelled"] == 1
    assert f["open_at_end"] == 1
    assert f["mean_seconds_to_accept"] == pytest.approx((2 + 13 + 1) / 3 * 60, abs=0.1)
    assert f["mean_seconds_to_arrive"] == pytest.approx((15 + 35 + 10) / 3 * 60, abs=0.1)
    assert f["mean_seconds_to_close"] == pytest.approx((60 + 120 + 30 + 180) / 4 * 60, abs=0.1)


def test_no_cases_is_zeros_and_no_rate() -> None:
    f = case_figures([], START, END)
    assert f["opened"] == f["closed"] == f["closed_on_time"] == f["open_at_end"] == 0
    assert f["on_time_rate"] is None and f["mean_seconds_to_close"] is None


def test_the_whole_report_names_its_day_and_window() -> None:
    report = daily_report(DAY, ZONES, [SeriesMinute(L210, at(5), 10)], [], [])
    assert report["date"] == "2026-10-01" and report["timezone"] == "Asia/Shanghai"
    assert (report["start"], report["end"]) == (START, END)
    assert len(report["zones"]) == len(ZONES)
    assert report["alerts"]["total"] == 0 and report["cases"]["closed"] == 0
