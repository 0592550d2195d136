"""``run_bench``: the private broker(s), the runs, and everything stopped on the way out."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.bench.measure import machine_facts
from tools.bench.options import BenchOptions
from tools.bench.phases import Bench
from tools.bench.processes import Children, free_port
from tools.bench.report import BenchReport, say, summarise_profile


def run_bench(options: BenchOptions, command: str = "puhui bench") -> BenchReport:
    """Start a private broker, run (a)…(e) (and (f)) ``options.repeat`` times, stop everything."""
    from infra.broker import KafkaBroker

    root = Path(options.state_dir or tempfile.mkdtemp(prefix="puhui-bench-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    modes = ("PLAINTEXT", "SASL_SSL") if options.security == "both" else (options.security,)
    brokers: dict[str, KafkaBroker] = {}
    for mode in modes:
        port = free_port()
        controller = free_port()
        while controller == port or port in [b.port for b in brokers.values()]:
            port, controller = free_port(), free_port()
        home = root if len(modes) == 1 else root / mode.lower()
        brokers[mode] = KafkaBroker(
            home, bootstrap=f"127.0.0.1:{port}", controller_port=controller, security=mode
        )
    report = BenchReport(
        command=command,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        broker=",".join(b.bootstrap for b in brokers.values()),
        machine=machine_facts(),
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
    )
    children = Children()

    def db_url_of(name: str) -> str:
        return options.database_url or f"sqlite:///{root / name / 'puhui.db'}"

    # SIGTERM / SIGHUP end the run like Ctrl-C does: through the ``finally`` below.
    previous = (
        {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
        if threading.current_thread() is threading.main_thread()
        else {}
    )
    try:
        benches: dict[str, Bench] = {}
        for mode, broker in brokers.items():
            say(f"bench: starting a private {mode} Kafka broker at {broker.bootstrap} under {root}")
            broker.start(timeout=min(180.0, options.phase_timeout))
            benches[mode] = Bench(
                options, root, broker.client(), broker.client_env(), children, db_url_of
            )
        for i in range(options.repeat):
            for mode, one in benches.items():  # interleaved: both see the same machine load
                run = f"r{i + 1}" if len(modes) == 1 else f"r{i + 1}{mode[0].lower()}"
                figures = one.run_once(run)
                figures["security"] = mode
                report.runs.append(figures)
        bench = benches[modes[-1]]
        if options.profile:
            bench.profile_dir = root / "profile"
            bench.profile_dir.mkdir(exist_ok=True)
            say("bench: profiled run (py-spy); its figures are not reported as measurements")
            profiled = bench.run_once("p")
            report.profile = {
                "dir": str(bench.profile_dir),
                "figures_under_py_spy": profiled,
                "summaries": {
                    p.stem: summarise_profile(p) for p in sorted(bench.profile_dir.glob("*.txt"))
                },
            }
    finally:
        children.close()
        for broker in brokers.values():
            with contextlib.suppress(Exception):
                broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if not options.keep and options.state_dir is None and not options.profile:
            shutil.rmtree(root, ignore_errors=True)
    return report


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
