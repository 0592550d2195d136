"""``puhui bench``: its options on the command line, and the command itself."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.bench.options import BenchOptions
from tools.bench.report import render
from tools.bench.run import run_bench

# -------------------------------------------------------------------------- CLI plumbing ----


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``puhui bench``."""
    d = BenchOptions()
    parser.add_argument("--readings", type=int, default=d.readings, help="N queued readings")
    parser.add_argument("--zones", type=int, default=d.zones, help="zones of the N readings")
    parser.add_argument("--rate", type=float, default=d.rate, help="(d) offered readings/s")
    parser.add_argument(
        "--also-rate",
        type=float,
        action="append",
        default=[],
        help="(d) again at this rate too (repeatable), e.g. one the worker can sustain",
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=d.latency_seconds, help="(d) load duration"
    )
    parser.add_argument(
        "--probe-zones", type=int, default=d.probe_zones, help="(d) zones that raise alerts"
    )
    parser.add_argument("--rss-zones", type=int, default=d.rss_zones, help="(e) zones")
    parser.add_argument(
        "--cadence",
        action="store_true",
        help="(f) too: worker CPU per reading with cameras every 30 s and every --cadence-fast s",
    )
    parser.add_argument(
        "--cadence-fast",
        type=float,
        default=d.cadence_fast,
        metavar="SECONDS",
        help="(f) the fast cameras' interval (≥ 1 s)",
    )
    parser.add_argument(
        "--cadence-minutes",
        type=float,
        default=d.cadence_minutes,
        metavar="M",
        help="(f) event minutes each cadence's readings span (at least)",
    )
    parser.add_argument("--partitions", type=int, default=d.partitions)
    parser.add_argument("--repeat", type=int, default=d.repeat, help="runs of (a)…(f)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--database-url", default=None, help="default: SQLite in the run dir")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, DBs)")
    parser.add_argument(
        "--profile", action="store_true", help="add a py-spy'd run; keeps its profiles"
    )
    parser.add_argument("--phase-timeout", type=float, default=d.phase_timeout)
    parser.add_argument(
        "--worker-source",
        type=Path,
        default=None,
        help="run the workers from this source tree (a scratch copy with a proposed change)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the report here too")
    parser.add_argument(
        "--security",
        choices=["SASL_SSL", "PLAINTEXT", "both"],
        default=d.security,
        help="the broker's client listener; both = one broker of each, runs interleaved",
    )


def options_from(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(
        readings=args.readings,
        zones=args.zones,
        rate=args.rate,
        also_rates=tuple(args.also_rate),
        latency_seconds=args.latency_seconds,
        probe_zones=args.probe_zones,
        rss_zones=args.rss_zones,
        cadence=args.cadence,
        cadence_fast=args.cadence_fast,
        cadence_minutes=args.cadence_minutes,
        partitions=args.partitions,
        repeat=args.repeat,
        seed=args.seed,
        database_url=args.database_url,
        state_dir=args.state_dir,
        keep=args.keep,
        profile=args.profile,
        phase_timeout=args.phase_timeout,
        worker_source=args.worker_source,
        security=args.security,
    )


def command_line(options: BenchOptions) -> str:
    """The ``puhui bench`` command line that gives ``options`` (every measured knob spelt out)."""
    parts = [
        "puhui bench",
        f"--readings {options.readings}",
        f"--zones {options.zones}",
        f"--rate {options.rate:g}",
        *(f"--also-rate {r:g}" for r in options.also_rates),
        f"--latency-seconds {options.latency_seconds:g}",
        f"--probe-zones {options.probe_zones}",
        f"--rss-zones {options.rss_zones}",
        *(
            [
                "--cadence",
                f"--cadence-fast {options.cadence_fast:g}",
                f"--cadence-minutes {options.cadence_minutes:g}",
            ]
            if options.cadence
            else []
        ),
        f"--partitions {options.partitions}",
        f"--repeat {options.repeat}",
        f"--seed {options.seed}",
        f"--security {options.security}",
    ]
    if options.database_url:
        parts.append("--database-url URL")
    if options.profile:
        parts.append("--profile")
    if options.worker_source:
        parts.append(f"--worker-source {options.worker_source}")
    return " ".join(parts)


def main_bench(args: argparse.Namespace) -> int:
    """``puhui bench``: run, print the JSON report and a table of the figures."""
    options = options_from(args)
    if min(options.readings, options.zones, options.rss_zones, options.repeat) < 1:
        print("--readings, --zones, --rss-zones and --repeat must be positive", file=sys.stderr)
        return 2
    if options.cadence and (options.cadence_fast < 1 or options.cadence_minutes <= 0):
        # The busy evening's event time ticks once a second: a sensor sends at most that often.
        print("--cadence-fast must be ≥ 1 and --cadence-minutes positive", file=sys.stderr)
        return 2
    report = run_bench(options, command_line(options))
    data = json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(data + "\n", encoding="utf-8")
    print(data)
    print(render(report))
    return 0
