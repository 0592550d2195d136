"""The daily report against a replayed day: the simulator's surge evening (田子坊's lanes climb
to ~5.5 persons/m² and back) produced to the real broker as fast as possible, taken by a real
worker (which writes ``zone_series`` and the alerts), and the report read through the API. Its
numbers are checked against figures computed here, independently, from the replayed input (the
readings) and the worker's output topic (``puhui.alerts``) — not from the database the report
reads.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from sqlalchemy import func, select

from alerts.daily import CARRY_MINUTES
from infra.db import AlertHistoryRow, ZoneSeriesRow, make_engine
from models.contracts import Level, SensorKind, SensorReading
from models.zones import load_bundled_zones
from tests.support.api import FakePublisher, settings_for
from tests.support.parts import Worker, consume, kafka_kwargs
from tools.producing import encode_reading
from tools.simulator import generate, plan

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
DAY = datetime(2024, 5, 4, tzinfo=CST)
START = DAY.replace(hour=17)  # the surge evening, as in test_scenarios
MINUTES = 240
RANK = {level.value: level.rank for level in Level}


def _metric(worker: Worker, prefix: str) -> float:
    body = urllib.request.urlopen(worker.metrics_url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix)
    )


def minute_of(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(second=0, microsecond=0)


def expected_minutes(readings: list[SensorReading]) -> dict[tuple[str, datetime], float]:
    """Each zone's largest people count per minute, straight from the readings: a zone's people
    after a reading is the sum of its cameras' latest counts (readings arrive in time order)."""
    latest: dict[str, dict[str, float]] = {}
    out: dict[tuple[str, datetime], float] = {}
    for r in readings:
        cams = latest.setdefault(r.zone_id, {})
        cams[r.sensor_id] = r.value
        key = (r.zone_id, minute_of(r.observed_at))
        out[key] = max(out.get(key, 0.0), sum(cams.values()))
    return out


def expected_site_peaks(
    per_minute: dict[tuple[str, datetime], float],
) -> dict[str, float]:
    zones = load_bundled_zones()
    peaks: dict[str, float] = {}
    for site, members in zones.sites().items():
        series = {
            z.id: sorted((m, p) for (zid, m), p in per_minute.items() if zid == z.id)
            for z in members
        }
        stamps = sorted({m for s in series.values() for m, _ in s})
        best = 0.0
        for stamp in stamps:
            total = 0.0
            for points in series.values():
                before = [(m, p) for m, p in points if m <= stamp]
                if before and stamp - before[-1][0] <= timedelta(minutes=CARRY_MINUTES):
                    total += before[-1][1]
            best = max(best, total)
        if stamps:
            peaks[site] = best
    return peaks


def expected_alerts(records: list[dict[str, Any]], end: datetime) -> dict[str, dict[str, int]]:
    """Alerts opened that day, by risk and the highest level their records reached by ``end``."""
    start = end - timedelta(days=1)
    top: dict[str, tuple[str, str]] = {}
    for r in records:
        opened = datetime.fromisoformat(r["opened_at"])
        if not (start <= opened < end) or datetime.fromisoformat(r["at"]) >= end:
            continue
        risk, level = top.get(r["alert_id"], (r["risk"], r["level"]))
        if RANK[r["level"]] > RANK[level]:
            level = r["level"]
        top[r["alert_id"]] = (risk, level)
    out: dict[str, dict[str, int]] = {}
    for risk, level in top.values():
        counts = out.setdefault(risk, {lvl.value: 0 for lvl in Level})
        counts[level] += 1
    return out


