"""Cases over HTTP: open, dispatch, accept, arrive, handle, verify, cancel; who may do what; bad
input; listing and filters; overdue. A fake publisher stands in for the producer, and the test
applies what it published with the case worker's own store function (``apply_and_store``), as
the worker would; ``tests/e2e/test_case_loop.py`` runs the same through Kafka and a browser."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.cases import load_bundled_case_limits
from infra.cases_db import apply_and_store
from infra.tokens import Role, create_token
from models.cases import CaseCommand
from models.contracts import Level
from models.timezone import BEIJING
from models.units import load_bundled_units
from tests.support.api import ATRIUM, LANE, T0, ApiSetup, episode, make_api, store

pytestmark = pytest.mark.unit

UNITS = frozenset(u.id for u in load_bundled_units())


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    setup = make_api(tmp_path)
    now = setup.clock()
    setup.tokens["grid"] = create_token(
        setup.engine, "网格员 李强", Role.RESPONDER, now, unit_id="grid-zhongtai"
    )
    setup.tokens["police"] = create_token(
        setup.engine, "民警 赵", Role.RESPONDER, now, unit_id="dapuqiao-police"
    )
    return setup


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def work(api: ApiSetup) -> list[str]:
    """Apply every published case command, as the case worker does; their outcomes."""
    assert api.publisher is not None
    limits = load_bundled_case_limits()
    outcomes = []
    for topic, key, value in api.publisher.sent:
        if topic.endswith("puhui.cases"):
            cmd = CaseCommand.model_validate_json(value)
            assert key == cmd.case_id.encode()
            outcomes.append(apply_and_store(api.engine, cmd, limits, UNITS).outcome)
    api.publisher.sent.clear()
    return outcomes


def upload(client: TestClient, api: ApiSetup, who: str) -> str:
    """A photo uploaded through ``POST /api/photos`` by ``who``; its id."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(buffer, "JPEG")
    r = client.post(
        "/api/photos",
        files={"file": ("scene.jpg", buffer.getvalue(), "image/jpeg")},
        headers=api.auth(who),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["photo_id"])


def alert(api: ApiSetup) -> str:
    records = episode(LANE, [Level.YELLOW, Level.ORANGE], start=T0, cause="c")
    store(api.engine, records)
    return records[-1].alert_id


def post(client: TestClient, api: ApiSetup, who: str, path: str, body: Any = None) -> Any:
    return client.post(path, json=body, headers=api.auth(who))


def test_the_loop_over_http(api: ApiSetup, client: TestClient) -> None:
    alert_id = alert(api)
    r = post(client, api, "operator", "/api/cases", {"alert_ids": [alert_id], "title": "拥挤"})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    assert work(api) == ["applied"]
    case = client.get(f"/api/cases/{case_id}", headers=api.auth("operator")).json()
    assert case["suggested_unit_ids"][:2] == ["tianzifang-management", "grid-zhongtai"]
    assert (case["status"], case["category"], case["level"], case["zone_id"]) == (
        "registered",
        "crowding",
        "orange",
        LANE,
    )
    assert (
        post(
            client, api, "operator", f"/api/cases/{case_id}/dispatch", {"unit_id": "grid-zhongtai"}
        ).status_code
        == 202
    )
    work(api)
    # the police are not the unit: they do not even see it
    assert post(client, api, "police", f"/api/cases/{case_id}/accept").status_code == 404
    assert client.get("/api/cases", headers=api.auth("police")).json()["total"] == 0
    assert post(client, api, "grid", f"/api/cases/{case_id}/arrive").status_code == 409
    for step in ("accept", "arrive"):
        assert post(client, api, "grid", f"/api/cases/{case_id}/{step}").status_code == 202
        work(api)
    photo = upload(client, api, "grid")
    someone_elses = upload(client, api, "volunteer")
    r = post(
        client,
        api,
        "grid",
        f"/api/cases/{case_id}/handle",
        {"note": "已疏导", "photo_ids": [photo, someone_elses]},
    )
    assert r.status_code == 422 and "photo_ids" in r.text  # not the responder's own photo
    r = post(
        client,
        api,
        "grid",
        f"/api/cases/{case_id}/handle",
        {"note": "已疏导", "photo_ids": [photo]},
    )
    assert r.status_code == 202, r.text
    work(api)
    # the photo: to its uploader, operators, and no other unit
    for who, status in (("grid", 200), ("operator", 200), ("police", 404), ("volunteer", 404)):
        assert client.get(f"/api/photos/{photo}", headers=api.auth(who)).status_code == status
    assert (
        post(client, api, "grid", f"/api/cases/{case_id}/verify", {"result": "closed"}).status_code
        == 403
    )
    r = post(
        client,
        api,
        "operator",
        f"/api/cases/{case_id}/verify",
        {"result": "closed", "note": "现场已恢复"},
    )
    assert r.status_code == 202
    work(api)
    case = client.get(f"/api/cases/{case_id}", headers=api.auth("grid")).json()
    assert case["status"] == "closed"
    assert case["photo_urls"] == [f"/api/photos/{photo}"]
    assert [e["action"] for e in case["timeline"]] == [
        "open",
        "dispatch",
        "accept",
        "arrive",
        "handle",
        "verify",
    ]
    assert [e["actor"] for e in case["timeline"]][2:5] == ["网格员 李强"] * 3
    assert case["alerts"][0]["back_to_normal"] is False  # still firing


