"""The bench's parts that need no broker: the command line, the latency probe's timing of one
record, the profile summary, the report's ratios and table, and process control (real child
processes). ``tests/integration/test_bench.py`` runs the whole bench on a broker of its own."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import shlex
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from models.units import load_units
from models.zones import load_zones
from tools.bench import BenchError, BenchOptions, BenchReport, render, security_ratios
from tools.bench.cli import add_arguments, command_line, options_from
from tools.bench.helpers import _timed
from tools.bench.measure import handled, steady_rate
from tools.bench.processes import Children, wait_for_log
from tools.bench.report import summarise_profile, targets
from tools.bench.workloads import (
    Workload,
    busy_evening,
    cadence_evening,
    cadence_zones,
    latency_slots,
    readings_per_zone_second,
    stateful_zones,
    write_units,
    write_zones,
)


def test_the_command_line_gives_back_its_options() -> None:
    options = BenchOptions(
        readings=1234,
        zones=17,
        rate=250.0,
        also_rates=(100.0, 500.0),
        latency_seconds=12.5,
        probe_zones=9,
        rss_zones=40,
        partitions=2,
        repeat=3,
        seed=11,
        security="both",
    )
    line = command_line(options)
    assert line.startswith("puhui bench --readings 1234 --zones 17 --rate 250")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args(shlex.split(line)[2:])) == options
    assert "--cadence" not in line  # (f) is off by default: the line says so by leaving it out
    cadence = dataclasses.replace(options, cadence=True, cadence_fast=2.5, cadence_minutes=3)
    line = command_line(cadence)
    assert "--rss-zones 40 --cadence --cadence-fast 2.5 --cadence-minutes 3 " in line
    assert options_from(parser.parse_args(shlex.split(line)[2:])) == cadence


def _alert(change: str, reading_id: str) -> bytes:
    return json.dumps({"change": change, "evidence": {"reading_id": reading_id}}).encode()


def test_an_alert_record_is_timed_from_the_produce_time_in_its_readings_id() -> None:
    produced_ns = 1_790_000_000_000_000_000
    arrived_ns = produced_ns + 42_500_000
    sample = _timed(_alert("raised", f"labc123-7-{produced_ns}"), arrived_ns)
    assert sample == {"change": "raised", "ms": 42.5}
    # resolved records keep the raising reading's evidence; sweeps have no produce time
    assert _timed(_alert("resolved", f"labc123-7-{produced_ns}"), arrived_ns) is None
    assert _timed(_alert("raised", "watermark@2026-10-01T18:00:00"), arrived_ns) is None
    assert _timed(b'{"change": ', arrived_ns) is None


def test_the_profile_summary_sorts_event_loop_samples_and_finds_database_work(
    tmp_path: Path,
) -> None:
    loop = 'process 1:"python";thread (0x1): MainThread;BaseEventLoop._run_once (asyncio/b.py:1)'
    pool = 'process 1:"python";thread (0x2): ThreadPoolExecutor-0_0'
    raw = tmp_path / "worker.txt"
    raw.write_text(
        f"{loop};decode_reading (models/contracts.py:10) 30\n"
        f"{loop};write_alert_batch (infra/db.py:5);execute (sqlalchemy/engine/base.py:9) 10\n"
        f"{pool};execute (sqlalchemy/engine/base.py:9) 60\n"
        "not a sample line\n"
    )
    summary = summarise_profile(raw)
    assert summary["samples"] == 100 and summary["event_loop_samples"] == 40
    assert summary["database_samples_on_event_loop"] == 10
    assert summary["database_samples_in_threads"] == 60
    assert summary["threads"] == {"ThreadPoolExecutor-0_0": 60.0, "MainThread": 40.0}
    assert summary["event_loop"] == {
        "decode + validate (pydantic)": 75.0,
        "persist agent + database": 25.0,
    }
    assert "error" in summarise_profile(tmp_path / "missing.txt")


def _figures(rate: float, p99: float, rss: float, cpu: float, security: str) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "security": security,
        "a_raw": {"rate": 4 * rate, "cpu_ms_per_record": cpu / 4},
        "b_faust": {"rate": 2 * rate, "cpu_ms_per_record": cpu / 2},
        "c_pipeline": {"rate": rate, "worker_cpu_ms_per_reading": cpu},
        "ratio_c_b": 0.5,
        "d_latency": {"p50_ms": p99 / 2, "p99_ms": p99, "timed": 8, "worker_cpu_ms_per_reading": 1},
        "e_rss": {"rss_mb": rss},
    }
    figures["targets"] = targets(figures)
    return figures


def test_the_report_compares_sasl_ssl_with_plaintext_on_medians() -> None:
    report = BenchReport(
        command="puhui bench --security both",
        started_at="2026-12-05T04:00:00+00:00",
        broker="127.0.0.1:1,127.0.0.1:2",
        machine={},
        options={},
        runs=[
            _figures(1000, 80, 150, 2.0, "PLAINTEXT"),
            _figures(800, 90, 150, 2.5, "SASL_SSL"),
            _figures(1000, 80, 150, 2.0, "PLAINTEXT"),
            _figures(800, 90, 150, 2.5, "SASL_SSL"),
        ],
    )
    ratios = security_ratios(report)
    assert ratios["(c) pipeline /s"] == 0.8
    assert ratios["(d) p99 ms"] == 1.125
    assert ratios["(c) worker CPU ms/reading"] == 1.25
    assert ratios["(e) RSS MB"] == 1.0
    assert report.to_dict()["sasl_ssl_over_plaintext"] == ratios
    table = render(report)
    assert table.count("| PLAINTEXT |") == 2 and table.count("| SASL_SSL |") == 2
    assert "SASL_SSL / PLAINTEXT (medians over the runs): (a) raw /s 0.80" in table
    assert report.runs[0]["targets"]["ratio_c_b"]["met"] is False  # 0.5 < 0.8
    assert report.runs[0]["targets"]["p99_ms"]["met"] is True
    # one security mode: no ratios
    assert security_ratios(BenchReport("c", "t", "b", {}, {}, runs=report.runs[:1])) == {}


def test_handled_counts_every_path_and_the_steady_rate_skips_start_up() -> None:
    sample = {
        "puhui_readings_processed_total": 90.0,
        "puhui_readings_duplicate_total": 5.0,
        "puhui_readings_stale_total": 2.0,
        "puhui_readings_rejected_total": 3.0,
        "puhui_alert_records_total": 50.0,
    }
    assert handled(sample) == 100.0
    samples = [(0.0, 0.0), (1.0, 5.0), (2.0, 20.0), (4.0, 60.0)]
    assert steady_rate(samples, 100) == 20.0  # from the first sample at >= 10 % on
    assert steady_rate(samples[:3], 100) is None


def test_the_rss_workload_gives_every_zone_state_and_the_latency_slots_spread_a_zone(
    tmp_path: Path,
) -> None:
    areas = write_zones(tmp_path / "zones.yaml", 20, seed=5)
    load = stateful_zones(areas, seed=5, tag="t")
    assert load.valid == len(load.records) == 31 * 20
    assert {key.decode() for key, _ in load.records} == set(areas)
    slots = latency_slots(sorted(areas), probes=4)
    assert len(slots) == 5 * 20
    assert sum(probe for *_, probe in slots) == 4  # one gas sensor in each probe zone
    assert [zone for zone, *_ in slots[:20]] == sorted(areas)  # sensor-major order


def test_the_synthetic_units_fit_the_synthetic_zones(tmp_path: Path) -> None:
    write_zones(tmp_path / "zones.yaml", 12, seed=7)
    write_units(tmp_path / "units.yaml")
    zones = load_zones(tmp_path / "zones.yaml")
    units = load_units(tmp_path / "units.yaml", zones)  # a worker refuses units that do not fit
    for zone in zones:
        assert [u.id for u in units.serving(zone.grid.value, zone.site)] == [
            f"bench-grid-{zone.grid.value}"
        ]


def test_children_are_awaited_on_their_log_and_stopped(tmp_path: Path) -> None:
    children = Children()
    try:
        ready = children.spawn(
            "ready",
            [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"],
            {},
            tmp_path / "ready.log",
            cwd=tmp_path,
        )
        assert wait_for_log(ready, b"up", deadline=_in(60)) > 0
        broken = children.spawn(
            "broken",
            [sys.executable, "-c", "print('no luck'); raise SystemExit(3)"],
            {},
            tmp_path / "broken.log",
            cwd=tmp_path,
        )
        with pytest.raises(BenchError, match=r"broken exited 3:\nno luck"):
            wait_for_log(broken, b"up", deadline=_in(60))
    finally:
        children.close()
    assert ready.proc.poll() is not None and children.children == []


def _in(seconds: float) -> float:
    return time.monotonic() + seconds


#: ``busy_evening`` over 7 zones (seed 5), 900 readings, tag "pin", as main produced it at
#: 666b08a, before the cameras' interval was an option: its default must not change a byte.
#: (The bytes are ``tools.producing.encode_reading``'s too: a change there shows up here.)
BUSY_EVENING_PIN = "fda293bcb801d19763d7d3873040f4bb0109d184b2c47d97ec1ad947627fd541"


def _digest(load: Workload) -> str:
    digest = hashlib.sha256()
    for key, value in load.records:
        digest.update(key + b"\0" + value + b"\n")
    return digest.hexdigest()


def _camera_times(load: Workload, sensor: str) -> list[float]:
    """Event times (s) of ``sensor``'s valid readings, in produce order (repeats dropped)."""
    seen: dict[str, float] = {}
    for _, value in load.records:
        try:
            body = json.loads(value)
        except ValueError:
            continue  # the invalid records
        if body["sensor_id"] == sensor:
            seen.setdefault(body["reading_id"], _seconds(body["observed_at"]))
    return list(seen.values())


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_the_busy_evenings_camera_interval_defaults_to_todays_records(tmp_path: Path) -> None:
    areas = write_zones(tmp_path / "zones.yaml", 7, seed=5)
    default = busy_evening(areas, 900, seed=5, tag="pin")
    assert _digest(default) == BUSY_EVENING_PIN
    assert busy_evening(areas, 900, seed=5, tag="pin", camera_interval=30.0) == default
    fast = busy_evening(areas, 900, seed=5, tag="pin", camera_interval=1.0)
    assert len(fast.records) == 900 and fast.records != default.records
    # The cameras send every 30 s by default, every second with 1.0; the rest every 60 s. (A
    # gap is a multiple where an invalid record took a reading's place.)
    zone = sorted(areas)[0]
    for load, camera_gap in ((default, 30.0), (fast, 1.0)):
        cam = [b - a for a, b in itertools.pairwise(_camera_times(load, f"{zone}/cam-1"))]
        gas = [b - a for a, b in itertools.pairwise(_camera_times(load, f"{zone}/gas-1"))]
        assert len(cam) >= 2 and Counter(cam).most_common(1)[0][0] == camera_gap
        assert all(gap % camera_gap == 0 for gap in cam)
        assert all(gap % 60 == 0 for gap in gas)
    # 900 readings span far less event time with 1-second cameras: 900 / (7 × Σ 1/interval)
    assert default.event_seconds == pytest.approx(900 / (7 * (2 / 30 + 7 / 60)), rel=0.1)
    assert fast.event_seconds == pytest.approx(900 / (7 * (2 / 1 + 7 / 60)), rel=0.15)


