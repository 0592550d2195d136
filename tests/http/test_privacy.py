"""Volunteers' personal data (issue 10, PIPL): kept only as long as configured, exported and
erased on request, every operator read recorded, and never in CAP or webhooks.

On the API's SQLite database (``tests/integration/test_privacy_pg.py`` runs the retention job and
the erasure on PostgreSQL too).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts.notify import Notification, NotificationKind, webhook_body
from api.cap import build_cap
from infra.db import AlertHistoryRow, AlertRow, ReportRow, TokenRow, upsert_reports
from infra.privacy import access_log, erase_expired, erase_volunteer, export_volunteer
from models.contracts import Level, ReportCategory, Risk, VolunteerReport
from models.zones import load_bundled_zones
from tests.support.api import LANE, NAMES, T0, ApiSetup, episode, make_api, store

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
VOLUNTEER = "p_0000000000000001"  # the volunteers' principals: see the ``api`` fixture
OTHER = "p_0000000000000002"


def report(rid: str, who: str, days_ago: float, now: Any) -> VolunteerReport:
    return VolunteerReport(
        report_id=rid,
        reporter_id=who,
        zone_id=LANE,
        category=ReportCategory.CROWDING,
        description=f"{who} 看到人很多",  # the volunteer's words
        submitted_at=now - timedelta(days=days_ago),
        lat=31.2,
        lon=121.47,
        photo_url="https://photos.example/1.jpg",
    )


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    """The API, its two volunteer tokens' principals set to ``VOLUNTEER`` and ``OTHER``."""
    setup = make_api(tmp_path)
    with Session(setup.engine) as session, session.begin():
        for who, principal in (("volunteer", VOLUNTEER), ("volunteer2", OTHER)):
            session.execute(
                update(TokenRow).where(TokenRow.name == NAMES[who]).values(principal=principal)
            )
    return setup


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def seed(engine: Engine, now: Any) -> str:
    """An alert whose evidence names both volunteers, with an old and a new report each."""
    records = episode(LANE, [Level.ORANGE], start=T0)
    evidence = {"people": 900, "reporters": [VOLUNTEER, OTHER], "reports": ["old-1", "new-2"]}
    records = [r.model_copy(update={"evidence": evidence}) for r in records]
    store(engine, records)
    alert_id = records[0].alert_id
    upsert_reports(
        engine,
        [
            (report("old-1", VOLUNTEER, 200, now), alert_id),
            (report("new-1", VOLUNTEER, 2, now), alert_id),
            (report("old-2", OTHER, 365, now), alert_id),
            (report("new-2", OTHER, 1, now), alert_id),
        ],
    )
    return alert_id


def reports(engine: Engine) -> dict[str, ReportRow]:
    with Session(engine) as session:
        return {r.report_id: r for r in session.scalars(select(ReportRow))}


def evidences(engine: Engine, alert_id: str) -> list[dict[str, Any]]:
    with Session(engine) as session:
        alert = session.get(AlertRow, alert_id)
        assert alert is not None
        rows = session.scalars(select(AlertHistoryRow).where(AlertHistoryRow.alert_id == alert_id))
        return [alert.evidence, *[h.record["evidence"] for h in rows]]


def test_the_retention_job_erases_personal_fields_older_than_the_setting(api: ApiSetup) -> None:
    now = api.clock()
    alert_id = seed(api.engine, now)
    erased = erase_expired(api.engine, now, days=180)
    assert erased.reports == 2
    rows = reports(api.engine)
    for rid in ("old-1", "old-2"):
        old = rows[rid]
        assert (old.reporter_id, old.description, old.lat, old.lon, old.photo_url) == (
            "erased",
            "",
            None,
            None,
            None,
        )
        assert old.erased_at is not None
        assert (old.category, old.zone_id, old.alert_id) == ("crowding", LANE, alert_id)
    assert rows["new-1"].reporter_id == VOLUNTEER and rows["new-1"].description
    assert rows["new-1"].erased_at is None
    # the alert changed long before the cutoff? no: it is recent, its evidence keeps its ids
    assert all(e.get("reporters") == [VOLUNTEER, OTHER] for e in evidences(api.engine, alert_id))
    # a second run finds nothing more to erase
    assert erase_expired(api.engine, now, days=180).reports == 0
    # a year on, everything is past the cutoff: ids leave the evidence, the counts of it stay
    later = erase_expired(api.engine, now + timedelta(days=400), days=180)
    assert later.reports == 2 and later.alerts == 1 and later.history >= 1
    assert all("reporters" not in e for e in evidences(api.engine, alert_id))
    assert all(e.get("people") == 900 for e in evidences(api.engine, alert_id))
    assert [a.action for a in access_log(api.engine)] == ["retention", "retention"]


async def test_the_api_runs_the_retention_job(api: ApiSetup) -> None:
    seed(api.engine, api.clock())
    erased = await api.app.state.retention.run_once()
    assert erased.reports == 2
    assert reports(api.engine)["old-1"].description == ""


