"""One bad record never stalls a stream on PostgreSQL, and a worker that cannot write stops in
bounded time without committing what it did not persist (issue 10).

Records go straight onto the topics (as a producer other than the API would send them): a good
one, a bad one, a good one. The bad one must reach ``puhui.dead-letters`` with its reason, and the
good one after it must be stored within seconds — before the fix, PostgreSQL refused the bad
record forever and nothing after it on its partition was ever stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from infra.db import make_engine
from tests.support.fault import T0, db_rows, metric, produce_all, reading, wait_until, write_zones
from tests.support.parts import PrivatePostgres, Worker, consume

pytestmark = pytest.mark.fault

ZONE = "uz-000"


def report(rid: str, description: str, minutes: float = 0, reporter: str = "vol-1") -> bytes:
    return json.dumps(
        {
            "report_id": rid,
            "reporter_id": reporter,
            "zone_id": ZONE,
            "category": "littering",
            "description": description,
            "submitted_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        }
    ).encode()


def alert_record(alert_id: str, note: str | None = None, revision: int = 1) -> bytes:
    at = T0.isoformat()
    return json.dumps(
        {
            "alert_id": alert_id,
            "revision": revision,
            "zone_id": ZONE,
            "risk": "gas",
            "level": "orange",
            "status": "firing",
            "change": "raised",
            "at": at,
            "opened_at": at,
            "evidence": {},
            "summary": {"zh": "测试", "en": "test"},
            "note": note,
        }
    ).encode()


def headers(message: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers}


def dead_letters(worker: Worker, bootstrap: str, count: int) -> list[Any]:
    return consume(
        bootstrap, worker.topics.dead_letters, until=lambda m: len(m) >= count, timeout=60
    )


def stored_reports(url: str) -> set[str]:
    return {row[0] for row in db_rows(url, "select report_id from reports")}


def stored_alerts(url: str) -> set[str]:
    return {row[0] for row in db_rows(url, "select alert_id from alert_history")}


def add_check(url: str, table: str, name: str, condition: str) -> None:
    """A constraint the contract knows nothing of: the database refuses a valid record."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({condition})"))
    finally:
        engine.dispose()


@pytest.fixture
def worker_on_pg(
    fresh_pg_database: str, make_worker: Callable[..., Worker], tmp_path: Path
) -> Worker:
    zones = write_zones(tmp_path / "zones.yaml", [ZONE])
    return make_worker(PUHUI_DATABASE_URL=fresh_pg_database, PUHUI_ZONES_FILE=str(zones))


def test_a_report_with_nul_is_dead_lettered_and_the_next_one_is_stored(
    worker_on_pg: Worker, kafka_bootstrap: str
) -> None:
    url = worker_on_pg.database_url
    produce_all(
        kafka_bootstrap,
        worker_on_pg.topics.reports,
        [
            (ZONE.encode(), report("r-good-1", "垃圾满了")),
            (ZONE.encode(), report("r-nul", "垃圾\u0000满了", minutes=1)),
            (ZONE.encode(), report("r-good-2", "还是满的", minutes=2)),
        ],
    )
    wait_until(
        lambda: {"r-good-1", "r-good-2"} <= stored_reports(url), 30, "both good reports stored"
    )
    (dead,) = dead_letters(worker_on_pg, kafka_bootstrap, 1)
    got = headers(dead)
    assert got["error.reason"] == "invalid_field"
    assert got["error.detail"].startswith("description:") and "U+0000" in got["error.detail"]
    assert got["source.topic"] == worker_on_pg.topics.reports
    assert json.loads(dead.value)["report_id"] == "r-nul"  # the bytes, unchanged
    assert "r-nul" not in stored_reports(url)


def test_an_over_long_alert_id_on_the_alerts_topic_is_dead_lettered_and_the_next_is_stored(
    worker_on_pg: Worker, kafka_bootstrap: str
) -> None:
    url = worker_on_pg.database_url
    long_id = "x" * 200  # the alerts.alert_id column holds 64
    produce_all(
        kafka_bootstrap,
        worker_on_pg.topics.alerts,
        [
            (ZONE.encode(), alert_record("a-good-1")),
            (ZONE.encode(), alert_record(long_id)),
            (ZONE.encode(), alert_record("a-good-2")),
        ],
    )
    wait_until(lambda: {"a-good-1", "a-good-2"} <= stored_alerts(url), 30, "both good alerts")
    (dead,) = dead_letters(worker_on_pg, kafka_bootstrap, 1)
    got = headers(dead)
    assert got["error.reason"] == "invalid_field"
    assert got["error.detail"].startswith("alert_id:")
    assert json.loads(dead.value)["alert_id"] == long_id