def test_the_cadence_zones_give_both_cadences_about_as_many_readings(tmp_path: Path) -> None:
    # A zone's readings per event second: 2 cameras + 7 sensors every 60 s.
    assert readings_per_zone_second() == pytest.approx(2 / 30 + 7 / 60)
    assert readings_per_zone_second(1.0) == pytest.approx(2 / 1 + 7 / 60)
    assert cadence_zones(200, 1.0) == 17  # 200 × 0.1833 / 2.1167 = 17.3
    assert cadence_zones(200, 30.0) == 200
    assert cadence_zones(20, 2.0) == 3  # 20 × 0.1833 / 1.1167 = 3.3
    assert cadence_zones(30, 1.0) == 3  # 2.6: rounded, not cut
    assert cadence_zones(5, 1.0) == 1  # 0.43: never no zone
    ten_minutes = 600.0
    slow = cadence_evening(
        write_zones(tmp_path / "slow.yaml", 200, seed=7), 30.0, ten_minutes, seed=7, tag="s"
    )
    fast = cadence_evening(
        write_zones(tmp_path / "fast.yaml", 17, seed=7), 1.0, ten_minutes, seed=7, tag="f"
    )
    for load, zones, interval in ((slow, 200, 30.0), (fast, 17, 1.0)):
        assert load.zones == zones
        assert ten_minutes <= load.event_seconds <= ten_minutes + 10
        expected = zones * readings_per_zone_second(interval) * ten_minutes
        assert expected <= len(load.records) <= 1.03 * expected
    assert 0.9 < len(fast.records) / len(slow.records) < 1.1
    # 12 zones, 30-second cameras, 1 minute: the first guess (+2 %) falls short; more are made.
    short = cadence_evening(write_zones(tmp_path / "z.yaml", 12, 7), 30.0, 60.0, seed=7, tag="t")
    assert short.event_seconds >= 60.0


