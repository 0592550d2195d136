"""The closed loop in real headless Chromium against the real stack (a ``puhui worker`` and
``puhui api`` on the test broker, one database): a sensor alert → an operator opens a case and
dispatches it → a responder on a phone-sized page accepts, arrives, handles it with a photo → the
operator verifies → closed; the volunteer who reported sees it closed. Every case command travels
API → ``puhui.cases`` → the case worker → database → the pages. The figures the pages show are
checked against the API's; the photo served back has no EXIF.

And: a case step past a (short) time limit shows as overdue on the console and is escalated once
through the notifier (a signed ``case_overdue`` webhook to each ``escalate_to`` target).
"""

from __future__ import annotations

import io
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_console import (  # noqa: F401 - the fixtures, shared
    DESKTOP,
    PHONE,
    PIPELINE_MS,
    ZONE,
    Stack,
    api_get,
    browser,
    crowd,
    open_console,
    open_report_page,
    pages,
    running_stack,
    shot,
    sign_in,
    submit_report,
)
from tests.support.api import wait_for
from tests.support.parts import Worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

UNIT = "grid-zhongtai"
WAIT_MS = 60_000  # a command's round trip: API → Kafka → worker → database → page


def responder_token(stack: Stack, name: str, unit: str = UNIT) -> str:
    from infra.tokens import Role, create_token

    return create_token(stack.engine, name, Role.RESPONDER, datetime.now(UTC), unit_id=unit)