def test_daily_report_equals_figures_computed_from_the_replayed_day(
    make_worker: Callable[..., Worker], kafka_bootstrap: str, tmp_path: Path
) -> None:
    zones = load_bundled_zones()
    window = timedelta(minutes=MINUTES)
    readings = generate(
        zones,
        START,
        window,
        scenario="surge",
        seed=7,
        noise=0.06,
        kinds={SensorKind.PEOPLE_COUNT},
    )
    scheme = plan(zones, START, window, scenario="surge", seed=7)
    worker = make_worker(PUHUI_STATUS_INTERVAL_SECONDS="1")
    producer = KafkaProducer(
        **kafka_kwargs(kafka_bootstrap), acks="all", linger_ms=20, batch_size=256 * 1024
    )
    try:
        for r in readings:
            producer.send(worker.topics.readings, key=r.zone_id.encode(), value=encode_reading(r))
        producer.flush(timeout=120)
    finally:
        producer.close()

    per_minute = expected_minutes(readings)
    stored = pending = taken = 0.0
    engine = make_engine(worker.database_url)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        # Every reading taken, and every minute it noted written (the gauge counts the minutes
        # noted or being written; a reading's minute is noted before it counts as processed).
        taken = _metric(worker, "puhui_readings_processed_total")
        pending = _metric(worker, "puhui_zone_series_pending_minutes")
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(ZoneSeriesRow)).scalar()
        if taken >= len(readings) and pending == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(
            f"took {taken}/{len(readings)} readings, {pending} minutes pending, "
            f"{stored}/{len(per_minute)} minutes stored\n"
            f"{worker.tail()}"
        )

    # Every alert record the worker published, read back from the topic; and all of them in the
    # database too (the report reads the database).
    published = _metric(worker, "puhui_alert_records_total")
    assert published > 0
    messages = consume(kafka_bootstrap, worker.topics.alerts, until=lambda ms: len(ms) >= published)
    records = [json.loads(m.value) for m in messages]
    assert len(records) == published
    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as conn:
            persisted = conn.execute(select(func.count()).select_from(AlertHistoryRow)).scalar()
        if persisted == published or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert persisted == published
    assert stored == len(per_minute)

    from api.app import create_api
    from infra.tokens import Role, create_token

    settings = settings_for(tmp_path, database_url=worker.database_url)
    token = create_token(engine, "值班员 日报", Role.OPERATOR, datetime.now(UTC))
    app = create_api(
        settings, engine=engine, publisher=FakePublisher(), now=lambda: datetime.now(UTC)
    )
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {token}"}
        response = client.get("/api/daily-report?date=2024-05-04", headers=auth)
        assert response.status_code == 200, response.text
        report = response.json()
        lane = scheme.surges[0].zone_id
        series = client.get(
            f"/api/zones/{lane}/series",
            params={"hours": MINUTES / 60, "until": (START + window).isoformat()},
            headers=auth,
        ).json()
    engine.dispose()

    # Peaks per zone: the largest minute, when, and its density.
    for z in report["zones"]:
        mine = {m: p for (zid, m), p in per_minute.items() if zid == z["zone_id"]}
        if not mine:
            assert z["peak_people"] is None and z["minutes"] == 0, z
            continue
        peak = max(mine.values())
        assert z["peak_people"] == pytest.approx(peak), z["zone_id"]
        assert datetime.fromisoformat(z["peak_at"]) == min(m for m, p in mine.items() if p == peak)
        assert z["minutes"] == len(mine)
        area = zones[z["zone_id"]].area_m2
        assert z["peak_density"] == pytest.approx(peak / area, abs=1e-4)
    # The surge lanes peak far above an ordinary evening (≈ 5.5 persons/m²).
    surged = {s.zone_id for s in scheme.surges}
    for z in report["zones"]:
        if z["zone_id"] in surged:
            assert z["peak_density"] > 4.0, z

    # Peaks per site: sums of the zones' minutes.
    sites = expected_site_peaks(per_minute)
    for s in report["sites"]:
        if s["site"] in sites:
            assert s["peak_people"] == pytest.approx(sites[s["site"]]), s["site"]
        else:
            assert s["peak_people"] is None

    # Alerts by risk and level, against the worker's output topic.
    _, end = DAY.astimezone(UTC), (DAY + timedelta(days=1)).astimezone(UTC)
    wanted = expected_alerts(records, end)
    got = {r["risk"]: r["by_level"] for r in report["alerts"]["by_risk"]}
    assert got == wanted
    assert report["alerts"]["total"] == sum(sum(c.values()) for c in wanted.values())
    assert wanted.get("crowding", {}).get("red", 0) + wanted.get("crowding", {}).get(
        "orange", 0
    ) >= len(surged)
    assert report["cases"]["opened"] == 0 and report["cases"]["on_time_rate"] is None

    # The lane's chart data: every minute of the replay, as computed.
    points = [(datetime.fromisoformat(p["at"]), p["people"]) for p in series["points"]]
    assert points == sorted((m, p) for (zid, m), p in per_minute.items() if zid == lane)
