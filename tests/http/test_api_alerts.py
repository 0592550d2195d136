"""The control room over HTTP: the alert board and its filters, an alert's detail, the actions
(published as commands), incidents, zones, the live stream, and the request metrics.

Alerts are written here the way the worker's persist agent writes them; a fake publisher stands
in for the producer. ``tests/integration/test_api_flow.py`` runs the same actions through a real
broker and a real worker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.db import upsert_zone_status
from models.contracts import AlertCommand, Change, Level, Risk
from tests.support.api import ATRIUM, LANE, NAMES, T0, ApiSetup, act, episode, make_api, store

pytestmark = pytest.mark.unit

MALL = "riyueguang-atrium"


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(tmp_path, sse_max_seconds=1.0, sse_keepalive_seconds=0.2)


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


@pytest.fixture
def board(api: ApiSetup) -> dict[str, Any]:
    """Four alerts: lane red (firing), atrium yellow (acknowledged), mall fire orange (firing,
    newest), lane blue episode resolved long ago."""
    lane = episode(LANE, [Level.BLUE, Level.YELLOW, Level.RED], start=T0, cause="lane")
    atrium = episode(ATRIUM, [Level.YELLOW], start=T0 + timedelta(minutes=1), cause="atr")
    atrium_ack = act(atrium[-1], Change.ACKNOWLEDGED, NAMES["operator"], T0 + timedelta(minutes=2))
    mall = episode(
        MALL, [Level.ORANGE], risk=Risk.FIRE, start=T0 + timedelta(minutes=3), cause="mall"
    )
    old = episode(LANE, [Level.BLUE], start=T0 - timedelta(hours=3), cause="old")
    old_done = act(old[-1], Change.RESOLVED, NAMES["operator"], T0 - timedelta(hours=2), "已处理")
    store(api.engine, [*lane, *atrium, atrium_ack, *mall, *old, old_done])
    return {
        "lane": lane[-1],
        "atrium": atrium_ack,
        "mall": mall[-1],
        "old": old_done,
    }


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["alert_id"] for item in response.json()["items"]]


# -- the board --------------------------------------------------------------------------------


def test_the_board_shows_open_alerts_most_severe_first(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    response = client.get("/api/alerts", headers=api.auth("operator"))
    assert ids(response) == [
        board["lane"].alert_id,
        board["mall"].alert_id,
        board["atrium"].alert_id,
    ]
    page = response.json()
    assert page["total"] == 3 and page["limit"] == 50 and page["offset"] == 0
    lane = page["items"][0]
    assert lane["level"] == "red" and lane["status"] == "firing" and lane["revision"] == 3
    assert lane["zone_name"]["zh"] == "田子坊 泰康路210弄"
    assert lane["site"] == "tianzifang" and lane["grid"] == "zhongtai"
    assert lane["summary"]["en"] == f"red alert in {LANE}"
    assert lane["opened_at"] == "2026-10-01T11:00:00Z"
    assert lane["updated_at"] == "2026-10-01T11:02:00Z"
    assert set(lane) == {
        "alert_id",
        "zone_id",
        "zone_name",
        "site",
        "grid",
        "risk",
        "level",
        "status",
        "revision",
        "predicted",
        "opened_at",
        "updated_at",
        "summary",
        "assignee",
        "inhibited",
        "acknowledged",
        "acknowledged_by",
        "acknowledged_at",
        "latched",
        "expected_at",
    }
    assert lane["acknowledged"] is False and lane["latched"] is False
    atrium = page["items"][2]
    assert atrium["acknowledged"] is True and atrium["acknowledged_by"] == NAMES["operator"]
    assert atrium["acknowledged_at"] == "2026-10-01T11:02:00Z"


def test_same_level_newest_first(api: ApiSetup, client: TestClient) -> None:
    early = episode(LANE, [Level.YELLOW], start=T0, cause="a")
    late = episode(ATRIUM, [Level.YELLOW], start=T0 + timedelta(minutes=5), cause="b")
    store(api.engine, [*early, *late])
    assert ids(client.get("/api/alerts", headers=api.auth("operator"))) == [
        late[0].alert_id,
        early[0].alert_id,
    ]


def test_board_filters(api: ApiSetup, client: TestClient, board: dict[str, Any]) -> None:
    h = api.auth("operator")
    lane, atrium, mall, old = (board[k].alert_id for k in ("lane", "atrium", "mall", "old"))

    def get(query: str) -> list[str]:
        return ids(client.get(f"/api/alerts?{query}", headers=h))

    assert get("status=acknowledged") == [atrium]
    assert get("status=resolved") == [old]
    assert get("status=firing&status=resolved") == [lane, mall, old]
    assert get("status=firing,acknowledged,resolved") == [lane, mall, atrium, old]
    assert get("status=all") == [lane, mall, atrium, old]
    assert get(f"zone={LANE}") == [lane]
    assert get(f"zone={LANE}&status=all") == [lane, old]
    assert get("site=riyueguang") == [mall]
    assert get(f"site=tianzifang&zone={ATRIUM}") == []
    assert get("risk=fire") == [mall]
    assert get("level=red,yellow") == [lane, atrium]
    assert get("level=blue") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=open", "status"),
        ("zone=atlantis", "zone"),
        ("site=moon", "site"),
        ("risk=meteor", "risk"),
        ("level=purple", "level"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("offset=-1", "offset"),
        ("limit=ten", "limit"),
    ],
)
def test_bad_filters_are_422_naming_the_parameter(
    api: ApiSetup, client: TestClient, query: str, field: str
) -> None:
    response = client.get(f"/api/alerts?{query}", headers=api.auth("operator"))
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/alerts", "zone_id=" + LANE, "zone_id"),  # the filter is ?zone=
        ("/api/alerts", "risk=", "risk.0"),
        ("/api/alerts", "risk=,", "risk"),
        ("/api/incidents", "since=2026-10-01", "since"),
        ("/api/zones", "site=tianzifang", "site"),
        ("/api/alerts/stream", "zone=x", "zone"),
    ],
)
def test_unknown_or_empty_query_parameters_are_422(
    api: ApiSetup, client: TestClient, path: str, query: str, field: str
) -> None:
    response = client.get(f"{path}?{query}", headers=api.auth("operator"))
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


def test_405_names_every_method_of_the_path(api: ApiSetup, client: TestClient) -> None:
    for path, allowed in [("/api/reports", "GET, POST"), ("/api/silences", "GET, POST")]:
        response = client.request("PUT", path, headers=api.auth("admin"))
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_pagination(api: ApiSetup, client: TestClient, board: dict[str, Any]) -> None:
    h = api.auth("operator")
    first = client.get("/api/alerts?limit=2", headers=h).json()
    second = client.get("/api/alerts?limit=2&offset=2", headers=h).json()
    beyond = client.get("/api/alerts?limit=2&offset=10", headers=h).json()
    assert [len(p["items"]) for p in (first, second, beyond)] == [2, 1, 0]
    assert first["total"] == second["total"] == beyond["total"] == 3
    assert (second["limit"], second["offset"]) == (2, 2)
    all_ids = [i["alert_id"] for i in first["items"] + second["items"]]
    assert all_ids == ids(client.get("/api/alerts", headers=h))
    assert client.get("/api/alerts?limit=200", headers=h).status_code == 200


def test_volunteers_may_not_see_alerts(api: ApiSetup, client: TestClient) -> None:
    for path in ("/api/alerts", "/api/incidents", "/api/alerts/x", "/api/alerts/x/cap"):
        response = client.get(path, headers=api.auth("volunteer"))
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "forbidden"
        assert client.get(path).status_code == 401
    assert client.get("/api/alerts", headers=api.auth("admin")).status_code == 200


# -- one alert --------------------------------------------------------------------------------


def test_alert_detail_has_evidence_history_and_reports(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    atrium = board["atrium"]
    response = client.get(f"/api/alerts/{atrium.alert_id}", headers=api.auth("operator"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "acknowledged" and body["evidence"] == {"people": 100, "density": 2.0}
    assert [(h["revision"], h["change"], h["status"], h["actor"]) for h in body["history"]] == [
        (1, "raised", "firing", None),
        (2, "acknowledged", "acknowledged", NAMES["operator"]),
    ]
    assert body["reports"] == []


def test_unknown_alert_is_404(api: ApiSetup, client: TestClient) -> None:
    response = client.get("/api/alerts/0000-no-such-alert", headers=api.auth("operator"))
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "no alert 0000-no-such-alert"}
    }


# -- actions ----------------------------------------------------------------------------------


def sent_commands(api: ApiSetup) -> list[tuple[str, bytes, AlertCommand]]:
    assert api.publisher is not None
    return [(t, k, AlertCommand.model_validate_json(v)) for t, k, v in api.publisher.sent]


@pytest.mark.parametrize(
    ("path", "body", "action"),
    [
        ("ack", {"note": "已派人前往"}, "acknowledge"),
        ("assign", {"assignee": "网格员 王", "note": "请疏导"}, "assign"),
        ("resolve", {"note": "人群已疏散"}, "resolve"),
        ("ack", None, "acknowledge"),
        ("resolve", {}, "resolve"),
    ],
)
def test_actions_publish_commands_keyed_by_zone(
    api: ApiSetup,
    client: TestClient,
    board: dict[str, Any],
    path: str,
    body: dict[str, str] | None,
    action: str,
) -> None:
    alert = board["lane"]
    response = client.post(
        f"/api/alerts/{alert.alert_id}/{path}", headers=api.auth("operator"), json=body
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["alert_id"] == alert.alert_id and accepted["action"] == action
    ((topic, key, command),) = sent_commands(api)
    assert topic == "unit.puhui.alert-commands" and key == LANE.encode()
    assert command.command_id == accepted["command_id"]
    assert command.action.value == action and command.zone_id == LANE
    assert command.actor == NAMES["operator"]
    assert command.issued_at == api.clock()
    assert command.note == (body or {}).get("note")
    assert command.assignee == (body or {}).get("assignee")


def test_admins_can_act_volunteers_cannot(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    path = f"/api/alerts/{board['lane'].alert_id}/ack"
    assert client.post(path, headers=api.auth("volunteer")).status_code == 403
    assert client.post(path).status_code == 401
    assert sent_commands(api) == []
    assert client.post(path, headers=api.auth("admin")).status_code == 202
    assert sent_commands(api)[0][2].actor == NAMES["admin"]


def test_a_resolved_alert_is_409(api: ApiSetup, client: TestClient, board: dict[str, Any]) -> None:
    for path in ("ack", "resolve"):
        response = client.post(
            f"/api/alerts/{board['old'].alert_id}/{path}", headers=api.auth("operator")
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "conflict"
    response = client.post(
        f"/api/alerts/{board['old'].alert_id}/assign",
        headers=api.auth("operator"),
        json={"assignee": "x"},
    )
    assert response.status_code == 409
    assert sent_commands(api) == []


def test_action_on_an_unknown_alert_is_404(api: ApiSetup, client: TestClient) -> None:
    response = client.post("/api/alerts/nope/ack", headers=api.auth("operator"))
    assert response.status_code == 404
    assert sent_commands(api) == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("assign", {}, "assignee"),
        ("assign", {"assignee": ""}, "assignee"),
        ("assign", {"assignee": "x" * 129}, "assignee"),
        # what the wire contract refuses, the API refuses first (schemathesis found a 500 here)
        ("assign", {"assignee": "\x1f"}, "assignee"),
        ("assign", {"assignee": "王\u202e芳"}, "assignee"),
        ("ack", {"note": "已派人\x07"}, "note"),
        ("ack", {"note": "x" * 2001}, "note"),
        ("resolve", {"note": 7}, "note"),
        ("ack", {"actor": "someone"}, "actor"),
    ],
)
def test_invalid_action_bodies_are_422(
    api: ApiSetup,
    client: TestClient,
    board: dict[str, Any],
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    response = client.post(
        f"/api/alerts/{board['lane'].alert_id}/{path}", headers=api.auth("operator"), json=body
    )
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert sent_commands(api) == []


def test_action_body_not_json_is_400_and_too_large_413(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    path = f"/api/alerts/{board['lane'].alert_id}/ack"
    headers = {**api.auth("operator"), "Content-Type": "application/json"}
    assert client.post(path, headers=headers, content=b"{note").status_code == 400
    big = json.dumps({"note": "x" * (70 * 1024)}).encode()
    assert client.post(path, headers=headers, content=big).status_code == 413
    assert sent_commands(api) == []


def test_when_the_broker_refuses_an_action_is_503(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    assert api.publisher is not None
    api.publisher.fail = True
    response = client.post(
        f"/api/alerts/{board['lane'].alert_id}/ack", headers=api.auth("operator")
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


def test_assignee_shows_on_the_board(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    assigned = act(
        board["lane"],
        Change.ASSIGNED,
        NAMES["operator"],
        T0 + timedelta(minutes=4),
        None,
        "网格员 王",
    )
    store(api.engine, [assigned])
    item = client.get("/api/alerts?zone=" + LANE, headers=api.auth("operator")).json()["items"][0]
    assert item["assignee"] == "网格员 王"
    history = client.get(f"/api/alerts/{assigned.alert_id}", headers=api.auth("operator")).json()
    assert history["history"][-1]["assignee"] == "网格员 王"
    assert history["assignee"] == "网格员 王"


# -- incidents --------------------------------------------------------------------------------


def test_incidents_list_every_episode_newest_first_with_report_counts(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    from infra.db import upsert_reports
    from models.contracts import ReportCategory, VolunteerReport

    report = VolunteerReport(
        report_id="r-1",
        reporter_id=NAMES["volunteer"],
        zone_id=LANE,
        category=ReportCategory.CROWDING,
        description="挤",
        submitted_at=T0,
    )
    upsert_reports(api.engine, [(report, board["lane"].alert_id)])
    response = client.get("/api/incidents", headers=api.auth("operator"))
    assert ids(response) == [
        board["mall"].alert_id,
        board["atrium"].alert_id,
        board["lane"].alert_id,
        board["old"].alert_id,
    ]
    counts = {i["alert_id"]: i["report_count"] for i in response.json()["items"]}
    assert counts[board["lane"].alert_id] == 1 and counts[board["old"].alert_id] == 0
    resolved = client.get("/api/incidents?status=resolved", headers=api.auth("operator"))
    assert ids(resolved) == [board["old"].alert_id]
    detail = client.get(f"/api/alerts/{board['lane'].alert_id}", headers=api.auth("operator"))
    assert [r["report_id"] for r in detail.json()["reports"]] == ["r-1"]
    assert client.get("/api/incidents?level=pink", headers=api.auth("operator")).status_code == 422


# -- zones ------------------------------------------------------------------------------------


def test_zones_carry_registry_fields_and_figures_once_written(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    before = client.get("/api/zones", headers=api.auth("volunteer"))
    assert before.status_code == 200
    zones = {z["id"]: z for z in before.json()["items"]}
    assert len(zones) == 21
    lane = zones[LANE]
    assert lane["area_m2"] == 420 and lane["capacity"] == 1260 and lane["estimated"] is True
    assert lane["location"] == {"lat": 31.20834, "lon": 121.4702}
    assert lane["people"] is None and lane["peak_1h"] is None and lane["updated_at"] is None
    assert lane["open_alerts"] == 1 and lane["alert_level"] == "red"
    assert zones[ATRIUM]["location"] is None and zones[ATRIUM]["capacity"] is None

    upsert_zone_status(
        api.engine,
        [
            {
                "zone_id": LANE,
                "people": 980.0,
                "density": 2.333,
                "occupancy": 0.778,
                "level": "blue",
                "peak_5m": 1010.0,
                "peak_1h": 1100.0,
                "peak_day": 1250.0,
                "inflow_per_min": 42.0,
                "outflow_per_min": 38.0,
                "updated_at": T0,
            }
        ],
    )
    after = {
        z["id"]: z for z in client.get("/api/zones", headers=api.auth("operator")).json()["items"]
    }
    assert after[LANE]["people"] == 980.0 and after[LANE]["peak_day"] == 1250.0
    assert after[LANE]["level"] == "blue" and after[LANE]["updated_at"] == "2026-10-01T11:00:00Z"
    assert after[ATRIUM]["people"] is None
    assert client.get("/api/zones").status_code == 401


# -- live stream ------------------------------------------------------------------------------


def test_the_stream_needs_an_operator_token_in_the_header(
    api: ApiSetup, client: TestClient
) -> None:
    assert client.get("/api/alerts/stream").status_code == 401
    assert client.get("/api/alerts/stream", headers=api.auth("volunteer")).status_code == 403
    # No token in a URL, ever (it would be written to access logs): refused, valid or not.
    for name in ("access_token", "token", "ticket"):
        refused = client.get(f"/api/alerts/stream?{name}={api.tokens['operator']}")
        assert refused.status_code == 400, refused.text
        assert "not accepted in URLs" in refused.json()["error"]["message"]
        assert api.tokens["operator"] not in refused.text
    both = client.get(
        f"/api/alerts/stream?access_token={api.tokens['operator']}", headers=api.auth("operator")
    )
    assert both.status_code == 400


def test_the_stream_takes_the_header_and_keeps_alive(api: ApiSetup, client: TestClient) -> None:
    api.hub.live.set()
    response = client.get("/api/alerts/stream", headers=api.auth("operator"))  # ends after 1 s
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    assert response.text.startswith("retry: 3000\n: connected\n\n: live\n\n")
    assert ": keep-alive\n\n" in response.text
    assert "event: revoked" not in response.text


def test_the_stream_waits_for_the_feed_before_saying_live(
    api: ApiSetup, client: TestClient
) -> None:
    response = client.get("/api/alerts/stream", headers=api.auth("operator"))
    assert response.status_code == 200
    assert ": live" not in response.text and ": keep-alive" in response.text


async def test_the_stream_delivers_records_from_the_feed(
    api: ApiSetup, board: dict[str, Any]
) -> None:
    """Drive the ASGI app directly: the test client buffers whole responses, a stream never ends."""
    record = board["lane"]
    api.hub.live.set()
    chunks: list[str] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b"").decode())
            text = "".join(chunks)
            if ": live" in text and api.hub.subscribers and "event: alert" not in text:
                api.hub.publish(record)
            if "event: alert" in text:
                done.set()

    token = api.tokens["operator"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/alerts/stream",
        "raw_path": b"/api/alerts/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", b"Bearer " + token), (b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    await asyncio.wait_for(api.app(scope, receive, send), timeout=10)
    text = "".join(chunks)
    event = text[text.index("event: alert") :].split("\n\n")[0]
    lines = dict(line.split(": ", 1) for line in event.splitlines())
    assert lines["event"] == "alert"
    assert lines["id"] == f"{record.alert_id}:{record.revision}"
    assert json.loads(lines["data"]) == json.loads(record.model_dump_json())
    assert api.hub.subscribers == 0  # the subscription ended with the stream


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_count_the_new_routes_by_template(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    client.get(f"/api/alerts/{board['lane'].alert_id}", headers=api.auth("operator"))
    client.get("/api/alerts/nope", headers=api.auth("operator"))
    client.get("/api/alerts", headers=api.auth("volunteer"))
    registry = api.app.state.metrics_registry

    def count(route: str, status: str) -> float | None:
        labels = {"method": "GET", "route": route, "status": status}
        return registry.get_sample_value("puhui_http_requests_total", labels)

    assert count("/api/alerts/{alert_id}", "200") == 1
    assert count("/api/alerts/{alert_id}", "404") == 1
    assert count("/api/alerts", "403") == 1
    exposition = client.get("/metrics").text
    assert 'route="/api/alerts/{alert_id}"' in exposition
    assert board["lane"].alert_id not in exposition


def test_openapi_documents_every_endpoint(api: ApiSetup, client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    expected = {
        "/api/me": {"get"},
        "/api/reports": {"get", "post"},
        "/api/reports/{report_id}": {"get"},
        "/api/report-categories": {"get"},
        "/api/alerts": {"get"},
        "/api/alerts/stream": {"get"},
        "/api/alerts/{alert_id}": {"get"},
        "/api/alerts/{alert_id}/ack": {"post"},
        "/api/alerts/{alert_id}/assign": {"post"},
        "/api/alerts/{alert_id}/resolve": {"post"},
        "/api/alerts/{alert_id}/cap": {"get"},
        "/api/incidents": {"get"},
        "/api/shift-log": {"get"},
        "/api/feed": {"get"},
        "/api/silences": {"get", "post"},
        "/api/silences/{silence_id}": {"delete"},
        "/api/zones": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    post = paths["/api/reports"]["post"]
    assert {"202", "400", "401", "403", "413", "422", "429", "503"} <= set(post["responses"])
    schemas = document["components"]["schemas"]
    assert schemas["ReportIn"]["examples"][0]["zone_id"] == LANE
    assert LANE in schemas["ReportIn"]["properties"]["zone_id"]["enum"]
    assert "HTTPBearer" in document["components"]["securitySchemes"]


# -- latching and the shift log -----------------------------------------------------------------


def latched_episode(zone: str, start: Any, cause: str) -> list[Any]:
    """A 红 alert that cleared on its own (hold time) before anyone acknowledged it."""
    from alerts.zone.alert import Assessment, transition
    from models.contracts import Summary

    state = None
    out: list[Any] = []
    for minute, level in ((0, Level.RED), (1, None), (7, None)):
        summary = Summary(zh="红", en="red") if level else None
        at = start + timedelta(minutes=minute)
        assessment = Assessment(zone, Risk.FIRE, level, at, f"{cause}{minute}", {}, summary)
        state, records = transition(state, assessment, timedelta(minutes=5), {Level.RED})
        out.extend(records)
    return out


def test_a_latched_alert_stays_on_the_board_until_acknowledged(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    h = api.auth("operator")
    gone = latched_episode(MALL, T0 - timedelta(minutes=30), "fire")
    assert gone[-1].latched and gone[-1].status.value == "resolved"
    store(api.engine, gone)
    alert_id = gone[-1].alert_id
    listed = client.get("/api/alerts", headers=h).json()["items"]
    (item,) = [i for i in listed if i["alert_id"] == alert_id]
    assert item["status"] == "resolved" and item["latched"] and not item["acknowledged"]
    assert ids(client.get("/api/alerts?status=firing", headers=h)).count(alert_id) == 0
    # resolving or assigning it makes no sense: 409 saying what to do instead
    response = client.post(f"/api/alerts/{alert_id}/resolve", headers=h)
    assert response.status_code == 409 and "acknowledge" in response.json()["error"]["message"]
    assert sent_commands(api) == []
    # acknowledging it is accepted, as a command to the worker
    assert client.post(f"/api/alerts/{alert_id}/ack", headers=h).status_code == 202
    (sent,) = sent_commands(api)
    assert sent[2].alert_id == alert_id and sent[2].action.value == "acknowledge"
    # the worker's record lands: off the board, in the shift log with who acknowledged it
    from alerts.zone.alert import AlertState, operator_action

    last = gone[-1]
    state = AlertState(
        alert_id=alert_id,
        zone_id=last.zone_id,
        risk=last.risk,
        level=last.level,
        status=last.status,
        revision=last.revision,
        opened_at=last.opened_at,
        latched=True,
    )
    _, ack = operator_action(state, Change.ACKNOWLEDGED, api.clock(), NAMES["operator"])
    store(api.engine, [ack])
    assert alert_id not in ids(client.get("/api/alerts", headers=h))
    log = client.get("/api/shift-log?hours=1", headers=h).json()
    (entry,) = [i for i in log["items"] if i["alert_id"] == alert_id]
    assert entry["closed_how"] == "cleared" and entry["resolved_by"] is None
    assert entry["acknowledged_by"] == NAMES["operator"] and not entry["latched"]
    assert entry["resolved_at"] == "2026-10-01T10:37:00Z"


def test_the_shift_log_lists_what_was_resolved_in_the_last_hours(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    h = api.auth("operator")
    # the board's old episode was resolved by an operator 2 h 5 min before the API's clock
    assert client.get("/api/shift-log?hours=2", headers=h).json()["total"] == 0
    log = client.get("/api/shift-log?hours=3", headers=h).json()
    assert log["total"] == 1 and log["hours"] == 3
    (entry,) = log["items"]
    assert entry["alert_id"] == board["old"].alert_id
    assert entry["closed_how"] == "operator" and entry["resolved_by"] == NAMES["operator"]
    assert entry["note"] == "已处理" and entry["acknowledged_by"] == NAMES["operator"]
    assert client.get("/api/shift-log?hours=0", headers=h).status_code == 422
    assert client.get("/api/shift-log", headers=api.auth("volunteer")).status_code == 403


def test_the_detail_explains_the_rule_crossed_in_words(api: ApiSetup, client: TestClient) -> None:
    from alerts.config import default_rules
    from alerts.engine import ZoneState, process_reading
    from models.contracts import SensorReading
    from models.zones import load_bundled_zones

    zone = load_bundled_zones().get(LANE)
    assert zone is not None and zone.capacity == 1260
    reading = SensorReading(
        reading_id="cam-1@t0",
        sensor_id="cam-1",
        zone_id=LANE,
        kind="people_count",
        value=1524,
        observed_at=T0,
    )
    records = process_reading(ZoneState(LANE), reading, zone, default_rules()).records
    store(api.engine, records)
    detail = client.get(f"/api/alerts/{records[0].alert_id}", headers=api.auth("operator")).json()
    words = detail["explanation"]
    assert words["zh"] == "承载率 121 % ≥ 120 % → 红"
    assert words["en"] == "occupancy 121 % ≥ 120 % → red"
    assert {"zh": "人数", "en": "People", "value": "1524 人"} in words["figures"]
    assert detail["evidence"]["occupancy"] == 1.21  # the raw figures stay, for the fold


def test_notes_are_internal_unless_marked_public(
    api: ApiSetup, client: TestClient, board: dict[str, Any]
) -> None:
    h = api.auth("operator")
    lane = board["lane"].alert_id
    assert (
        client.post(f"/api/alerts/{lane}/ack", headers=h, json={"note": "内部"}).status_code == 202
    )
    body = {"assignee": "网格员 王", "note": "已派人", "public": True}
    assert client.post(f"/api/alerts/{lane}/assign", headers=h, json=body).status_code == 202
    first, second = (sent[2] for sent in sent_commands(api))
    assert (first.note, first.note_public) == ("内部", False)
    assert (second.note, second.note_public) == ("已派人", True)
    bad = client.post(f"/api/alerts/{lane}/ack", headers=h, json={"public": "yes please"})
    assert bad.status_code == 422


def test_feed_freshness_turns_silent_after_the_setting(tmp_path: Path) -> None:
    api = make_api(tmp_path, feed_silent_seconds=30.0)
    h = api.auth("operator")
    with TestClient(api.app) as client:
        quiet = client.get("/api/feed", headers=h).json()
        assert quiet == {
            "latest_reading_at": None,
            "age_seconds": None,
            "silent_after_seconds": 30.0,
            "silent": False,  # a feed that never started is not "stopped"
        }
        received = api.clock()
        upsert_zone_status(
            api.engine,
            [{"zone_id": LANE, "people": 10.0, "updated_at": T0, "received_at": received}],
        )
        api.clock.advance(20)
        live = client.get("/api/feed", headers=h).json()
        assert live["age_seconds"] == 20.0 and live["silent"] is False
        (zone,) = [
            z for z in client.get("/api/zones", headers=h).json()["items"] if z["id"] == LANE
        ]
        assert zone["reading_age_seconds"] == 20.0
        # a status update without a reading (a sweep) keeps when the latest reading came in
        upsert_zone_status(
            api.engine, [{"zone_id": LANE, "people": 11.0, "updated_at": T0, "received_at": None}]
        )
        api.clock.advance(11)
        silent = client.get("/api/feed", headers=h).json()
        assert silent["age_seconds"] == 31.0 and silent["silent"] is True
        assert client.get("/api/feed", headers=api.auth("volunteer")).status_code == 403
