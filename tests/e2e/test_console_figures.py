"""Every figure the console shows equals the API's, in real Chromium against the real stack
(``puhui worker`` + ``puhui api`` on the test broker): the zones table (people, density,
occupancy, the three peaks — once "— / — / —" while the API had them — flows, level), the map's
colour of each zone (its most severe open alert, 蓝黄橙红 or none), the zone panel and its chart's
points (GET /api/zones/{id}/series), and the printable daily report (GET /api/daily-report).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from models.contracts import SensorKind, SensorReading
from tests.e2e import test_console
from tests.e2e.test_console import DESKTOP, Stack, sign_in
from tests.support.parts import produce
from tools.producing import encode_reading

# The shared fixtures: the stack (worker + API), the browser and its pages.
browser, pages, stack = test_console.browser, test_console.pages, test_console.stack

pytestmark = pytest.mark.e2e

LANE = "tianzifang-taikang-210"  # area 420 m², capacity 1260: 1300 people = 103 % → 橙
QUIET = "tianzifang-taikang-248"  # a few hundred people: no alert
FILL = {  # the map's fill per level (common.css --blue … --red; none: console.css grey)
    "blue": "rgb(29, 78, 216)",
    "yellow": "rgb(250, 204, 21)",
    "orange": "rgb(194, 65, 12)",
    "red": "rgb(185, 28, 28)",
    "none": "rgb(201, 209, 217)",
}


def api_get(stack: Stack, token: str, path: str) -> Any:
    request = urllib.request.Request(
        f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def num(value: float | None, digits: int = 0) -> str:
    """The console's ``num()``: zh-CN grouping, at most ``digits`` decimals, half away from 0."""
    if value is None:
        return "—"
    q = Decimal(str(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    text = f"{q:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fixed2(value: float | None) -> str:
    return (
        "—" if value is None else f"{Decimal(str(value)).quantize(Decimal('0.01'), ROUND_HALF_UP)}"
    )


def occupancy(value: float | None) -> str:
    return "—" if value is None else f"{num(value * 100)}%"


def readings(now: datetime) -> list[SensorReading]:
    """Ten minutes of two cameras per zone, every 30 s, ending 10 s ago: the lane climbs to
    1300 people (a peak of 1300 inside the last 5 minutes, 1300 for the day), the quiet lane
    stays near 300."""
    out = []
    steps = 20
    for i in range(steps + 1):
        at = now - timedelta(seconds=10 + 30 * (steps - i))
        lane = 400 + (1300 - 400) * i / steps
        quiet = 280 + (i % 4) * 10
        for zone, total in ((LANE, lane), (QUIET, quiet)):
            for cam, share in (("cam-a", 0.6), ("cam-b", 0.4)):
                out.append(
                    SensorReading(
                        reading_id=f"{zone}-{cam}-{i}-{uuid.uuid4().hex[:6]}",
                        sensor_id=f"{zone}-{cam}",
                        zone_id=zone,
                        kind=SensorKind.PEOPLE_COUNT,
                        value=float(round(total * share)),
                        observed_at=at,
                    )
                )
    return out


def metric(stack: Stack, prefix: str) -> float:
    body = urllib.request.urlopen(stack.worker.metrics_url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix)
    )


def all_written(stack: Stack) -> bool:
    """Every alert record the worker published is in the database, and no per-minute figure it
    noted is still waiting to be written."""
    from sqlalchemy import func, select

    from infra.db import AlertHistoryRow

    with stack.engine.connect() as conn:
        history = conn.execute(select(func.count()).select_from(AlertHistoryRow)).scalar()
    published = metric(stack, "puhui_alert_records_total")
    return history == published and metric(stack, "puhui_zone_series_pending_minutes ") == 0


def wait_settled(stack: Stack, token: str, last: datetime) -> list[dict[str, Any]]:
    """/api/zones once both zones' figures are those of their last reading and the lane has an
    open alert (the worker writes zone_status every PUHUI_STATUS_INTERVAL_SECONDS)."""
    deadline = time.monotonic() + 120
    zones: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        zones = api_get(stack, token, "/api/zones")["items"]
        by_id = {z["id"]: z for z in zones}
        done = all(
            by_id[z]["updated_at"] and datetime.fromisoformat(by_id[z]["updated_at"]) >= last
            for z in (LANE, QUIET)
        )
        if done and by_id[LANE]["alert_level"] and all_written(stack):
            return zones
        time.sleep(0.5)
    raise AssertionError(f"zones never settled: {zones}\n{stack.tails()}")


@pytest.mark.parametrize("stack", [{"PUHUI_STATUS_INTERVAL_SECONDS": "1"}], indirect=True)
def test_every_figure_on_the_console_equals_the_api_and_the_map_colours_by_level(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    from playwright.sync_api import expect

    operator = stack.token("operator", "值班员 老王")
    now = datetime.now(UTC).replace(microsecond=0)
    sent = readings(now)
    produce(
        stack.worker.env["PUHUI_KAFKA_BOOTSTRAP"],
        stack.worker.topics.readings,
        [(r.zone_id.encode(), encode_reading(r)) for r in sent],
    )
    zones = wait_settled(stack, operator, max(r.observed_at for r in sent))
    by_id = {z["id"]: z for z in zones}
    lane = by_id[LANE]
    assert lane["people"] == 1300 and lane["peak_5m"] == 1300 and lane["peak_day"] == 1300
    assert lane["alert_level"] in FILL

    page = pages(DESKTOP)
    page.goto(f"{stack.base_url}/?poll=0")
    sign_in(page, operator)
    expect(page.locator("#app")).to_be_visible()

    # The zones table: every zone's every figure, as the API gave it.
    for z in zones:
        row = page.locator(f'#zones tr[data-zone="{z["id"]}"]')
        expect(row.locator(".people")).to_have_text(num(z["people"]), timeout=30_000)
        expect(row.locator(".density")).to_have_text(fixed2(z["density"]))
        expect(row.locator(".occupancy")).to_have_text(occupancy(z["occupancy"]))
        expect(row.locator(".peak-5m")).to_have_text(num(z["peak_5m"]))
        expect(row.locator(".peak-1h")).to_have_text(num(z["peak_1h"]))
        expect(row.locator(".peak-day")).to_have_text(num(z["peak_day"]))
        flows = f"{num(z['inflow_per_min'], 1)} / {num(z['outflow_per_min'], 1)}"
        expect(row.locator(".flows")).to_have_text(flows)
        expect(row).to_have_attribute("data-level", z["level"] or "none")
    # The bug this column had: all three peaks blank while the API had them.
    expect(page.locator(f'#zones tr[data-zone="{LANE}"] .peaks')).not_to_have_text("— / — / —")

    # The map: each zone's colour is its most severe open alert's, with the level in words.
    for z in zones:
        shape = page.locator(f'#map [data-zone="{z["id"]}"]')
        level = z["alert_level"] or "none"
        expect(shape).to_have_attribute("data-level", level, timeout=30_000)
        fill = shape.locator("polygon").evaluate("el => getComputedStyle(el).fill")
        assert fill == FILL[level], (z["id"], level, fill)
        label = shape.get_attribute("aria-label") or ""
        assert z["name"]["zh"] in label
        assert ("无告警" in label) == (level == "none")
    lane_shape = page.locator(f'#map [data-zone="{LANE}"]')
    assert lane_shape.locator("text.zone-mark").count() == 1  # the level as a character too
    assert page.locator(f'#map [data-zone="{QUIET}"] text.zone-mark').count() == 0

    # Click: the zone panel's figures and the chart's points are the API's.
    lane_shape.click()
    expect(lane_shape).to_have_attribute("aria-pressed", "true")
    panel = page.locator("#zone-panel")
    expect(panel).to_have_attribute("data-zone", LANE)
    expect(panel.locator(".people")).to_have_text(num(lane["people"]))
    expect(panel.locator(".density")).to_have_text(fixed2(lane["density"]))
    expect(panel.locator(".peak-5m")).to_have_text(num(lane["peak_5m"]))
    expect(panel.locator(".peak-1h")).to_have_text(num(lane["peak_1h"]))
    expect(panel.locator(".peak-day")).to_have_text(num(lane["peak_day"]))
    series = api_get(stack, operator, f"/api/zones/{LANE}/series?hours=6")["points"]
    assert len(series) >= 10  # ten minutes of readings
    assert max(p["people"] for p in series) == 1300
    circles = page.locator("#zone-chart circle.pt")
    expect(circles).to_have_count(len(series), timeout=30_000)
    shown = circles.evaluate_all(
        "els => els.map(e => [e.dataset.at, Number(e.dataset.people),"
        " Number(e.getAttribute('cy'))])"
    )
    assert [(datetime.fromisoformat(a), p) for a, p, _ in shown] == [
        (datetime.fromisoformat(p["at"]), p["people"]) for p in series
    ]
    # Drawn where they belong: more people, higher on the chart (smaller y).
    by_people = sorted(shown, key=lambda s: s[1])
    assert by_people[0][2] > by_people[-1][2]

    # Live: the quiet lane fills up (1200 people = 111 % of 1080 → 橙); its colour changes on
    # the open page, from the stream, without a reload.
    last = max(r.observed_at for r in sent)
    surge = [
        SensorReading(
            reading_id=f"{QUIET}-{cam}-late-{i}",
            sensor_id=f"{QUIET}-{cam}",
            zone_id=QUIET,
            kind=SensorKind.PEOPLE_COUNT,
            value=float(round(1200 * share)),
            observed_at=last + timedelta(seconds=1 + i),
        )
        for i in range(3)
        for cam, share in (("cam-a", 0.6), ("cam-b", 0.4))
    ]
    produce(
        stack.worker.env["PUHUI_KAFKA_BOOTSTRAP"],
        stack.worker.topics.readings,
        [(r.zone_id.encode(), encode_reading(r)) for r in surge],
    )
    quiet_shape = page.locator(f'#map [data-zone="{QUIET}"]')
    expect(quiet_shape).not_to_have_attribute("data-level", "none", timeout=60_000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        quiet = next(z for z in api_get(stack, operator, "/api/zones")["items"] if z["id"] == QUIET)
        if quiet["alert_level"] and all_written(stack):
            break
        time.sleep(0.5)
    expect(quiet_shape).to_have_attribute("data-level", quiet["alert_level"], timeout=30_000)
    fill = quiet_shape.locator("polygon").evaluate("el => getComputedStyle(el).fill")
    assert fill == FILL[quiet["alert_level"]]

    # The printable daily report: the same figures as its JSON.
    report = api_get(stack, operator, "/api/daily-report")
    today = report["date"]
    page.goto(f"{stack.base_url}/daily-report?date={today}")
    expect(page.locator("#report")).to_have_attribute("data-date", today, timeout=30_000)
    for z in report["zones"]:
        row = page.locator(f'#zones tr[data-zone="{z["zone_id"]}"]')
        expect(row.locator(".peak")).to_have_text(num(z["peak_people"]))
        expect(row.locator(".minutes")).to_have_text(str(z["minutes"]))
    lane_day = next(z for z in report["zones"] if z["zone_id"] == LANE)
    assert lane_day["peak_people"] == 1300
    for s in report["sites"]:
        row = page.locator(f'#sites tr[data-site="{s["site"]}"]')
        expect(row.locator(".peak")).to_have_text(num(s["peak_people"]))
        bar = page.locator(f'#sites-chart g[data-key="{s["site"]}"]')
        expect(bar).to_have_attribute(
            "data-value",
            "" if s["peak_people"] is None else str(s["peak_people"]).removesuffix(".0"),
        )
    for r in report["alerts"]["by_risk"]:
        row = page.locator(f'#alerts tr[data-risk="{r["risk"]}"]')
        expect(row.locator(".total")).to_have_text(str(r["total"]))
    expect(page.locator('#cases dd[data-key="opened"]')).to_have_text(
        str(report["cases"]["opened"])
    )
    assert not page.problems, page.problems
