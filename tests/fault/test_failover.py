"""Two workers share the partitions; one is killed with SIGKILL: the other takes its partitions
over, with their zone state recovered from the changelog, and nothing is lost.

Each zone's first smoke detector goes off before the kill (one detector: 橙). After the kill, each
zone's second detector goes off two minutes later: the rule says 红 only if the first one is
remembered, so a 红 escalation of the SAME alert id in a zone the dead worker held proves its state
came back from the changelog (the readings before the kill were committed, so they are not read
again).
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
    assert_history_consistent,
    committed_offsets,
    db_rows,
    end_offsets,
    label_values,
    metric,
    produce_all,
    reading,
    scrape,
    start_group,
    wait_until,
    write_zones,
    zone_ids,
)
from tests.support.parts import Worker

pytestmark = pytest.mark.fault

ZONES = 40


def test_a_killed_workers_partitions_and_state_are_taken_over(
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    fresh_pg_database: str,
    tmp_path: Path,
) -> None:
    url = fresh_pg_database
    ids = zone_ids("kz", ZONES)
    zones_file = write_zones(tmp_path / "zones.yaml", ids)
    keeper, victim = start_group(
        make_worker,
        2,
        PUHUI_DATABASE_URL=url,
        PUHUI_ZONES_FILE=str(zones_file),
        PUHUI_TOPIC_PARTITIONS="4",
    )
    topics = keeper.topics
    group = keeper.env["PUHUI_APP_ID"]
    expected = {z: alert_id_for(z, Risk.FIRE, f"{z}-smoke-1") for z in ids}

    # Before the kill: one detector per zone, 橙, handled by whichever worker holds the zone.
    first = [reading(f"{z}-smoke-1", z, "smoke", 1, T0, sensor="smk-1") for z in ids]
    produce_all(kafka_bootstrap, topics.readings, first)
    wait_until(
        lambda: db_rows(url, "select count(*) from alerts")[0][0] == ZONES, 60, "橙 in every zone"
    )
    victim_zones = label_values(
        scrape(victim.metrics_url), "puhui_zone_last_reading_timestamp_seconds", "zone"
    )
    keeper_zones = label_values(
        scrape(keeper.metrics_url), "puhui_zone_last_reading_timestamp_seconds", "zone"
    )
    assert victim_zones and keeper_zones, "both workers must hold partitions"
    assert victim_zones | keeper_zones == set(ids) and not victim_zones & keeper_zones
    # Committed, so the first detectors are not read again after the kill: the keeper can only
    # know of them from the changelog.
    wait_until(
        lambda: (
            committed_offsets(kafka_bootstrap, group, topics.readings)
            == end_offsets(kafka_bootstrap, topics.readings)
        ),
        30,
        "the first readings committed",
    )
    keeper_before = metric(keeper.metrics_url, "puhui_readings_processed_total")

    victim.kill()
    killed = time.monotonic()
    second = [
        reading(f"{z}-smoke-2", z, "smoke", 1, T0 + timedelta(minutes=2), sensor="smk-2")
        for z in ids
    ]
    produce_all(kafka_bootstrap, topics.readings, second)

    def escalated() -> bool:
        rows = db_rows(url, "select count(*) from alerts where revision = 2")
        return rows[0][0] == ZONES

    try:
        wait_until(escalated, 120, "红 in every zone")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- keeper log ---\n{keeper.tail(60)}") from exc
    taken_over_after = time.monotonic() - killed
    print(
        f"\nthe victim held {len(victim_zones)} of {ZONES} zones; the keeper escalated all of "
        f"them {taken_over_after:.1f}s after the kill"
    )

    # Every zone: its one alert, escalated to 红 — never a second alert id for the episode.
    alerts = assert_history_consistent(url)
    assert {a.zone_id: a.alert_id for a in alerts} == expected
    assert {(a.risk, a.level, a.revision) for a in alerts} == {("fire", "red", 2)}
    detectors = db_rows(url, "select zone_id, evidence from alerts")
    for zone, evidence in detectors:
        assert evidence["detectors_in_alarm"] == ["smk-1", "smk-2"], zone
    # The keeper did the second half alone, reading each second detector once and nothing again.
    assert metric(keeper.metrics_url, "puhui_readings_processed_total") == keeper_before + ZONES
