"""Silences: the pure matcher the notifier calls, and the endpoints that manage them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from alerts.silences import Silence, active_silences, is_silenced, matching_silences
from infra.db import load_silences
from models.contracts import Level, Risk
from models.zones import load_bundled_zones
from tests.support.api import ATRIUM, LANE, NAMES, ApiSetup, episode, make_api

pytestmark = pytest.mark.unit

NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
ZONES = load_bundled_zones()


def silence(**matchers: str | None) -> Silence:
    return Silence(
        id="s",
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=1),
        **matchers,  # type: ignore[arg-type]
    )


# -- the pure core ----------------------------------------------------------------------------


def test_a_silence_matches_on_every_matcher_it_sets() -> None:
    (record,) = episode(LANE, [Level.BLUE])
    assert is_silenced(record, [silence(zone_id=LANE)], NOW)
    assert is_silenced(record, [silence(zone_id=LANE, risk="crowding", level="blue")], NOW)
    assert not is_silenced(record, [silence(zone_id=LANE, level="red")], NOW)
    assert not is_silenced(record, [silence(zone_id=ATRIUM)], NOW)
    assert not is_silenced(record, [silence(risk="fire")], NOW)


def test_a_level_matcher_does_not_hide_an_escalation() -> None:
    records = episode(LANE, [Level.BLUE, Level.RED])
    quiet = [silence(zone_id=LANE, level="blue")]
    assert is_silenced(records[0], quiet, NOW)
    assert not is_silenced(records[1], quiet, NOW)


def test_site_matchers_need_the_zone_registry_or_a_site_field() -> None:
    (record,) = episode(LANE, [Level.YELLOW])
    by_site = [silence(site="tianzifang")]
    assert not is_silenced(record, by_site, NOW)  # a record carries no site
    assert is_silenced(record, by_site, NOW, ZONES)
    assert is_silenced({"zone_id": "x", "site": "tianzifang"}, by_site, NOW)
    assert not is_silenced({"zone_id": ATRIUM}, by_site, NOW, ZONES)
    assert is_silenced({"zone_id": LANE, "risk": Risk.CROWDING}, [silence(risk="crowding")], NOW)


def test_the_window_is_start_inclusive_end_exclusive() -> None:
    quiet = silence(zone_id=LANE)
    fields = {"zone_id": LANE}
    assert is_silenced(fields, [quiet], quiet.starts_at)
    assert not is_silenced(fields, [quiet], quiet.starts_at - timedelta(microseconds=1))
    assert not is_silenced(fields, [quiet], quiet.ends_at)
    assert active_silences([quiet], quiet.ends_at) == []
    assert matching_silences(fields, [quiet, silence(zone_id=ATRIUM)], NOW) == [quiet]


def test_a_silence_must_be_well_formed() -> None:
    with pytest.raises(ValueError, match="at least one matcher"):
        silence()
    with pytest.raises(ValueError, match="end after"):
        Silence("s", NOW, NOW, zone_id=LANE)
    with pytest.raises(ValueError, match="timezone-aware"):
        Silence("s", NOW.replace(tzinfo=None), NOW + timedelta(1), zone_id=LANE)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_silenced({"zone_id": LANE}, [], NOW.replace(tzinfo=None))


@given(
    zone=st.sampled_from([LANE, ATRIUM, None]),
    risk=st.sampled_from(["crowding", "fire", None]),
    level=st.sampled_from([lv.value for lv in Level] + [None]),
    offset=st.integers(-7200, 7200),
)
def test_matching_is_exactly_every_set_matcher_equal_inside_the_window(
    zone: str | None, risk: str | None, level: str | None, offset: int
) -> None:
    if zone is None and risk is None and level is None:
        zone = LANE
    quiet = silence(zone_id=zone, risk=risk, level=level)
    at = NOW + timedelta(seconds=offset)
    fields = {"zone_id": LANE, "risk": "crowding", "level": "yellow"}
    expected = (
        quiet.starts_at <= at < quiet.ends_at
        and zone in (None, LANE)
        and risk in (None, "crowding")
        and level in (None, "yellow")
    )
    assert is_silenced(fields, [quiet], at) is expected


# -- the endpoints ----------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(tmp_path)


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def body(**change: Any) -> dict[str, Any]:
    return {
        "zone_id": LANE,
        "risk": "crowding",
        "level": "blue",
        "ends_at": "2026-10-01T22:00:00+08:00",
        "comment": "国庆灯光秀，现场已有民警疏导",
        **change,
    }


def test_an_admin_creates_a_silence_operators_read_it(api: ApiSetup, client: TestClient) -> None:
    response = client.post("/api/silences", headers=api.auth("admin"), json=body())
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["created_by"] == NAMES["admin"] and created["state"] == "active"
    assert created["starts_at"] == "2026-10-01T11:05:00Z"  # now, by default
    assert created["ends_at"] == "2026-10-01T14:00:00Z"
    assert (created["zone_id"], created["site"], created["risk"], created["level"]) == (
        LANE,
        None,
        "crowding",
        "blue",
    )
    listed = client.get("/api/silences", headers=api.auth("operator"))
    assert listed.status_code == 200 and listed.json()["items"] == [created]
    (loaded,) = load_silences(api.engine, api.clock())
    (record,) = episode(LANE, [Level.BLUE])
    assert is_silenced(record, [loaded], api.clock())


def test_a_future_silence_is_pending_and_an_ended_one_hidden_by_default(
    api: ApiSetup, client: TestClient
) -> None:
    pending = client.post(
        "/api/silences",
        headers=api.auth("admin"),
        json=body(starts_at="2026-10-01T21:00:00+08:00", ends_at="2026-10-01T23:00:00+08:00"),
    ).json()
    assert pending["state"] == "pending"
    short = client.post(
        "/api/silences", headers=api.auth("admin"), json=body(ends_at="2026-10-01T11:10:00Z")
    ).json()
    api.clock.advance(600)
    default = client.get("/api/silences", headers=api.auth("operator")).json()["items"]
    assert [s["id"] for s in default] == [pending["id"]]
    everything = client.get(
        "/api/silences?include_expired=true", headers=api.auth("operator")
    ).json()["items"]
    states = {s["id"]: s["state"] for s in everything}
    assert states == {pending["id"]: "pending", short["id"]: "expired"}


def test_roles_for_silences(api: ApiSetup, client: TestClient) -> None:
    assert (
        client.post("/api/silences", headers=api.auth("operator"), json=body()).status_code == 403
    )
    assert (
        client.post("/api/silences", headers=api.auth("volunteer"), json=body()).status_code == 403
    )
    assert client.post("/api/silences", json=body()).status_code == 401
    assert client.get("/api/silences", headers=api.auth("volunteer")).status_code == 403
    assert client.get("/api/silences").status_code == 401
    assert client.delete("/api/silences/x", headers=api.auth("operator")).status_code == 403
    assert client.get("/api/silences", headers=api.auth("admin")).json() == {"items": []}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"zone_id": None, "risk": None, "level": None}, "zone_id"),
        ({"zone_id": "atlantis"}, "zone_id"),
        ({"site": "moon"}, "site"),
        ({"risk": "meteor"}, "risk"),
        ({"level": "purple"}, "level"),
        ({"ends_at": "2026-10-01T19:00:00"}, "ends_at"),
        ({"ends_at": "tomorrow"}, "ends_at"),
        ({"ends_at": 1900000000}, "ends_at"),
        ({"ends_at": "9999-12-31T23:59:59-14:00"}, "ends_at"),
        (
            {"starts_at": "2026-10-01T21:00:00+08:00", "ends_at": "2026-10-01T20:00:00+08:00"},
            "ends_at",
        ),
        ({"ends_at": "2026-10-01T11:00:00Z"}, "ends_at"),
        ({"comment": ""}, "comment"),
        ({"comment": "x" * 1001}, "comment"),
        ({"matchers": {"zone": LANE}}, "matchers"),
    ],
)
def test_invalid_silences_are_422_naming_the_field(
    api: ApiSetup, client: TestClient, change: dict[str, Any], field: str
) -> None:
    response = client.post("/api/silences", headers=api.auth("admin"), json=body(**change))
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert client.get("/api/silences?include_expired=true", headers=api.auth("admin")).json() == {
        "items": []
    }


def test_a_site_silence(api: ApiSetup, client: TestClient) -> None:
    response = client.post(
        "/api/silences",
        headers=api.auth("admin"),
        json=body(zone_id=None, risk=None, level=None, site="tianzifang"),
    )
    assert response.status_code == 201
    silences = load_silences(api.engine, api.clock())
    (record,) = episode("tianzifang-taikang-248", [Level.RED])
    assert is_silenced(record, silences, api.clock(), ZONES)


def test_deleting_a_silence(api: ApiSetup, client: TestClient) -> None:
    created = client.post("/api/silences", headers=api.auth("admin"), json=body()).json()
    gone = client.delete(f"/api/silences/{created['id']}", headers=api.auth("admin"))
    assert gone.status_code == 204 and gone.content == b""
    assert (
        client.delete(f"/api/silences/{created['id']}", headers=api.auth("admin")).status_code
        == 404
    )
    assert client.delete("/api/silences/unknown", headers=api.auth("admin")).status_code == 404
    assert client.delete("/api/silences/bad%20id", headers=api.auth("admin")).status_code == 422
    assert client.get("/api/silences", headers=api.auth("operator")).json() == {"items": []}
    assert load_silences(api.engine, api.clock()) == []
    kept = client.get("/api/silences?include_deleted=true", headers=api.auth("operator")).json()
    (row,) = kept["items"]
    assert row["state"] == "deleted" and row["deleted_by"] == NAMES["admin"]
