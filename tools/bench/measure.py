"""Measurement: the machine, a process's CPU and memory, the worker's ``/metrics``, records on a
topic, rows in the database; waits on a figure, rates and percentiles."""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tools.bench.options import BenchError
from tools.bench.processes import Child, tail

# ------------------------------------------------------------------------------- machine ----


def machine_facts() -> dict[str, Any]:
    """nproc, CPU model, memory, load and the versions that matter."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    versions: dict[str, str] = {"python": platform.python_version()}
    for dist in ("faust-streaming", "aiokafka", "kafka-python", "pydantic", "SQLAlchemy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    from infra.broker import KAFKA_VERSION

    versions["kafka"] = KAFKA_VERSION
    java = shutil.which("java")
    if java:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [java, "-version"], capture_output=True, text=True, timeout=20, check=False
            )
            first = (out.stderr or out.stdout).strip().splitlines()
            if first:
                versions["java"] = first[0]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "mem_gib": mem_gib,
        "kernel": platform.release(),
        "loadavg_at_start": list(os.getloadavg()),
        "versions": versions,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MB (MiB)."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(rest.split()[0]) / 1024, 1)
    return out


class TopicCounter:
    """Records on a topic so far (the sum of its partitions' end offsets; nothing is deleted
    during a bench), asked of the broker: free for the worker being measured."""

    def __init__(self, bootstrap: Any, topic: str) -> None:
        from kafka import KafkaConsumer

        from infra.kafka_security import as_client

        self.topic = topic
        self.consumer = KafkaConsumer(
            **as_client(bootstrap).kafka_python(), enable_auto_commit=False
        )
        self.partitions: list[Any] = []

    def __call__(self) -> int:
        from kafka import TopicPartition

        if not self.partitions:
            parts = self.consumer.partitions_for_topic(self.topic)
            if not parts:
                self.consumer.topics()  # refresh the metadata; the topic may not exist yet
                return 0
            self.partitions = [TopicPartition(self.topic, p) for p in sorted(parts)]
        return int(sum(self.consumer.end_offsets(self.partitions).values()))

    def close(self) -> None:
        self.consumer.close()


# ------------------------------------------------------------------------------- metrics ----


def scrape(url: str) -> dict[str, float]:
    """The worker's ``/metrics``, summed over labels per sample name."""
    body = urllib.request.urlopen(url, timeout=10).read().decode()  # noqa: S310 (loopback)
    out: dict[str, float] = {}
    for line in body.splitlines():
        if not line or line[0] == "#":
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            out[name] = out.get(name, 0.0) + float(value)
    return out


def scrape_lines(url: str, prefix: str) -> list[str]:
    body = urllib.request.urlopen(url, timeout=10).read().decode()  # noqa: S310 (loopback)
    return [line for line in body.splitlines() if line.startswith(prefix)]


def handled(sample: dict[str, float]) -> float:
    """Readings the worker is done with: processed, dropped as repeats, or dead-lettered."""
    return (
        sample.get("puhui_readings_processed_total", 0.0)
        + sample.get("puhui_readings_duplicate_total", 0.0)
        + sample.get("puhui_readings_stale_total", 0.0)
        + sample.get("puhui_readings_rejected_total", 0.0)
    )


def wait_handled(
    url: str,
    target: int,
    deadline: float,
    child: Child,
    progress: Callable[[], float] | None = None,
    progress_target: float | None = None,
) -> tuple[float, list[tuple[float, float]], dict[str, float], int]:
    """Wait until the worker has handled ``target`` readings; returns (wall time it was seen,
    the (time, handled) samples, the last scrape of ``/metrics``, the number of scrapes).

    A scrape of ``/metrics`` costs the worker tens of milliseconds of its event loop with a few
    hundred zones, so while ``progress()`` (read from the broker, free for the worker) is below
    97 % of ``progress_target`` only the broker is asked; then ``/metrics`` is read, each time
    after a pause sized from the rate so far, so the end is seen within ~50 ms in a handful of
    scrapes."""
    samples: list[tuple[float, float]] = []
    coarse: list[tuple[float, float]] = []
    if progress is not None and progress_target:
        checked, check_every = time.monotonic(), 2.0
        while True:
            _alive(child)
            value = progress()
            coarse.append((time.time(), value * target / progress_target))
            if value >= 0.97 * progress_target:
                break
            if time.monotonic() - checked > check_every:  # the estimate may be off
                checked = time.monotonic()
                sample = scrape(url)
                samples.append((time.time(), handled(sample)))
                if samples[-1][1] >= 0.97 * target:
                    break
                if samples[-1][1] > 0.05 * target:
                    check_every = 10.0
                    if coarse[-1][1] < 0.75 * samples[-1][1]:
                        # The broker-side figure does not follow the worker (one that writes
                        # its changelog less often than once per reading): read /metrics.
                        coarse.clear()
                        break
            if time.monotonic() > deadline:
                raise BenchError(f"{child.name}: {value:.0f}/{progress_target:.0f} in time")
            time.sleep(0.25)
    while True:
        _alive(child)
        sample = scrape(url)
        now = time.time()
        done = handled(sample)
        samples.append((now, done))
        if done >= target:
            return now, sorted(coarse + samples), sample, len(samples)
        if time.monotonic() > deadline:
            raise BenchError(f"{child.name}: {done:.0f}/{target} handled in time")
        rate = _rate(samples) or _rate(coarse)
        pause = 0.5 if rate is None else (target - done) / rate * 0.7
        time.sleep(min(2.0, max(0.05, pause)))


def _rate(samples: list[tuple[float, float]]) -> float | None:
    if len(samples) < 2 or samples[-1][1] <= samples[0][1]:
        return None
    return (samples[-1][1] - samples[0][1]) / max(1e-6, samples[-1][0] - samples[0][0])


def _alive(child: Child) -> None:
    if child.proc.poll() is not None:
        raise BenchError(f"{child.name} exited {child.proc.returncode}:\n{tail(child.log)}")


def steady_rate(samples: list[tuple[float, float]], target: int) -> float | None:
    """Rate from the first sample at ≥ 10 % of ``target`` to the end (start-up excluded)."""
    later = [s for s in samples if s[1] >= 0.1 * target]
    if len(later) < 2 or later[-1][0] <= later[0][0]:
        return None
    return (later[-1][1] - later[0][1]) / (later[-1][0] - later[0][0])


#: Prometheus scrapes the worker every 15 s (infra/prometheus/prometheus.yml); so does (d).
SCRAPE_INTERVAL_S = 15.0


class Scraper:
    """Reads ``/metrics`` every ``interval`` seconds in a thread, as Prometheus does."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url, timeout=10).read()  # noqa: S310 (loopback)
                self.count += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of non-empty ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def history_rows(engine: Any, text: Any) -> int:
    with engine.connect() as conn:
        try:
            return int(conn.execute(text("SELECT count(*) FROM alert_history")).scalar_one())
        except Exception:  # the worker has not migrated the database yet
            return 0
