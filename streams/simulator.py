"""Traffic simulator: believable sensor readings for 打浦桥's zones, and a loop that produces them.

Two halves:

* :func:`generate` is **pure** — no I/O, no clock, one seeded :class:`random.Random` per purpose —
  and returns the readings of a time window, sorted by ``observed_at``. The same arguments always
  give the same list, reading ids included.
* :func:`run` produces readings to Kafka (``puhui.sensor-readings``), keyed by zone, replaying
  their event-time spacing at ``speed``× real time.

The simulated fleet
-------------------
Every zone has one ``people_count`` camera (``{zone}-cam-1``), two when its walkable area is at
least :data:`TWO_CAMERA_AREA_M2` (``-cam-1`` / ``-cam-2``, each counting its own part of the zone:
the zone's people are the sum of its cameras' latest counts, as the engine computes them). Cameras
report every ``interval``. Every zone has two smoke detectors (``{zone}-smoke-1`` / ``-smoke-2``)
that report their state (0 normal, 1 alarm) every :data:`SMOKE_INTERVAL` and, like a fire-alarm
panel, also report at once when their state changes. Each sensor has a fixed phase (a whole number
of seconds inside its period), so readings are spread out rather than bunched on the minute.

People follow a daily curve in Beijing time chosen by the kind of place (see :func:`profile_for`):
田子坊 is quiet in the morning, has a lunch bump and peaks around 19:00–21:00. Each camera adds
slowly varying noise of at most ±:data:`NOISE`. An ordinary day stays below every crowding
threshold by construction: a zone's mean at the top of its curve is at most
:data:`ORDINARY_MAX_DENSITY` persons/m² and, where the zone has a capacity, at most
:data:`ORDINARY_MAX_OCCUPANCY` of it, so even with the noise it stays under 2 persons/m² (蓝 by
density) and well under the 90 % of capacity where occupancy starts to warn (黄).

Scenarios (:data:`SCENARIOS`): ``day``, ``surge``, ``smoke`` and ``demo``; :func:`plan` tells what
a scenario will do in a window (which zones surge, which detectors alarm, when).
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from models.contracts import SensorKind, SensorReading
from models.zones import Zone, ZoneRegistry

__all__ = [
    "BEIJING",
    "NOISE",
    "ORDINARY_MAX_DENSITY",
    "ORDINARY_MAX_OCCUPANCY",
    "SCENARIOS",
    "SMOKE_INTERVAL",
    "SURGE_LENGTH",
    "TWO_CAMERA_AREA_M2",
    "Plan",
    "SmokeAlarm",
    "Surge",
    "camera_ids",
    "encode_reading",
    "generate",
    "plan",
    "profile_for",
    "run",
    "smoke_detector_ids",
    "surge_density",
]

#: Beijing time (UTC+08:00, no daylight saving): the zone of every simulated ``observed_at``.
BEIJING: Final = timezone(timedelta(hours=8), "CST")

#: Scenario name → one-line description (for the CLI's help).
SCENARIOS: Final[dict[str, str]] = {
    "day": "an ordinary day: daily crowd curves, smoke detectors quiet; no alert expected",
    "surge": "ordinary day plus an evening surge in 田子坊's main lanes, ~0.8 → ~5.5 persons/m² "
    "at ~0.2 persons/m² per minute, then back",
    "smoke": "ordinary day plus one single-detector smoke alarm (橙) and later a two-detector "
    "alarm in another zone (红)",
    "demo": "ordinary day plus a surge in one 田子坊 lane and an occasional smoke alarm",
}

#: Zones at least this large (m²) have two cameras, smaller ones one.
TWO_CAMERA_AREA_M2: Final = 1000.0
#: How often a smoke detector reports its state when nothing changes.
SMOKE_INTERVAL: Final = timedelta(minutes=5)
#: Largest relative camera noise (±8 %).
NOISE: Final = 0.08
#: Ceiling of an ordinary zone's mean density (persons/m²) — under 2, where 蓝 starts.
ORDINARY_MAX_DENSITY: Final = 1.5
#: Ceiling of an ordinary zone's mean occupancy — with noise, far under the 90 % where 黄 starts.
ORDINARY_MAX_OCCUPANCY: Final = 0.6

# --------------------------------------------------------------------------- daily curves ----
# Fraction of a zone's daily peak, at hours of the day in Beijing time (linear in between).
# Shapes are assumptions for a believable picture, not measurements.
_PROFILES: Final[dict[str, tuple[tuple[float, float], ...]]] = {
    # 田子坊: shops open ~10:00, lunch bump, evening peak 19:00–21:00, bars until late.
    "scenic": (
        (0, 0.06),
        (2, 0.02),
        (6, 0.02),
        (8, 0.06),
        (10, 0.25),
        (12, 0.55),
        (13, 0.65),
        (14, 0.5),
        (15.5, 0.5),
        (17, 0.6),
        (19, 0.95),
        (20, 1.0),
        (21, 0.9),
        (22, 0.55),
        (23, 0.25),
        (24, 0.06),
    ),
    # Malls (日月光, LuOne): office lunch crowd, evening shopping and dining.
    "mall": (
        (0, 0.01),
        (7, 0.02),
        (10, 0.3),
        (12, 0.8),
        (13, 0.7),
        (15, 0.5),
        (18, 0.8),
        (19.5, 1.0),
        (21, 0.6),
        (22, 0.15),
        (23, 0.03),
        (24, 0.01),
    ),
    # Metro entrance (9号线 打浦桥站): morning and evening commute.
    "transit": (
        (0, 0.02),
        (5.5, 0.02),
        (7, 0.4),
        (8.5, 1.0),
        (9.5, 0.5),
        (12, 0.35),
        (17, 0.5),
        (18, 0.95),
        (19, 0.7),
        (21, 0.35),
        (23, 0.1),
        (24, 0.02),
    ),
    # Office lobby: arrivals, lunch, departures.
    "office": (
        (0, 0.01),
        (7, 0.05),
        (8.5, 0.8),
        (9.5, 0.4),
        (12, 0.7),
        (13, 0.5),
        (17.5, 0.9),
        (19, 0.3),
        (21, 0.08),
        (24, 0.01),
    ),
    # Homes, gardens, care centres: morning errands, afternoon and after-dinner walks.
    "community": (
        (0, 0.05),
        (6, 0.1),
        (7.5, 0.6),
        (9, 0.5),
        (11, 0.4),
        (12, 0.3),
        (15, 0.5),
        (17, 0.8),
        (19, 1.0),
        (21, 0.5),
        (23, 0.15),
        (24, 0.05),
    ),
}

#: Mean density (persons/m²) at the top of each profile's curve, before the ordinary ceilings.
_PEAK_DENSITY: Final[dict[str, float]] = {
    "scenic": 0.6,
    "mall": 0.55,
    "transit": 0.6,
    "office": 0.3,
    "community": 0.1,
}

_PROFILE_HOURS: Final = {name: tuple(h for h, _ in points) for name, points in _PROFILES.items()}
_PROFILE_LEVELS: Final = {name: tuple(v for _, v in points) for name, points in _PROFILES.items()}


def profile_for(zone: Zone) -> str:
    """Name of the daily curve a zone follows: ``scenic`` (田子坊), ``transit`` (a metro
    entrance), ``office`` (a lobby), ``mall`` (other zones with a capacity — crowd spaces) or
    ``community`` (homes, gardens, care centres)."""
    if zone.site == "tianzifang":
        return "scenic"
    if "metro" in zone.id:
        return "transit"
    if "lobby" in zone.id:
        return "office"
    if zone.capacity is not None:
        return "mall"
    return "community"


def _curve(profile: str, hour: float) -> float:
    hours = _PROFILE_HOURS[profile]
    levels = _PROFILE_LEVELS[profile]
    i = bisect_right(hours, hour) - 1
    i = min(max(i, 0), len(hours) - 2)
    h0, h1 = hours[i], hours[i + 1]
    return levels[i] + (levels[i + 1] - levels[i]) * (hour - h0) / (h1 - h0)


def _ordinary_peak(zone: Zone) -> float:
    """Mean people in ``zone`` at the top of its daily curve on an ordinary day."""
    people = _PEAK_DENSITY[profile_for(zone)] * zone.area_m2
    people = min(people, ORDINARY_MAX_DENSITY * zone.area_m2)
    if zone.capacity is not None:
        people = min(people, ORDINARY_MAX_OCCUPANCY * zone.capacity)
    return people


# ---------------------------------------------------------------------------------- surge ----
_SURGE_EASE_MIN: Final = 5.0  # people gathering: from the ordinary level to 0.8
_SURGE_FROM: Final = 0.8
_SURGE_TO: Final = 5.5
_SURGE_RISE_PER_MIN: Final = 0.2
_SURGE_HOLD_MIN: Final = 8.0
_SURGE_FALL_PER_MIN: Final = 0.4  # dispersal once inflow is throttled
_SURGE_RISE_END: Final = _SURGE_EASE_MIN + (_SURGE_TO - _SURGE_FROM) / _SURGE_RISE_PER_MIN
_SURGE_FALL_START: Final = _SURGE_RISE_END + _SURGE_HOLD_MIN
_SURGE_END_MIN: Final = _SURGE_FALL_START + _SURGE_TO / _SURGE_FALL_PER_MIN

#: How long one lane's surge lasts, from onset until it is back to ordinary.
SURGE_LENGTH: Final = timedelta(minutes=_SURGE_END_MIN)
_SURGE_EVENING_HOUR: Final = 19  # Beijing time
_SURGE_STAGGER: Final = timedelta(minutes=4)  # between the lanes of the ``surge`` scenario
_FALLBACK_LEAD: Final = timedelta(minutes=10)


def surge_density(minutes: float) -> float | None:
    """Mean surge density (persons/m²) ``minutes`` after a surge's onset; ``None`` outside it.

    5 minutes of gathering (0 → 0.8), then a climb of 0.2 persons/m² per minute to 5.5
    (23.5 minutes), 8 minutes at 5.5, and a fall of 0.4 per minute (to 0 after 13.75 minutes).
    A zone in a surge has the larger of this and its ordinary density, so the surge leaves the
    ordinary level smoothly (an evening lane at ~0.55 joins the gathering after ~3.5 minutes)
    and returns to it smoothly.
    """
    if minutes < 0 or minutes >= _SURGE_END_MIN:
        return None
    if minutes < _SURGE_EASE_MIN:
        return _SURGE_FROM * minutes / _SURGE_EASE_MIN
    if minutes < _SURGE_RISE_END:
        return _SURGE_FROM + _SURGE_RISE_PER_MIN * (minutes - _SURGE_EASE_MIN)
    if minutes < _SURGE_FALL_START:
        return _SURGE_TO
    return _SURGE_TO - _SURGE_FALL_PER_MIN * (minutes - _SURGE_FALL_START)


# ----------------------------------------------------------------------------------- plan ----
@dataclass(frozen=True, slots=True)
class Surge:
    """A crowd surge in one zone, starting at ``onset`` (its shape: :func:`surge_density`)."""

    zone_id: str
    onset: datetime

    @property
    def end(self) -> datetime:
        """When the zone is back to ordinary."""
        return self.onset + SURGE_LENGTH


@dataclass(frozen=True, slots=True)
class SmokeAlarm:
    """One smoke detector reading 1 from ``start`` until ``end`` (it reads 0 again at ``end``)."""

    zone_id: str
    sensor_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What a scenario adds to an ordinary day in one window."""

    surges: tuple[Surge, ...] = ()
    alarms: tuple[SmokeAlarm, ...] = ()