def test_what_the_database_refuses_is_dead_lettered_unstorable_with_its_message(
    worker_on_pg: Worker, kafka_bootstrap: str
) -> None:
    url = worker_on_pg.database_url
    add_check(url, "reports", "no_poison_report", "description <> 'poison pill'")
    add_check(url, "alert_history", "no_poison_note", "note IS DISTINCT FROM 'poison pill'")
    produce_all(
        kafka_bootstrap,
        worker_on_pg.topics.reports,
        [
            (ZONE.encode(), report("r-1", "ok")),
            (ZONE.encode(), report("r-poison", "poison pill", minutes=1)),
            (ZONE.encode(), report("r-2", "ok too", minutes=2)),
        ],
    )
    # In one write batch: the good ones around the poison one are stored all the same.
    produce_all(
        kafka_bootstrap,
        worker_on_pg.topics.alerts,
        [
            (ZONE.encode(), alert_record("a-1")),
            (ZONE.encode(), alert_record("a-poison", note="poison pill")),
            (ZONE.encode(), alert_record("a-2")),
        ],
    )
    wait_until(lambda: {"r-1", "r-2"} <= stored_reports(url), 30, "good reports stored")
    wait_until(lambda: {"a-1", "a-2"} <= stored_alerts(url), 30, "good alerts stored")
    dead = dead_letters(worker_on_pg, kafka_bootstrap, 2)
    by_reason = {(headers(m)["error.reason"], headers(m)["source.topic"]): m for m in dead}
    from_reports = by_reason[("unstorable", worker_on_pg.topics.reports)]
    from_alerts = by_reason[("unstorable", worker_on_pg.topics.alerts)]
    assert json.loads(from_reports.value)["report_id"] == "r-poison"
    assert "no_poison_report" in headers(from_reports)["error.detail"]
    assert json.loads(from_alerts.value)["alert_id"] == "a-poison"
    assert "no_poison_note" in headers(from_alerts)["error.detail"]
    # The database's message, never the statement or its parameters (a volunteer's words).
    assert "poison pill" not in headers(from_reports)["error.detail"]
    assert "r-poison" not in stored_reports(url) and "a-poison" not in stored_alerts(url)


def test_sigterm_while_the_database_is_down_stops_in_bounded_time_and_commits_nothing_unpersisted(
    private_postgres: PrivatePostgres,
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    url = private_postgres.url
    zones = write_zones(tmp_path / "zones.yaml", [ZONE])
    env = {"PUHUI_DATABASE_URL": url, "PUHUI_ZONES_FILE": str(zones)}
    worker = make_worker(**env)
    produce_all(
        kafka_bootstrap,
        worker.topics.readings,
        [reading("g-0", ZONE, "gas_lel", 30, T0, sensor="gas-1")],
    )
    wait_until(lambda: len(stored_alerts(url)) == 1, 30, "the first alert stored")

    private_postgres.stop()
    produce_all(
        kafka_bootstrap,
        worker.topics.readings,
        [reading("g-1", ZONE, "gas_lel", 60, T0 + timedelta(seconds=5), sensor="gas-1")],
    )
    wait_until(lambda: metric(worker.metrics_url, "puhui_db_errors_total") >= 1, 60, "db errors")
    assert worker.proc is not None
    started = time.monotonic()
    worker.stop(timeout=60)
    took = time.monotonic() - started
    assert worker.proc.returncode is not None
    assert took < 15 + 5, f"the worker took {took:.1f}s to stop (limit 15 s)"

    # The escalation (revision 2) was published but never persisted: it must not have been
    # committed either, so a new worker replays it into the database once it is back.
    private_postgres.start()
    worker.start()
    wait_until(
        lambda: db_rows(url, "select max(revision) from alert_history")[0][0] == 2,
        60,
        "the escalation persisted after the restart",
    )
