"""The workloads: the synthetic zones, the queued readings of (a)…(c) (a busy evening) and of
(f) (the same, at two camera cadences), the zone-filling readings of (e), the steady load of (d)
and how each is produced to the broker."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from models.contracts import SensorKind, SensorReading
from models.timezone import BEIJING
from tools.bench.options import BenchError, BenchOptions
from tools.producing import encode_reading

# ---------------------------------------------------------------------------------- zones ----


#: The grids of 打浦桥 the synthetic zones are spread over (in turn).
GRIDS = ("zhongtai", "zhongshun", "zhonghai", "zhonghui")


def zone_ids(count: int) -> list[str]:
    return [f"bench-{i:04d}" for i in range(count)]


def write_zones(path: Path, count: int, seed: int) -> dict[str, float]:
    """A synthetic registry of ``count`` zones; returns zone id → walkable area (m²)."""
    rng = random.Random(f"{seed}/zones")
    areas: dict[str, float] = {}
    lines = ["# Synthetic zones written by puhui bench.", "zones:"]
    for i, zid in enumerate(zone_ids(count)):
        area = float(rng.randrange(200, 2000, 10))
        areas[zid] = area
        lines += [
            f"  - id: {zid}",
            f'    name: {{zh: "基准区 {i:04d}", en: "Bench zone {i:04d}"}}',
            f"    site: bench-site-{i // 10:03d}",
            f"    grid: {GRIDS[i % 4]}",
            f"    area_m2: {area}",
            *([f"    capacity: {int(area * 3)}"] if i % 2 == 0 else []),
            "    estimated: true",
            "    notes: synthetic zone for the benchmark, not a real place",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return areas


def write_units(path: Path) -> None:
    """A units file for the synthetic zones: one grid team per grid, no sites. (The bundled
    units file names real sites, which a synthetic registry has not got: a worker refuses it.)"""
    lines = ["# Synthetic units written by puhui bench.", "units:"]
    for grid in GRIDS:
        lines += [
            f"  - id: bench-grid-{grid}",
            f"    name_zh: 基准网格 {grid}",
            f"    name_en: Bench grid team {grid}",
            "    kind: grid",
            f"    grids: [{grid}]",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ workloads ----


def reading_bytes(
    rid: str, sensor: str, zone: str, kind: SensorKind, value: float, at: float
) -> bytes:
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


#: The busy evening's cameras: a people count every 30 s of event time.
SLOW_CAMERA_INTERVAL = 30.0

# (sensor suffix, kind, interval in event-time seconds)
_FLEET: tuple[tuple[str, SensorKind, float], ...] = (
    ("cam-1", SensorKind.PEOPLE_COUNT, SLOW_CAMERA_INTERVAL),
    ("cam-2", SensorKind.PEOPLE_COUNT, SLOW_CAMERA_INTERVAL),
    ("gate-in", SensorKind.ENTRIES, 60.0),
    ("gate-out", SensorKind.EXITS, 60.0),
    ("smoke-1", SensorKind.SMOKE, 60.0),
    ("gas-1", SensorKind.GAS_LEL, 60.0),
    ("temp-1", SensorKind.CIRCUIT_TEMP, 60.0),
    ("water-1", SensorKind.WATER_DEPTH, 60.0),
    ("hb-1", SensorKind.HEARTBEAT, 60.0),
)


def fleet(
    camera_interval: float = SLOW_CAMERA_INTERVAL,
) -> tuple[tuple[str, SensorKind, float], ...]:
    """:data:`_FLEET` with its ``people_count`` cameras every ``camera_interval`` seconds."""
    return tuple(
        (suffix, kind, camera_interval if kind == SensorKind.PEOPLE_COUNT else interval)
        for suffix, kind, interval in _FLEET
    )


def readings_per_zone_second(camera_interval: float = SLOW_CAMERA_INTERVAL) -> float:
    """A zone's readings per second of event time: Σ 1/interval over its sensors, e.g.
    2/30 + 7/60 = 0.183 with 30-second cameras, 2/1 + 7/60 = 2.117 with 1-second ones."""
    return sum(1 / interval for _, _, interval in fleet(camera_interval))


@dataclass(frozen=True)
class Workload:
    """Queued records, in produce order (key, value), and what they hold."""

    records: list[tuple[bytes, bytes]]
    valid: int
    duplicates: int
    invalid: int
    zones: int
    event_seconds: float


def busy_evening(  # noqa: C901, PLR0915 — one flat script of the workload
    areas: dict[str, float],
    n: int,
    seed: int,
    tag: str,
    *,
    camera_interval: float = SLOW_CAMERA_INTERVAL,
) -> Workload:
    """``n`` readings over the zones of ``areas``, in event-time order, as a busy evening sends
    them: every zone has 9 sensors (2 cameras, gate counters, smoke, gas, circuit temperature,
    water, heartbeat); 15 % of zones have a crowd surge to 5.5 persons/m² and back (crowding
    alerts, forecasts, de-escalations), some have a gas spike or a smoke alarm; 1 % of the records
    are repeats (dropped as duplicates) and 0.2 % are invalid (dead-lettered). Surges and spikes
    are placed within the event time the readings span, so a small run has them too.

    ``camera_interval``: the two cameras' interval in event-time seconds (the others send every
    60 s); event time advances in 1-second steps, so a sensor sends at most once a second."""
    sensors = fleet(camera_interval)
    rng = random.Random(f"{seed}/busy")
    start = datetime(2026, 10, 1, 18, 0, tzinfo=BEIJING).timestamp()
    zones = sorted(areas)
    # The event time the readings span; surges and spikes are placed (and sized) within it.
    span = n / (len(zones) * readings_per_zone_second(camera_interval))
    ramp = min(600.0, 0.3 * span)
    base = {z: rng.uniform(0.3, 1.5) for z in zones}
    surge = {z: rng.uniform(0.05, 0.35) * span for z in zones if rng.random() < 0.15}
    surge.setdefault(zones[0], 0.05 * span)  # at least one, however small the run
    gas_spike = {z: rng.uniform(0.05, 0.8) * span for z in zones if rng.random() < 0.05}
    smoke = {z: rng.uniform(0.05, 0.8) * span for z in zones if rng.random() < 0.02}
    phase = {(z, s): rng.uniform(0, iv) for z in zones for s, _, iv in sensors}
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
            for suffix, kind, interval in sensors:
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
                rec = (
                    key,
                    reading_bytes(rid, f"{zone}/{suffix}", zone, kind, value(zone, kind, t), t),
                )
                records.append(rec)
                valid += 1
                recent.append(rec)
                if len(recent) > 400:
                    recent = recent[-200:]
                if (roll > 0.99 or seq == n // 2) and len(records) < n:
                    records.append(rng.choice(recent[-50:]))  # a repeat, after its original
                    duplicates += 1
    return Workload(records, valid, duplicates, invalid, len(zones), t - start)


def cadence_zones(
    zones: int, camera_interval: float, base_interval: float = SLOW_CAMERA_INTERVAL
) -> int:
    """Zones that give, with cameras every ``camera_interval`` s, about the readings per second
    of ``zones`` zones with cameras every ``base_interval`` s:
    ``zones × readings_per_zone_second(base) / readings_per_zone_second(camera)``, e.g.
    200 × 0.183 / 2.117 → 17 zones with 1-second cameras for 200 with 30-second ones."""
    ratio = readings_per_zone_second(base_interval) / readings_per_zone_second(camera_interval)
    return max(1, round(zones * ratio))


def cadence_evening(
    areas: dict[str, float], camera_interval: float, seconds: float, seed: int, tag: str
) -> Workload:
    """A :func:`busy_evening` whose cameras send every ``camera_interval`` s, spanning at least
    ``seconds`` of event time: n = zones × readings_per_zone_second × seconds, plus 2 % for the
    repeats (records that take no event time); more if that fell short."""
    per_second = len(areas) * readings_per_zone_second(camera_interval)
    n = math.ceil(per_second * seconds * 1.02)
    while True:
        load = busy_evening(areas, n, seed, tag, camera_interval=camera_interval)
        if load.event_seconds >= seconds:
            return load
        n += math.ceil(per_second * (seconds - load.event_seconds) * 1.02) + len(areas)


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
        (z.encode(), reading_bytes(f"{tag}-{i}", f"{z}/{s}", z, kind, round(v, 1), t))
        for i, (t, z, s, kind, v) in enumerate(plan)
    ]
    return Workload(records, len(records), 0, 0, len(areas), 360.0)


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


# (zone, sensor id, kind, probe?)
Slot = tuple[str, str, SensorKind, bool]


def latency_slots(zones: list[str], probes: int) -> list[Slot]:
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


def offer(
    producer: Any,
    topic: str,
    slots: list[Slot],
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
            body = reading_bytes(rid, sensor, zone, kind, value, at_ns / 1e9)
            producer.send(topic, key=zone.encode(), value=body, timestamp_ms=at_ns // 1_000_000)
            sent += 1
        if time.monotonic() > deadline:
            raise BenchError(f"offering the load overran: {sent}/{total}")
        time.sleep(max(0.0, started + (sent + 1) / opts.rate - time.time()))
    producer.flush(timeout=60)
    return sent, sent / max(1e-6, time.time() - started)