def camera_ids(zone: Zone) -> tuple[str, ...]:
    """Ids of the zone's ``people_count`` cameras (one, or two for a large zone)."""
    count = 2 if zone.area_m2 >= TWO_CAMERA_AREA_M2 else 1
    return tuple(f"{zone.id}-cam-{i}" for i in range(1, count + 1))


def smoke_detector_ids(zone: Zone) -> tuple[str, str]:
    """Ids of the zone's two smoke detectors."""
    return (f"{zone.id}-smoke-1", f"{zone.id}-smoke-2")


def _surge_lanes(zones: Sequence[Zone]) -> list[Zone]:
    """田子坊's narrow main lanes; failing that any 田子坊 zone; failing that the smallest zone."""
    tianzifang = [z for z in zones if z.site == "tianzifang"]
    lanes = [z for z in tianzifang if z.area_m2 < TWO_CAMERA_AREA_M2]
    if lanes:
        return lanes
    if tianzifang:
        return tianzifang
    return [min(zones, key=lambda z: (z.area_m2, z.id))]


def _surge_onset(start: datetime, end: datetime, span: timedelta) -> datetime:
    """The first 19:00 Beijing time at which a surge of length ``span`` fits in the window;
    without one, ``min(10 min, a quarter of the window)`` into it, so the scenario always shows
    what it is named for."""
    local = start.astimezone(BEIJING)
    evening = local.replace(hour=_SURGE_EVENING_HOUR, minute=0, second=0, microsecond=0)
    if evening < local:
        evening += timedelta(days=1)
    if evening + span <= end:
        return evening
    return local + min(_FALLBACK_LEAD, (end - start) / 4)


