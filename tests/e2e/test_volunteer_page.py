"""The volunteer page on the street, in real headless Chromium on a phone-sized page, against a
real ``puhui worker`` + ``puhui api`` on the test broker (fixtures from ``test_console``):

- a one-time invitation link signs the volunteer in (and keeps them signed in across tabs); the
  secret never reaches a request line; a second use or an expired link is refused, zh + en;
- "add my location" (geolocation granted) proposes the nearest zone; denied, the page explains;
- a report made offline waits on the phone, is sent once when the connection returns, and an
  operator sees it with the time it was made.

The registry here is the bundled one with a point added for 日月光中心广场, so "nearest" has
two different places to choose from (the bundled registry has points for 田子坊 only).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from tests.e2e import test_console
from tests.e2e.test_console import PHONE, Stack, shot

# The shared fixtures: the stack (worker + API), the browser and its pages.
browser, pages, stack = test_console.browser, test_console.pages, test_console.stack

pytestmark = pytest.mark.e2e

PLAZA = "riyueguang-plaza"
PLAZA_POINT = {"lat": 31.2105, "lon": 121.4705}
# About 25 m from the plaza's point and about 300 m from 田子坊's.
HERE = {"latitude": 31.2103, "longitude": 121.4703, "accuracy": 20}


@pytest.fixture
def zones_file(tmp_path: Path) -> Path:
    bundled = Path(__file__).resolve().parents[2] / "models" / "data" / "zones.yaml"
    data = yaml.safe_load(bundled.read_text(encoding="utf-8"))
    for zone in data["zones"]:
        if zone["id"] == PLAZA:
            zone["location"] = PLAZA_POINT
    path = tmp_path / "zones.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def make_worker(make_worker: Callable[..., Any], zones_file: Path) -> Callable[..., Any]:
    """The shared fixture, with this module's registry for the worker and the API alike."""

    def make(start: bool = True, **overrides: str) -> Any:
        return make_worker(start, **{"PUHUI_ZONES_FILE": str(zones_file), **overrides})

    return make


def invite(stack: Stack, name: str, role: str = "volunteer", **kwargs: Any) -> str:
    from infra.invitations import create_invitation
    from infra.tokens import Role

    now = kwargs.get("now", datetime.now(UTC))
    valid_for = kwargs.get("valid_for", timedelta(hours=1))
    _, secret = create_invitation(stack.engine, name, Role(role), now, valid_for)
    return secret


