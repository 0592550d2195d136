"""Photos on the volunteer page, in real headless Chromium on a phone-sized page against a real
``puhui worker`` + ``puhui api`` (fixtures from ``test_console``):

- the volunteer attaches a photo (a JPEG from a "phone", with GPS in its EXIF) through the
  camera input; the page shows the stored photo's thumbnail, the report carries the photo, its
  status view shows it, and the photo the API serves has no EXIF at all;
- offline, a photo that cannot be uploaded is kept on the phone with the report (IndexedDB);
  back online the photo is uploaded first, then the report goes with its id: nothing is lost.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_console
from tests.e2e.test_console import DESKTOP, PHONE, ZONE, Stack, open_alert, open_console, shot
from tests.support.photos import metadata_of, phone_jpeg

browser, pages, stack = test_console.browser, test_console.pages, test_console.stack

pytestmark = pytest.mark.e2e

LANE = ZONE
NO_METADATA = {"format": "JPEG", "exif": {}, "info": [], "segments": []}


def api_get(stack: Stack, path: str, token: str, raw: bool = False) -> Any:
    request = urllib.request.Request(
        f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        headers = {k.lower(): v for k, v in response.headers.items()}
        return (body, headers) if raw else json.loads(body)


def sign_in(stack: Stack, page: Any, name: str) -> str:
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    from infra.invitations import create_invitation
    from infra.tokens import Role

    _, secret = create_invitation(
        stack.engine, name, Role.VOLUNTEER, datetime.now(UTC), timedelta(hours=1)
    )
    page.goto(f"{stack.base_url}/report#invite={secret}")
    expect(page.locator("#view-new")).to_be_visible(timeout=15_000)
    return str(page.evaluate("localStorage.getItem('puhui.report.token')"))


def fill_report(page: Any, description: str, category: str = "fire_lane") -> None:
    page.select_option("#zone", LANE)
    page.select_option("#category", category)
    page.fill("#description", description)


def test_a_photo_taken_on_the_page_reaches_the_report_without_exif(
    stack: Stack, pages: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    phone = pages(PHONE)
    token = sign_in(stack, phone, "志愿者 小林")
    camera = phone.locator("#photo")
    assert camera.get_attribute("accept") == "image/*"
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("type") == "file"

    shot_file = tmp_path / "IMG_0001.jpg"
    shot_file.write_bytes(phone_jpeg((1200, 900), orientation=6))
    assert metadata_of(shot_file.read_bytes())["exif"]  # GPS and the camera are in there
    camera.set_input_files(str(shot_file))

    preview = phone.locator("#photo-previews li")
    expect(preview).to_have_count(1)
    expect(preview).to_have_attribute("data-state", "uploaded", timeout=30_000)
    photo_id = preview.get_attribute("data-photo-id")
    assert photo_id and photo_id.startswith("ph_")
    thumb = preview.locator("img")
    expect(thumb).to_have_attribute("data-loaded", "true", timeout=15_000)
    # The server's thumbnail: upright (portrait, as the phone was held), 320 pixels tall.
    size = thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [240, 320]
    shot(phone, "volunteer-photo-attached-mobile")

    operator = stack.token("operator", "值班员 老李")
    console = pages(DESKTOP)
    open_console(console, stack, operator)
    fill_report(phone, "弄堂口有老人摔倒，照片为证", category="injury")
    phone.click("#submit")
    expect(phone.locator("#report-status")).to_be_visible(timeout=15_000)
    report_id = phone.url.rsplit("#r/", 1)[1]
    shown = phone.locator(f'#report-photos img[data-photo-id="{photo_id}"]')
    expect(shown).to_have_attribute("data-loaded", "true", timeout=15_000)
    expect(phone.locator("#photo-previews li")).to_have_count(0)  # the form starts afresh
    shot(phone, "volunteer-report-with-photo-mobile")

    # What the page shows is what the API has.
    report = api_get(stack, f"/api/reports/{report_id}", token)
    assert [p["photo_id"] for p in report["photos"]] == [photo_id]
    assert phone.locator("#report-photos img").count() == len(report["photos"])
    served, headers = api_get(stack, f"/api/photos/{photo_id}", token, raw=True)
    assert headers["content-type"] == "image/jpeg"
    assert "no-store" in headers["cache-control"]
    assert metadata_of(served) == NO_METADATA
    thumb_bytes, _ = api_get(stack, f"/api/photos/{photo_id}/thumbnail", token, raw=True)
    assert metadata_of(thumb_bytes) == NO_METADATA
    # The operator sees the photo with the report in the console (an injury opens an alert),
    # the same photo the API has; the read is recorded.
    open_alert(console, report_id)
    in_console = console.locator(
        f'#detail .report[data-report-id="{report_id}"] img[data-photo-id="{photo_id}"]'
    )
    expect(in_console).to_have_attribute("data-loaded", "true", timeout=15_000)
    detail_photos = console.locator(f'#detail .report[data-report-id="{report_id}"] img')
    assert detail_photos.count() == len(report["photos"])
    shot(console, "console-report-photo-desktop")
    from infra.privacy import access_log

    reads = [a for a in access_log(stack.engine) if photo_id in (a.report_ids or [])]
    assert [(a.actor, a.what) for a in reads] == [
        ("值班员 老李", f"GET /api/photos/{photo_id}/thumbnail")
    ]
    assert api_get(stack, f"/api/photos/{photo_id}", operator, raw=True)[0] == served
    # Another volunteer does not see it.
    other = stack.token("volunteer", "志愿者 别人")
    with pytest.raises(urllib.error.HTTPError) as refused:
        api_get(stack, f"/api/photos/{photo_id}", other, raw=True)
    assert refused.value.code == 404
    assert phone.problems == []
    assert console.problems == []


def test_offline_the_photo_waits_with_the_report_and_both_arrive(
    stack: Stack, pages: Callable[[dict[str, Any]], Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    phone = pages(PHONE)
    token = sign_in(stack, phone, "志愿者 小韩")
    phone.context.set_offline(True)
    shot_file = tmp_path / "IMG_0002.jpg"
    shot_file.write_bytes(phone_jpeg((800, 600)))
    phone.locator("#photo").set_input_files(str(shot_file))
    preview = phone.locator("#photo-previews li")
    expect(preview).to_have_attribute("data-state", "waiting", timeout=30_000)
    expect(preview).to_contain_text("照片已保存在手机上")

    fill_report(phone, "井盖松动，拍了照片")
    phone.click("#submit")
    waiting = phone.locator("#outbox-list li")
    expect(waiting).to_have_count(1)
    expect(waiting).to_have_attribute("data-state", "waiting", timeout=15_000)
    expect(waiting).to_contain_text("1 张照片等待上传")
    items = json.loads(phone.evaluate("localStorage.getItem('puhui.report.outbox')"))
    assert len(items) == 1 and len(items[0]["photos"]) == 1
    assert "photo_ids" not in items[0]["body"]
    report_id = items[0]["id"]
    kept = phone.evaluate(
        "key => PuhuiPhotos.take(key).then(f => f ? f.size : 0)", items[0]["photos"][0]
    )
    assert kept == shot_file.stat().st_size
    shot(phone, "volunteer-photo-waiting-mobile")

    phone.context.set_offline(False)
    sent = phone.locator(f'#outbox-list li[data-report-id="{report_id}"]')
    expect(sent).to_have_attribute("data-state", "sent", timeout=45_000)
    phone.wait_for_function("localStorage.getItem('puhui.report.outbox') === null")
    report = api_get(stack, f"/api/reports/{report_id}", token)
    assert len(report["photos"]) == 1
    photo_id = report["photos"][0]["photo_id"]
    served, _ = api_get(stack, f"/api/photos/{photo_id}", token, raw=True)
    assert metadata_of(served) == NO_METADATA
    # The kept copy is gone from the phone once uploaded.
    left = phone.evaluate("k => PuhuiPhotos.take(k).then(f => f === null)", items[0]["photos"][0])
    assert left is True
    sent.locator("a").click()
    expect(phone.locator(f'#report-photos img[data-photo-id="{photo_id}"]')).to_have_attribute(
        "data-loaded", "true", timeout=15_000
    )
    assert phone.problems == []
