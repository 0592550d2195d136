"""``GET /api/zones/{id}/series`` and ``GET /api/daily-report`` through the API (TestClient):
what the worker wrote to ``zone_series`` comes back per minute, and the daily report counts the
day's peaks and alerts in Shanghai time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infra.db import (
    load_zone_series,
    newest_series_minute,
    prune_zone_series,
    upsert_zone_series,
)
from models.contracts import Level, Risk
from models.zones import load_bundled_zones
from tests.support.api import ATRIUM, LANE, T0, ApiSetup, episode, make_api, store

pytestmark = pytest.mark.unit

ZONES = load_bundled_zones()


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(tmp_path)


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def minute_row(zone: str, at: datetime, people: float) -> dict[str, object]:
    return {
        "zone_id": zone,
        "minute": at,
        "people": people,
        "density": ZONES[zone].density(people),
    }


def test_series_comes_back_per_minute_oldest_first_within_the_window(
    api: ApiSetup, client: TestClient
) -> None:
    now = api.clock()
    minutes = [now - timedelta(minutes=m) for m in (200, 90, 3, 2)]
    upsert_zone_series(
        api.engine, [minute_row(LANE, at, 100.0 + i) for i, at in enumerate(minutes)]
    )
    upsert_zone_series(api.engine, [minute_row(ATRIUM, minutes[-1], 7.0)])
    body = client.get(f"/api/zones/{LANE}/series?hours=2", headers=api.auth("operator")).json()
    assert body["zone_id"] == LANE
    assert body["aggregate"] == "max" and body["resolution_seconds"] == 60
    points = body["points"]
    assert [p["people"] for p in points] == [101.0, 102.0, 103.0]
    assert [datetime.fromisoformat(p["at"]) for p in points] == minutes[1:]
    assert points[0]["density"] == pytest.approx(101.0 / ZONES[LANE].area_m2)
    longer = client.get(f"/api/zones/{LANE}/series?hours=4", headers=api.auth("operator")).json()
    assert len(longer["points"]) == 4
    until = (now - timedelta(minutes=60)).isoformat()
    earlier = client.get(
        f"/api/zones/{LANE}/series",
        params={"hours": 3, "until": until},
        headers=api.auth("operator"),
    ).json()
    assert [p["people"] for p in earlier["points"]] == [100.0, 101.0]


def test_a_minute_written_again_keeps_its_largest_count(api: ApiSetup) -> None:
    at = T0.replace(second=0)
    upsert_zone_series(api.engine, [minute_row(LANE, at, 300.0)])
    upsert_zone_series(api.engine, [minute_row(LANE, at, 120.0)])  # a replay, a later flush
    (row,) = load_zone_series(api.engine, at, at + timedelta(minutes=1), LANE)
    assert row.people == 300.0
    upsert_zone_series(api.engine, [minute_row(LANE, at, 310.0)])
    (row,) = load_zone_series(api.engine, at, at + timedelta(minutes=1), LANE)
    assert (row.people, row.density) == (310.0, ZONES[LANE].density(310.0))


def test_pruning_removes_only_minutes_before_the_cutoff(api: ApiSetup) -> None:
    old, new = T0 - timedelta(days=40), T0
    upsert_zone_series(api.engine, [minute_row(LANE, old, 1.0), minute_row(LANE, new, 2.0)])
    assert newest_series_minute(api.engine) == new
    assert prune_zone_series(api.engine, T0 - timedelta(days=35)) == 1
    rows = load_zone_series(api.engine, old, new + timedelta(minutes=1))
    assert [r.minute for r in rows] == [new]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("hours=0", 422, "hours"),
        ("hours=169", 422, "hours"),
        ("hours=x", 422, "hours"),
        ("until=2026-10-01T10:00:00", 422, "until"),
        ("until=yesterday", 422, "until"),
        ("until=0001-01-01T00:00:00Z", 422, "until"),
    ],
)
def test_bad_series_queries_name_the_field(
    api: ApiSetup, client: TestClient, query: str, status: int, field: str
) -> None:
    response = client.get(f"/api/zones/{LANE}/series?{query}", headers=api.auth("operator"))
    assert response.status_code == status
    assert field in response.text


def test_series_of_an_unknown_zone_is_404_and_volunteers_may_not_read_it(
    api: ApiSetup, client: TestClient
) -> None:
    assert client.get("/api/zones/nowhere/series", headers=api.auth("operator")).status_code == 404
    assert client.get(f"/api/zones/{LANE}/series", headers=api.auth("volunteer")).status_code == 403
    assert client.get(f"/api/zones/{LANE}/series").status_code == 401


def test_zones_carry_their_outlines_and_the_registry_bounds(
    api: ApiSetup, client: TestClient
) -> None:
    body = client.get("/api/zones", headers=api.auth("volunteer")).json()
    assert body["bounds"] == {"south": 31.194, "west": 121.456, "north": 31.214, "east": 121.486}
    lane = next(z for z in body["items"] if z["id"] == LANE)
    assert lane["outline"]["estimated"] is True
    points = lane["outline"]["points"]
    assert points[0] == points[-1] and len(points) >= 4
    assert [list(p) for p in ZONES[LANE].outline.points] == points  # type: ignore[union-attr]


def test_daily_report_counts_the_shanghai_day(api: ApiSetup, client: TestClient) -> None:
    # 2026-10-01 in Shanghai is [2026-09-30T16:00Z, 2026-10-01T16:00Z).
    day_start = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    rows = [
        minute_row(LANE, day_start - timedelta(minutes=1), 9999.0),  # the day before
        minute_row(LANE, day_start, 100.0),
        minute_row(LANE, day_start + timedelta(hours=3), 700.0),
        minute_row("tianzifang-taikang-248", day_start + timedelta(hours=3), 500.0),
        minute_row(LANE, day_start + timedelta(hours=23, minutes=59), 650.0),
        minute_row(LANE, day_start + timedelta(hours=24), 8888.0),  # the day after
    ]
    upsert_zone_series(api.engine, rows)
    store(api.engine, episode(LANE, [Level.BLUE, Level.ORANGE, Level.RED], start=T0, cause="a"))
    store(api.engine, episode(ATRIUM, [Level.YELLOW], start=T0, cause="b"))
    store(api.engine, episode(LANE, [Level.RED], risk=Risk.FIRE, start=T0, cause="c"))
    store(
        api.engine,
        episode(ATRIUM, [Level.RED], start=day_start - timedelta(hours=1), cause="d"),
    )  # opened the day before: not counted
    body = client.get("/api/daily-report?date=2026-10-01", headers=api.auth("operator")).json()
    assert body["date"] == "2026-10-01" and body["timezone"] == "Asia/Shanghai"
    assert datetime.fromisoformat(body["start"]) == day_start
    lane = next(z for z in body["zones"] if z["zone_id"] == LANE)
    assert lane["peak_people"] == 700.0
    assert datetime.fromisoformat(lane["peak_at"]) == day_start + timedelta(hours=3)
    assert lane["minutes"] == 3
    assert lane["peak_density"] == pytest.approx(700.0 / ZONES[LANE].area_m2, abs=1e-4)
    assert lane["hourly"][3] == 700.0 and lane["hourly"][23] == 650.0 and lane["hourly"][0] == 100
    site = next(s for s in body["sites"] if s["site"] == "tianzifang")
    assert site["peak_people"] == 1200.0  # 700 + 500 at the same minute
    alerts = body["alerts"]
    assert alerts["total"] == 3
    assert alerts["by_level"] == {"blue": 0, "yellow": 1, "orange": 0, "red": 2}
    by_risk = {r["risk"]: r for r in alerts["by_risk"]}
    assert by_risk["crowding"]["by_level"]["red"] == 1
    assert by_risk["crowding"]["by_level"]["yellow"] == 1
    assert by_risk["fire"]["total"] == 1
    assert body["cases"]["opened"] == 0 and body["cases"]["on_time_rate"] is None


@pytest.mark.parametrize(
    "value",
    ["2026-13-01", "yesterday", "2026-1-1", "2026-10-01T00:00", "2026-W40-1", "9999-12-31"],
)
def test_a_bad_date_is_a_422_naming_it(api: ApiSetup, client: TestClient, value: str) -> None:
    response = client.get(f"/api/daily-report?date={value}", headers=api.auth("operator"))
    assert response.status_code == 422
    assert "date" in response.text


def test_the_daily_report_page_is_served_for_printing(client: TestClient) -> None:
    page = client.get("/daily-report")
    assert page.status_code == 200
    assert "daily-report.js" in page.text and "Content-Security-Policy" in page.headers


def test_without_a_date_the_report_is_of_today_in_shanghai(
    api: ApiSetup, client: TestClient
) -> None:
    api.clock.at = datetime(2026, 10, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 Oct in Shanghai
    body = client.get("/api/daily-report", headers=api.auth("operator")).json()
    assert body["date"] == "2026-10-02"
    assert client.get("/api/daily-report", headers=api.auth("volunteer")).status_code == 403