def api_get(stack: Stack, path: str, token: str) -> Any:
    request = urllib.request.Request(
        f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def outbox(page: Any) -> list[dict[str, Any]]:
    return json.loads(page.evaluate("localStorage.getItem('puhui.report.outbox') || '[]'"))


def test_invitation_location_and_a_report_made_offline(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    from playwright.sync_api import expect

    name = "志愿者 小周"
    secret = invite(stack, name)
    phone = pages({**PHONE, "geolocation": HERE, "permissions": ["geolocation"]})
    context = phone.context

    # The link signs in; the secret leaves the address bar and never reaches a request line.
    phone.goto(f"{stack.base_url}/report#invite={secret}")
    expect(phone.locator("#view-new")).to_be_visible(timeout=15_000)
    expect(phone.locator("#tabs")).to_be_visible()
    # a short privacy notice beside the form: who sees the report, what goes public, how long
    notice = phone.locator("#privacy-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("180 天")
    expect(notice).to_contain_text("不含你的身份和原话")
    assert "invite" not in phone.url
    token = phone.evaluate("localStorage.getItem('puhui.report.token')")
    me = api_get(stack, "/api/me", token)
    assert (me["name"], me["role"]) == (name, "volunteer") and me["principal"].startswith("p_")
    principal = me["principal"]  # reports are the volunteer's by this stable id
    assert secret not in stack.api_log.read_text(errors="replace")

    # A new tab (the first one closed) is still signed in.
    assert phone.problems == []
    phone.close()
    phone = context.new_page()
    problems: list[str] = []
    phone.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    phone.goto(f"{stack.base_url}/report")
    expect(phone.locator("#view-new")).to_be_visible(timeout=15_000)
    expect(phone.locator("#login")).to_be_hidden()

    # The page opens again without a connection (its service worker kept it), still signed in.
    phone.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15_000)
    context.set_offline(True)
    phone.reload()
    expect(phone.locator("#view-new")).to_be_visible(timeout=15_000)
    expect(phone.locator("#login")).to_be_hidden()

    # With the volunteer's go-ahead, the location proposes the nearest zone.
    expect(phone.locator(f'#zone option[value="{PLAZA}"]')).to_have_count(1)
    expect(phone.locator("#zone")).to_have_value("")
    phone.click("#locate")
    suggestion = phone.locator("#zone-suggestion")
    expect(suggestion).to_have_attribute("data-zone", PLAZA)
    expect(suggestion).to_contain_text("日月光中心广场")
    expect(phone.locator("#zone")).to_have_value(PLAZA)
    expect(phone.locator("#location-text")).to_contain_text("31.2103")
    shot(phone, "volunteer-nearest-zone-mobile")

    # Offline: the report waits on the phone.
    phone.select_option("#category", "crowding")
    description = "日月光门口排队的人堵住了人行道"
    phone.fill("#description", description)
    before = datetime.now(UTC)
    phone.click("#submit")
    waiting = phone.locator("#outbox-list li")
    expect(waiting).to_have_count(1)
    expect(waiting).to_have_attribute("data-state", "waiting")
    expect(waiting).to_contain_text("等待发送")
    expect(phone.locator("#form-notice")).to_contain_text("联网后会自动发送")
    after = datetime.now(UTC)
    shot(phone, "volunteer-waiting-to-send-mobile")
    (kept,) = outbox(phone)
    report_id = kept["id"]
    assert kept["body"]["zone_id"] == PLAZA and kept["body"]["description"] == description
    assert kept["body"]["lat"] == pytest.approx(31.2103)
    made_at = datetime.fromisoformat(kept["body"]["made_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= made_at <= after + timedelta(seconds=1)
    # Let the wall clock move on, so the report's own time and its sending time differ.
    time.sleep(1.5)
    online_at = datetime.now(UTC)

    # Back online: sent once, shown as sent, with a link to its status.
    context.set_offline(False)
    sent = phone.locator(f'#outbox-list li[data-report-id="{report_id}"]')
    expect(sent).to_have_attribute("data-state", "sent", timeout=30_000)
    expect(sent).to_contain_text("已发送")
    assert outbox(phone) == []

    # The operator sees it with the time it was made, not the time it arrived.
    operator = stack.token("operator", "值班员 老王")
    seen = api_get(stack, f"/api/reports/{report_id}", operator)
    submitted = datetime.fromisoformat(seen["submitted_at"].replace("Z", "+00:00"))
    assert abs((submitted - made_at).total_seconds()) < 0.001
    assert submitted < online_at
    assert (seen["zone_id"], seen["reporter_id"], seen["description"]) == (
        PLAZA,
        principal,
        description,
    )
    assert seen["lat"] == pytest.approx(31.2103) and seen["lon"] == pytest.approx(121.4703)

    # Sending it again (a second tab, a flaky signal) changes nothing.
    phone.evaluate(
        "(item) => localStorage.setItem('puhui.report.outbox', JSON.stringify([item]))",
        {**kept, "state": "waiting"},
    )
    phone.evaluate("window.dispatchEvent(new Event('online'))")
    expect(phone.locator("#outbox-list li")).to_have_count(1)
    phone.wait_for_function("localStorage.getItem('puhui.report.outbox') === null")
    mine = api_get(stack, "/api/reports", token)
    assert [r["report_id"] for r in mine["items"]] == [report_id]
    with stack.engine.connect() as conn:
        count = conn.execute(
            text("select count(*) from reports where reporter_id = :n"), {"n": principal}
        ).scalar_one()
    assert count == 1

    # The status link opens the report's status.
    sent.locator("a").click()
    expect(phone.locator("#report-status")).to_be_visible(timeout=15_000)
    expect(phone.locator("#report-description")).to_have_text(description)

    # "Sign out" ends the session on this phone.
    phone.click("#logout")
    expect(phone.locator("#login")).to_be_visible()
    assert phone.evaluate("localStorage.getItem('puhui.report.token')") is None
    assert problems == []


def test_an_invitation_works_once_and_not_after_expiry(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    from playwright.sync_api import expect

    secret = invite(stack, "志愿者 小吴")
    first = pages(PHONE)
    first.goto(f"{stack.base_url}/report#invite={secret}")
    expect(first.locator("#view-new")).to_be_visible(timeout=15_000)

    again = pages(PHONE)  # another phone, or the link forwarded
    again.goto(f"{stack.base_url}/report#invite={secret}")
    error = again.locator("#login-error")
    expect(error).to_be_visible(timeout=15_000)
    expect(error).to_contain_text("此邀请链接已使用过")
    expect(error).to_contain_text("has been used already")
    expect(again.locator("#view-new")).to_be_hidden()
    assert again.evaluate("localStorage.getItem('puhui.report.token')") is None

    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    stale = invite(stack, "志愿者 小郑", now=two_hours_ago, valid_for=timedelta(hours=1))
    late = pages(PHONE)
    late.goto(f"{stack.base_url}/report#invite={stale}")
    expect(late.locator("#login-error")).to_contain_text("此邀请链接已过期", timeout=15_000)
    expect(late.locator("#login-error")).to_contain_text("has expired")
    shot(late, "volunteer-invitation-expired-mobile")

    # The console takes an operator's link the same way.
    console = pages({**PHONE, "viewport": {"width": 1280, "height": 900}, "is_mobile": False})
    console.goto(f"{stack.base_url}/?poll=0#invite={invite(stack, '值班员 小钱', 'operator')}")
    expect(console.locator("#app")).to_be_visible(timeout=15_000)
    expect(console.locator("#whoami")).to_contain_text("值班员 小钱")

    # Without location permission the page explains how to choose and why location helps.
    first.click("#locate")
    explained = first.locator("#zone-suggestion")
    expect(explained).to_have_attribute("data-kind", "denied", timeout=15_000)
    expect(explained).to_contain_text("按网格和地名选择区域")
    shot(first, "volunteer-location-denied-mobile")
    expect(first.locator("#zone")).to_have_value("")

    for page in (first, again, late, console):
        assert page.problems == []
