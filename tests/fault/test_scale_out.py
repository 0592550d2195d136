"""Two workers of one consumer group against PostgreSQL share the work (docs/scaling.md).

Six partitions, two ``puhui worker`` processes with the same app id: Kafka gives each a share of
the partitions (and so of the zones, every record being keyed by zone). Both must process
readings, their counts must add up to what was produced, each zone must be handled by exactly one
of them, and every expected alert must be in the shared database exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.zone.alert import alert_id_for
from models.contracts import Risk
from tests.support.fault import (
    T0,
    assert_history_consistent,
    db_rows,
    group_state,
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

ZONES = 60
PER_ZONE = 10  # 9 quiet gas readings, then one at 30 % LEL (橙)


def test_two_workers_share_the_partitions_and_the_totals_add_up(
    make_worker: Callable[..., Worker],
    kafka_bootstrap: str,
    fresh_pg_database: str,
    tmp_path: Path,
) -> None:
    url = fresh_pg_database
    ids = zone_ids("sz", ZONES)
    zones_file = write_zones(tmp_path / "zones.yaml", ids)
    workers = start_group(
        make_worker,
        2,
        PUHUI_DATABASE_URL=url,
        PUHUI_ZONES_FILE=str(zones_file),
        PUHUI_TOPIC_PARTITIONS="6",
    )
    topics = workers[0].topics

    records = []
    for k in range(PER_ZONE):
        for zone in ids:
            value = 30 if k == PER_ZONE - 1 else 5
            at = T0 + timedelta(seconds=10 * k)
            records.append(reading(f"{zone}-g{k}", zone, "gas_lel", value, at, sensor="gas-1"))
    expected = {alert_id_for(z, Risk.GAS, f"{z}-g{PER_ZONE - 1}"): z for z in ids}
    produce_all(kafka_bootstrap, topics.readings, records)

    def processed() -> list[float]:
        return [metric(w.metrics_url, "puhui_readings_processed_total") for w in workers]

    wait_until(lambda: sum(processed()) >= len(records), 90, "every reading processed")
    wait_until(
        lambda: db_rows(url, "select count(*) from alerts")[0][0] >= ZONES, 60, "every alert"
    )
    wait_until(
        lambda: all(metric(w.metrics_url, "puhui_consumer_lag") == 0 for w in workers),
        30,
        "both workers caught up",
    )
    counts = processed()
    zones_of = [
        label_values(scrape(w.metrics_url), "puhui_zone_last_reading_timestamp_seconds", "zone")
        for w in workers
    ]
    print(
        f"\nreadings processed per worker: {counts}; zones per worker: {list(map(len, zones_of))}"
    )

    assert all(c > 0 for c in counts), counts
    assert sum(counts) == len(records)
    # A zone lives on one partition, so on one worker.
    assert zones_of[0] | zones_of[1] == set(ids) and not zones_of[0] & zones_of[1]
    assert counts == [PER_ZONE * len(z) for z in zones_of]

    alerts = assert_history_consistent(url)
    assert {a.alert_id: a.zone_id for a in alerts} == expected
    assert {(a.risk, a.level, a.revision) for a in alerts} == {("gas", "orange", 1)}
    assert db_rows(url, "select count(*) from alert_history")[0][0] == ZONES


def test_two_workers_started_together_on_a_new_database_both_come_up(
    make_worker: Callable[..., Worker], fresh_pg_database: str, tmp_path: Path
) -> None:
    """Scaling out from nothing: N workers started at once, each running ``puhui worker`` (which
    migrates the database at start-up) against one new PostgreSQL database."""
    ids = zone_ids("nz", 8)
    zones_file = write_zones(tmp_path / "zones.yaml", ids)
    env = {"PUHUI_DATABASE_URL": fresh_pg_database, "PUHUI_ZONES_FILE": str(zones_file)}
    first = make_worker(start=False, **env)
    second = make_worker(
        start=False,
        PUHUI_APP_ID=first.env["PUHUI_APP_ID"],
        PUHUI_TOPIC_PREFIX=first.prefix,
        **env,
    )
    errors: list[BaseException] = []

    def start(worker: Worker) -> None:
        try:
            worker.start(timeout=90)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(w,)) for w in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, f"a worker did not come up: {errors[0]}"
    wait_until(
        lambda: (
            group_state(first.env["PUHUI_KAFKA_BOOTSTRAP"], first.env["PUHUI_APP_ID"])
            == ("Stable", 2)
        ),
        60,
        "a stable group of both workers",
    )