def test_bad_input_names_the_field_and_writes_nothing(api: ApiSetup, client: TestClient) -> None:
    alert_id = alert(api)
    cases = [
        ({"title": "x"}, "alert_ids"),
        ({"alert_ids": ["nope"], "title": "x"}, "alert_ids"),
        ({"alert_ids": [alert_id], "title": "x", "category": "aliens"}, "category"),
        ({"alert_ids": [alert_id], "title": " "}, "title"),
        ({"alert_ids": [alert_id], "title": "x", "extra": 1}, "extra"),
    ]
    for body, field in cases:
        r = post(client, api, "operator", "/api/cases", body)
        assert r.status_code == 422, body
        assert field in r.text
    assert (
        post(
            client, api, "volunteer", "/api/cases", {"alert_ids": [alert_id], "title": "x"}
        ).status_code
        == 403
    )
    r = post(client, api, "operator", "/api/cases", {"alert_ids": [alert_id], "title": "x"})
    case_id = r.json()["case_id"]
    work(api)
    r = post(client, api, "operator", f"/api/cases/{case_id}/dispatch", {"unit_id": "nobody"})
    assert r.status_code == 422 and "unit_id" in r.text
    r = post(
        client,
        api,
        "grid",
        f"/api/cases/{case_id}/handle",
        {"note": "x", "photo_ids": ["http://x"]},
    )
    assert r.status_code == 422 and "photo_ids" in r.text
    assert client.get("/api/cases?status=lost", headers=api.auth("operator")).status_code == 422
    assert client.get("/api/cases/cs_nothex", headers=api.auth("operator")).status_code == 422
    assert api.publisher is not None and api.publisher.sent == []


def test_overdue_shows_in_list_and_detail(api: ApiSetup, client: TestClient) -> None:
    alert_id = alert(api)
    r = post(client, api, "operator", "/api/cases", {"alert_ids": [alert_id], "title": "x"})
    case_id = r.json()["case_id"]
    work(api)
    listing = client.get("/api/cases", headers=api.auth("operator")).json()
    assert listing["counts"]["overdue"] == 0 and listing["items"][0]["overdue"] is False
    api.clock.advance(timedelta(minutes=5, seconds=1).total_seconds())  # orange: 5 min
    listing = client.get("/api/cases?overdue=true", headers=api.auth("operator")).json()
    assert [c["case_id"] for c in listing["items"]] == [case_id]
    assert listing["counts"]["overdue"] == 1
    assert listing["items"][0]["overdue_seconds"] == pytest.approx(1.0)
    assert client.get("/api/cases?overdue=false", headers=api.auth("operator")).json()["total"] == 0


def test_units_and_responder_tokens(api: ApiSetup, client: TestClient) -> None:
    units = client.get("/api/units", headers=api.auth("grid")).json()
    assert {u["kind_zh"] for u in units["items"]} == {
        "网格",
        "物业",
        "城管",
        "派出所",
        "消防",
        "医疗",
    }
    assert client.get("/api/units", headers=api.auth("volunteer")).status_code == 403
    assert client.get("/api/alerts", headers=api.auth("grid")).status_code == 403
    with pytest.raises(ValueError, match="unit"):
        create_token(api.engine, "x", Role.RESPONDER, api.clock())


