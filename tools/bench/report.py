"""The report: the targets, what was measured (:class:`BenchReport`), the profiles' summaries,
the Markdown table and the SASL_SSL / PLAINTEXT ratios, and the progress lines."""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: The issue's targets on a 2-core machine.
TARGET_RATIO = 0.8
TARGET_P99_MS = 100.0
TARGET_RSS_MB = 300.0
#: (f): worker CPU per reading with fast cameras ÷ with 30-second ones.
TARGET_CADENCE_RATIO = 1.2


@dataclass
class BenchReport:
    """What ``puhui bench`` measured: one entry per run, plus the machine and the command."""

    command: str
    started_at: str
    broker: str  # the bench's own broker (stopped by the time the report is returned)
    machine: dict[str, Any]
    options: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        ratios = security_ratios(self)
        if ratios:
            data["sasl_ssl_over_plaintext"] = ratios
        return data


def targets(figures: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against this run's figures ((f)'s only when it ran)."""
    ratio = figures["ratio_c_b"]
    p99 = figures["d_latency"]["p99_ms"]
    rss = figures["e_rss"]["rss_mb"]
    met = {
        "ratio_c_b": {"target": TARGET_RATIO, "value": ratio, "met": ratio >= TARGET_RATIO},
        "p99_ms": {"target": TARGET_P99_MS, "value": p99, "met": p99 is not None and p99 <= 100},
        "rss_mb": {"target": TARGET_RSS_MB, "value": rss, "met": rss is not None and rss <= 300},
    }
    if "f_cadence" in figures:
        cadence = figures["f_cadence"]["ratio_fast_slow"]
        met["cadence_cpu_ratio"] = {
            "target": TARGET_CADENCE_RATIO,
            "value": cadence,
            "met": cadence is not None and cadence <= TARGET_CADENCE_RATIO,
        }
    return met


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- profile ----

#: Where the event loop's time goes. A sample counts in the first category (in this order) one
#: of whose markers appears anywhere in its stack, so nested work lands in the most specific
#: category: the JSON of a table write counts as "zone state → table", not as "JSON".
PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/metrics scrapes (bench polling, Prometheus)", ("metrics_handler (faust/sensors",)),
    ("decode + validate (pydantic)", ("decode_reading (",)),
    ("zone state → table: to_dict", ("ZoneState.to_dict",)),
    (
        "zone state → table: Faust set + changelog JSON + send",
        ("ZoneStates.save", "ZoneStates.flush"),
    ),
    ("zone state ← table: from_dict", ("ZoneState.from_dict",)),
    ("zone engine (process_reading, sweeps)", ("process_reading (", "check_silence (")),
    ("alert records: send", ("sender.<locals>.send (streams/app.py",)),
    ("alert records: count + log", ("count_record (",)),
    ("Faust sensors (per-event metrics)", ("faust/sensors/", "streams/lag.py")),
    ("puhui metrics in the handler (prometheus_client)", ("prometheus_client/",)),
    ("handler, rest (streams/handlers.py)", ("streams/handlers.py",)),
    ("persist agent + database", ("persist (streams/app.py", "write_alert_batch", "sqlalchemy/")),
    ("zone status timer", ("write_zone_status",)),
    ("aiokafka producer (requests, socket writes)", ("aiokafka/producer/",)),
    ("Faust topics + producer buffer", ("faust/transport/producer.py", "faust/topics.py")),
    ("Faust stream + agent (events, acks)", ("faust/streams", "faust/agents/", "faust/channels")),
    ("Faust consumer + fetcher", ("faust/transport/",)),
    ("aiokafka consumer/client", ("aiokafka/",)),
    ("mode services, timers", ("mode/",)),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
)


def summarise_profile(path: Path) -> dict[str, Any]:
    """Shares of the samples of a py-spy ``record --format raw --threads`` file: per thread, and
    per :data:`PROFILE_CATEGORIES` for the event-loop (main) thread."""
    categories: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = main_total = db_on_loop = db_off_loop = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = next((f for f in frames[:2] if f.startswith("thread")), "?")
        threads[_thread_name(thread)] += count
        total += count
        in_db = "sqlalchemy/" in stack or "sqlite3/" in stack or "psycopg/" in stack
        if "MainThread" not in thread:
            db_off_loop += count if in_db else 0
            continue
        main_total += count
        db_on_loop += count if in_db else 0
        categories[_category(stack)] += count
    return {
        "samples": total,
        "event_loop_samples": main_total,
        # Database work sampled on the event loop's thread (must be 0) and in worker threads.
        "database_samples_on_event_loop": db_on_loop,
        "database_samples_in_threads": db_off_loop,
        "threads": {k: round(100 * v / max(total, 1), 1) for k, v in threads.most_common()},
        "event_loop": {
            k: round(100 * v / max(main_total, 1), 1) for k, v in categories.most_common()
        },
    }


def _thread_name(frame: str) -> str:
    match = re.search(r"\): (.+)$", frame)
    return match.group(1) if match else frame[:40]


def _category(stack: str) -> str:
    # Every stack starts in the worker's main (mode's Worker, asyncio's run_forever): match
    # below the loop's dispatch only.
    _, _, below = stack.partition("BaseEventLoop._run_once (")
    stack = below or stack
    for name, markers in PROFILE_CATEGORIES:
        if any(marker in stack for marker in markers):
            return name
    return "other"


# ------------------------------------------------------------------------------ printing ----


def render(report: BenchReport) -> str:
    """A Markdown table of the figures of each run; (f)'s columns when some run has them."""
    cadence = any("f_cadence" in fig for fig in report.runs)
    rows = [
        "| run | security | (a) raw aiokafka /s | (b) bare Faust /s | (c) pipeline /s | (c)/(b) "
        "| (d) p50 ms | (d) p99 ms | (d) timed | (e) RSS MB |"
        + (" (f) CPU ms/reading slow | (f) fast | (f) fast/slow |" if cadence else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if cadence else ""),
    ]
    for i, fig in enumerate(report.runs, 1):
        d = fig["d_latency"]
        row = (
            f"| {i} | {fig.get('security', '?')} | {fig['a_raw']['rate']:,.0f} "
            f"| {fig['b_faust']['rate']:,.0f} "
            f"| {fig['c_pipeline']['rate']:,.0f} | {fig['ratio_c_b']:.2f} "
            f"| {d['p50_ms']} | {d['p99_ms']} | {d['timed']} | {fig['e_rss']['rss_mb']} |"
        )
        if cadence:
            row += _cadence_cells(fig.get("f_cadence"))
        rows.append(row)
    ratios = security_ratios(report)
    if ratios:
        rows.append("")
        rows.append(
            "SASL_SSL / PLAINTEXT (medians over the runs): "
            + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items())
        )
    return "\n".join(rows)


