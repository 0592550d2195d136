"""``puhui bench``: the pipeline's throughput, latency and memory, measured side by side.

One run starts its own Apache Kafka broker (temporary state directory, free loopback ports; never
the shared test broker) and its own processes, and measures:

(a) ``raw``: a raw aiokafka consumer reading M queued readings (the client's floor);
(b) ``faust``: a bare Faust agent (one agent, ``concurrency=1``, iterating ``stream.events()`` and
    counting, in its own process) on the same queued readings (Faust's own floor);
(c) ``pipeline``: ``puhui worker`` draining the same N readings over the synthetic zones — every
    stage: validation, dedupe, classification, zone state (table changelog), alert publication,
    persistence, metrics — from worker-ready until ``puhui_readings_processed_total`` +
    duplicates + rejected reaches N on the worker's ``/metrics``; then the persist agent must
    catch up (database history rows = alert records on the topic);
(d) ``latency``: under a steady offered load (1 000 readings/s by default), for each alert record
    on ``puhui.alerts``, the delay from the produce time of the reading its
    ``evidence.reading_id`` names to the record's arrival at a consumer (another process);
(e) ``rss``: the worker's VmRSS once each of 1 000 zones holds state.

Every wait has a deadline; every process started here (broker, workers, helpers) is stopped on
the way out, on error and on Ctrl-C too. ``python -m tools.bench bare-agent|alert-latency``
are the helper processes' entry points (used by the bench itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.contracts import SensorKind, SensorReading
from models.errors import PuhuiError
from models.timezone import BEIJING
from models.topics import TopicNames
from tools.producing import encode_reading

REPO = Path(__file__).resolve().parents[1]
READY_MARK = b"[^Worker]: Ready"
#: The issue's targets on a 2-core machine.
TARGET_RATIO = 0.8
TARGET_P99_MS = 100.0
TARGET_RSS_MB = 300.0


class BenchError(PuhuiError, RuntimeError):
    """A bench phase failed or overran its deadline."""


@dataclass(frozen=True)
class BenchOptions:
    """What to measure, and how much of it."""

    readings: int = 50_000  # N = M: queued readings for (a), (b), (c)
    zones: int = 200  # zones of the queued readings
    rate: float = 1000.0  # (d) offered readings per second
    also_rates: tuple[float, ...] = ()  # (d) again at these rates (reported apart)
    latency_seconds: float = 30.0  # (d) how long the load is offered
    probe_zones: int = 100  # (d) zones whose gas sensor cycles 30 → 60 → 0 → 0
    rss_zones: int = 1000  # (e)
    partitions: int = 4
    repeat: int = 1  # runs of (a)…(e), one after the other on the same broker
    seed: int = 7
    database_url: str | None = None  # default: SQLite in the run's temporary directory
    state_dir: Path | None = None  # default: a fresh temporary directory
    keep: bool = False  # keep the state directory (logs, database) afterwards
    profile: bool = False  # py-spy the workers of (b), (c) and (d), in an extra, unmeasured run
    phase_timeout: float = 600.0  # seconds any one phase may take
    #: Run the workers of (c), (d), (e) from this source tree (a scratch copy holding a proposed
    #: change: ``python -m entrypoints.cli`` imports the tree of its working directory first).
    worker_source: Path | None = None
    #: The broker's client listener: SASL_SSL (SCRAM-SHA-512 over TLS, ACLs: what production
    #: runs), PLAINTEXT, or both: one broker of each, their runs interleaved (the cost of TLS).
    security: str = "SASL_SSL"


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


# ---------------------------------------------------------------------------------- zones ----


def zone_ids(count: int) -> list[str]:
    return [f"bench-{i:04d}" for i in range(count)]


def write_zones(path: Path, count: int, seed: int) -> dict[str, float]:
    """A synthetic registry of ``count`` zones; returns zone id → walkable area (m²)."""
    rng = random.Random(f"{seed}/zones")
    grids = ["zhongtai", "zhongshun", "zhonghai", "zhonghui"]
    areas: dict[str, float] = {}
    lines = ["# Synthetic zones written by puhui bench.", "zones:"]
    for i, zid in enumerate(zone_ids(count)):
        area = float(rng.randrange(200, 2000, 10))
        areas[zid] = area
        lines += [
            f"  - id: {zid}",
            f'    name: {{zh: "基准区 {i:04d}", en: "Bench zone {i:04d}"}}',
            f"    site: bench-site-{i // 10:03d}",
            f"    grid: {grids[i % 4]}",
            f"    area_m2: {area}",
            *([f"    capacity: {int(area * 3)}"] if i % 2 == 0 else []),
            "    estimated: true",
            "    notes: synthetic zone for the benchmark, not a real place",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return areas


# ------------------------------------------------------------------------------ workloads ----


def _reading(rid: str, sensor: str, zone: str, kind: SensorKind, value: float, at: float) -> bytes:
    return encode_reading(
        SensorReading(
            reading_id=rid,
            sensor_id=sensor,
            zone_id=zone,
            kind=kind,
            value=float(value),
            observed_at=datetime.fromtimestamp(at, tz=BEIJING),
        )
    )


# (sensor suffix, kind, interval in event-time seconds)
_FLEET: tuple[tuple[str, SensorKind, float], ...] = (
    ("cam-1", SensorKind.PEOPLE_COUNT, 30.0),
    ("cam-2", SensorKind.PEOPLE_COUNT, 30.0),
    ("gate-in", SensorKind.ENTRIES, 60.0),
    ("gate-out", SensorKind.EXITS, 60.0),
    ("smoke-1", SensorKind.SMOKE, 60.0),
    ("gas-1", SensorKind.GAS_LEL, 60.0),
    ("temp-1", SensorKind.CIRCUIT_TEMP, 60.0),
    ("water-1", SensorKind.WATER_DEPTH, 60.0),
    ("hb-1", SensorKind.HEARTBEAT, 60.0),
)


@dataclass(frozen=True)
class Workload:
    """Queued records, in produce order (key, value), and what they hold."""

    records: list[tuple[bytes, bytes]]
    valid: int
    duplicates: int
    invalid: int
    zones: int
    event_seconds: float


def busy_evening(areas: dict[str, float], n: int, seed: int, tag: str) -> Workload:  # noqa: C901, PLR0915 — one flat script of the workload
    """``n`` readings over the zones of ``areas``, in event-time order, as a busy evening sends
    them: every zone has 9 sensors (2 cameras, gate counters, smoke, gas, circuit temperature,
    water, heartbeat); 15 % of zones have a crowd surge to 5.5 persons/m² and back (crowding
    alerts, forecasts, de-escalations), some have a gas spike or a smoke alarm; 1 % of the records
    are repeats (dropped as duplicates) and 0.2 % are invalid (dead-lettered). Surges and spikes
    are placed within the event time the readings span, so a small run has them too."""
    rng = random.Random(f"{seed}/busy")
    start = datetime(2026, 10, 1, 18, 0, tzinfo=BEIJING).timestamp()
    zones = sorted(areas)
    # The event time the readings span; surges and spikes are placed (and sized) within it.
    span = n / (len(zones) * sum(1 / interval for _, _, interval in _FLEET))
    ramp = min(600.0, 0.3 * span)
    base = {z: rng.uniform(0.3, 1.5) for z in zones}
    surge = {z: rng.uniform(0.05, 0.35) * span for z in zones if rng.random() < 0.15}
    surge.setdefault(zones[0], 0.05 * span)  # at least one, however small the run
    gas_spike = {z: rng.uniform(0.05, 0.8) * span for z in zones if rng.random() < 0.05}
    smoke = {z: rng.uniform(0.05, 0.8) * span for z in zones if rng.random() < 0.02}
    phase = {(z, s): rng.uniform(0, iv) for z in zones for s, _, iv in _FLEET}
    due = {key: start + off for key, off in phase.items()}

    def density(zone: str, t: float) -> float:
        d = base[zone]
        onset = surge.get(zone)
        if onset is not None:
            x = t - start - onset
            if 0 <= x < ramp:
                d += (5.5 - d) * x / ramp
            elif ramp <= x < 2 * ramp:
                d = 5.5 - (5.5 - d) * (x - ramp) / ramp
        return d

    def value(zone: str, kind: SensorKind, t: float) -> float:
        rel = t - start
        if kind == SensorKind.PEOPLE_COUNT:
            return float(round(density(zone, t) * areas[zone] / 2 * rng.uniform(0.95, 1.05)))
        if kind in (SensorKind.ENTRIES, SensorKind.EXITS):
            return float(rng.randint(5, 40))
        if kind == SensorKind.SMOKE:
            s = smoke.get(zone)
            return 1.0 if s is not None and s <= rel < s + 180 else 0.0
        if kind == SensorKind.GAS_LEL:
            g = gas_spike.get(zone)
            return 30.0 if g is not None and g <= rel < g + 120 else round(rng.uniform(0, 3), 1)
        if kind == SensorKind.CIRCUIT_TEMP:
            return round(rng.uniform(30, 45), 1)
        if kind == SensorKind.WATER_DEPTH:
            return round(rng.uniform(0, 2), 1)
        return 1.0

    records: list[tuple[bytes, bytes]] = []
    recent: list[tuple[bytes, bytes]] = []
    valid = duplicates = invalid = 0
    seq = 0
    t = start
    while len(records) < n:
        t += 1.0
        for zone in zones:
            for suffix, kind, interval in _FLEET:
                if len(records) >= n:
                    break
                if due[(zone, suffix)] > t:
                    continue
                due[(zone, suffix)] += interval
                seq += 1
                key = zone.encode()
                roll = rng.random()
                if roll < 0.002 or seq == n // 3:  # one at least
                    bad = b'{"reading_id": "' + f"{tag}-{seq}".encode() + b'", "value": '
                    records.append((key, bad))
                    invalid += 1
                    continue
                rid = f"{tag}-{seq}"
                rec = (key, _reading(rid, f"{zone}/{suffix}", zone, kind, value(zone, kind, t), t))
                records.append(rec)
                valid += 1
                recent.append(rec)
                if len(recent) > 400:
                    recent = recent[-200:]
                if (roll > 0.99 or seq == n // 2) and len(records) < n:
                    records.append(rng.choice(recent[-50:]))  # a repeat, after its original
                    duplicates += 1
    return Workload(records, valid, duplicates, invalid, len(zones), t - start)


def stateful_zones(areas: dict[str, float], seed: int, tag: str) -> Workload:
    """For (e): every zone gets ~31 readings of 8 kinds over 5 minutes of event time; one zone
    in ten is crowded enough to raise an alert."""
    rng = random.Random(f"{seed}/rss")
    start = datetime(2026, 10, 1, 18, 0, tzinfo=BEIJING).timestamp()
    plan: list[tuple[float, str, str, SensorKind, float]] = []
    for i, zone in enumerate(sorted(areas)):
        crowded = i % 10 == 0
        people = areas[zone] * (2.4 if crowded else 0.8) / 2
        for step in range(6):
            t = start + step * 60
            for cam in ("cam-1", "cam-2"):
                plan.append((t + 1, zone, cam, SensorKind.PEOPLE_COUNT, round(people)))
            if step % 2 == 0:
                plan.append((t + 2, zone, "gate-in", SensorKind.ENTRIES, rng.randint(5, 40)))
                plan.append((t + 3, zone, "gate-out", SensorKind.EXITS, rng.randint(5, 40)))
                plan.append((t + 4, zone, "hb-1", SensorKind.HEARTBEAT, 1.0))
            if step % 3 == 0:
                plan.append((t + 5, zone, "smoke-1", SensorKind.SMOKE, 0.0))
                plan.append((t + 6, zone, "gas-1", SensorKind.GAS_LEL, rng.uniform(0, 3)))
                plan.append((t + 7, zone, "temp-1", SensorKind.CIRCUIT_TEMP, rng.uniform(30, 45)))
                plan.append((t + 8, zone, "water-1", SensorKind.WATER_DEPTH, rng.uniform(0, 2)))
                plan.append((t + 9, zone, "lane-1", SensorKind.FIRE_LANE_BLOCKED, 0.0))
    plan.sort()
    records = [
        (z.encode(), _reading(f"{tag}-{i}", f"{z}/{s}", z, kind, round(v, 1), t))
        for i, (t, z, s, kind, v) in enumerate(plan)
    ]
    return Workload(records, len(records), 0, 0, len(areas), 360.0)


# ------------------------------------------------------------------------------ processes ----


def _prctl() -> Any:
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


#: Resolved in the parent: between fork and exec the child only calls it (no dlopen there).
_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the bench process dies (even by SIGKILL)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Children:
    """Every process the bench starts; :meth:`close` stops what still runs (TERM, then KILL)."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def spawn(
        self, name: str, cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path = REPO
    ) -> Child:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(cmd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops them in order
                preexec_fn=_die_with_parent,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    @staticmethod
    def stop(child: Child, timeout: float = 20.0) -> None:
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(timeout=10)

    def close(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                self.stop(child)
        self.children.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_for_log(child: Child, mark: bytes, deadline: float, poll: float = 0.05) -> float:
    """Wall time (``time.time()``) at which ``mark`` was first seen in the child's log."""
    while True:
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} exited {child.proc.returncode}:\n{tail(child.log)}")
        with contextlib.suppress(OSError):
            if mark in child.log.read_bytes():
                return time.time()
        if time.monotonic() > deadline:
            raise BenchError(f"{child.name}: no {mark!r} in time:\n{tail(child.log)}")
        time.sleep(poll)


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


# ------------------------------------------------------------------------- kafka helpers ----


def produce(bootstrap: Any, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    """Produce with kafka-python (not the worker's own client), acks=all, then flush.
    ``bootstrap``: a ``KafkaClient`` (or a bare PLAINTEXT ``host:port``)."""
    from kafka import KafkaProducer

    from infra.kafka_security import as_client

    producer = KafkaProducer(
        **as_client(bootstrap).kafka_python(), acks="all", linger_ms=20, batch_size=256 * 1024
    )
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)


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


def changelog_topic(prefix: str) -> str:
    """The zone-state table's changelog of the worker :meth:`Bench.worker` starts on ``prefix``
    (Faust names it ``<app id>-<table>-changelog``); one record per state change."""
    return f"{app_id(prefix)}-zone-state-changelog"


def app_id(prefix: str) -> str:
    return f"puhui-{prefix.rstrip('.')}"


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


# ------------------------------------------------------------------------------- helpers ----


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


def _py() -> list[str]:
    return [sys.executable]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")}


@dataclass
class Bench:
    """One broker and what runs on it."""

    options: BenchOptions
    root: Path
    kafka: Any  # infra.kafka_security.KafkaClient: the broker's super user
    kafka_env: dict[str, str]  # the same as PUHUI_KAFKA_* settings, for the child processes
    children: Children
    db_url_of: Callable[[str], str]
    profile_dir: Path | None = None

    @property
    def bootstrap(self) -> str:
        return str(self.kafka.bootstrap)

    # -- processes ---------------------------------------------------------------------------

    def worker(self, name: str, prefix: str, zones_file: Path, **env: str) -> tuple[Child, str]:
        """A ``puhui worker`` with its own topics, group and state; returns it and its /metrics."""
        state = self.root / name
        state.mkdir(parents=True, exist_ok=True)
        port = free_port()
        full = {
            **_clean_env(),
            **self.kafka_env,
            "PUHUI_TOPIC_PREFIX": prefix,
            "PUHUI_APP_ID": app_id(prefix),
            "PUHUI_STATE_DIR": str(state),
            "PUHUI_DATABASE_URL": self.db_url_of(name),
            "PUHUI_WORKER_PORT": str(port),
            "PUHUI_TOPIC_PARTITIONS": str(self.options.partitions),
            "PUHUI_ZONES_FILE": str(zones_file),
            **env,
        }
        child = self.children.spawn(
            name,
            [*_py(), "-m", "entrypoints.cli", "worker"],
            full,
            state / "worker.log",
            cwd=self.options.worker_source or REPO,
        )
        return child, f"http://127.0.0.1:{port}/metrics"

    def deadline(self) -> float:
        return time.monotonic() + self.options.phase_timeout

    def spy(self, child: Child, name: str) -> Child | None:
        """Start py-spy on ``child`` (profile runs only); stopped with SIGINT, it writes."""
        if self.profile_dir is None:
            return None
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            raise BenchError("--profile needs py-spy (pip install py-spy; it is a dev extra)")
        out = self.profile_dir / f"{name}.txt"
        cmd = [
            exe,
            "record",
            "--pid",
            str(child.proc.pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--threads",
            "--gil",  # on-CPU Python only: not time parked runnable after waking the broker
            "--nonblocking",
            "--output",
            str(out),
        ]
        return self.children.spawn(
            f"py-spy {name}", cmd, os.environ.copy(), out.with_suffix(".log")
        )

    @staticmethod
    def unspy(spy: Child | None) -> None:
        if spy is None or spy.proc.poll() is not None:
            return
        spy.proc.send_signal(signal.SIGINT)
        try:
            spy.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.proc.kill()
            spy.proc.wait(timeout=10)

    # -- (a) ---------------------------------------------------------------------------------

    def raw_consumer(self, topic: str, m: int) -> dict[str, Any]:
        """(a) aiokafka, no group: assign the partitions, seek to the start, count M records."""

        async def consume() -> tuple[float, int]:
            from aiokafka import AIOKafkaConsumer, TopicPartition

            consumer = AIOKafkaConsumer(
                **self.kafka.aiokafka(), enable_auto_commit=False, group_id=None
            )
            await consumer.start()
            try:
                tps = [TopicPartition(topic, p) for p in range(self.options.partitions)]
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                deadline = self.deadline()
                started = time.perf_counter()
                cpu_started = time.process_time()
                n = 0
                while n < m:
                    batch = await consumer.getmany(timeout_ms=200)
                    n += sum(len(records) for records in batch.values())
                    if time.monotonic() > deadline:
                        raise BenchError(f"raw consumer: {n}/{m} in time")
                cpu[0] = time.process_time() - cpu_started
                return time.perf_counter() - started, n
            finally:
                await consumer.stop()

        cpu = [0.0]
        seconds, n = asyncio.run(consume())
        return {
            "records": n,
            "seconds": round(seconds, 3),
            "rate": round(n / seconds, 1),
            "cpu_ms_per_record": round(1000 * cpu[0] / n, 4),
        }

    # -- (b) ---------------------------------------------------------------------------------

    def bare_faust(self, topic: str, m: int, run: str) -> dict[str, Any]:
        """(b) one Faust agent iterating ``stream.events()``, counting to M, in its own process."""
        state = self.root / f"{run}-bare"
        state.mkdir(parents=True, exist_ok=True)
        out = state / "result.json"
        cmd = [
            *_py(),
            "-m",
            "tools.bench",
            "bare-agent",
            "--bootstrap",
            self.bootstrap,
            "--topic",
            topic,
            "--group",
            f"bench-bare-{run}",
            "--partitions",
            str(self.options.partitions),
            "--count",
            str(m),
            "--datadir",
            str(state / "faust"),
            "--out",
            str(out),
        ]
        child = self.children.spawn(
            f"bare agent {run}", cmd, {**_clean_env(), **self.kafka_env}, state / "agent.log"
        )
        deadline = self.deadline()
        try:
            wait_for_log(child, READY_MARK, deadline)
            cpu_ready = cpu_seconds(child.proc.pid)
            ready = json.loads((state / "ready.json").read_text())["ready"]
            spy = self.spy(child, f"{run}-b-bare-agent")
            while not out.exists():
                if child.proc.poll() is not None:
                    raise BenchError(f"bare agent exited:\n{tail(child.log)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"bare agent did not count {m} in time:\n{tail(child.log)}")
                time.sleep(0.05)
            cpu = cpu_seconds(child.proc.pid) - cpu_ready
            self.unspy(spy)
            result = json.loads(out.read_text())
        finally:
            self.children.stop(child)
        # From the moment the agent could consume (its own "ready", or its first record if
        # Faust handed it one before announcing it) to the M-th record.
        start = min(ready, result["first"])
        seconds = result["done"] - start
        steady = (m - result["tenth_count"]) / max(1e-6, result["done"] - result["tenth"])
        return {
            "records": result["count"],
            "seconds": round(seconds, 3),
            "rate": round(m / seconds, 1),
            "first_record_after_ready_s": round(result["first"] - ready, 3),
            "steady_rate": round(steady, 1),
            "cpu_ms_per_record": round(1000 * cpu / m, 3),
        }

    # -- (c) ---------------------------------------------------------------------------------

    def pipeline(
        self, prefix: str, workload: Workload, zones_file: Path, run: str
    ) -> dict[str, Any]:
        """(c) ``puhui worker`` draining the queued readings; then the persist agent catches up."""
        from sqlalchemy import create_engine, text

        name = f"{run}-c-pipeline"
        db_url = self.db_url_of(name)
        engine = create_engine(db_url)
        topics = TopicNames.with_prefix(prefix)
        child, metrics = self.worker(name, prefix, zones_file)
        n = len(workload.records)
        deadline = self.deadline()
        try:
            ready = wait_for_log(child, READY_MARK, deadline)
            cpu_ready = cpu_seconds(child.proc.pid)
            before = _history_rows(engine, text) if self.options.database_url else 0
            spy = self.spy(child, name)
            changelog = TopicCounter(self.kafka, changelog_topic(prefix))
            try:
                done, samples, last, scrapes = wait_handled(
                    metrics, n, deadline, child, changelog, workload.valid
                )
            finally:
                changelog.close()
            self.unspy(spy)
            cpu = cpu_seconds(child.proc.pid) - cpu_ready
            # Every alert record counted has reached the topic, then the database.
            published = int(last.get("puhui_alert_records_total", 0))
            alerts = TopicCounter(self.kafka, topics.alerts)
            try:
                while (alerts_on_topic := alerts()) < published:
                    if time.monotonic() > deadline:
                        raise BenchError(f"alerts topic: {alerts_on_topic}/{published} records")
                    time.sleep(0.1)
            finally:
                alerts.close()
            while (persisted := _history_rows(engine, text) - before) < alerts_on_topic:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"persist agent behind: {persisted}/{alerts_on_topic} alert records"
                    )
                time.sleep(0.1)
            caught_up = time.time()
            final = scrape(metrics)
            late_timers = child.log.read_bytes().count(b"woke up too late")
        finally:
            self.children.stop(child)
            engine.dispose()
        seconds = done - ready
        steady = steady_rate(samples, n)
        return {
            "records": n,
            "seconds": round(seconds, 3),
            "rate": round(n / seconds, 1),
            "steady_rate": round(steady, 1) if steady else None,
            "worker_cpu_ms_per_reading": round(1000 * cpu / n, 3),
            "processed": int(last.get("puhui_readings_processed_total", 0)),
            "duplicates": int(last.get("puhui_readings_duplicate_total", 0)),
            "rejected": int(last.get("puhui_readings_rejected_total", 0)),
            "alert_records": alerts_on_topic,
            "alert_records_metric": int(final.get("puhui_alert_records_total", 0)),
            "persisted": persisted,
            "persist_caught_up_after_s": round(caught_up - done, 3),
            "db_batches": int(final.get("puhui_db_batches_total", 0)),
            "db_errors": int(final.get("puhui_db_errors_total", 0)),
            "timer_woke_up_too_late": late_timers,
            "scrapes": scrapes,
        }

    # -- (d) ---------------------------------------------------------------------------------

    def latency(self, zones: list[str], zones_file: Path, run: str, rate: float) -> dict[str, Any]:
        """(d) steady load; alert records timed from their causing reading's produce time."""
        from kafka import KafkaProducer

        opts = dataclasses.replace(self.options, rate=rate)
        prefix = f"b{run}{uuid.uuid4().hex[:6]}d."
        topics = TopicNames.with_prefix(prefix)
        name = f"{run}-d-latency"
        child, metrics = self.worker(name, prefix, zones_file, PUHUI_HOLD_SECONDS="1")
        deadline = self.deadline()
        state = self.root / name
        out = state / "latency.json"
        ready_file = state / "consumer.ready"
        probe = None
        producer = KafkaProducer(**self.kafka.kafka_python(), acks="all", linger_ms=1)
        try:
            wait_for_log(child, READY_MARK, deadline)
            probe = self.children.spawn(
                f"alert consumer {run}",
                [
                    *_py(),
                    "-m",
                    "tools.bench",
                    "alert-latency",
                    "--bootstrap",
                    self.bootstrap,
                    "--topic",
                    topics.alerts,
                    "--partitions",
                    str(opts.partitions),
                    "--ready-file",
                    str(ready_file),
                    "--out",
                    str(out),
                    "--max-seconds",
                    str(opts.latency_seconds + opts.phase_timeout),
                ],
                {**_clean_env(), **self.kafka_env},
                state / "consumer.log",
            )
            while not ready_file.exists():
                if probe.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"alert consumer not ready:\n{tail(probe.log)}")
                time.sleep(0.05)
            slots = _latency_slots(zones, opts.probe_zones)
            tag = uuid.uuid4().hex[:6]
            # Warm-up: one benign round, so partitions are assigned and everything is loaded.
            warm = 0
            now = time.time()
            for zone, sensor, kind, _ in slots:
                warm += 1
                value = 1.0 if kind != SensorKind.PEOPLE_COUNT else 10.0
                rid = f"w{tag}-{warm}"
                producer.send(
                    topics.readings,
                    key=zone.encode(),
                    value=_reading(rid, sensor, zone, kind, value, now - 5),
                )
            producer.flush(timeout=60)
            wait_handled(metrics, warm, deadline, child)
            spy = self.spy(child, name)
            cpu_start = cpu_seconds(child.proc.pid)
            with Scraper(metrics, SCRAPE_INTERVAL_S) as scraper:  # as Prometheus would
                sent, offered = _offer(producer, topics.readings, slots, opts, tag, deadline)
            load_end = time.time()
            _, _, last, _ = wait_handled(metrics, warm + sent, deadline, child)
            drained = time.time()
            cpu = cpu_seconds(child.proc.pid) - cpu_start
            time.sleep(1.0)  # the last alert records travel to the consumer
            self.unspy(spy)
            probe.proc.send_signal(signal.SIGTERM)
            probe.proc.wait(timeout=60)
            result = json.loads(out.read_text())
            late_timers = child.log.read_bytes().count(b"woke up too late")
        finally:
            producer.close(timeout=10)
            if probe is not None:
                self.children.stop(probe)
            self.children.stop(child)
        lat = [s["ms"] for s in result["samples"]]
        by_change = Counter(s["change"] for s in result["samples"])
        return {
            "rate": rate,
            "offered_rate": round(offered, 1),
            "readings": sent,
            "load_seconds": opts.latency_seconds,
            "drained_after_load_s": round(drained - load_end, 3),
            "worker_cpu_ms_per_reading": round(1000 * cpu / max(sent, 1), 3),
            "alert_records": result["records"],
            "timed": len(lat),
            "timed_by_change": dict(sorted(by_change.items())),
            "untimed": result["untimed"],
            "p50_ms": round(percentile(lat, 50), 1) if lat else None,
            "p90_ms": round(percentile(lat, 90), 1) if lat else None,
            "p99_ms": round(percentile(lat, 99), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None,
            "processed": int(last.get("puhui_readings_processed_total", 0)),
            "scrapes_during_load": scraper.count,
            "timer_woke_up_too_late": late_timers,
        }

    # -- (e) ---------------------------------------------------------------------------------

    def rss(self, areas: dict[str, float], zones_file: Path, run: str) -> dict[str, Any]:
        """(e) a worker whose every zone holds state; its VmRSS."""
        prefix = f"b{run}{uuid.uuid4().hex[:6]}e."
        topics = TopicNames.with_prefix(prefix)
        name = f"{run}-e-rss"
        workload = stateful_zones(areas, self.options.seed, uuid.uuid4().hex[:6])
        child, metrics = self.worker(name, prefix, zones_file)
        deadline = self.deadline()
        try:
            wait_for_log(child, READY_MARK, deadline)
            time.sleep(2.0)
            idle = vm_status(child.proc.pid)
            produce(self.kafka, topics.readings, workload.records)
            _, _, last, _ = wait_handled(metrics, len(workload.records), deadline, child)
            time.sleep(6.0)  # a zone-status write and a commit go by
            zones_with_state = len(scrape_lines(metrics, "puhui_zone_people{"))
            scrape_ms = []
            for _ in range(3):
                started = time.perf_counter()
                scrape(metrics)
                scrape_ms.append(1000 * (time.perf_counter() - started))
            loaded = vm_status(child.proc.pid)
        finally:
            self.children.stop(child)
        return {
            "zones": len(areas),
            "readings": len(workload.records),
            "processed": int(last.get("puhui_readings_processed_total", 0)),
            "zones_with_state": zones_with_state,
            "alert_records": int(last.get("puhui_alert_records_total", 0)),
            "rss_idle_mb": idle.get("VmRSS"),
            "rss_mb": loaded.get("VmRSS"),
            "hwm_mb": loaded.get("VmHWM"),
            "metrics_scrape_ms": round(sorted(scrape_ms)[1], 1),
        }

    # -- one run -----------------------------------------------------------------------------

    def run_once(self, run: str) -> dict[str, Any]:
        opts = self.options
        zones_c = self.root / f"zones-{opts.zones}.yaml"
        zones_e = self.root / f"zones-{opts.rss_zones}.yaml"
        areas_c = write_zones(zones_c, opts.zones, opts.seed)
        areas_e = write_zones(zones_e, opts.rss_zones, opts.seed)
        prefix = f"b{run}{uuid.uuid4().hex[:6]}c."
        topics = TopicNames.with_prefix(prefix)
        from infra.kafka_admin import ensure_topics

        ensure_topics(self.kafka, topics.partitions(opts.partitions))
        workload = busy_evening(areas_c, opts.readings, opts.seed, uuid.uuid4().hex[:6])
        _say(f"[{run}] producing {len(workload.records)} readings onto {topics.readings}")
        produce(self.kafka, topics.readings, workload.records)
        n = len(workload.records)
        figures: dict[str, Any] = {
            "load_before": list(os.getloadavg()),
            "workload": {
                "readings": n,
                "valid": workload.valid,
                "duplicates": workload.duplicates,
                "invalid": workload.invalid,
                "zones": workload.zones,
                "event_minutes": round(workload.event_seconds / 60, 1),
            },
        }
        _say(f"[{run}] (a) raw aiokafka consumer")
        figures["a_raw"] = self.raw_consumer(topics.readings, n)
        _say(f"[{run}]     {figures['a_raw']}")
        _say(f"[{run}] (b) bare Faust agent")
        figures["b_faust"] = self.bare_faust(topics.readings, n, run)
        _say(f"[{run}]     {figures['b_faust']}")
        _say(f"[{run}] (c) full pipeline")
        figures["c_pipeline"] = self.pipeline(prefix, workload, zones_c, run)
        _say(f"[{run}]     {figures['c_pipeline']}")
        b, c = figures["b_faust"], figures["c_pipeline"]
        figures["ratio_c_b"] = round(c["rate"] / b["rate"], 3)
        if c.get("steady_rate") and b.get("steady_rate"):
            figures["ratio_c_b_steady"] = round(c["steady_rate"] / b["steady_rate"], 3)
        _say(f"[{run}] (d) alert latency at {opts.rate:g} readings/s for {opts.latency_seconds:g}s")
        figures["d_latency"] = self.latency(sorted(areas_c), zones_c, run, opts.rate)
        _say(f"[{run}]     {figures['d_latency']}")
        for rate in opts.also_rates:
            _say(f"[{run}] (d) again at {rate:g} readings/s")
            more = self.latency(sorted(areas_c), zones_c, f"{run}-{rate:g}", rate)
            figures.setdefault("d_latency_at_other_rates", []).append(more)
            _say(f"[{run}]     {more}")
        _say(f"[{run}] (e) worker memory with {opts.rss_zones} zones")
        figures["e_rss"] = self.rss(areas_e, zones_e, run)
        _say(f"[{run}]     {figures['e_rss']}")
        figures["targets"] = targets(figures)
        return figures


def _history_rows(engine: Any, text: Any) -> int:
    with engine.connect() as conn:
        try:
            return int(conn.execute(text("SELECT count(*) FROM alert_history")).scalar_one())
        except Exception:  # the worker has not migrated the database yet
            return 0


# (zone, sensor id, kind, probe?)
_Slot = tuple[str, str, SensorKind, bool]


def _latency_slots(zones: list[str], probes: int) -> list[_Slot]:
    """One reading per slot per round; a round has 5 readings per zone. Sensor-major order, so a
    zone's readings are spread over the round (its hold time runs on between them)."""
    sensors = (
        ("cam-1", SensorKind.PEOPLE_COUNT),
        ("gas-1", SensorKind.GAS_LEL),
        ("water-1", SensorKind.WATER_DEPTH),
        ("cam-2", SensorKind.PEOPLE_COUNT),
        ("hb-1", SensorKind.HEARTBEAT),
    )
    probe_set = set(zones[:probes])
    return [
        (zone, f"{zone}/{suffix}", kind, zone in probe_set and kind == SensorKind.GAS_LEL)
        for suffix, kind in sensors
        for zone in zones
    ]


#: A probe's gas values, one per round: raised (orange), escalated (red), below, resolved.
_PROBE_CYCLE = (30.0, 60.0, 0.0, 0.0)


def _offer(
    producer: Any,
    topic: str,
    slots: list[_Slot],
    opts: BenchOptions,
    tag: str,
    deadline: float,
) -> tuple[int, float]:
    """Send ``opts.rate`` readings a second for ``opts.latency_seconds``, paced on the wall
    clock. A reading's id carries its produce time (``time.time_ns()`` just before ``send``), and
    so does its Kafka timestamp and its ``observed_at``. Returns (sent, achieved rate)."""
    total = int(opts.rate * opts.latency_seconds)
    started = time.time()
    sent = 0
    while sent < total:
        now = time.time()
        due = min(total, int((now - started) * opts.rate) + 1)
        while sent < due:
            zone, sensor, kind, is_probe = slots[sent % len(slots)]
            rnd = sent // len(slots)
            if is_probe:
                value = _PROBE_CYCLE[rnd % len(_PROBE_CYCLE)]
            elif kind == SensorKind.PEOPLE_COUNT:
                value = 10.0
            else:
                value = 1.0
            at_ns = time.time_ns()
            rid = f"l{tag}-{sent}-{at_ns}"
            body = _reading(rid, sensor, zone, kind, value, at_ns / 1e9)
            producer.send(topic, key=zone.encode(), value=body, timestamp_ms=at_ns // 1_000_000)
            sent += 1
        if time.monotonic() > deadline:
            raise BenchError(f"offering the load overran: {sent}/{total}")
        time.sleep(max(0.0, started + (sent + 1) / opts.rate - time.time()))
    producer.flush(timeout=60)
    return sent, sent / max(1e-6, time.time() - started)


def targets(figures: dict[str, Any]) -> dict[str, Any]:
    """The issue's three targets against this run's figures."""
    ratio = figures["ratio_c_b"]
    p99 = figures["d_latency"]["p99_ms"]
    rss = figures["e_rss"]["rss_mb"]
    return {
        "ratio_c_b": {"target": TARGET_RATIO, "value": ratio, "met": ratio >= TARGET_RATIO},
        "p99_ms": {"target": TARGET_P99_MS, "value": p99, "met": p99 is not None and p99 <= 100},
        "rss_mb": {"target": TARGET_RSS_MB, "value": rss, "met": rss is not None and rss <= 300},
    }


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- the run ----


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


def run_bench(options: BenchOptions, command: str = "puhui bench") -> BenchReport:
    """Start a private broker, run (a)…(e) ``options.repeat`` times, stop everything."""
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
            _say(
                f"bench: starting a private {mode} Kafka broker at {broker.bootstrap} under {root}"
            )
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
            _say("bench: profiled run (py-spy); its figures are not reported as measurements")
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
    """A Markdown table of the figures of each run."""
    rows = [
        "| run | security | (a) raw aiokafka /s | (b) bare Faust /s | (c) pipeline /s | (c)/(b) "
        "| (d) p50 ms | (d) p99 ms | (d) timed | (e) RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, fig in enumerate(report.runs, 1):
        d = fig["d_latency"]
        rows.append(
            f"| {i} | {fig.get('security', '?')} | {fig['a_raw']['rate']:,.0f} "
            f"| {fig['b_faust']['rate']:,.0f} "
            f"| {fig['c_pipeline']['rate']:,.0f} | {fig['ratio_c_b']:.2f} "
            f"| {d['p50_ms']} | {d['p99_ms']} | {d['timed']} | {fig['e_rss']['rss_mb']} |"
        )
    ratios = security_ratios(report)
    if ratios:
        rows.append("")
        rows.append(
            "SASL_SSL / PLAINTEXT (medians over the runs): "
            + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items())
        )
    return "\n".join(rows)


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
    parser.add_argument("--partitions", type=int, default=d.partitions)
    parser.add_argument("--repeat", type=int, default=d.repeat, help="runs of (a)…(e)")
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
    report = run_bench(options, command_line(options))
    data = json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(data + "\n", encoding="utf-8")
    print(data)
    print(render(report))
    return 0


# ------------------------------------------------------------------ helper processes ----


def _helper_kafka(bootstrap: str) -> Any:
    """A helper process's connection: ``--bootstrap`` and the ``PUHUI_KAFKA_*`` settings the
    bench put in its environment."""
    from infra.kafka_security import client_for
    from infra.settings import Settings

    return client_for(Settings(kafka_bootstrap=bootstrap), "admin")


def _bare_agent(args: argparse.Namespace) -> int:
    """(b): a Faust app with one agent that only counts events."""
    import faust

    app = faust.App(
        args.group,
        **_helper_kafka(args.bootstrap).faust(),
        store="memory://",
        datadir=args.datadir,
        web_enabled=False,
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    topic = app.topic(
        args.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=args.partitions,
    )
    target = args.count
    tenth = max(1, target // 10)
    out = Path(args.out)

    @app.agent(topic, concurrency=1, name="count")
    async def count(stream: Any) -> None:
        n = 0
        first = tenth_at = 0.0
        async for _event in stream.events():
            n += 1
            if n == 1:
                first = time.time()
            if n == tenth:
                tenth_at = time.time()
            if n == target:
                done = time.time()
                result = {
                    "count": n,
                    "first": first,
                    "tenth": tenth_at,
                    "tenth_count": tenth,
                    "done": done,
                }
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(result))
                tmp.replace(out)

    ready_file = out.with_name("ready.json")

    class Worker(faust.Worker):  # same name: its log still says "[^Worker]: Ready"
        async def on_startup_finished(self) -> None:
            # The child's own clock, not the parent's reading of the log: a fast agent may
            # count everything before the parent has seen the "Ready" line.
            ready_file.write_text(json.dumps({"ready": time.time()}))
            await super().on_startup_finished()

    Worker(app, loglevel="INFO").execute_from_commandline()
    return 0


def _alert_latency(args: argparse.Namespace) -> int:
    """(d)'s consumer: times each alert record from its causing reading's produce time."""

    async def consume() -> dict[str, Any]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        consumer = AIOKafkaConsumer(
            **_helper_kafka(args.bootstrap).aiokafka(),
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        samples: list[dict[str, Any]] = []
        records = untimed = 0
        try:
            tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for tp in tps:
                await consumer.position(tp)
            Path(args.ready_file).write_text("ready\n")
            deadline = time.monotonic() + args.max_seconds
            while not stop.is_set() and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=50)
                arrived = time.time_ns()
                for messages in batch.values():
                    for message in messages:
                        records += 1
                        sample = _timed(message.value, arrived)
                        if sample is None:
                            untimed += 1
                        else:
                            samples.append(sample)
        finally:
            await consumer.stop()
        return {"records": records, "untimed": untimed, "samples": samples}

    result = asyncio.run(consume())
    Path(args.out).write_text(json.dumps(result))
    return 0


_LATENCY_ID = re.compile(r"^l[0-9a-f]+-\d+-(\d+)$")


def _timed(raw: bytes, arrived_ns: int) -> dict[str, Any] | None:
    """Latency of one alert record, if its ``evidence.reading_id`` is the reading that caused
    it: a resolved record keeps the evidence of the reading that raised the alert, and sweeps
    (``watermark@…``) have no produce time, so neither is timed."""
    try:
        record = json.loads(raw)
        change = record["change"]
        rid = record.get("evidence", {}).get("reading_id", "")
    except (ValueError, KeyError, AttributeError):
        return None
    match = _LATENCY_ID.match(rid) if isinstance(rid, str) else None
    if change == "resolved" or match is None:
        return None
    return {"change": change, "ms": (arrived_ns - int(match.group(1))) / 1e6}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.bench bare-agent|alert-latency`` (the bench's helper processes)."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    sub = parser.add_subparsers(dest="helper", required=True)
    bare = sub.add_parser("bare-agent")
    bare.add_argument("--bootstrap", required=True)
    bare.add_argument("--topic", required=True)
    bare.add_argument("--group", required=True)
    bare.add_argument("--partitions", type=int, required=True)
    bare.add_argument("--count", type=int, required=True)
    bare.add_argument("--datadir", required=True)
    bare.add_argument("--out", required=True)
    bare.set_defaults(func=_bare_agent)
    lat = sub.add_parser("alert-latency")
    lat.add_argument("--bootstrap", required=True)
    lat.add_argument("--topic", required=True)
    lat.add_argument("--partitions", type=int, required=True)
    lat.add_argument("--ready-file", required=True)
    lat.add_argument("--out", required=True)
    lat.add_argument("--max-seconds", type=float, required=True)
    lat.set_defaults(func=_alert_latency)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