def plan(
    zones: ZoneRegistry | Sequence[Zone],
    start: datetime,
    duration: timedelta,
    *,
    scenario: str = "day",
    seed: int = 7,
) -> Plan:
    """What ``scenario`` adds to an ordinary day in the window ``[start, start + duration)``.

    * ``day``: nothing.
    * ``surge``: 田子坊's main lanes (zones of site ``tianzifang`` under
      :data:`TWO_CAMERA_AREA_M2`) surge, 4 minutes apart, from the first 19:00 Beijing time
      that leaves room for all of them (else shortly after ``start``).
    * ``smoke``: one detector of one zone alarms at 20 % of the window for up to 12 minutes;
      at 55 % both detectors of another zone alarm, 90 s apart, for up to 15 minutes.
    * ``demo``: one lane surges (placed as above); single-detector alarms start at
      ``min(40 min, 40 % of the window)`` and every 3 hours after, 10 minutes each.

    Zones are chosen with ``random.Random`` seeded from ``seed`` and ``scenario``. Raises
    ``ValueError`` for an unknown scenario, a naive ``start``, a negative duration or no zones.
    """
    zone_list = list(zones)
    start, end = _window(start, duration)
    _check_scenario(scenario)
    if not zone_list:
        raise ValueError("no zones to simulate")
    rng = _rng(seed, f"plan:{scenario}")
    surges: list[Surge] = []
    alarms: list[SmokeAlarm] = []
    if scenario == "surge":
        lanes = _surge_lanes(zone_list)
        span = SURGE_LENGTH + _SURGE_STAGGER * (len(lanes) - 1)
        onset = _surge_onset(start, end, span)
        surges = [Surge(z.id, onset + _SURGE_STAGGER * i) for i, z in enumerate(lanes)]
    elif scenario == "smoke":
        single_zone = rng.choice(zone_list)
        others = [z for z in zone_list if z.id != single_zone.id] or zone_list
        pair_zone = rng.choice(others)
        at = start + duration * 0.2
        detector = smoke_detector_ids(single_zone)[rng.randrange(2)]
        alarms.append(
            SmokeAlarm(single_zone.id, detector, at, at + min(timedelta(minutes=12), duration / 5))
        )
        at = start + duration * 0.55
        gap = min(timedelta(seconds=90), duration / 20)
        clear = at + min(timedelta(minutes=15), duration * 0.3)
        first, second = smoke_detector_ids(pair_zone)
        alarms.append(SmokeAlarm(pair_zone.id, first, at, clear))
        alarms.append(SmokeAlarm(pair_zone.id, second, at + gap, clear))
    elif scenario == "demo":
        lane = rng.choice(_surge_lanes(zone_list))
        surges = [Surge(lane.id, _surge_onset(start, end, SURGE_LENGTH))]
        at = start + min(timedelta(minutes=40), duration * 0.4)
        while at < end:
            zone = rng.choice(zone_list)
            detector = smoke_detector_ids(zone)[rng.randrange(2)]
            alarms.append(SmokeAlarm(zone.id, detector, at, at + timedelta(minutes=10)))
            at += timedelta(hours=3)
    alarms = [SmokeAlarm(a.zone_id, a.sensor_id, _whole(a.start), _whole(a.end)) for a in alarms]
    return Plan(surges=tuple(surges), alarms=tuple(alarms))


