"""kill -9 the worker halfway through a load: after a restart every zone has exactly one alert.

200 zones, each with a run of ordinary camera counts and then one count at 红 density, all queued
at once. The worker is SIGKILLed when about half the zones have alerted (watched on the alerts
topic), then restarted with the same app id, topics, state directory and database. Whatever it had
processed but not committed is read again: the alert ids are derived from the reading that opened
each alert and a re-read reading is inert against the state recovered from the changelog, so each
zone must end with exactly one alert — in the database and through the HTTP API — and processing
must resume within 30 s of the restart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.zone.alert import alert_id_for
from api.app import create_api
from infra.db import make_engine
from infra.settings import Settings
from infra.tokens import Role, create_token
from models.contracts import Risk
from tests.support.fault import (
    T0,
    TopicTap,
    alert_id_episodes,
    assert_history_consistent,
    db_rows,
    produce_all,
    reading,
    wait_until,
    write_zones,
    zone_ids,
)
from tests.support.parts import Worker

pytestmark = pytest.mark.fault

ZONES = 200
ORDINARY = 40  # 0.5 persons/m² each, one a second: flat, so no forecast
RESUME_LIMIT_S = 30.0


class _NoPublisher:
    """The API only reads here; nothing may be published."""

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        raise AssertionError("the API published during a read-only check")


def _load(ids: list[str]) -> tuple[list[tuple[bytes, bytes]], dict[str, str]]:
    records: list[tuple[bytes, bytes]] = []
    expected: dict[str, str] = {}
    for zone in ids:
        for k in range(ORDINARY):
            at = T0 + timedelta(seconds=k)
            records.append(reading(f"{zone}-n{k}", zone, "people_count", 50, at))
        red = f"{zone}-red"
        at = T0 + timedelta(seconds=ORDINARY)
        records.append(reading(red, zone, "people_count", 600, at))  # 6 persons/m²: 红
        expected[zone] = alert_id_for(zone, Risk.CROWDING, red)
    return records, expected


def _crowding_zones(tap: TopicTap) -> set[str]:
    return {r["zone_id"] for r in tap.values() if r["risk"] == "crowding"}


def _api_alerts(worker: Worker, zones_file: Path, tmp_path: Path, ids: list[str]) -> dict:
    """``GET /api/alerts?zone=<z>&status=all`` for every zone, with an operator token."""
    settings = Settings(
        kafka_bootstrap=worker.env["PUHUI_KAFKA_BOOTSTRAP"],
        topic_prefix=worker.prefix,
        database_url=worker.database_url,
        zones_file=zones_file,
        state_dir=tmp_path / "api",
    )
    engine = make_engine(worker.database_url)
    try:
        token = create_token(engine, "值班员 故障测试", Role.OPERATOR, datetime.now(UTC))
        app = create_api(settings, engine=engine, publisher=_NoPublisher())  # type: ignore[arg-type]
        client = TestClient(app)  # no lifespan: no broker connection, queries only
        answers: dict[str, Any] = {}
        for zone in ids:
            response = client.get(
                "/api/alerts",
                params={"zone": zone, "status": "all", "limit": 200},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            answers[zone] = response.json()
        return answers
    finally:
        engine.dispose()


def test_sigkill_halfway_leaves_every_zone_exactly_one_alert(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    ids = zone_ids("fz", ZONES)
    zones_file = write_zones(tmp_path / "zones.yaml", ids)
    worker = make_worker(PUHUI_ZONES_FILE=str(zones_file))
    records, expected = _load(ids)

    with TopicTap(kafka_bootstrap, worker.topics.alerts) as tap:
        produce_all(kafka_bootstrap, worker.topics.readings, records)
        wait_until(lambda: len(_crowding_zones(tap)) >= ZONES // 2, 120, "half the zones alerted")
        worker.kill()
        time.sleep(1.5)  # let the tap catch up with what the dead worker had published
        alerted_before_kill = len(_crowding_zones(tap))
        seen_before_restart = tap.count()
        assert alerted_before_kill < ZONES, "the load finished before the kill: make it longer"

        began = time.monotonic()
        worker.start(timeout=120)
        ready_after = time.monotonic() - began
        wait_until(lambda: tap.count() > seen_before_restart, 120, "a new alert record")
        resumed_after = tap.items()[seen_before_restart].seen_at - began
        wait_until(
            lambda: db_rows(worker.database_url, "select count(*) from alerts")[0][0] >= ZONES,
            120,
            "an alert per zone in the database",
        )
        # Quiet for 5 s: the restarted worker has nothing more to say (an extra alert would show).
        # (Waiting for puhui_consumer_lag == 0 instead did not settle within 60 s in one run
        # after a kill -9: see the session note; the lag gauge after a restart is an open item.)
        before, deadline = tap.count(), time.monotonic() + 60
        while True:
            time.sleep(5.0)
            if tap.count() == before:
                break
            assert time.monotonic() < deadline, "alert records kept coming for 60 s"
            before = tap.count()
        on_topic = tap.values()

    print(
        f"\nkilled with {alerted_before_kill}/{ZONES} zones alerted; restarted worker ready in "
        f"{ready_after:.1f}s, first new alert record {resumed_after:.1f}s after its start; "
        f"{len(on_topic)} alert records on the topic for {ZONES} alerts"
    )

    # The database: one alert per zone, the one its red reading opened; histories without gaps
    # or repeats.
    alerts = assert_history_consistent(worker.database_url)
    assert len(alerts) == ZONES
    assert {a.zone_id: a.alert_id for a in alerts} == expected
    assert {(a.risk, a.level, a.status, a.revision) for a in alerts} == {
        ("crowding", "red", "firing", 1)
    }
    dup = db_rows(
        worker.database_url,
        "select alert_id, revision, count(*) from alert_history "
        "group by alert_id, revision having count(*) > 1",
    )
    assert dup == []

    # The topic: at-least-once may repeat a record, but never with another alert id for a zone,
    # and never one alert id for two episodes.
    assert all(r["risk"] == "crowding" for r in on_topic)
    per_zone = {z: {r["alert_id"] for r in on_topic if r["zone_id"] == z} for z in ids}
    assert per_zone == {z: {a} for z, a in expected.items()}
    assert all(len(episodes) == 1 for episodes in alert_id_episodes(on_topic).values())
    repeats = Counter((r["alert_id"], r["revision"]) for r in on_topic)
    print(f"records published twice (at-least-once): {sum(n - 1 for n in repeats.values())}")

    # The API: the same, one alert per zone.
    answers = _api_alerts(worker, zones_file, tmp_path, ids)
    for zone, page in answers.items():
        assert page["total"] == 1, (zone, page)
        (item,) = page["items"]
        assert (item["alert_id"], item["level"], item["risk"]) == (
            expected[zone],
            "red",
            "crowding",
        )

    assert resumed_after <= RESUME_LIMIT_S, (
        f"processing resumed {resumed_after:.1f}s after the restart (limit {RESUME_LIMIT_S:.0f}s)"
    )
