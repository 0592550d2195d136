"""Readings in, alerts out: the worker against the real broker, fed by kafka-python."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support.parts import Worker, alert_records, consume, produce

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 10, 1, 19, 0, tzinfo=CST)
LANE = "tianzifang-taikang-210"  # 420 m² walkable, capacity 1260
ATRIUM = "zhonghai-intl-centre-lobby"  # 600 m², no capacity: density rules only


def reading(
    rid: str, zone: str, kind: str, value: Any, minute: float, sensor: str = "cam-1"
) -> tuple[bytes, bytes]:
    body = {
        "reading_id": rid,
        "sensor_id": sensor,
        "zone_id": zone,
        "kind": kind,
        "value": value,
        "observed_at": (T0 + timedelta(minutes=minute)).isoformat(),
    }
    return zone.encode(), json.dumps(body).encode()


def wait_db(url: str, query: str, until: Callable[[list[Any]], bool], timeout: float = 30) -> list:
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    rows: list[Any] = []
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = list(conn.execute(text(query)))
            if until(rows):
                return rows
            time.sleep(0.3)
    finally:
        engine.dispose()
    raise AssertionError(f"database condition not met; last rows {rows}")


def metric(worker: Worker, name: str) -> float:
    body = urllib.request.urlopen(worker.metrics_url, timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_crowding_escalates_in_order_and_resolves_after_hold(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker()
    counts = [(0, 600), (1, 1300), (2, 1900), (3, 2500), (4, 3100), (5, 600)]
    clear = [(5 + m, 300) for m in range(1, 6)]  # 0.5 persons/m² for 6 min > 5 min hold
    produce(
        kafka_bootstrap,
        worker.topics.readings,
        [reading(f"c{m}", ATRIUM, "people_count", n, m) for m, n in counts + clear],
    )

    msgs = consume(
        kafka_bootstrap,
        worker.topics.alerts,
        until=lambda ms: any(json.loads(m.value)["change"] == "resolved" for m in ms),
    )
    recs = alert_records(msgs)
    assert [(r["change"], r["level"], r["revision"]) for r in recs] == [
        ("raised", "blue", 1),
        ("escalated", "yellow", 2),
        ("escalated", "orange", 3),
        ("escalated", "red", 4),
        ("resolved", "red", 5),
    ]
    assert {m.key for m in msgs} == {ATRIUM.encode()}
    assert len({r["alert_id"] for r in recs}) == 1
    assert recs[0]["risk"] == "crowding" and recs[0]["predicted"] is False
    assert recs[0]["evidence"]["density"] == 2.167  # 1300 / 600 m²
    # resolved at the event time of the reading that ended the hold (5 min after minute 5)
    assert datetime.fromisoformat(recs[-1]["at"]) == T0 + timedelta(minutes=10)
    assert recs[-1]["status"] == "resolved"

    rows = wait_db(
        worker.database_url,
        "select alert_id, level, status, revision from alerts",
        until=lambda rs: rs and rs[0][3] == 5,
    )
    assert rows == [(recs[0]["alert_id"], "red", "resolved", 5)]
    hist = wait_db(
        worker.database_url,
        "select revision, change from alert_history order by revision",
        until=lambda rs: len(rs) == 5,
    )
    assert [h[1] for h in hist] == ["raised", "escalated", "escalated", "escalated", "resolved"]
    assert metric(worker, "puhui_readings_processed_total") == 11
    assert metric(worker, f'puhui_zone_people_peak{{window="1h",zone="{ATRIUM}"}}') == 3100


def test_three_copies_of_a_reading_give_one_alert_change(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker()
    copy = reading("dup-1", LANE, "people_count", 1200, 0)  # 95 % of capacity: yellow
    produce(kafka_bootstrap, worker.topics.readings, [copy, copy, copy])
    deadline = time.monotonic() + 30
    while metric(worker, "puhui_readings_duplicate_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(1.0)  # anything a copy could have sent has been sent by now
    msgs = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 1)
    lane = [json.loads(m.value) for m in msgs]
    assert len(lane) == 1 and lane[0]["change"] == "raised" and lane[0]["level"] == "yellow"
    assert metric(worker, "puhui_readings_duplicate_total") == 2
    assert metric(worker, "puhui_readings_processed_total") == 1
    rows = wait_db(
        worker.database_url, "select count(*) from alert_history", until=lambda rs: rs[0][0] >= 1
    )
    assert rows[0][0] == 1


def test_bad_records_are_dead_lettered_and_good_ones_still_alert(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker()
    good1 = reading("g1", LANE, "smoke", 1, 0, sensor="smk-1")
    good2 = reading("g2", ATRIUM, "people_count", 3100, 0)  # 5.2/m²: red
    base = json.loads(good2[1])
    bad: dict[str, bytes] = {
        "malformed_json": b'{"reading_id": ',
        "missing_field": json.dumps({k: v for k, v in base.items() if k != "value"}).encode(),
        "unknown_zone": json.dumps({**base, "reading_id": "b3", "zone_id": "atlantis"}).encode(),
        "unknown_kind": json.dumps({**base, "reading_id": "b4", "kind": "radiation"}).encode(),
        "naive_time": json.dumps(
            {**base, "reading_id": "b5", "observed_at": "2026-10-01T19:00:00"}
        ).encode(),
        "impossible_value": json.dumps({**base, "reading_id": "b6", "value": -5}).encode(),
        "too_large": json.dumps({**base, "reading_id": "b7", "pad": "x" * 70_000}).encode(),
    }
    nan = json.dumps({**base, "reading_id": "b8", "value": float("nan")}).encode()
    assert b"NaN" in nan
    records = [good1, *[(b"k", v) for v in bad.values()], (None, nan), good2]
    produce(kafka_bootstrap, worker.topics.readings, records)

    dead = consume(kafka_bootstrap, worker.topics.dead_letters, until=lambda ms: len(ms) >= 8)
    by_value = {m.value: dict(m.headers) for m in dead}
    for reason, value in bad.items():
        headers = by_value[value]  # the value bytes are unchanged
        assert headers["error.reason"] == reason.encode(), (reason, headers)
        assert headers["error.detail"]
        assert headers["source.topic"] == worker.topics.readings.encode()
        assert int(headers["source.partition"]) >= 0 and int(headers["source.offset"]) >= 0
    assert by_value[nan]["error.reason"] == b"impossible_value"
    assert b"value" in by_value[bad["missing_field"]]["error.detail"]

    alerts = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 2)
    got = {
        (json.loads(m.value)["zone_id"], json.loads(m.value)["risk"], json.loads(m.value)["level"])
        for m in alerts
    }
    assert got == {(LANE, "fire", "orange"), (ATRIUM, "crowding", "red")}
    assert metric(worker, "puhui_readings_rejected_total") == 8


def test_one_smoke_detector_orange_second_red_and_unkeyed_readings_are_rekeyed(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker()
    first = reading("sm1", LANE, "smoke", 1, 0, sensor="smk-1")
    second = reading("sm2", LANE, "smoke", 1, 2, sensor="smk-2")
    produce(kafka_bootstrap, worker.topics.readings, [first])
    consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 1)
    produce(kafka_bootstrap, worker.topics.readings, [(None, second[1])])  # no key
    msgs = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 2)
    recs = alert_records(msgs)
    assert [(r["change"], r["level"], r["risk"]) for r in recs] == [
        ("raised", "orange", "fire"),
        ("escalated", "red", "fire"),
    ]
    assert recs[1]["evidence"]["detectors_in_alarm"] == ["smk-1", "smk-2"]
    assert "烟感" in recs[0]["summary"]["zh"]
    assert metric(worker, "puhui_readings_rekeyed_total") == 1


def test_operator_commands_become_alert_records_with_audit(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker()
    produce(
        kafka_bootstrap, worker.topics.readings, [reading("op1", ATRIUM, "people_count", 2500, 0)]
    )  # orange
    (raised,) = [
        json.loads(m.value)
        for m in consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 1)
    ]

    def command(cid: str, action: str, **extra: str) -> tuple[bytes, bytes]:
        body = {
            "command_id": cid,
            "alert_id": raised["alert_id"],
            "zone_id": ATRIUM,
            "action": action,
            "actor": "operator-li",
            "issued_at": "2026-10-01T19:03:00+08:00",
            **extra,
        }
        return ATRIUM.encode(), json.dumps(body).encode()

    ack = command("cmd-1", "acknowledge", note="已派人前往")
    produce(
        kafka_bootstrap,
        worker.topics.commands,
        [
            ack,
            ack,
            command("cmd-2", "assign", assignee="网格员 王"),
            command("cmd-3", "resolve", note="人群已疏散"),
        ],
    )
    msgs = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 4)
    recs = alert_records(msgs)
    assert [(r["change"], r["status"], r["revision"], r["actor"]) for r in recs] == [
        ("raised", "firing", 1, None),
        ("acknowledged", "acknowledged", 2, "operator-li"),
        ("assigned", "acknowledged", 3, "operator-li"),
        ("resolved", "resolved", 4, "operator-li"),
    ]
    assert recs[1]["note"] == "已派人前往" and recs[2]["assignee"] == "网格员 王"
    hist = wait_db(
        worker.database_url,
        "select revision, change, actor, note from alert_history order by revision",
        until=lambda rs: len(rs) == 4,
    )
    assert hist[1][1:] == ("acknowledged", "operator-li", "已派人前往")
    # a command for an alert that is no longer open changes nothing
    produce(kafka_bootstrap, worker.topics.commands, [command("cmd-4", "acknowledge")])
    deadline = time.monotonic() + 20
    while metric(worker, 'puhui_commands_total{action="acknowledge",outcome="not_open"}') < 1:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert metric(worker, 'puhui_commands_total{action="acknowledge",outcome="duplicate"}') == 1


def test_reports_open_merge_and_corroborate_alerts_and_are_stored(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker()

    def report(rid: str, who: str, cat: str, minute: float, zone: str = LANE) -> tuple:
        body = {
            "report_id": rid,
            "reporter_id": who,
            "zone_id": zone,
            "category": cat,
            "description": "泰康路有人摔倒 <b>",
            "submitted_at": (T0 + timedelta(minutes=minute)).isoformat(),
        }
        return zone.encode(), json.dumps(body).encode()

    produce(
        kafka_bootstrap,
        worker.topics.readings,
        [reading("sm-a", ATRIUM, "smoke", 1, 0, sensor="smk-1")],
    )
    consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 1)
    produce(
        kafka_bootstrap,
        worker.topics.reports,
        [
            report("rep-1", "vol-a", "injury", 1),
            report("rep-2", "vol-a", "injury", 2),
            report("rep-3", "vol-b", "injury", 3),
            (None, report("rep-4", "vol-c", "injury", 4)[1]),
            report("rep-5", "vol-d", "fire", 5, zone=ATRIUM),
        ],
    )
    msgs = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 6)
    recs = alert_records(msgs)
    lane = [(r["risk"], r["change"], r["level"]) for r in recs if r["zone_id"] == LANE]
    # vol-a opens it; vol-a again changes nothing; vol-b is new (a revision, same level);
    # vol-c is the third distinct reporter: one level up
    assert lane == [
        ("report", "raised", "orange"),
        ("report", "corroborated", "orange"),
        ("report", "escalated", "red"),
    ]
    fire = [(r["change"], r["level"]) for r in recs if r["zone_id"] == ATRIUM]
    assert fire == [("raised", "orange"), ("escalated", "red"), ("corroborated", "red")]
    rows = wait_db(
        worker.database_url,
        "select report_id, alert_id from reports order by report_id",
        until=lambda rs: len(rs) == 5 and all(r[1] for r in rs),
    )
    lane_alert = next(r["alert_id"] for r in recs if r["zone_id"] == LANE)
    fire_alert = next(r["alert_id"] for r in recs if r["zone_id"] == ATRIUM)
    assert rows == [
        ("rep-1", lane_alert),
        ("rep-2", lane_alert),
        ("rep-3", lane_alert),
        ("rep-4", lane_alert),
        ("rep-5", fire_alert),
    ]


def test_rules_reload_without_losing_alert_state(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    from alerts.config import bundled_rules_path

    rules = tmp_path / "rules.yaml"
    rules.write_text(bundled_rules_path().read_text(encoding="utf-8"), encoding="utf-8")
    worker = make_worker(PUHUI_RULES_FILE=str(rules))
    produce(
        kafka_bootstrap, worker.topics.readings, [reading("rl-1", ATRIUM, "people_count", 1300, 0)]
    )  # 2.17/m²: blue
    (first,) = [
        json.loads(m.value)
        for m in consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 1)
    ]
    assert first["level"] == "blue"
    # the atrium's operator lowers its thresholds: 2.17/m² is now orange
    text = rules.read_text(encoding="utf-8").replace(
        "zones: {}",
        "zones:\n  zhonghai-intl-centre-lobby:\n    crowding:\n"
        "      density: {blue: 1.0, yellow: 1.5, orange: 2.0, red: 3.0}",
    )
    rules.write_text(text, encoding="utf-8")
    deadline = time.monotonic() + 30
    while "rules reloaded" not in worker.tail(200):
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.5)
    produce(
        kafka_bootstrap, worker.topics.readings, [reading("rl-2", ATRIUM, "people_count", 1310, 1)]
    )
    msgs = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= 2)
    recs = alert_records(msgs)
    assert [(r["change"], r["level"], r["revision"]) for r in recs] == [
        ("raised", "blue", 1),
        ("escalated", "orange", 2),
    ]
    assert recs[0]["alert_id"] == recs[1]["alert_id"]  # the same alert: state survived
    # a broken file is refused and the rules in force stay
    rules.write_text("defaults: [not, a, mapping]", encoding="utf-8")
    deadline = time.monotonic() + 30
    while "not reloaded" not in worker.tail(200):
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.5)