def test_the_report_shows_the_cadence_phase_and_its_target_only_when_it_ran() -> None:
    plain = _figures(1000, 80, 150, 2.0, "PLAINTEXT")
    assert "cadence_cpu_ratio" not in plain["targets"]
    with_f = _figures(1000, 80, 150, 2.0, "PLAINTEXT")
    with_f["f_cadence"] = {
        "slow": {"camera_interval_s": 30.0, "worker_cpu_ms_per_reading": 0.25},
        "fast": {"camera_interval_s": 1.0, "worker_cpu_ms_per_reading": 0.35},
        "ratio_fast_slow": 1.4,
    }
    assert targets(with_f)["cadence_cpu_ratio"] == {"target": 1.2, "value": 1.4, "met": False}
    with_f["f_cadence"]["ratio_fast_slow"] = 1.2
    assert targets(with_f)["cadence_cpu_ratio"]["met"] is True
    report = BenchReport("c", "t", "b", {}, {}, runs=[plain])
    assert "(f)" not in render(report)  # the table of a run without (f) is as before
    report.runs.append(with_f)
    header, rule, first, second = render(report).splitlines()
    assert header.endswith("| (f) CPU ms/reading slow | (f) fast | (f) fast/slow |")
    assert rule.count("|") == header.count("|") == first.count("|") == second.count("|")
    assert first.endswith("| – | – | – |")
    assert second.endswith("| 0.25 (30 s) | 0.35 (1 s) | 1.2 |")
