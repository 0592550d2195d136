"""Report intake over HTTP: access, validation (400/413/422), rate limit (429), broker refusal
(503), and what the reporter sees afterwards.

No broker here: a fake publisher stands in for the producer, so these tests are about the HTTP
contract; ``tests/integration/test_api_flow.py`` sends reports through a real broker. Every
rejected request must leave nothing behind: no row, no record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infra.db import ReportRow, upsert_reports
from infra.tokens import list_tokens, revoke_token
from models.contracts import Change, VolunteerReport, decode_report
from tests.support.api import ATRIUM, LANE, NAMES, T0, ApiSetup, act, episode, make_api, store

pytestmark = pytest.mark.unit

GOOD = {"zone_id": LANE, "category": "crowding", "description": "弄堂口人挤人，有老人被挤到墙边"}


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(tmp_path, report_rate_burst=3, report_rate_per_minute=2.0)


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def report_rows(api: ApiSetup) -> int:
    with Session(api.engine) as session:
        return int(session.scalar(select(func.count()).select_from(ReportRow)) or 0)


def assert_nothing_written(api: ApiSetup) -> None:
    assert report_rows(api) == 0
    assert api.publisher is not None and api.publisher.sent == []


# -- submission -------------------------------------------------------------------------------


def test_a_report_is_stored_and_produced_keyed_by_zone(api: ApiSetup, client: TestClient) -> None:
    body = {**GOOD, "lat": 31.2081, "lon": 121.4689, "photo_url": "https://example.org/p.jpg"}
    response = client.post("/api/reports", headers=api.auth("volunteer"), json=body)

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "submitted"
    assert accepted["submitted_at"] == "2026-10-01T11:05:00Z"  # the injected clock
    assert api.publisher is not None
    ((topic, key, value),) = api.publisher.sent
    assert topic == "unit.puhui.volunteer-reports" and key == LANE.encode()
    produced = decode_report(value, {LANE})  # exactly what the worker will decode
    assert produced.report_id == accepted["report_id"]
    # The token's principal (a stable id), not its display name and not the body's.
    me = client.get("/api/me", headers=api.auth("volunteer")).json()
    assert produced.reporter_id == me["principal"] != NAMES["volunteer"]
    assert (produced.lat, produced.lon) == (31.2081, 121.4689)
    with Session(api.engine) as session:
        row = session.get(ReportRow, accepted["report_id"])
        assert row is not None
        assert row.alert_id is None and row.description == GOOD["description"]
        assert row.submitted_at == api.clock()


def test_operators_and_admins_may_report_too(api: ApiSetup, client: TestClient) -> None:
    for who in ("operator", "admin"):
        response = client.post("/api/reports", headers=api.auth(who), json=GOOD)
        assert response.status_code == 202, response.text
    assert report_rows(api) == 2


UNKNOWN_TOKEN = "the token is unknown, revoked or expired"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "a valid bearer token is required"),
        ({"Authorization": "Bearer ph_not-a-real-token"}, UNKNOWN_TOKEN),
        ({"Authorization": "Bearer nonsense"}, UNKNOWN_TOKEN),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "a valid bearer token is required"),
    ],
)
def test_no_or_unknown_token_is_401(
    api: ApiSetup, client: TestClient, headers: dict[str, str], message: str
) -> None:
    response = client.post("/api/reports", headers=headers, json=GOOD)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": {"code": "unauthorized", "message": message}}
    assert_nothing_written(api)


def test_a_revoked_token_is_401(api: ApiSetup, client: TestClient) -> None:
    (info,) = [t for t in list_tokens(api.engine) if t.name == NAMES["volunteer"]]
    assert revoke_token(api.engine, info.id, api.clock())
    response = client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD)
    assert response.status_code == 401
    assert client.get("/api/me", headers=api.auth("volunteer")).status_code == 401
    assert_nothing_written(api)


def test_me_names_the_caller(api: ApiSetup, client: TestClient) -> None:
    for who, role in [("volunteer", "volunteer"), ("operator", "operator"), ("admin", "admin")]:
        response = client.get("/api/me", headers=api.auth(who))
        me = response.json()
        assert me.pop("principal").startswith("p_")
        assert me == {"name": NAMES[who], "role": role, "expires_at": None, "unit_id": None}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"zone_id": "atlantis"}, "zone_id"),
        ({"category": "alien-landing"}, "category"),
        ({"description": ""}, "description"),
        ({"description": "   "}, "description"),
        ({"description": "x" * 2001}, "description"),
        ({"description": "a\x00b"}, "description"),
        ({"description": "a\x1bb"}, "description"),
        ({"description": "\u202egnp.exe"}, "description"),
        ({"photo_url": "https://x.example/\x01.jpg"}, "photo_url"),
        ({"lat": 91}, "lat"),
        ({"lon": -181}, "lon"),
        ({"lat": "north"}, "lat"),
        ({"lat": "31.2"}, "lat"),
        ({"lon": False}, "lon"),
        ({"photo_url": "javascript:alert(1)"}, "photo_url"),
        ({"reporter_id": "someone-else"}, "reporter_id"),
        ({"submitted_at": "2026-10-01T19:00:00+08:00"}, "submitted_at"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    api: ApiSetup, client: TestClient, change: dict[str, object], field: str
) -> None:
    response = client.post("/api/reports", headers=api.auth("volunteer"), json={**GOOD, **change})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]]
    assert field in error["message"]
    assert_nothing_written(api)


def test_an_unknown_zone_is_422_with_its_own_type(api: ApiSetup, client: TestClient) -> None:
    response = client.post(
        "/api/reports", headers=api.auth("volunteer"), json={**GOOD, "zone_id": "atlantis"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {
            "loc": ["body", "zone_id"],
            "field": "zone_id",
            "msg": "unknown zone 'atlantis'",
            "type": "unknown_zone",
        }
    ]


def test_missing_fields_are_named(api: ApiSetup, client: TestClient) -> None:
    response = client.post("/api/reports", headers=api.auth("volunteer"), json={})
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"zone_id", "category", "description"}
    assert_nothing_written(api)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"zone_id": ', "application/json"),
        (b"zone_id=tianzifang-taikang-210", "application/x-www-form-urlencoded"),
        (json.dumps(GOOD).encode(), "text/plain"),
        (b"\xff\xfe not utf-8", "application/json"),
    ],
)
def test_a_body_that_is_not_json_is_400(
    api: ApiSetup, client: TestClient, content: bytes, content_type: str
) -> None:
    response = client.post(
        "/api/reports",
        headers={**api.auth("volunteer"), "Content-Type": content_type},
        content=content,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"
    assert_nothing_written(api)


def test_json_that_is_not_an_object_is_422(api: ApiSetup, client: TestClient) -> None:
    response = client.post("/api/reports", headers=api.auth("volunteer"), json=[GOOD])
    assert response.status_code == 422
    assert_nothing_written(api)


def test_a_body_over_the_limit_is_413_by_content_length(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_body_bytes=1024)
    body = json.dumps({**GOOD, "description": "挤" * 600}).encode()
    assert len(body) > 1024
    with TestClient(api.app) as client:
        response = client.post(
            "/api/reports",
            headers={**api.auth("volunteer"), "Content-Type": "application/json"},
            content=body,
        )
        small = client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert small.status_code == 202  # the limit, not the endpoint, refused the first
    assert report_rows(api) == 1


def test_a_streamed_body_over_the_limit_is_413(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_body_bytes=1024)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b'{"zone_id": "' + LANE.encode() + b'", "category": "crowding", "description": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    with TestClient(api.app) as client:
        response = client.post(
            "/api/reports",
            headers={**api.auth("volunteer"), "Content-Type": "application/json"},
            content=chunks(),
        )
    assert response.status_code == 413
    assert "limit 1024" in response.json()["error"]["message"]
    assert_nothing_written(api)


def test_the_default_limit_is_64_kib(api: ApiSetup, client: TestClient) -> None:
    assert api.settings.max_body_bytes == 64 * 1024
    body = b'{"description": "' + b"x" * (64 * 1024) + b'"}'
    response = client.post(
        "/api/reports",
        headers={**api.auth("volunteer"), "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == 413
    assert_nothing_written(api)


def test_reports_are_rate_limited_per_volunteer(api: ApiSetup, client: TestClient) -> None:
    # burst 3, refill 2 per minute
    for _ in range(3):
        assert (
            client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD).status_code == 202
        )
    limited = client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"  # one token every 30 s
    assert limited.json()["error"]["code"] == "rate_limited"
    assert report_rows(api) == 3
    assert api.publisher is not None and len(api.publisher.sent) == 3

    # another volunteer has its own bucket
    other = client.post("/api/reports", headers=api.auth("volunteer2"), json=GOOD)
    assert other.status_code == 202

    api.clock.advance(20)
    again = client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD)
    assert again.status_code == 429 and again.headers["retry-after"] == "10"
    api.clock.advance(10)
    assert client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD).status_code == 202


def test_invalid_reports_do_not_use_up_the_rate_limit(api: ApiSetup, client: TestClient) -> None:
    bad = {**GOOD, "zone_id": "atlantis"}
    for _ in range(5):
        assert (
            client.post("/api/reports", headers=api.auth("volunteer"), json=bad).status_code == 422
        )
    assert client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD).status_code == 202


def test_when_the_broker_refuses_the_report_is_removed_and_503(
    api: ApiSetup, client: TestClient
) -> None:
    assert api.publisher is not None
    api.publisher.fail = True
    for _ in range(4):  # more than the burst: a refused report gives its token back
        response = client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
    assert_nothing_written(api)
    api.publisher.fail = False
    assert client.post("/api/reports", headers=api.auth("volunteer"), json=GOOD).status_code == 202


# -- reading reports --------------------------------------------------------------------------


def submit(api: ApiSetup, client: TestClient, who: str = "volunteer", **change: object) -> str:
    response = client.post("/api/reports", headers=api.auth(who), json={**GOOD, **change})
    assert response.status_code == 202, response.text
    return str(response.json()["report_id"])


def link(api: ApiSetup, report_id: str, alert_id: str) -> None:
    """What the worker does once the report opened or joined an alert."""
    with Session(api.engine) as session:
        row = session.get(ReportRow, report_id)
        assert row is not None
        report = VolunteerReport(
            report_id=row.report_id,
            reporter_id=row.reporter_id,
            zone_id=row.zone_id,
            category=row.category,  # type: ignore[arg-type]
            description=row.description,
            submitted_at=row.submitted_at,
        )
    upsert_reports(api.engine, [(report, alert_id)])


def test_a_report_is_submitted_until_linked_then_follows_its_alert(
    api: ApiSetup, client: TestClient
) -> None:
    report_id = submit(api, client)
    mine = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer"))
    assert mine.status_code == 200
    body = mine.json()
    assert body["status"] == "submitted" and body["alert_id"] is None and body["updates"] == []
    assert body["zone_name"] == {
        "zh": "田子坊 泰康路210弄",
        "en": "Tianzifang, Lane 210 Taikang Road",
    }
    assert body["service_request_id"] == report_id and body["service_code"] == "crowding"
    assert body["open311_status"] == "open" and body["status_notes"] is None
    assert body["requested_datetime"] == body["updated_datetime"] == "2026-10-01T11:05:00Z"

    records = episode(LANE)
    store(api.engine, records)
    link(api, report_id, records[0].alert_id)
    # linked: it joined an alert, but no person has looked at it yet ("being handled" would lie)
    linked = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer")).json()
    assert linked["status"] == "linked" and linked["alert_id"] == records[0].alert_id
    assert linked["updates"] == []  # the alert's past before the report is not the reporter's

    ack = act(
        records[-1], Change.ACKNOWLEDGED, NAMES["operator"], T0 + timedelta(minutes=7), "已派人前往"
    )
    store(api.engine, [ack])
    volunteer_view = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer")).json()
    assert volunteer_view["status"] == "acknowledged"
    # the note is internal (not marked public): the volunteer sees the change, not the note
    assert [(u["change"], u["note"], u["actor"]) for u in volunteer_view["updates"]] == [
        ("acknowledged", None, None),
    ]
    assert volunteer_view["status_notes"] is None
    assert volunteer_view["updated_datetime"] == "2026-10-01T11:07:00Z"

    operator_view = client.get(f"/api/reports/{report_id}", headers=api.auth("operator")).json()
    assert operator_view["updates"][-1]["actor"] == NAMES["operator"]
    assert operator_view["updates"][-1]["note"] == "已派人前往"
    assert [u["change"] for u in operator_view["updates"]] == [
        "raised",
        "escalated",
        "acknowledged",
    ]

    resolved = act(
        ack, Change.RESOLVED, NAMES["operator"], T0 + timedelta(minutes=9), "已疏散"
    ).model_copy(update={"note_public": True})
    store(api.engine, [resolved])
    closed = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer")).json()
    assert closed["status"] == "resolved" and closed["open311_status"] == "closed"
    assert closed["status_notes"] == "已疏散"  # marked public by the operator
    assert [u["note"] for u in closed["updates"]] == [None, "已疏散"]


def test_a_report_on_an_alert_that_cleared_unseen_is_not_resolved(
    api: ApiSetup, client: TestClient
) -> None:
    """A latched alert (cleared on its own, nobody acknowledged it) leaves its reports
    ``linked``: the reporter is not told "resolved" before a person has looked."""
    from alerts.state import Assessment, transition
    from models.contracts import Level, Risk, Summary

    report_id = submit(api, client)
    state = None
    out = []
    for minute, level in ((4, Level.RED), (6, None), (12, None)):
        summary = Summary(zh="红", en="red") if level else None
        at = T0 + timedelta(minutes=minute)
        assessment = Assessment(LANE, Risk.FIRE, level, at, f"f{minute}", {}, summary)
        state, records = transition(state, assessment, timedelta(minutes=5), {Level.RED})
        out.extend(records)
    assert out[-1].latched
    store(api.engine, out)
    link(api, report_id, out[0].alert_id)
    view = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer")).json()
    assert view["status"] == "linked" and view["open311_status"] == "open"


def test_another_volunteers_report_is_404(api: ApiSetup, client: TestClient) -> None:
    report_id = submit(api, client)
    other = client.get(f"/api/reports/{report_id}", headers=api.auth("volunteer2"))
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/reports/{report_id}", headers=api.auth("admin")).status_code == 200


def test_unknown_and_malformed_report_ids(api: ApiSetup, client: TestClient) -> None:
    unknown = client.get("/api/reports/no-such-report", headers=api.auth("operator"))
    assert unknown.status_code == 404
    malformed = client.get("/api/reports/bad%20id!", headers=api.auth("operator"))
    assert malformed.status_code == 422
    assert malformed.json()["error"]["details"][0]["field"] == "report_id"
    assert client.get("/api/reports/whatever").status_code == 401


def test_my_reports_newest_first_and_only_mine(api: ApiSetup, client: TestClient) -> None:
    first = submit(api, client, description="第一")
    api.clock.advance(60)
    second = submit(api, client, description="第二", zone_id=ATRIUM)
    submit(api, client, who="volunteer2")
    page = client.get("/api/reports", headers=api.auth("volunteer")).json()
    assert [r["report_id"] for r in page["items"]] == [second, first]
    assert page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    paged = client.get("/api/reports?limit=1&offset=1", headers=api.auth("volunteer")).json()
    assert [r["report_id"] for r in paged["items"]] == [first] and paged["total"] == 2
    assert client.get("/api/reports?limit=0", headers=api.auth("volunteer")).status_code == 422
    assert client.get("/api/reports?limit=201", headers=api.auth("volunteer")).status_code == 422


def test_categories_are_listed_in_both_languages(api: ApiSetup, client: TestClient) -> None:
    response = client.get("/api/report-categories", headers=api.auth("volunteer"))
    assert response.status_code == 200
    by_code = {c["code"]: c["name"] for c in response.json()}
    assert by_code["crowding"] == {"zh": "人群拥挤", "en": "Crowding"}
    assert len(by_code) == 12


# -- resending: the client's report id and time ------------------------------------------------

CLIENT_ID = "5b0c2a8e-7d41-4f3a-9c5e-2e8b1d0f6a17"


def test_a_resend_of_the_same_report_is_the_same_report(api: ApiSetup, client: TestClient) -> None:
    made = api.clock() - timedelta(minutes=20)  # made offline, sent once the signal came back
    body = {**GOOD, "lat": 31.2081, "lon": 121.4689, "report_id": CLIENT_ID}
    body["made_at"] = made.isoformat()
    first = client.post("/api/reports", headers=api.auth("volunteer"), json=body)
    assert first.status_code == 202, first.text
    assert first.json()["report_id"] == CLIENT_ID
    assert first.json()["submitted_at"] == "2026-10-01T10:45:00Z"  # its original time

    api.clock.advance(60)
    again = client.post("/api/reports", headers=api.auth("volunteer"), json=body)
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert report_rows(api) == 1
    assert api.publisher is not None and len(api.publisher.sent) == 1  # produced once
    produced = decode_report(api.publisher.sent[0][2], {LANE})
    assert produced.submitted_at == made

    # The same id with other content, or from another volunteer: a conflict, nothing stored.
    changed = client.post(
        "/api/reports", headers=api.auth("volunteer"), json={**body, "description": "另一件事"}
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "conflict"
    other = client.post("/api/reports", headers=api.auth("volunteer2"), json=body)
    assert other.status_code == 409
    assert report_rows(api) == 1 and len(api.publisher.sent) == 1

    # Resends do not use up the volunteer's rate limit (burst 3).
    for _ in range(5):
        assert client.post("/api/reports", headers=api.auth("volunteer"), json=body).is_success


def test_made_at_in_the_future_counts_as_now_and_a_week_old_is_refused(
    api: ApiSetup, client: TestClient
) -> None:
    ahead = {**GOOD, "made_at": (api.clock() + timedelta(minutes=3)).isoformat()}
    response = client.post("/api/reports", headers=api.auth("volunteer"), json=ahead)
    assert response.status_code == 202
    assert response.json()["submitted_at"] == "2026-10-01T11:05:00Z"

    old = {**GOOD, "made_at": (api.clock() - timedelta(days=8)).isoformat()}
    refused = client.post("/api/reports", headers=api.auth("volunteer"), json=old)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "made_at"
    for bad_id in ("not-a-uuid", "5b0c2a8e7d414f3a9c5e2e8b1d0f6a17"):
        bad = client.post(
            "/api/reports", headers=api.auth("volunteer"), json={**GOOD, "report_id": bad_id}
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "report_id"
    assert report_rows(api) == 1


def test_a_resend_after_the_broker_refused_stores_it_then(
    api: ApiSetup, client: TestClient
) -> None:
    assert api.publisher is not None
    body = {**GOOD, "report_id": CLIENT_ID}
    api.publisher.fail = True
    assert client.post("/api/reports", headers=api.auth("volunteer"), json=body).status_code == 503
    assert report_rows(api) == 0
    api.publisher.fail = False
    response = client.post("/api/reports", headers=api.auth("volunteer"), json=body)
    assert response.status_code == 202 and response.json()["report_id"] == CLIENT_ID
    assert report_rows(api) == 1 and len(api.publisher.sent) == 1