def _whole(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")


def _window(start: datetime, duration: timedelta) -> tuple[datetime, datetime]:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if duration < timedelta(0):
        raise ValueError("duration must not be negative")
    begin = start.astimezone(BEIJING).replace(microsecond=0)
    return begin, begin + duration


# ------------------------------------------------------------------------------- generate ----
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ID_NAMESPACE: Final = uuid.UUID("6f0c1b52-8d59-5a4e-9c1e-7d1f5e0a5b11")
_NOISE_KEEP: Final = 0.8  # AR(1): how much of the previous noise carries over
_NOISE_STEP: Final = 0.025  # standard deviation of each step


def _rng(seed: int, purpose: str) -> random.Random:
    """A generator of its own for each purpose (the plan of a scenario, one sensor's phase and
    noise), so adding a sensor or a scenario leaves everything else unchanged. Sensors are seeded
    without the scenario: every scenario has the same ordinary background for the same seed.

    Seeding with a string is stable across processes (it does not depend on PYTHONHASHSEED).
    """
    return random.Random(f"puhui-sim:{seed}:{purpose}")  # noqa: S311 - simulation, not secrets


def _phase(rng: random.Random, period: timedelta) -> float:
    whole = int(period.total_seconds())
    return float(rng.randrange(whole)) if whole >= 1 else 0.0


def generate(
    zones: ZoneRegistry,
    start: datetime,
    duration: timedelta,
    *,
    scenario: str = "day",
    seed: int = 7,
    interval: timedelta = timedelta(seconds=30),
) -> list[SensorReading]:
    """Readings of every zone's cameras and smoke detectors in ``[start, start + duration)``.

    Pure and deterministic: the same arguments give the same list. ``start`` must be aware; it is
    taken in Beijing time and floored to the second, and every ``observed_at`` is in +08:00.
    Cameras report every ``interval``, smoke detectors every :data:`SMOKE_INTERVAL` and on each
    change of state. The list is sorted by ``(observed_at, sensor_id)``; no sensor has two
    readings at the same instant. A reading's id is ``"sim-"`` and a UUID-5 of its seed, scenario,
    sensor and time, so a run replayed with another start has fresh ids. See :data:`SCENARIOS`
    and :func:`plan` for what each scenario does. Raises ``ValueError`` for an unknown scenario,
    a naive ``start``, a negative duration or an ``interval`` that is not positive.
    """
    if interval <= timedelta(0):
        raise ValueError("interval must be positive")
    begin, _ = _window(start, duration)
    zone_list = list(zones)
    scheme = plan(zone_list, begin, duration, scenario=scenario, seed=seed)
    begin_s = (begin - _EPOCH).total_seconds()
    span_s = duration.total_seconds()
    step_s = interval.total_seconds()
    surges = {s.zone_id: (s.onset - _EPOCH).total_seconds() for s in scheme.surges}
    rows: list[tuple[float, str, str, SensorKind, float]] = []

    for zone in zone_list:
        profile = profile_for(zone)
        peak = _ordinary_peak(zone)
        cameras = camera_ids(zone)
        shares = (1.0,) if len(cameras) == 1 else (0.55, 0.45)
        onset = surges.get(zone.id)
        for camera, share in zip(cameras, shares, strict=True):
            rng = _rng(seed, camera)
            noise = rng.uniform(-NOISE / 2, NOISE / 2)
            offset = _phase(rng, interval)
            while offset < span_s:
                at = begin_s + offset
                hour = ((at + 8 * 3600) % 86400) / 3600
                mean = peak * _curve(profile, hour)
                if onset is not None:
                    surge = surge_density((at - onset) / 60)
                    if surge is not None:
                        mean = max(mean, surge * zone.area_m2)
                noise = _NOISE_KEEP * noise + rng.gauss(0.0, _NOISE_STEP)
                noise = min(max(noise, -NOISE), NOISE)
                count = float(max(0, round(share * mean * (1 + noise))))
                rows.append((offset, camera, zone.id, SensorKind.PEOPLE_COUNT, count))
                offset += step_s

        for detector in smoke_detector_ids(zone):
            rng = _rng(seed, detector)
            alarms = [
                ((a.start - begin).total_seconds(), (a.end - begin).total_seconds())
                for a in scheme.alarms
                if a.sensor_id == detector
            ]
            moments: set[float] = set()
            offset = _phase(rng, SMOKE_INTERVAL)
            while offset < span_s:
                moments.add(offset)
                offset += SMOKE_INTERVAL.total_seconds()
            for on, off in alarms:
                moments.update(t for t in (on, off) if 0 <= t < span_s)
            for offset in moments:
                alarm = any(on <= offset < off for on, off in alarms)
                rows.append((offset, detector, zone.id, SensorKind.SMOKE, 1.0 if alarm else 0.0))

    rows.sort(key=lambda row: (row[0], row[1]))
    prefix = f"{seed}|{scenario}|"
    readings: list[SensorReading] = []
    for offset, sensor, zone_id, kind, value in rows:
        observed = begin + timedelta(seconds=offset)
        stamp = observed.isoformat()
        readings.append(
            SensorReading(
                reading_id="sim-" + str(uuid.uuid5(_ID_NAMESPACE, f"{prefix}{sensor}|{stamp}")),
                sensor_id=sensor,
                zone_id=zone_id,
                kind=kind,
                value=value,
                observed_at=observed,
            )
        )
    return readings


# ------------------------------------------------------------------------------------ run ----
def encode_reading(reading: SensorReading) -> bytes:
    """The wire form of a reading: compact UTF-8 JSON of exactly the contract's fields, with
    ``observed_at`` as RFC 3339 in Beijing time (``+08:00``)."""
    local = reading.observed_at.astimezone(BEIJING)
    if reading.observed_at.utcoffset() != local.utcoffset():
        reading = reading.model_copy(update={"observed_at": local})
    return reading.model_dump_json().encode("utf-8")


_CLOSE_TIMEOUT_S: Final = 30.0


def _producer(bootstrap: str) -> Any:
    """A kafka-python producer (imported here: only :func:`run` needs kafka-python)."""
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


def run(
    bootstrap: str,
    topic: str,
    readings: Iterable[SensorReading],
    *,
    speed: float = 1.0,
    on_sent: Callable[[SensorReading], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Produce ``readings`` to ``topic`` at ``bootstrap``; return how many were sent.

    Each record is :func:`encode_reading` of the reading, keyed by its ``zone_id`` (UTF-8), sent
    with ``acks="all"``. The first reading goes out at once; each later one when
    ``(observed_at - first observed_at) / speed`` seconds have passed, so event-time spacing is
    replayed at ``speed``× real time (readings whose time has passed go out at once).
    ``speed`` 0 or ``math.inf`` means as fast as possible. ``on_sent`` is called (in this thread)
    after each reading is handed to the producer. Setting ``stop`` ends the run early, also
    during a wait. The producer is flushed and closed at the end, on stop and on error; if
    Kafka rejected any record the first error is raised after closing. Raises ``ValueError``
    for a negative or NaN ``speed``.
    """
    if math.isnan(speed) or speed < 0:
        raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
    paced = 0 < speed < math.inf
    failures: list[BaseException] = []
    sent = 0
    producer = _producer(bootstrap)
    try:
        anchor: tuple[float, datetime] | None = None
        for reading in readings:
            if stop is not None and stop.is_set():
                break
            if paced:
                if anchor is None:
                    anchor = (time.monotonic(), reading.observed_at)
                elapsed = (reading.observed_at - anchor[1]).total_seconds() / speed
                delay = anchor[0] + elapsed - time.monotonic()
                if delay > 0:
                    if stop is not None:
                        if stop.wait(delay):
                            break
                    else:
                        time.sleep(delay)
            future = producer.send(
                topic, key=reading.zone_id.encode("utf-8"), value=encode_reading(reading)
            )
            future.add_errback(failures.append)
            sent += 1
            if on_sent is not None:
                on_sent(reading)
        producer.flush()
    finally:
        producer.close(timeout=_CLOSE_TIMEOUT_S)
    if failures:
        raise failures[0]
    return sent
