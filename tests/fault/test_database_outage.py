"""The database goes away for 30 s while readings keep flowing: no incident is lost.

A private PostgreSQL (this test's alone) is stopped for 30 s. Readings keep arriving and keep
raising alerts on the topic; the persist agent cannot write them and must not acknowledge them.
To prove the alerts topic is not committed past what was persisted, the worker is SIGKILLed while
the database is still down and started again once it is back: every alert record published
before, during and after the outage must then reach the database (the backlog drains), and
``puhui_db_errors_total`` must have risen during the outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.zone.alert import alert_id_for
from models.contracts import Risk
from tests.support.fault import (
    T0,
    PacedProducer,
    TopicTap,
    assert_history_consistent,
    committed_offsets,
    db_rows,
    metric,
    reading,
    wait_until,
    write_zones,
    zone_ids,
)
from tests.support.parts import PrivatePostgres, Worker

pytestmark = pytest.mark.fault

ZONES = 60
OUTAGE_S = 30.0
KILL_AFTER_S = 20.0  # into the outage
RATE = 3.0  # readings a second: the stream outlasts the outage


def readings(ids: list[str]) -> tuple[list[tuple[bytes, bytes]], dict[str, str]]:
    """Per zone a gas reading (橙) then a smoke reading (橙): each opens its own alert."""
    records = []
    expected: dict[str, str] = {}
    i = 0
    for kind, value, risk in (("gas_lel", 30, Risk.GAS), ("smoke", 1, Risk.FIRE)):
        for zone in ids:
            rid = f"{zone}-{kind}"
            at = T0 + timedelta(seconds=0.2 * i)
            records.append(reading(rid, zone, kind, value, at, sensor=f"{kind}-1"))
            expected[alert_id_for(zone, risk, rid)] = zone
            i += 1
    return records, expected


def persisted(url: str) -> int:
    return int(db_rows(url, "select count(*) from alert_history")[0][0])


def test_database_down_30s_loses_no_incident_and_commits_nothing_unpersisted(
    private_postgres: PrivatePostgres,
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    url = private_postgres.url
    ids = zone_ids("dz", ZONES)
    zones_file = write_zones(tmp_path / "zones.yaml", ids)
    worker = make_worker(PUHUI_DATABASE_URL=url, PUHUI_ZONES_FILE=str(zones_file))
    records, expected = readings(ids)

    with TopicTap(kafka_bootstrap, worker.topics.alerts) as tap:
        producer = PacedProducer(kafka_bootstrap, worker.topics.readings, records, RATE).start()
        try:
            wait_until(lambda: persisted(url) >= 10, 60, "the first alerts in the database")
            errors_before = metric(worker.metrics_url, "puhui_db_errors_total")
            private_postgres.stop()
            down_at = time.monotonic()
            on_topic_at_stop = tap.count()
            wait_until(
                lambda: metric(worker.metrics_url, "puhui_db_errors_total") > errors_before,
                20,
                "database errors counted",
            )
            time.sleep(max(0.0, down_at + KILL_AFTER_S - time.monotonic()))
            errors_during = metric(worker.metrics_url, "puhui_db_errors_total")
            on_topic_at_kill = tap.count()
            worker.kill()
            acked = committed_offsets(
                kafka_bootstrap, worker.env["PUHUI_APP_ID"], worker.topics.alerts
            )
            time.sleep(max(0.0, down_at + OUTAGE_S - time.monotonic()))
            private_postgres.start()
            persisted_at_stop = persisted(url)
            worker.start(timeout=120)
            producer.join(timeout=120)
        finally:
            producer.stop()

        def drained() -> bool:
            return persisted(url) >= len(expected)

        try:
            wait_until(drained, 120, "every alert record in the database")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{worker.tail(60)}") from exc
        time.sleep(1.0)
        on_topic = tap.values()

    print(
        f"\ndatabase down {OUTAGE_S:.0f}s; {persisted_at_stop} alert records persisted before it "
        f"went; {on_topic_at_kill - on_topic_at_stop} published while it was down (before the "
        f"kill); puhui_db_errors_total {errors_before:.0f} -> {errors_during:.0f}; the group's "
        f"committed offsets on the alerts topic at the kill: {acked}"
    )
    assert errors_during > errors_before
    # Alerts were raised during the outage (the stream went on), so there was a backlog.
    assert on_topic_at_kill > on_topic_at_stop
    assert persisted_at_stop < on_topic_at_kill
    # Not acknowledged past what was persisted: at the kill, the persist agent's committed
    # offsets cover no more alert records than the database had taken before it went away.
    assert sum(acked.values()) <= persisted_at_stop

    # Every alert record on the topic is in the database, and nothing else.
    alerts = assert_history_consistent(url)
    assert {a.alert_id: a.zone_id for a in alerts} == expected
    stored = db_rows(url, "select alert_id, revision from alert_history")
    assert {(r["alert_id"], r["revision"]) for r in on_topic} == {tuple(r) for r in stored}