def test_the_reporter_sees_the_case_and_its_closing(api: ApiSetup, client: TestClient) -> None:
    r = client.post(
        "/api/reports",
        json={"zone_id": LANE, "category": "littering", "description": "垃圾堆积"},
        headers=api.auth("volunteer"),
    )
    report_id = r.json()["report_id"]
    r = post(client, api, "operator", "/api/cases", {"report_ids": [report_id], "title": "垃圾"})
    assert r.status_code == 201
    case_id = r.json()["case_id"]
    work(api)
    mine = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer")).json()
    assert (mine["status"], mine["case"]["case_id"]) == ("in_case", case_id)
    assert mine["open311_status"] == "open"
    for who, step, body in [
        ("operator", "dispatch", {"unit_id": "grid-zhongtai"}),
        ("grid", "accept", None),
        ("grid", "arrive", None),
        ("grid", "handle", {"note": "已清运"}),
        ("operator", "verify", {"result": "closed"}),
    ]:
        assert post(client, api, who, f"/api/cases/{case_id}/{step}", body).status_code == 202
        work(api)
    mine = client.get("/api/reports", headers=api.auth("volunteer")).json()["items"][0]
    assert (mine["status"], mine["open311_status"]) == ("case_closed", "closed")
    assert mine["case"]["closed_at"] is not None
    # another volunteer's report stays theirs
    assert (
        client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer2")).status_code == 404
    )


def test_a_command_applied_twice_changes_nothing(api: ApiSetup, client: TestClient) -> None:
    alert_id = alert(api)
    post(client, api, "operator", "/api/cases", {"alert_ids": [alert_id], "title": "x"})
    assert api.publisher is not None
    sent = list(api.publisher.sent)
    api.publisher.sent.extend(sent)  # a redelivery
    assert work(api) == ["applied", "duplicate"]


def test_the_field_page_is_served_under_the_pages_policy(client: TestClient) -> None:
    page = client.get("/field")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert '<script src="/static/field.js" defer></script>' in page.text
    assert client.get("/static/field.js").status_code == 200


def test_most_urgent_first_then_newest(api: ApiSetup, client: TestClient) -> None:
    orange = alert(api)
    red = episode(ATRIUM, [Level.RED], start=T0, cause="red")
    store(api.engine, red)
    made = {}
    for name, alert_id in (("orange", orange), ("red", red[-1].alert_id), ("orange2", orange)):
        r = post(client, api, "operator", "/api/cases", {"alert_ids": [alert_id], "title": name})
        made[name] = r.json()["case_id"]
        work(api)
        api.clock.advance(1)
    post(client, api, "operator", f"/api/cases/{made['orange']}/cancel", {"note": "重复"})
    work(api)
    listing = client.get("/api/cases?status=all", headers=api.auth("operator")).json()
    assert [c["title"] for c in listing["items"]] == ["red", "orange2", "orange"]
    assert listing["counts"]["open"] == 2 and listing["counts"]["registered"] == 2
    page = client.get("/api/cases?status=all&limit=1&offset=1", headers=api.auth("operator"))
    assert [c["title"] for c in page.json()["items"]] == ["orange2"]
    assert page.json()["total"] == 3


def test_figures_of_a_day_for_the_daily_report(api: ApiSetup, client: TestClient) -> None:
    alert_id = alert(api)
    start = api.clock()
    ids = []
    for title in ("on time", "late"):
        r = post(client, api, "operator", "/api/cases", {"alert_ids": [alert_id], "title": title})
        ids.append(r.json()["case_id"])
    work(api)

    def step(case_id: str, who: str, path: str, body: Any = None, after: float = 60) -> None:
        api.clock.advance(after)
        assert post(client, api, who, f"/api/cases/{case_id}/{path}", body).status_code == 202
        work(api)

    on_time, late = ids
    for case_id, wait in ((on_time, 60), (late, 300)):  # orange: 5 min to dispatch
        step(case_id, "operator", "dispatch", {"unit_id": "grid-zhongtai"}, after=wait)
        step(case_id, "grid", "accept")
        step(case_id, "grid", "arrive")
        step(case_id, "grid", "handle", {"note": "好了"})
        step(case_id, "operator", "verify", {"result": "closed"})
    day = start.astimezone(BEIJING).date().isoformat()
    report = client.get(f"/api/daily-report?date={day}", headers=api.auth("operator"))
    assert report.status_code == 200
    figures = report.json()["cases"]
    assert (figures["opened"], figures["closed"], figures["closed_on_time"]) == (2, 2, 1)
    assert figures["on_time_rate"] == 0.5
    detail = [client.get(f"/api/cases/{i}", headers=api.auth("operator")).json() for i in ids]
    assert [d["on_time"] for d in detail] == [True, False]
    expected = sum(d["minutes_to_accept"] for d in detail) / 2
    assert figures["mean_seconds_to_accept"] / 60 == pytest.approx(expected, abs=0.05)