def test_export_gives_everything_about_one_volunteer_and_is_recorded(api: ApiSetup) -> None:
    now = api.clock()
    alert_id = seed(api.engine, now)
    data = export_volunteer(api.engine, VOLUNTEER, "admin:test", now)
    assert [r["report_id"] for r in data["reports"]] == ["old-1", "new-1"]
    assert {r["description"] for r in data["reports"]} == {f"{VOLUNTEER} 看到人很多"}
    assert data["reports"][0]["lat"] == 31.2
    assert data["alerts_naming_the_volunteer"] == [alert_id]
    assert access_log(api.engine)[-1].action == "export"
    json.dumps(data, ensure_ascii=False)  # JSON-ready


def test_erase_removes_one_volunteer_everywhere_in_the_database(api: ApiSetup) -> None:
    now = api.clock()
    alert_id = seed(api.engine, now)
    erased = erase_volunteer(api.engine, VOLUNTEER, "admin:test", now)
    assert (erased.reports, erased.alerts, erased.tokens) == (2, 1, 1)
    rows = reports(api.engine)
    assert {rows[r].reporter_id for r in ("old-1", "new-1")} == {"erased"}
    assert {rows[r].description for r in ("old-1", "new-1")} == {""}
    assert rows["new-2"].reporter_id == OTHER  # the other volunteer keeps theirs
    assert all(e["reporters"] == [OTHER] for e in evidences(api.engine, alert_id))
    with Session(api.engine) as session:
        tokens = list(session.scalars(select(TokenRow).where(TokenRow.role == "volunteer")))
    assert VOLUNTEER not in {t.name for t in tokens}
    assert all(t.revoked_at is not None for t in tokens if t.name == "erased")
    assert export_volunteer(api.engine, VOLUNTEER, "admin:test", now)["reports"] == []


def test_operator_reads_of_reports_are_recorded(api: ApiSetup, client: TestClient) -> None:
    alert_id = seed(api.engine, api.clock())
    got = client.get(f"/api/alerts/{alert_id}", headers=api.auth("operator"))
    assert got.status_code == 200
    body = got.json()
    assert body["reports_total"] == 4 and body["history_total"] == len(body["history"])
    read = access_log(api.engine)[-1]
    assert (read.actor, read.action) == (NAMES["operator"], "read")
    assert sorted(read.report_ids) == sorted(r["report_id"] for r in body["reports"])
    client.get("/api/reports/new-2", headers=api.auth("operator"))
    assert access_log(api.engine)[-1].report_ids == ["new-2"]
    # the volunteer reading their own report is not an access to someone else's data
    before = len(access_log(api.engine))
    assert client.get("/api/reports/new-1", headers=api.auth("volunteer")).status_code == 200
    assert len(access_log(api.engine)) == before


def test_alert_history_and_linked_reports_page(api: ApiSetup, client: TestClient) -> None:
    alert_id = seed(api.engine, api.clock())
    page = client.get(
        f"/api/alerts/{alert_id}/reports?limit=3&offset=0", headers=api.auth("operator")
    ).json()
    assert page["total"] == 4 and len(page["items"]) == 3
    rest = client.get(
        f"/api/alerts/{alert_id}/reports?limit=3&offset=3", headers=api.auth("operator")
    ).json()
    assert len(rest["items"]) == 1
    history = client.get(f"/api/alerts/{alert_id}/history", headers=api.auth("operator")).json()
    assert history["total"] >= 1 and history["items"][0]["revision"] == 1
    assert client.get("/api/alerts/nope/history", headers=api.auth("operator")).status_code == 404
    assert (
        client.get(f"/api/alerts/{alert_id}/reports", headers=api.auth("volunteer")).status_code
        == 403
    )


def test_cap_and_webhooks_carry_counts_not_volunteers(api: ApiSetup) -> None:
    (record,) = episode(LANE, [Level.YELLOW], risk=Risk.REPORT, start=T0)
    record = record.model_copy(
        update={
            "evidence": {
                "category": "crowding",
                "reports": ["r-1", "r-2"],
                "report_count": 2,
                "reporters": [VOLUNTEER, OTHER],
                "reporter_count": 2,
                "description": "旧版本的记录里还有原话",
            }
        }
    )
    cap = build_cap(  # bytes: UTF-8 XML
        record,
        zone=load_bundled_zones().get(LANE),
        sender="puhui@example",
        sender_name="test",
        sender_code="310101",
        identifier="x",
        references=[],
    ).decode()
    for private in (VOLUNTEER, OTHER, "r-1", "旧版本"):
        assert private not in cap
    assert "reporter_count: 2" in cap and "report_count: 2" in cap
    note = Notification("n", "k", NotificationKind.NOTICE, 0, "ops", record, T0)
    body = json.loads(webhook_body(note, 1, T0))
    assert body["evidence"] == {"category": "crowding", "report_count": 2, "reporter_count": 2}


def test_puhui_volunteer_export_and_erase_on_the_command_line(api: ApiSetup) -> None:
    seed(api.engine, api.clock())
    env = {"PUHUI_DATABASE_URL": api.settings.resolved_database_url(), "PATH": "/usr/bin:/bin"}

    def puhui(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "volunteer", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )

    exported = json.loads(puhui("export", VOLUNTEER).stdout)
    assert [r["report_id"] for r in exported["reports"]] == ["old-1", "new-1"]
    out = puhui("erase", VOLUNTEER).stdout
    assert out.startswith("erased: 2 report(s)")
    assert json.loads(puhui("export", VOLUNTEER).stdout)["reports"] == []
