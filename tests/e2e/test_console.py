"""The console at ``/`` and the volunteer page at ``/report`` in real headless Chromium, against the
real stack: a ``puhui worker`` and ``puhui api`` on the shared test broker, one database.

A volunteer's report travels volunteer page → API → ``puhui.volunteer-reports`` → worker (a
``report`` alert) → ``puhui.alerts`` → the API's live stream → the operator's console; the
operator's acknowledgement travels back through ``puhui.alert-commands`` and the worker to the
volunteer's status page. Text a user typed must show as text and run nothing.

Set ``PUHUI_E2E_SCREENSHOTS=/some/dir`` to keep screenshots of both pages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.parts import REPO, Worker, free_port

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("PUHUI_TEST_CHROMIUM", "/usr/bin/chromium")

# As root, headless Chromium needs --no-sandbox; the others keep it off the (closed) network:
# without them it keeps trying to reach Google's hosts. Playwright adds a fresh --user-data-dir.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: dict[str, Any] = {
    "viewport": {"width": 1440, "height": 1000},
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}

ZONE = "tianzifang-taikang-210"
ZONE_ZH = "田子坊 泰康路210弄"
ZONE_EN = "Tianzifang, Lane 210 Taikang Road"
# Would set window.__xss if it were ever parsed as markup.
IMG = '<img src=x onerror="window.__xss = 1">'
SCRIPT = "<script>window.__xss = 2</script>"

# The worker's round trip (report → alert → stream) on a loaded machine.
PIPELINE_MS = 60_000


# ---------------------------------------------------------------------------------- fixtures --


def http_status(url: str, timeout: float = 3.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


@dataclass
class Stack:
    """A running worker and API; :meth:`token` makes an API token in their shared database."""

    worker: Worker
    base_url: str
    engine: Engine
    api_log: Path

    def token(self, role: str, name: str) -> str:
        from infra.tokens import Role, create_token

        return create_token(self.engine, name, Role(role), datetime.now(UTC))

    def tails(self) -> str:
        api = self.api_log.read_text(errors="replace") if self.api_log.exists() else ""
        return (
            f"--- api log ---\n{chr(10).join(api.splitlines()[-40:])}\n"
            f"--- worker log ---\n{self.worker.tail(40)}"
        )


@contextmanager
def running_stack(
    make_worker: Callable[..., Worker],
    tmp_path: Path,
    worker_env: dict[str, str] | None = None,
    **api_env: str,
) -> Iterator[Stack]:
    """``puhui worker`` (``make_worker``, with ``worker_env``) and ``puhui api`` on a free port
    with the same env (plus ``api_env`` for the API)."""
    from infra.db import make_engine

    worker = make_worker(**(worker_env or {}))
    port = free_port()
    env = {
        **worker.env,
        "PUHUI_HTTP_HOST": "127.0.0.1",
        "PUHUI_HTTP_PORT": str(port),
        **api_env,
    }
    api_log = tmp_path / "api.log"
    out = api_log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "api"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    engine = make_engine(worker.database_url)
    stack = Stack(worker, f"http://127.0.0.1:{port}", engine, api_log)
    try:
        deadline = time.monotonic() + 60
        while http_status(f"{stack.base_url}/readyz") != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"puhui api exited {proc.returncode}\n{stack.tails()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"puhui api not ready in 60 s\n{stack.tails()}")
            time.sleep(0.3)
        yield stack
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        engine.dispose()


@pytest.fixture
def stack(
    make_worker: Callable[..., Worker], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Stack]:
    """The running stack, with the settings an indirect parametrization gives (e.g. a short
    feed-silence limit)."""
    with running_stack(make_worker, tmp_path, getattr(request, "param", {})) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright (it cannot download its own browsers here)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run infra/scripts/prereqs.sh --test"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def pages(browser: Any) -> Iterator[Callable[[dict[str, Any]], Any]]:
    """``open_page(context_options)``: a page in a fresh context (own sessionStorage) that
    records script errors and console errors (a refused script or style, say) in
    ``page.problems``, and any request that leaves this machine (nothing may load from
    outside). Failed requests are not problems: the pages handle those."""
    contexts: list[Any] = []

    def open_page(options: dict[str, Any]) -> Any:
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))

        def on_console(msg: Any) -> None:
            if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                problems.append(f"console: {msg.text}")

        def on_request(request: Any) -> None:
            url = urllib.parse.urlsplit(request.url)
            if url.scheme not in ("data", "blob") and url.hostname != "127.0.0.1":
                problems.append(f"external request: {request.url}")

        page.on("console", on_console)
        page.on("request", on_request)
        page.problems = problems
        return page

    yield open_page
    for context in contexts:
        context.close()


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("PUHUI_E2E_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


# ---------------------------------------------------------------------------------- steps -----


def sign_in(page: Any, token: str) -> None:
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def open_console(page: Any, stack: Stack, token: str) -> None:
    """The console with the periodic refresh off (``?poll=0``): only the stream can update it."""
    from playwright.sync_api import expect

    page.goto(f"{stack.base_url}/?poll=0")
    sign_in(page, token)
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)
    expect(page.locator(f'#zones tr[data-zone="{ZONE}"]')).to_contain_text(ZONE_ZH)


def open_report_page(page: Any, stack: Stack, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{stack.base_url}/report")
    sign_in(page, token)
    expect(page.locator(f'#zone option[value="{ZONE}"]')).to_have_text(ZONE_ZH)


def submit_report(page: Any, category: str, description: str) -> str:
    """Fill and send the form; returns the report id the status view shows."""
    from playwright.sync_api import expect

    page.select_option("#zone", ZONE)
    page.select_option("#category", category)
    page.fill("#description", description)
    page.click("#submit")
    expect(page.locator("#report-status")).to_be_visible(timeout=15_000)
    return urllib.parse.unquote(page.url.split("#r/", 1)[1])


def open_alert(console: Any, report_id: str) -> Any:
    """Wait for the report's alert on the board (from the stream only); open it; return the card."""
    from playwright.sync_api import expect

    card = console.locator(f'.alert-card[data-risk="report"][data-zone="{ZONE}"]')
    expect(card).to_have_count(1, timeout=PIPELINE_MS)
    card.click()
    expect(console.locator(f'#detail .report[data-report-id="{report_id}"]')).to_be_visible(
        timeout=15_000
    )
    return card


