"""``puhui bench``, short: every figure's code path runs and is measured, with tiny numbers.

No timing is asserted (the machine is shared and noisy): only that each of (a)…(f) measured what
it says, on a broker of the bench's own, and that nothing it started is left running.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.kafka_admin import port_open
from tools.bench import (
    BenchOptions,
    busy_evening,
    command_line,
    percentile,
    render,
    run_bench,
    write_zones,
)
from tools.bench.workloads import cadence_evening, cadence_zones

pytestmark = pytest.mark.integration

READINGS = 600
ZONES = 12
RSS_ZONES = 30
CADENCE_MINUTES = 1.0  # (f): 12 zones with 30-second cameras, then 1 zone with 1-second ones


def test_bench_measures_every_figure(tmp_path: Path) -> None:
    options = BenchOptions(
        readings=READINGS,
        zones=ZONES,
        rate=100,
        latency_seconds=4,
        probe_zones=6,
        rss_zones=RSS_ZONES,
        cadence=True,
        cadence_minutes=CADENCE_MINUTES,
        state_dir=tmp_path / "bench",
        phase_timeout=240,
    )
    report = run_bench(options, command_line(options))

    assert report.command.startswith(f"puhui bench --readings {READINGS} --zones {ZONES}")
    assert report.machine["nproc"] >= 1 and report.machine["versions"]["kafka"] == "4.1.1"
    assert not port_open(report.broker, timeout=0.5), "the bench's broker is still up"
    assert report.broker != "127.0.0.1:39092", "the bench must not use the shared test broker"
    (run,) = report.runs
    load = run["workload"]
    assert load["readings"] == READINGS == load["valid"] + load["duplicates"] + load["invalid"]
    assert load["duplicates"] > 0 and load["invalid"] > 0

    raw, bare, pipe = run["a_raw"], run["b_faust"], run["c_pipeline"]
    for figure in (raw, bare, pipe):
        assert figure["records"] == READINGS
        assert figure["seconds"] > 0 and figure["rate"] > 0
    # (c): every record handled, each on its path; the persist agent caught up.
    assert pipe["processed"] == load["valid"]
    assert pipe["duplicates"] == load["duplicates"] and pipe["stale"] == 0
    assert pipe["rejected"] == load["invalid"]
    assert pipe["alert_records"] > 0
    assert pipe["persisted"] == pipe["alert_records"] == pipe["alert_records_metric"]
    assert pipe["db_batches"] >= 1 and pipe["db_errors"] == 0
    assert pipe["worker_cpu_ms_per_reading"] > 0
    assert run["ratio_c_b"] == pytest.approx(
        pipe["rate"] / bare["rate"], rel=0.01, abs=5e-4
    )  # 3 decimals

    # (d): alert records timed from the reading that caused each one.
    lat = run["d_latency"]
    assert lat["readings"] == 400 and lat["processed"] >= 400
    assert lat["timed"] > 0 and lat["timed_by_change"].get("raised", 0) > 0
    assert set(lat["timed_by_change"]) <= {"raised", "escalated", "deescalated", "confirmed"}
    assert 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]

    # (e): every zone holds state, and the memory was read.
    rss = run["e_rss"]
    assert rss["zones_with_state"] == RSS_ZONES and rss["processed"] == rss["readings"]
    assert rss["rss_mb"] > 0 and rss["hwm_mb"] >= rss["rss_mb"]

    # (f): the busy evening at both camera cadences, each drained by a worker of its own.
    cadence = run["f_cadence"]
    for label, interval, zones in (
        ("slow", 30.0, ZONES),
        ("fast", options.cadence_fast, cadence_zones(ZONES, options.cadence_fast)),
    ):
        figure = cadence[label]
        areas = write_zones(tmp_path / f"{label}.yaml", zones, options.seed)
        queued = cadence_evening(areas, interval, 60 * CADENCE_MINUTES, options.seed, "t")
        assert figure["camera_interval_s"] == interval and figure["zones"] == zones
        assert figure["readings"] == len(queued.records) and figure["valid"] == queued.valid
        assert figure["processed"] == queued.valid
        # every repeat is dropped: as a duplicate, or as stale once its sensor sent a newer one
        handled = figure["processed"] + figure["duplicates"] + figure["stale"] + figure["rejected"]
        assert handled == len(queued.records) == queued.valid + queued.duplicates + queued.invalid
        assert figure["event_minutes"] >= CADENCE_MINUTES
        assert figure["worker_cpu_ms_per_reading"] > 0
    fast_cpu = cadence["fast"]["worker_cpu_ms_per_reading"]
    slow_cpu = cadence["slow"]["worker_cpu_ms_per_reading"]
    assert cadence["ratio_fast_slow"] == pytest.approx(fast_cpu / slow_cpu, rel=0.01, abs=5e-4)
    assert run["targets"]["cadence_cpu_ratio"]["value"] == cadence["ratio_fast_slow"]

    assert set(run["targets"]) == {"ratio_c_b", "p99_ms", "rss_mb", "cadence_cpu_ratio"}
    assert run["security"] == "SASL_SSL"  # the default: what production runs
    table = render(report)
    assert table.count("\n") == 2 and "| (f) fast/slow |" in table  # header, rule, one run


def test_workload_holds_what_it_says(tmp_path: Path) -> None:
    areas = write_zones(tmp_path / "zones.yaml", 20, seed=3)
    load = busy_evening(areas, 2_000, seed=3, tag="t")
    assert len(load.records) == 2_000
    assert load.valid + load.duplicates + load.invalid == 2_000
    assert {key.decode() for key, _ in load.records} == set(areas)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