def _cadence_cells(f: dict[str, Any] | None) -> str:
    if f is None:
        return " – | – | – |"
    slow, fast = f["slow"], f["fast"]
    return (
        f" {slow['worker_cpu_ms_per_reading']} ({slow['camera_interval_s']:g} s)"
        f" | {fast['worker_cpu_ms_per_reading']} ({fast['camera_interval_s']:g} s)"
        f" | {f['ratio_fast_slow']} |"
    )


def security_ratios(report: BenchReport) -> dict[str, float]:
    """With ``--security both``: each figure's median on SASL_SSL over its median on PLAINTEXT."""
    import statistics

    by_mode: dict[str, list[dict[str, Any]]] = {}
    for fig in report.runs:
        by_mode.setdefault(str(fig.get("security")), []).append(fig)
    if not {"SASL_SSL", "PLAINTEXT"} <= by_mode.keys():
        return {}
    figures: dict[str, Callable[[dict[str, Any]], Any]] = {
        "(a) raw /s": lambda f: f["a_raw"]["rate"],
        "(b) bare Faust /s": lambda f: f["b_faust"]["rate"],
        "(c) pipeline /s": lambda f: f["c_pipeline"]["rate"],
        "(d) p50 ms": lambda f: f["d_latency"]["p50_ms"],
        "(d) p99 ms": lambda f: f["d_latency"]["p99_ms"],
        "(e) RSS MB": lambda f: f["e_rss"]["rss_mb"],
        # CPU per record: far less sensitive to the other work on a shared machine than a rate
        "(a) CPU ms/record": lambda f: f["a_raw"]["cpu_ms_per_record"],
        "(b) CPU ms/record": lambda f: f["b_faust"]["cpu_ms_per_record"],
        "(c) worker CPU ms/reading": lambda f: f["c_pipeline"]["worker_cpu_ms_per_reading"],
        "(d) worker CPU ms/reading": lambda f: f["d_latency"]["worker_cpu_ms_per_reading"],
    }
    result: dict[str, float] = {}
    for name, get in figures.items():
        secured = statistics.median(float(get(f)) for f in by_mode["SASL_SSL"])
        plain = statistics.median(float(get(f)) for f in by_mode["PLAINTEXT"])
        if plain:
            result[name] = round(secured / plain, 3)
    return result