# ---------------------------------------------------------------------------------- tests -----


def test_report_reaches_the_console_live_and_the_acknowledgement_comes_back(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    from playwright.sync_api import expect

    volunteer = stack.token("volunteer", "志愿者 小李")
    operator = stack.token("operator", "值班员 老王")
    console = pages(DESKTOP)
    phone = pages(PHONE)

    open_console(console, stack, operator)
    expect(console.locator("#no-alerts")).to_be_visible()

    open_report_page(phone, stack, volunteer)
    description = "泰康路210弄口有老人摔倒，人很多，需要帮助"
    shot(phone, "report-form-mobile")
    report_id = submit_report(phone, "injury", description)
    expect(phone.locator("#report-description")).to_have_text(description)

    # The worker opens a `report` alert; it reaches the board through the stream only.
    try:
        card = open_alert(console, report_id)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{stack.tails()}") from None
    expect(card).to_have_attribute("data-status", "firing")
    expect(card.locator(".badge")).to_have_text("橙 Orange")  # injury opens at 橙
    # Linked, not "being handled": no person has looked at it yet.
    status = phone.locator("#report-status")
    expect(status).to_have_attribute("data-status", "linked", timeout=30_000)
    expect(status).to_contain_text("已关联告警")
    expect(phone.locator("#view-status")).not_to_contain_text("正在处理")
    expect(card).to_contain_text(ZONE_ZH)
    report = console.locator(f'#detail .report[data-report-id="{report_id}"]')
    expect(report.locator(".description")).to_have_text(description)

    note = "已派网格员前往 (grid worker on the way)"
    console.fill("#action-note", note)
    console.click("#btn-ack")
    expect(card).to_have_attribute("data-status", "acknowledged", timeout=30_000)
    expect(console.locator("#detail-status")).to_have_attribute(
        "data-status", "acknowledged", timeout=15_000
    )
    acked = console.locator('#detail .history tr[data-change="acknowledged"]')
    expect(acked).to_contain_text("值班员 老王")
    expect(acked.locator(".note")).to_have_text(note)
    shot(console, "console-desktop")

    # The volunteer's status page polls its report and shows that a person acted — but not the
    # operator's note, which was not marked public.
    expect(status).to_have_attribute("data-status", "acknowledged", timeout=30_000)
    expect(status).to_contain_text("值班员已处理")
    update = phone.locator('#report-updates li[data-change="acknowledged"]')
    expect(update).to_contain_text("已确认")
    expect(update.locator(".note")).to_have_count(0)
    expect(phone.locator("#view-status")).not_to_contain_text(note)
    shot(phone, "report-status-mobile")

    # A note marked public reaches the reporter.
    public = "网格员已到场 (grid worker on site)"
    console.fill("#action-assignee", "网格员 老李")
    console.fill("#action-note", public)
    console.check("#action-note-public")
    console.click("#btn-assign")
    shared = phone.locator('#report-updates li[data-change="assigned"] .note')
    expect(shared).to_have_text(public, timeout=30_000)
    expect(phone.locator("#view-status")).not_to_contain_text(note)

    assert console.problems == []
    assert phone.problems == []


def test_markup_in_a_report_shows_as_text_on_the_volunteer_page(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    from playwright.sync_api import expect

    phone = pages(PHONE)
    open_report_page(phone, stack, stack.token("volunteer", "志愿者 小张"))

    # Chinese by default, English on request (zones and categories too), and back.
    expect(phone.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(phone.locator("#submit")).to_have_text("提交报告")
    phone.click('.lang button[data-lang="en"]')
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    expect(phone.locator("#submit")).to_have_text("Submit report")
    expect(phone.locator(f'#zone option[value="{ZONE}"]')).to_have_text(ZONE_EN)
    expect(phone.locator('#category option[value="injury"]')).to_have_text("Injury")
    phone.click('.lang button[data-lang="zh"]')
    expect(phone.locator("#submit")).to_have_text("提交报告")
    expect(phone.locator('#category option[value="injury"]')).to_have_text("有人受伤")

    description = f"入口有人摔倒 {IMG} {SCRIPT} 请派人"
    report_id = submit_report(phone, "injury", description)

    shown = phone.locator("#report-description")
    expect(shown).to_have_text(description)
    assert shown.locator("img, script").count() == 0
    phone.click('a[data-tab="mine"]')
    mine = phone.locator(f'#mine li[data-report-id="{report_id}"] .description')
    expect(mine).to_have_text(description)
    assert phone.locator("#mine img, #mine script").count() == 0
    assert phone.evaluate("window.__xss") is None
    assert phone.problems == []


def test_markup_in_reports_notes_and_names_shows_as_text_on_the_console(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    from playwright.sync_api import expect

    console = pages(DESKTOP)
    phone = pages(PHONE)
    open_console(console, stack, stack.token("operator", "值班员 老周"))
    open_report_page(phone, stack, stack.token("volunteer", "志愿者 小陈"))

    description = f"弄堂里冒烟 {IMG} {SCRIPT}"
    report_id = submit_report(phone, "smoke", description)
    try:
        card = open_alert(console, report_id)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{stack.tails()}") from None
    shown = console.locator(f'#detail .report[data-report-id="{report_id}"] .description')
    expect(shown).to_have_text(description)

    assignee = f"<b>网格员</b> {IMG}"
    note = f"已派人 {SCRIPT} {IMG}"
    console.fill("#action-assignee", assignee)
    console.fill("#action-note", note)
    console.check("#action-note-public")  # for the volunteer to see it
    console.click("#btn-assign")
    expect(card.locator(".assignee")).to_have_text(assignee, timeout=30_000)
    assigned = console.locator('#detail .history tr[data-change="assigned"]')
    expect(assigned.locator(".assignee")).to_have_text(assignee, timeout=15_000)
    expect(assigned.locator(".note")).to_have_text(note)
    assert console.locator("#app img, #app script, #app b").count() == 0

    # The volunteer sees the operator's public note, as text too.
    update = phone.locator('#report-updates li[data-change="assigned"] .note')
    expect(update).to_have_text(note, timeout=30_000)
    assert phone.locator("#view-status img, #view-status script").count() == 0

    assert console.evaluate("window.__xss") is None
    assert phone.evaluate("window.__xss") is None
    assert console.problems == []
    assert phone.problems == []


def test_pages_are_static_files_under_a_strict_content_security_policy() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api.errors import install_error_handlers
    from api.pages import router

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    client = TestClient(app)
    for path, kind in [
        ("/", "text/html"),
        ("/report", "text/html"),
        ("/static/console.js", "text/javascript"),
        ("/static/common.css", "text/css"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    for path in ["/static/missing.js", "/static/..%2Fpages.py", "/static/%2e%2e", "/static/x.py"]:
        assert client.get(path).status_code == 404, path
    assert "/report" not in app.openapi()["paths"]


def test_no_token_in_any_log_across_a_stream_reconnect_and_revocation_ends_the_stream(
    make_worker: Callable[..., Worker], tmp_path: Path, pages: Callable[[dict[str, Any]], Any]
) -> None:
    """The console stays open while the server ends its stream (``PUHUI_SSE_MAX_SECONDS``) and
    the console reconnects; the token is in no request URL and in neither process's log (the
    API's access log included). Revoking the token then ends the open stream: the console is
    signed out within 5 s."""
    from playwright.sync_api import expect

    from infra.tokens import revoke_token, verify_token

    with running_stack(
        make_worker,
        tmp_path,
        PUHUI_SSE_MAX_SECONDS="3",
        PUHUI_STREAM_RECHECK_SECONDS="1",
        PUHUI_LOG_LEVEL="INFO",
    ) as stack:
        operator = stack.token("operator", "值班员 老周")
        console = pages(DESKTOP)
        streams: list[str] = []
        urls: list[str] = []

        def on_request(request: Any) -> None:
            urls.append(request.url)
            if urllib.parse.urlsplit(request.url).path == "/api/alerts/stream":
                streams.append(request.headers.get("authorization", ""))

        console.on("request", on_request)
        open_console(console, stack, operator)

        # The server ends each stream after 3 s; the console opens a new one and is live again.
        deadline = time.monotonic() + 30
        while len(streams) < 3:
            assert time.monotonic() < deadline, f"no reconnect: {streams}\n{stack.tails()}"
            console.wait_for_timeout(200)
        expect(console.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)
        assert all(auth == f"Bearer {operator}" for auth in streams)  # the header, every time

        # Revoke: the open stream ends and the console signs out, within 5 s.
        info = verify_token(stack.engine, operator)
        assert info is not None
        expect(console.locator("#live")).to_have_attribute("data-state", "live")
        revoked_at = time.monotonic()
        revoke_token(stack.engine, info.id, datetime.now(UTC))
        expect(console.locator("#login")).to_be_visible(timeout=5_000)
        assert time.monotonic() - revoked_at < 5.0
        assert console.problems == []

        api_log = stack.api_log.read_text(errors="replace")
        worker_log = "\n".join(p.read_text(errors="replace") for p in stack.worker.logs)

    # The access log was on and saw the reconnects: the grep below looks at the right lines.
    assert api_log.count("GET /api/alerts/stream HTTP/1.1") >= 3, api_log[-3000:]
    secret = operator.removeprefix("ph_")
    places = ((api_log, "API log"), (worker_log, "worker log"), ("\n".join(urls), "URLs"))
    for text, where in places:
        assert secret not in text, f"the token is in the {where}"
        assert "access_token" not in text and "ticket=" not in text, where


# -------------------------------------------------------------------- alarm management --------


def crowd(stack: Stack, people: int, at: datetime, sensor: str = "cam-e2e-1") -> None:
    """One people count of ``ZONE`` onto the worker's readings topic (kafka-python)."""
    import json

    from tests.support.parts import produce

    body = {
        "reading_id": f"{sensor}:{at.isoformat()}",
        "sensor_id": sensor,
        "zone_id": ZONE,
        "kind": "people_count",
        "value": people,
        "observed_at": at.isoformat(),
    }
    bootstrap = stack.worker.env["PUHUI_KAFKA_BOOTSTRAP"]
    produce(bootstrap, stack.worker.topics.readings, [(ZONE.encode(), json.dumps(body).encode())])


def api_get(stack: Stack, token: str, path: str) -> Any:
    import json

    request = urllib.request.Request(
        f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_red_alert_that_clears_on_its_own_stays_until_acknowledged(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    """Latching: a 红 crowding alert whose crowd goes away before anyone looked stays on the
    board as resolved-unacknowledged; the open panel follows it live and its actions follow the
    status; acknowledging takes it off the board and into the shift log."""
    from datetime import timedelta

    from playwright.sync_api import expect

    operator = stack.token("operator", "值班员 老杨")
    console = pages(DESKTOP)
    open_console(console, stack, operator)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    crowd(stack, 1600, start)  # 1600 / capacity 1260 = 127 %: 红
    card = console.locator(f'.alert-card[data-risk="crowding"][data-zone="{ZONE}"]')
    try:
        expect(card).to_have_count(1, timeout=PIPELINE_MS)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{stack.tails()}") from None
    expect(card).to_have_attribute("data-level", "red")
    alert_id = card.get_attribute("data-alert-id")
    assert alert_id
    card.click()
    panel = console.locator("#detail")
    expect(panel).to_have_attribute("data-status", "firing", timeout=15_000)
    expect(console.locator("#btn-ack")).to_be_enabled()
    expect(console.locator("#btn-resolve")).to_be_enabled()
    # Why it fired, in words: the rule crossed, as the API explains it.
    expect(console.locator("#detail-rule")).to_have_text("承载率 127 % ≥ 120 % → 红")
    expect(console.locator("#detail-rule-en")).to_have_text("occupancy 127 % ≥ 120 % → red")
    detail = api_get(stack, operator, f"/api/alerts/{alert_id}")
    assert detail["explanation"]["zh"] == "承载率 127 % ≥ 120 % → 红"
    expect(panel.locator(".figures")).to_contain_text("1600 人")
    expect(panel.locator("details.raw")).not_to_have_attribute("open", "")  # ids folded away

    # The crowd leaves; after the hold time (5 min of event time) the alert resolves itself.
    crowd(stack, 100, start + timedelta(minutes=1))
    crowd(stack, 100, start + timedelta(minutes=7))
    expect(card).to_have_attribute("data-status", "resolved", timeout=PIPELINE_MS)
    expect(card).to_have_attribute("data-latched", "true")
    expect(card).to_contain_text("待确认")
    # The panel followed it without a click, and only acknowledging is left to do.
    expect(panel).to_have_attribute("data-status", "resolved", timeout=15_000)
    expect(panel).to_have_attribute("data-latched", "true")
    expect(console.locator("#btn-resolve")).to_be_disabled()
    expect(console.locator("#btn-assign")).to_be_disabled()
    expect(console.locator("#btn-ack")).to_be_enabled()
    # What the board shows is what the API says.
    from tests.support.api import wait_for

    def board_has_it_latched() -> Any:
        board = api_get(stack, operator, "/api/alerts")
        found = [a for a in board["items"] if a["alert_id"] == alert_id and a["latched"]]
        return board if found else None

    board = wait_for(board_has_it_latched)  # the stream may be a moment ahead of the database
    (listed,) = [a for a in board["items"] if a["alert_id"] == alert_id]
    assert listed["status"] == "resolved" and listed["latched"] is True
    assert listed["acknowledged"] is False
    latched = [a["alert_id"] for a in board["items"] if a["latched"]]
    cards = console.locator('.alert-card[data-latched="true"]')
    assert [cards.nth(i).get_attribute("data-alert-id") for i in range(cards.count())] == latched
    shot(console, "console-latched")

    console.click("#btn-ack")
    expect(card).to_have_count(0, timeout=30_000)
    expect(panel).to_have_attribute("data-latched", "false", timeout=15_000)
    for button in ("#btn-ack", "#btn-assign", "#btn-resolve"):
        expect(console.locator(button)).to_be_disabled()
    expect(panel.locator(".acknowledged-by")).to_have_text("值班员 老杨")
    # The shift log says how it was closed and who has seen it.
    console.select_option("#shiftlog-hours", "1")
    row = console.locator(f'#shiftlog tr[data-alert-id="{alert_id}"]')
    expect(row).to_have_attribute("data-how", "cleared", timeout=30_000)
    expect(row.locator(".acknowledged-by")).to_have_text("值班员 老杨")

    def logged() -> Any:
        log = api_get(stack, operator, "/api/shift-log?hours=1")
        return [e for e in log["items"] if e["alert_id"] == alert_id and e["acknowledged_by"]]

    (entry,) = wait_for(logged)
    assert entry["acknowledged_by"] == "值班员 老杨" and entry["closed_how"] == "cleared"
    assert console.problems == []


def test_a_forecast_card_looks_different_and_counts_down(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    """预判: a rising crowd raises a predicted alert; its card has its own look, the expected
    clock time (Beijing) and a countdown that runs."""
    import re
    from datetime import timedelta

    from playwright.sync_api import expect

    operator = stack.token("operator", "值班员 小吴")
    console = pages(DESKTOP)
    open_console(console, stack, operator)
    now = datetime.now(UTC).replace(microsecond=0)
    for minute in range(8):  # +40 people a minute: 3.0 persons/m² (capacity) in about 12 min
        crowd(stack, 500 + 40 * minute, now - timedelta(minutes=7 - minute))
    card = console.locator(f'.alert-card.forecast[data-risk="crowding"][data-zone="{ZONE}"]')
    try:
        expect(card).to_have_count(1, timeout=PIPELINE_MS)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{stack.tails()}") from None
    expect(card.locator(".tag.predicted")).to_contain_text("预判")
    countdown = card.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^还有 \d+ 分 \d+ 秒"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first, timeout=5_000)  # it runs
    alert_id = card.get_attribute("data-alert-id")
    detail = api_get(stack, operator, f"/api/alerts/{alert_id}")
    assert detail["predicted"] is True
    clock = detail["explanation"]["expected_clock"]
    assert re.fullmatch(r"\d\d:\d\d", clock)
    expect(card.locator(".expected-clock")).to_have_text(clock)
    card.click()
    expect(console.locator("#detail-rule")).to_have_text(detail["explanation"]["zh"])
    expect(console.locator("#detail .expected-clock")).to_have_text(clock)
    shot(console, "console-forecast")
    assert console.problems == []


@pytest.mark.parametrize("stack", [{"PUHUI_FEED_SILENT_SECONDS": "4"}], indirect=True)
def test_a_stopped_feed_turns_the_header_into_a_warning_within_seconds(
    stack: Stack, pages: Callable[[dict[str, Any]], Any]
) -> None:
    """Freshness: while readings come in the header says 实时 and the zone shows the age of its
    latest reading; a feed silent longer than the setting (4 s here) turns the header into a
    warning and raises a visible alert in the console; a new reading brings 实时 back."""
    from playwright.sync_api import expect

    operator = stack.token("operator", "值班员 小孙")
    console = pages(DESKTOP)
    open_console(console, stack, operator)
    live = console.locator("#live")
    banner = console.locator("#feed-alert")
    crowd(stack, 300, datetime.now(UTC).replace(microsecond=0))
    try:
        # the zone status reaches the API (the worker writes it every few seconds)
        from tests.support.api import wait_for

        wait_for(lambda: api_get(stack, operator, "/api/feed")["latest_reading_at"], timeout=60)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{stack.tails()}") from None
    feed = api_get(stack, operator, "/api/feed")
    assert feed["silent_after_seconds"] == 4.0
    # Nothing more comes in: the warning shows within seconds of the limit.
    expect(live).to_have_attribute("data-state", "silent", timeout=15_000)
    expect(live).to_contain_text("数据中断")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("没有收到任何传感器读数")
    assert api_get(stack, operator, "/api/feed")["silent"] is True
    console.reload()  # the zones table shows the age of the zone's latest reading
    expect(console.locator("#app")).to_be_visible()
    age = console.locator(f'#zones tr[data-zone="{ZONE}"] td.age')
    expect(age).to_contain_text("秒前", timeout=15_000)
    shot(console, "console-feed-silent")
    # The feed resumes: 实时 again.
    crowd(stack, 310, datetime.now(UTC).replace(microsecond=0))
    expect(live).to_have_attribute("data-state", "live", timeout=30_000)
    expect(banner).to_be_hidden()
    assert console.problems == []