def api_post(stack: Stack, token: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        f"{stack.base_url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def case_or_none(stack: Stack, token: str, case_id: str) -> Any:
    """The case as the API shows it, or None until the case worker has registered it."""
    import urllib.error

    try:
        return api_get(stack, token, f"/api/cases/{case_id}")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def api_bytes(stack: Stack, token: str, path: str) -> bytes:
    request = urllib.request.Request(
        f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def jpeg_with_gps(path: Path) -> None:
    """A phone-camera-like JPEG that carries GPS coordinates in its EXIF."""
    from PIL import Image

    image = Image.new("RGB", (640, 480), (180, 120, 60))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (31.0, 12.0, 30.0)
    gps[3] = "E"
    gps[4] = (121.0, 28.0, 10.0)
    image.save(path, "JPEG", exif=exif.tobytes())
    assert b"PhoneMaker" in path.read_bytes()


@pytest.fixture
def stack(make_worker: Callable[..., Worker], tmp_path: Path) -> Iterator[Stack]:
    """The stack with time limits no step of this test can pass on a slow machine (the bundled
    ones give a 红 crowding case 1 minute to dispatch): overdue has its own test below."""
    limits = tmp_path / "case_limits.yaml"
    limits.write_text(
        "defaults: {registered: 1d, dispatched: 1d, accepted: 1d, on_site: 1d, handled: 1d}\n",
        encoding="utf-8",
    )
    env = {"PUHUI_CASE_LIMITS_FILE": str(limits)}
    with running_stack(make_worker, tmp_path, env, **env) as running:
        yield running


def test_alert_to_case_closed_with_a_responder_on_a_phone(
    stack: Stack,
    pages: Callable[[dict[str, Any]], Any],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    from PIL import Image
    from playwright.sync_api import expect

    operator = stack.token("operator", "值班员 老王")
    volunteer = stack.token("volunteer", "志愿者 小李")
    responder = responder_token(stack, "网格员 李强")
    console = pages(DESKTOP)
    field = pages(PHONE)
    phone = pages(PHONE)

    # -- a sensor alert: 1600 people in the lane (红) ------------------------------------------
    open_console(console, stack, operator)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    crowd(stack, 1600, start)
    card = console.locator(f'.alert-card[data-risk="crowding"][data-zone="{ZONE}"]')
    try:
        expect(card).to_have_count(1, timeout=PIPELINE_MS)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{stack.tails()}") from None
    alert_id = card.get_attribute("data-alert-id")
    assert alert_id

    # -- a volunteer reports the same crowd; the report joins the sensor alert ----------------
    open_report_page(phone, stack, volunteer)
    report_id = submit_report(phone, "crowding", "泰康路210弄口人太多，走不动")
    wait_for(
        lambda: api_get(stack, volunteer, f"/api/reports/{report_id}")["alert_id"] == alert_id,
        timeout=90,
    )

    # -- the operator opens a case from the alert and dispatches it ----------------------------
    card.click()
    console.fill("#case-title", "泰康路210弄 人群拥挤")
    console.click("#btn-open-case")
    opened = console.locator("#case-opened-id")
    expect(opened).to_be_visible(timeout=WAIT_MS)
    case_id = opened.inner_text()
    status = console.locator("#case-status")
    try:
        expect(status).to_have_attribute("data-status", "registered", timeout=WAIT_MS)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{stack.tails()}") from None
    case = api_get(stack, operator, f"/api/cases/{case_id}")
    assert case["alert_ids"] == [alert_id] and case["report_ids"] == [report_id]
    assert (case["level"], case["category"]) == ("red", "crowding")
    # The lane's own site office is suggested first (the API's suggestion); the grid team goes.
    assert case["suggested_unit_ids"][0] == "tianzifang-management"
    expect(console.locator("#case-unit")).to_have_value("tianzifang-management")
    console.select_option("#case-unit", UNIT)
    console.fill("#case-note", "请到弄堂口疏导，注意老人")
    console.click("#btn-dispatch")
    expect(status).to_have_attribute("data-status", "dispatched", timeout=WAIT_MS)
    row = console.locator(f'#case-list tr[data-case-id="{case_id}"]')
    expect(row).to_contain_text("中泰网格工作站")

    # -- the responder, on a phone: accept, arrive, handle with a photo ------------------------
    field.goto(f"{stack.base_url}/field")
    sign_in(field, responder)
    expect(field.locator("#who-unit")).to_have_text("中泰网格工作站 (网格)")
    item = field.locator(f'.field-case[data-case-id="{case_id}"]')
    expect(item).to_have_attribute("data-status", "dispatched", timeout=WAIT_MS)
    expect(item).to_contain_text("泰康路210弄 人群拥挤")
    expect(item.locator('.instruction[data-action="dispatch"] .note')).to_have_text(
        "请到弄堂口疏导，注意老人"
    )
    mine = api_get(stack, responder, "/api/cases?status=dispatched,accepted,on_site,handled")
    expect(field.locator("#case-total")).to_have_attribute("data-value", str(mine["total"]))
    field.click(f"#btn-accept-{case_id}")
    expect(item).to_have_attribute("data-status", "accepted", timeout=WAIT_MS)
    field.click(f"#btn-arrive-{case_id}")
    expect(item).to_have_attribute("data-status", "on_site", timeout=WAIT_MS)
    picture = tmp_path / "scene.jpg"
    jpeg_with_gps(picture)
    item.locator(".handle-note").fill("已在弄堂口疏导人流，设置单向通行")
    item.locator(".photo-input").set_input_files(str(picture))
    expect(item.locator(".photo")).to_have_count(1, timeout=WAIT_MS)
    shot(field, "field-mobile")
    field.click(f"#btn-handle-{case_id}")
    expect(item).to_have_attribute("data-status", "handled", timeout=WAIT_MS)

    # -- the crowd goes; after the hold time the sensor alert clears on its own ----------------
    crowd(stack, 100, start + timedelta(minutes=1))
    crowd(stack, 100, start + timedelta(minutes=7))
    expect(status).to_have_attribute("data-status", "handled", timeout=WAIT_MS)
    sensor = console.locator("#case-sensor")
    expect(sensor).to_have_attribute("data-normal", "true", timeout=PIPELINE_MS)
    expect(sensor).to_contain_text("传感器已恢复正常")

    # -- figures on the console are the API's --------------------------------------------------
    case = api_get(stack, operator, f"/api/cases/{case_id}")
    assert case["alerts"][0]["back_to_normal"] is True
    expect(console.locator("#case-handle-note")).to_have_text(case["handle_note"])
    # minutes, one decimal, as the page writes numbers (0.0 → "0")
    expect(console.locator("#case-min-accept")).to_have_text(f"{case['minutes_to_accept']:g}")
    expect(console.locator("#case-min-arrive")).to_have_text(f"{case['minutes_to_arrive']:g}")
    counts = api_get(stack, operator, "/api/cases?status=all")["counts"]
    expect(console.locator("#case-count-open")).to_have_attribute("data-value", str(counts["open"]))
    expect(console.locator("#case-count-overdue")).to_have_attribute(
        "data-value", str(counts["overdue"])
    )

    # -- the photo served back carries no EXIF (no GPS) ----------------------------------------
    (photo_id,) = case["photo_ids"]
    served = api_bytes(stack, operator, f"/api/photos/{photo_id}")
    assert b"PhoneMaker" not in served and b"Exif" not in served
    with Image.open(io.BytesIO(served)) as image:
        assert dict(image.getexif()) == {}

    # -- the operator verifies: closed ---------------------------------------------------------
    console.click("#btn-verify-close")
    expect(status).to_have_attribute("data-status", "closed", timeout=WAIT_MS)
    timeline = console.locator("#case-timeline li")
    expect(timeline).to_have_count(6)
    actions = [e["action"] for e in api_get(stack, operator, f"/api/cases/{case_id}")["timeline"]]
    assert actions == ["open", "dispatch", "accept", "arrive", "handle", "verify"]
    expect(console.locator('#case-timeline li[data-action="accept"]')).to_contain_text(
        "网格员 李强"
    )
    shot(console, "console-case-closed")
    # The responder's open list no longer holds it.
    expect(item).to_have_count(0, timeout=WAIT_MS)

    # -- the volunteer sees the case closed ----------------------------------------------------
    phone.goto(f"{stack.base_url}/report#r/{report_id}")
    report_status = phone.locator("#report-status")
    expect(report_status).to_have_attribute("data-status", "case_closed", timeout=WAIT_MS)
    expect(report_status).to_contain_text("已结案")
    mine_report = api_get(stack, volunteer, f"/api/reports/{report_id}")
    assert mine_report["status"] == "case_closed"
    assert mine_report["case"]["case_id"] == case_id
    for page in (console, field, phone):
        assert page.problems == [], page.problems


# ----------------------------------------------------------------------- overdue + escalated --


class _Hooks(BaseHTTPRequestHandler):
    hits: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.hits.append((self.path, dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_overdue_step_shows_as_overdue_and_is_escalated_once(
    make_worker: Callable[..., Worker],
    tmp_path: Path,
    pages: Callable[[dict[str, Any]], Any],  # noqa: F811 - the fixture
    receiver: Any,
) -> None:
    from playwright.sync_api import expect

    from alerts.notify import target_secret, verify_delivery

    port = receiver.server_address[1]
    limits = tmp_path / "case_limits.yaml"
    limits.write_text(
        "defaults: {registered: 4s, dispatched: 1h, accepted: 1h, on_site: 1h, handled: 1h}\n"
        "escalate_to: [duty-desk, duty-leader]\n",
        encoding="utf-8",
    )
    policy = tmp_path / "escalation.yaml"
    policy.write_text(
        "targets:\n"
        f"  duty-desk: {{url: 'http://127.0.0.1:{port}/hooks/desk'}}\n"
        f"  duty-leader: {{url: 'http://127.0.0.1:{port}/hooks/leader'}}\n"
        "defaults:\n"
        "  steps:\n"
        "    - {after: 0, targets: [duty-desk]}\n",
        encoding="utf-8",
    )
    secret = "case-escalation-test-secret"
    env = {"PUHUI_CASE_LIMITS_FILE": str(limits), "PUHUI_CASE_CHECK_SECONDS": "0.5"}
    with running_stack(
        make_worker,
        tmp_path,
        env,
        PUHUI_WEBHOOK_SECRET=secret,
        PUHUI_ESCALATION_FILE=str(policy),
        **env,
    ) as stack:
        operator = stack.token("operator", "值班员 老周")
        volunteer = stack.token("volunteer", "志愿者 小陈")
        console = pages(DESKTOP)
        open_console(console, stack, operator)
        report = api_post(
            stack,
            volunteer,
            "/api/reports",
            {"zone_id": ZONE, "category": "littering", "description": "弄堂口垃圾堆积"},
        )
        report_id = report["report_id"]
        opened = api_post(
            stack, operator, "/api/cases", {"report_ids": [report_id], "title": "垃圾堆积"}
        )
        case_id = opened["case_id"]

        def escalated() -> Any:
            found = case_or_none(stack, operator, case_id)
            return found if found is not None and found["escalated"] else None

        try:
            case = wait_for(escalated, timeout=90)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{stack.tails()}") from None
        assert case["overdue"] is True and case["status"] == "registered"
        assert [e["action"] for e in case["timeline"]] == ["open", "escalate"]

        # The console shows it overdue, with the API's count.
        row = console.locator(f'#case-list tr[data-case-id="{case_id}"]')
        expect(row).to_have_attribute("data-overdue", "true", timeout=WAIT_MS)
        expect(row).to_contain_text("超期")
        counts = api_get(stack, operator, "/api/cases")["counts"]
        assert counts["overdue"] == 1
        expect(console.locator("#case-count-overdue")).to_have_attribute(
            "data-value", "1", timeout=WAIT_MS
        )

        # One signed webhook per target, about this case's first step.
        wait_for(lambda: len(receiver.hits) >= 2, timeout=60)
        paths = sorted(path for path, _, _ in receiver.hits)
        assert paths == ["/hooks/desk", "/hooks/leader"]
        for path, headers, body in receiver.hits:
            target = "duty-desk" if path.endswith("desk") else "duty-leader"
            verify_delivery(
                target_secret(secret.encode(), target),
                body,
                headers.get("X-Puhui-Timestamp"),
                headers.get("X-Puhui-Signature"),
                now=datetime.now(UTC),
            )
            payload = json.loads(body)
            assert payload["kind"] == "case_overdue"
            assert (payload["case_id"], payload["step"], payload["status"]) == (
                case_id,
                0,
                "registered",
            )

        # Once: dispatching starts a new step (1 h limit); the first step is not sent again,
        # and the case is no longer overdue.
        api_post(stack, operator, f"/api/cases/{case_id}/dispatch", {"unit_id": UNIT})
        wait_for(
            lambda: api_get(stack, operator, f"/api/cases/{case_id}")["status"] == "dispatched",
            timeout=60,
        )
        expect(row).to_have_attribute("data-overdue", "false", timeout=WAIT_MS)
        timeline = api_get(stack, operator, f"/api/cases/{case_id}")["timeline"]
        assert [e["action"] for e in timeline].count("escalate") == 1
        assert len(receiver.hits) == 2
