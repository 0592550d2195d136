"""Traffic simulator and scenario library: believable sensor readings and volunteer reports for
打浦桥's zones (this module: generation); :mod:`tools.producing` produces them to Kafka.

Two halves:

* :func:`generate` (readings) and :func:`generate_reports` (volunteer reports) are **pure** — no
  I/O, no clock, one seeded :class:`random.Random` per purpose — and return what happens in a time
  window, sorted by event time. The same arguments always give the same list, ids included.
  :func:`plan` says what a scenario does in that window (which zones, sensors, when), so a test
  can compute the expected outcome: the moment density crosses 4, the moment water crosses 25 cm,
  the silent interval of a dropout, ...
* :mod:`tools.producing` produces them: ``run`` readings to ``puhui.sensor-readings``,
  ``run_reports`` reports to ``puhui.volunteer-reports`` and ``run_scenario`` both, interleaved
  in event time; all keyed by zone id and replaying event-time spacing at ``speed``× real time.

The simulated fleet
-------------------
:func:`devices` lists a zone's devices; which ones depends on the zone's type (:func:`zone_type`,
derived from its id, site, capacity and area, so a replaced registry gets a fleet too):

============  =================================================================================
type          devices besides the ``people_count`` cameras and the 2 smoke detectors
============  =================================================================================
lane          田子坊 lanes (石库门 shops): electrical-fire monitor (``circuit_temp`` +
              ``leak_current``, GB 14287), fire-lane camera; the three main lanes also 2 gates
street        frontage / plaza / forecourt / garden: ``water_depth`` (a low point),
              ``manhole_tilt``; the gate-only zone 3 gates and no camera
mall          atrium / concourse: ``gas_lel`` (restaurants, food court), electrical-fire monitor,
              fire-lane camera; underground ones (``concourse``) also ``water_depth``
transit       the metro entrance: electrical-fire monitor, ``water_depth``, 2 gates
office        lobby: electrical-fire monitor, fire-lane camera
residential   estates (no capacity, ≥ 1000 m²): ``gas_lel`` (kitchens), electrical-fire monitor,
              fire-lane camera, lift camera (``ebike_in_elevator``)
facility      small community buildings (refuse room, day care, children's centre): electrical-fire
              monitor
============  =================================================================================

Sensor ids: ``{zone}-cam-N`` (people_count), ``-smoke-1``/``-smoke-2``, ``-gate-N-in`` (entries)
/ ``-gate-N-out`` (exits), ``-gas-1``, ``-circuit-1`` (circuit_temp), ``-leak-1`` (leak_current),
``-water-1``, ``-manhole-1``, ``-firelane-1`` (fire_lane_blocked), ``-lift-1``
(ebike_in_elevator). Every sensor id has exactly one kind: a device's heartbeats come from its
own liveness channel ``{device}-hb`` (:func:`heartbeat_id`), so a sensor's latest value is always
a value of its kind and its spacing is that of one series.

Reporting intervals: people cameras every ``interval`` (default 30 s), fire-lane and lift cameras
every :data:`CAMERA_INTERVAL` (30 s), gate counters every :data:`COUNTER_INTERVAL` (30 s), smoke
detectors every :data:`SMOKE_INTERVAL` (5 min) and at once on a change of state, every other kind
every :data:`SENSOR_INTERVAL` (60 s). **Every device** also sends a ``heartbeat`` (sensor id
``{device}-hb``) every :data:`HEARTBEAT_INTERVAL` (60 s) whose value is its **uptime**: seconds
since it booted, a whole number that grows by the elapsed time between two heartbeats (each device
booted between 6 hours and 60 days before the window, seeded). Each periodic series has a fixed
phase (whole seconds inside its period), so readings are spread out rather than bunched.

Gate counters: ``entries`` / ``exits`` are persons through that gate since that counter's previous
reading. All counters of a zone are read together (one gate controller per zone). Per 30 s the
zone's people change by ``round(P(t)) - round(P(t - 30 s))`` where ``P`` is the zone's true mean
people count (:func:`mean_people`, the same curve the cameras count around); on top of that, people
pass through (P × 30 s / dwell time, ±25 %, in and out alike). So for every zone with gates,
``round(P(t₀ - 30 s)) + Σ entries - Σ exits == round(P(t))`` exactly, where ``t₀`` is the
controller's first reading in the window (a pipeline starting from 0 is off by that first term,
small at night). **The gate-only zone is** ``tianzifang-taikang-frontage``
(:data:`GATE_ONLY_ZONES`): it has no camera, and the pipeline must estimate its occupancy from
entries − exits. After a silent interval a counter's first reading covers everything since its
previous one, so the balance still holds.

Crowds and noise
----------------
People follow a daily curve in Beijing time chosen by the kind of place (:func:`profile_for`):
田子坊 is quiet in the morning, has a lunch bump and peaks around 19:00–21:00. A zone's mean at the
top of its curve is at most :data:`ORDINARY_MAX_DENSITY` persons/m² and, with a capacity, at most
:data:`ORDINARY_MAX_OCCUPANCY` of it. Each camera multiplies the mean by ``1 + e`` where ``e`` is
a **slowly varying** error bounded by ±``noise`` (AR(1): each reading keeps 0.8 of the last
error, ~2 minutes of memory at 30 s)
(default :data:`NOISE`, 8 %); the slowly varying component is kept on purpose — real counting
errors (occlusion, light) persist for minutes, which is what a robust forecast has to live with.
With ``noise`` ≤ 0.10 an ordinary day stays under 2 persons/m² (蓝) and under 70 % of capacity.

Background values of the other kinds stay inside ordinary ranges (DOMAIN.md's starting thresholds
are far above): gas 0–3 % LEL (a cooking bump at meal times), circuit 25–45 °C and leakage
20–150 mA (rising with the zone's activity), water 0–1 cm, manhole tilt 0–2°, smoke 0, e-bike 0.
A fire-lane camera reads 1 now and then in the daytime (a delivery van: 1–3 readings, so under
2 minutes between the first 1 and the next 0 — never the 5 minutes of the duration rule).

Scenarios (:data:`SCENARIOS`) add events on top of the ordinary background: each sensor is seeded
by ``seed`` and its id only, so for one seed everything a scenario does not touch reads exactly
as on an ordinary day (:meth:`Plan.touched_zones`). Reading ids are
``sim-<tag>-<sensor id>-<epoch seconds>``, the tag hashing seed, scenario and start: the same call
gives the same ids, another start or scenario fresh ones.
"""

from __future__ import annotations

import gc
import hashlib
import math
import random
from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from models.contracts import ReportCategory, SensorKind, SensorReading, VolunteerReport
from models.timezone import BEIJING
from models.zones import Zone, ZoneRegistry

__all__ = [
    "BEIJING",
    "CAMERA_INTERVAL",
    "COUNTER_INTERVAL",
    "GATE_ONLY_ZONES",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_SUFFIX",
    "NOISE",
    "ORDINARY_MAX_DENSITY",
    "ORDINARY_MAX_OCCUPANCY",
    "SCENARIOS",
    "SENSOR_INTERVAL",
    "SMOKE_INTERVAL",
    "SURGE_LENGTH",
    "TWO_CAMERA_AREA_M2",
    "ZONE_TYPES",
    "Buildup",
    "DeadDevice",
    "Device",
    "FaultyCamera",
    "Flood",
    "Outage",
    "Plan",
    "SmokeAlarm",
    "Surge",
    "camera_ids",
    "devices",
    "fleet",
    "gate_ids",
    "generate",
    "generate_reports",
    "heartbeat_id",
    "mean_people",
    "plan",
    "profile_for",
    "smoke_detector_ids",
    "surge_density",
    "zone_type",
]

#: Beijing time (UTC+08:00, no daylight saving): the zone of every simulated ``observed_at``.

#: Scenario name → one-line description (for the CLI's help).
SCENARIOS: Final[dict[str, str]] = {
    "day": "an ordinary day: every sensor kind reports, nothing crosses a threshold (peak under "
    "2 persons/m² and 70 % of capacity); one volunteer reports littering 3 times in 5 minutes",
    "surge": "ordinary day plus an evening surge in 田子坊's main lanes, ~0.8 → ~5.5 persons/m² "
    "at ~0.2 persons/m² per minute, then back; 3 volunteers report crowding in one lane",
    "holiday": "a holiday build-up: 田子坊's main lanes climb ~0.03 persons/m² per minute from "
    "0.8 to 4.5 (~2 h), stay an hour, then empty; queues at the gate-only frontage (to 2.4)",
    "fire": "one zone's smoke detector alarms, 90 s later its second one: a confirmed fire",
    "fire_report": "one smoke detector alarms; 1–2 minutes later two volunteers report a fire",
    "smoke_false": "one smoke detector alarms for 2 minutes, then clears; nobody reports",
    "flood": "flash flood: water at two low points rises 0 → ~45 cm in ~20 minutes, then drains",
    "flaky": "a camera whose readings jump ±40 % at random and one that resends its readings "
    "(same reading_id); every zone stays ordinary",
    "dropout": "one zone's devices all fall silent for 20 minutes, then resume; another device "
    "dies for good",
    "smoke": "ordinary day plus one single-detector smoke alarm (橙) and later a two-detector "
    "alarm in another zone (红)",
    "demo": "ordinary day plus a surge in one 田子坊 lane and an occasional smoke alarm",
}

#: Zones at least this large (m²) have two cameras, smaller ones one.
TWO_CAMERA_AREA_M2: Final = 1000.0
#: How often a smoke detector reports its state when nothing changes.
SMOKE_INTERVAL: Final = timedelta(minutes=5)
#: Fire-lane and lift cameras (people cameras report every ``interval`` of :func:`generate`).
CAMERA_INTERVAL: Final = timedelta(seconds=30)
#: Gate counters (``entries`` / ``exits``).
COUNTER_INTERVAL: Final = timedelta(seconds=30)
#: Gas, circuit temperature, leakage current, water depth, manhole tilt.
SENSOR_INTERVAL: Final = timedelta(seconds=60)
#: Every device's heartbeat (its uptime in seconds), from sensor ``{device}`` + this suffix.
HEARTBEAT_SUFFIX: Final = "-hb"
HEARTBEAT_INTERVAL: Final = timedelta(seconds=60)
#: Default largest relative camera noise (±8 %).
NOISE: Final = 0.08
#: Ceiling of an ordinary zone's mean density (persons/m²) — under 2, where 蓝 starts.
ORDINARY_MAX_DENSITY: Final = 1.5
#: Ceiling of an ordinary zone's mean occupancy — with noise, far under the 90 % where 黄 starts.
ORDINARY_MAX_OCCUPANCY: Final = 0.6
#: Zones counted by their gates only (no camera): occupancy = entries − exits.
GATE_ONLY_ZONES: Final = frozenset({"tianzifang-taikang-frontage"})
#: The zone types of :func:`zone_type`.
ZONE_TYPES: Final = ("lane", "street", "mall", "transit", "office", "residential", "facility")

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
    # Cooking (gas detectors): breakfast, lunch and dinner.
    "kitchen": (
        (0, 0.0),
        (6, 0.05),
        (7, 0.35),
        (8.5, 0.1),
        (10.5, 0.2),
        (11.5, 1.0),
        (13, 0.3),
        (16.5, 0.3),
        (17.5, 1.0),
        (19.5, 0.6),
        (21, 0.1),
        (24, 0.0),
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


def _hour(epoch: float) -> float:
    """Hour of the day in Beijing time of an epoch second."""
    return ((epoch + 8 * 3600) % 86400) / 3600


def _ordinary_peak(zone: Zone) -> float:
    """Mean people in ``zone`` at the top of its daily curve on an ordinary day."""
    people = _PEAK_DENSITY[profile_for(zone)] * zone.area_m2
    people = min(people, ORDINARY_MAX_DENSITY * zone.area_m2)
    if zone.capacity is not None:
        people = min(people, ORDINARY_MAX_OCCUPANCY * zone.capacity)
    return people


# ---------------------------------------------------------------------------------- fleet ----
_OUTDOOR_WORDS: Final = ("plaza", "forecourt", "frontage", "square", "street")
_UNDERGROUND_WORDS: Final = ("concourse", "underground", "basement")


def zone_type(zone: Zone) -> str:
    """The zone's type (one of :data:`ZONE_TYPES`), which decides its devices.

    ``transit``: ``metro`` in the id. ``lane`` / ``street``: a 田子坊 zone (its frontage is a
    street). ``office``: ``lobby`` in the id. ``street``: ``garden`` in the id, or an outdoor word
    (plaza, forecourt, frontage, square, street) and a capacity. ``mall``: any other zone with a
    capacity. ``residential``: no capacity and at least :data:`TWO_CAMERA_AREA_M2`; smaller ones
    are a ``facility``.
    """
    zid = zone.id
    if "metro" in zid:
        return "transit"
    if zone.site == "tianzifang":
        return "street" if "frontage" in zid else "lane"
    if "lobby" in zid:
        return "office"
    if "garden" in zid or (zone.capacity is not None and any(w in zid for w in _OUTDOOR_WORDS)):
        return "street"
    if zone.capacity is not None:
        return "mall"
    if zone.area_m2 >= TWO_CAMERA_AREA_M2:
        return "residential"
    return "facility"


@dataclass(frozen=True, slots=True)
class Device:
    """One simulated device: what it measures and how often it reports it (smoke detectors also
    report at once on a change of state). Every device also sends a heartbeat every
    :data:`HEARTBEAT_INTERVAL`, as sensor :attr:`heartbeat_id`."""

    sensor_id: str
    zone_id: str
    kind: SensorKind
    interval: timedelta

    @property
    def heartbeat_id(self) -> str:
        """Sensor id of the device's heartbeats."""
        return heartbeat_id(self.sensor_id)


def heartbeat_id(sensor_id: str) -> str:
    """Sensor id of the heartbeats of device ``sensor_id``."""
    return sensor_id + HEARTBEAT_SUFFIX


def camera_ids(zone: Zone) -> tuple[str, ...]:
    """Ids of the zone's ``people_count`` cameras: one, two for a large zone, none for a
    gate-only zone (:data:`GATE_ONLY_ZONES`)."""
    if zone.id in GATE_ONLY_ZONES:
        return ()
    count = 2 if zone.area_m2 >= TWO_CAMERA_AREA_M2 else 1
    return tuple(f"{zone.id}-cam-{i}" for i in range(1, count + 1))


def smoke_detector_ids(zone: Zone) -> tuple[str, str]:
    """Ids of the zone's two smoke detectors."""
    return (f"{zone.id}-smoke-1", f"{zone.id}-smoke-2")


def _gate_count(zone: Zone) -> int:
    if zone.id in GATE_ONLY_ZONES:
        return 3
    kind = zone_type(zone)
    if kind == "transit":
        return 2
    if kind == "lane" and zone.area_m2 < TWO_CAMERA_AREA_M2:
        return 2  # a main lane: its mouth on 泰康路 and its inner end
    return 0


def gate_ids(zone: Zone) -> tuple[tuple[str, str], ...]:
    """``(entries counter, exits counter)`` of each of the zone's gates (none for most zones)."""
    return tuple(
        (f"{zone.id}-gate-{g}-in", f"{zone.id}-gate-{g}-out")
        for g in range(1, _gate_count(zone) + 1)
    )


_GATE_SHARES: Final[dict[int, tuple[float, ...]]] = {
    1: (1.0,),
    2: (0.6, 0.4),
    3: (0.45, 0.35, 0.2),
}
#: Minutes a person stays, by zone type: sets how many pass through the gates.
_DWELL_MIN: Final[dict[str, float]] = {"lane": 20.0, "street": 6.0, "transit": 3.0}


def devices(zone: Zone, *, interval: timedelta = timedelta(seconds=30)) -> tuple[Device, ...]:
    """The zone's devices (see the module docstring's table), people cameras reporting every
    ``interval``."""
    kind = zone_type(zone)
    z = zone.id
    out = [Device(c, z, SensorKind.PEOPLE_COUNT, interval) for c in camera_ids(zone)]
    out += [Device(s, z, SensorKind.SMOKE, SMOKE_INTERVAL) for s in smoke_detector_ids(zone)]
    for entries, exits in gate_ids(zone):
        out.append(Device(entries, z, SensorKind.ENTRIES, COUNTER_INTERVAL))
        out.append(Device(exits, z, SensorKind.EXITS, COUNTER_INTERVAL))
    if kind in ("mall", "residential"):
        out.append(Device(f"{z}-gas-1", z, SensorKind.GAS_LEL, SENSOR_INTERVAL))
    if kind != "street":
        out.append(Device(f"{z}-circuit-1", z, SensorKind.CIRCUIT_TEMP, SENSOR_INTERVAL))
        out.append(Device(f"{z}-leak-1", z, SensorKind.LEAK_CURRENT, SENSOR_INTERVAL))
    if kind in ("street", "transit") or (
        kind == "mall" and any(w in z for w in _UNDERGROUND_WORDS)
    ):
        out.append(Device(f"{z}-water-1", z, SensorKind.WATER_DEPTH, SENSOR_INTERVAL))
    if kind == "street":
        out.append(Device(f"{z}-manhole-1", z, SensorKind.MANHOLE_TILT, SENSOR_INTERVAL))
    if kind in ("lane", "mall", "office", "residential"):
        out.append(Device(f"{z}-firelane-1", z, SensorKind.FIRE_LANE_BLOCKED, CAMERA_INTERVAL))
    if kind == "residential":
        out.append(Device(f"{z}-lift-1", z, SensorKind.EBIKE_IN_ELEVATOR, CAMERA_INTERVAL))
    return tuple(out)


def fleet(
    zones: ZoneRegistry | Sequence[Zone], *, interval: timedelta = timedelta(seconds=30)
) -> list[Device]:
    """Every device of every zone, zone by zone."""
    return [d for zone in zones for d in devices(zone, interval=interval)]


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


def _ramp_crossing(
    density: float, ease: float, start: float, rate: float, peak: float
) -> float | None:
    """Minutes after onset at which a curve (0 → ``start`` over ``ease`` minutes, then ``rate``
    per minute up to ``peak``) first reaches ``density``; ``None`` if it never does."""
    if density <= 0:
        return 0.0
    if density <= start:
        return ease * density / start
    if density <= peak:
        return ease + (density - start) / rate
    return None


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

    def density(self, minutes: float) -> float | None:
        """The surge's density ``minutes`` after onset (:func:`surge_density`)."""
        return surge_density(minutes)

    def crossing(self, density: float) -> datetime | None:
        """When the surge's mean density first reaches ``density`` (persons/m²); ``None`` above
        its peak. The zone's true mean is the larger of this curve and its ordinary level, so for
        densities above the ordinary level (≥ 0.8 in 田子坊's lanes) this is the true moment."""
        minutes = _ramp_crossing(
            density, _SURGE_EASE_MIN, _SURGE_FROM, _SURGE_RISE_PER_MIN, _SURGE_TO
        )
        return None if minutes is None else self.onset + timedelta(minutes=minutes)


@dataclass(frozen=True, slots=True)
class Buildup:
    """A slow crowd build-up in one zone (a holiday afternoon), starting at ``onset``: gathering
    from 0 to ``from_density`` over ``ease``, a linear climb to ``peak_density`` over ``rise``, a
    ``plateau``, then a linear fall to 0 over ``fall``. As for a surge, the zone's mean is the
    larger of this curve and its ordinary level."""

    zone_id: str
    onset: datetime
    from_density: float = 0.8
    peak_density: float = 4.5
    rise: timedelta = timedelta(seconds=7400)  # 3.7 persons/m² at 0.03 per minute
    plateau: timedelta = timedelta(minutes=60)
    fall: timedelta = timedelta(minutes=90)
    ease: timedelta = timedelta(minutes=10)

    @property
    def rate_per_min(self) -> float:
        """Climb in persons/m² per minute."""
        return (self.peak_density - self.from_density) / (self.rise.total_seconds() / 60)

    @property
    def peak_at(self) -> datetime:
        """When the plateau begins."""
        return self.onset + self.ease + self.rise

    @property
    def end(self) -> datetime:
        """When the zone is back to ordinary."""
        return self.onset + self.ease + self.rise + self.plateau + self.fall

    def density(self, minutes: float) -> float | None:
        """The build-up's density ``minutes`` after onset; ``None`` outside it."""
        ease = self.ease.total_seconds() / 60
        rise_end = ease + self.rise.total_seconds() / 60
        fall_start = rise_end + self.plateau.total_seconds() / 60
        end = fall_start + self.fall.total_seconds() / 60
        if minutes < 0 or minutes >= end:
            return None
        if minutes < ease:
            return self.from_density * minutes / ease
        if minutes < rise_end:
            return self.from_density + self.rate_per_min * (minutes - ease)
        if minutes < fall_start:
            return self.peak_density
        return self.peak_density * (1 - (minutes - fall_start) / (end - fall_start))

    def crossing(self, density: float) -> datetime | None:
        """When the build-up's mean density first reaches ``density``; ``None`` above its peak."""
        minutes = _ramp_crossing(
            density,
            self.ease.total_seconds() / 60,
            self.from_density,
            self.rate_per_min,
            self.peak_density,
        )
        return None if minutes is None else self.onset + timedelta(minutes=minutes)


@dataclass(frozen=True, slots=True)
class SmokeAlarm:
    """One smoke detector reading 1 from ``start`` until ``end`` (it reads 0 again at ``end``)."""

    zone_id: str
    sensor_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Flood:
    """Standing water at one ``water_depth`` sensor: from ``onset`` a linear rise from 0 to
    ``peak_cm`` over ``rise``, ``hold`` at the peak, then a linear drain to 0 over ``drain``.
    Readings are this depth plus the sensor's ordinary 0–1 cm."""

    zone_id: str
    sensor_id: str
    onset: datetime
    peak_cm: float = 45.0
    rise: timedelta = timedelta(minutes=20)
    hold: timedelta = timedelta(minutes=10)
    drain: timedelta = timedelta(minutes=40)

    @property
    def end(self) -> datetime:
        """When the water has drained."""
        return self.onset + self.rise + self.hold + self.drain

    def depth_after(self, seconds: float) -> float:
        """Flood depth (cm) ``seconds`` after onset (0 outside the flood)."""
        rise = self.rise.total_seconds()
        hold_end = rise + self.hold.total_seconds()
        end = hold_end + self.drain.total_seconds()
        if seconds <= 0 or seconds >= end:
            return 0.0
        if seconds < rise:
            return self.peak_cm * seconds / rise
        if seconds < hold_end:
            return self.peak_cm
        return self.peak_cm * (1 - (seconds - hold_end) / (end - hold_end))

    def depth(self, at: datetime) -> float:
        """Flood depth (cm) at ``at``."""
        return self.depth_after((at - self.onset).total_seconds())

    def crossing(self, cm: float) -> datetime | None:
        """When the flood depth first reaches ``cm``; ``None`` above the peak."""
        if cm > self.peak_cm:
            return None
        return self.onset + self.rise * (max(cm, 0.0) / self.peak_cm)


@dataclass(frozen=True, slots=True)
class FaultyCamera:
    """A people camera with a fault from ``start``: ``"jumpy"`` (a quarter of its readings off by
    25–40 %, up or down) or ``"repeating"`` (each reading sent twice, some three times, with the
    same ``reading_id``)."""

    zone_id: str
    sensor_id: str
    fault: str
    start: datetime


@dataclass(frozen=True, slots=True)
class Outage:
    """Every device of a zone (heartbeats included) is silent in ``[start, end)``: the zone's
    uplink is down. Devices keep running (uptime keeps growing; gate counters keep counting and
    report the whole gap in their first reading after it)."""

    zone_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class DeadDevice:
    """A device that sends nothing from ``at`` on (heartbeats included)."""

    zone_id: str
    sensor_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """What a scenario adds to an ordinary day in one window."""

    surges: tuple[Surge, ...] = ()
    alarms: tuple[SmokeAlarm, ...] = ()
    buildups: tuple[Buildup, ...] = ()
    floods: tuple[Flood, ...] = ()
    faults: tuple[FaultyCamera, ...] = ()
    outages: tuple[Outage, ...] = ()
    deaths: tuple[DeadDevice, ...] = ()
    #: Volunteer reports of the scenario (all of them, also any after the window's end).
    reports: tuple[VolunteerReport, ...] = ()

    def touched_zones(self) -> frozenset[str]:
        """Zones whose readings differ from the ordinary day's (reports touch no reading)."""
        events: list[Any] = [
            *self.surges,
            *self.alarms,
            *self.buildups,
            *self.floods,
            *self.faults,
            *self.outages,
            *self.deaths,
        ]
        return frozenset(e.zone_id for e in events)


def _surge_lanes(zones: Sequence[Zone]) -> list[Zone]:
    """田子坊's narrow main lanes; failing that any 田子坊 zone; failing that the smallest zone."""
    tianzifang = [z for z in zones if z.site == "tianzifang" and z.id not in GATE_ONLY_ZONES]
    lanes = [z for z in tianzifang if z.area_m2 < TWO_CAMERA_AREA_M2]
    if lanes:
        return lanes
    if tianzifang:
        return tianzifang
    counted = [z for z in zones if z.id not in GATE_ONLY_ZONES] or list(zones)
    return [min(counted, key=lambda z: (z.area_m2, z.id))]


def _daily_onset(
    start: datetime, end: datetime, span: timedelta, hour: int = _SURGE_EVENING_HOUR
) -> datetime:
    """The first ``hour``:00 Beijing time at which an event of length ``span`` fits in the
    window; without one, ``min(10 min, a quarter of the window)`` into it, so the scenario always
    shows what it is named for."""
    local = start.astimezone(BEIJING)
    moment = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if moment < local:
        moment += timedelta(days=1)
    if moment + span <= end:
        return moment
    return local + min(_FALLBACK_LEAD, (end - start) / 4)


def _surge_onset(start: datetime, end: datetime, span: timedelta) -> datetime:
    return _daily_onset(start, end, span, _SURGE_EVENING_HOUR)


_HOLIDAY_HOUR: Final = 12  # 2 Oct 2019: past capacity by 14:00, peak at 15:30 (zones.yaml)
_HOLIDAY_FRONTAGE_PEAK: Final = 2.4  # queues at the gates: 蓝 by density, 80 % of capacity
_EVENT_AT: Final = 0.1  # fire, fire_report, smoke_false, flood, flaky, dropout: 10 % in
_FIRE_SECOND_AFTER: Final = timedelta(seconds=90)
_FIRE_LASTS: Final = timedelta(minutes=20)
_FIRE_REPORT_ALARM_LASTS: Final = timedelta(minutes=15)
_FIRE_REPORTS_AFTER: Final = (timedelta(seconds=60), timedelta(seconds=110))
_FALSE_ALARM_LASTS: Final = timedelta(minutes=2)
_FLOOD_STAGGER: Final = timedelta(minutes=3)
_FLOOD_PEAKS: Final = (45.0, 43.0)
_OUTAGE_LASTS: Final = timedelta(minutes=20)
_DEATH_AFTER: Final = timedelta(minutes=5)
_CROWD_REPORT_DENSITY: Final = 3.0  # volunteers speak up when a lane is hard to walk through
_CROWD_REPORTS_AFTER: Final = (timedelta(0), timedelta(minutes=2), timedelta(minutes=4))
_LITTER_REPORTS_AFTER: Final = (timedelta(0), timedelta(minutes=2), timedelta(seconds=270))
_LITTER_HOUR: Final = 10


def _buildings(zones: Sequence[Zone]) -> list[Zone]:
    """Zones with an electrical-fire monitor: buildings and 石库门 lanes, where fires start."""
    return [z for z in zones if zone_type(z) != "street"] or list(zones)


def _low_points(zones: Sequence[Zone]) -> list[Device]:
    return [d for z in zones for d in devices(z) if d.kind is SensorKind.WATER_DEPTH]


def plan(  # noqa: C901, PLR0912, PLR0915 — one flat script of the scenario's day
    zones: ZoneRegistry | Sequence[Zone],
    start: datetime,
    duration: timedelta,
    *,
    scenario: str = "day",
    seed: int = 7,
) -> Plan:
    """What ``scenario`` adds to an ordinary day in the window ``[start, start + duration)``.

    *T* below is 10 % into the window (floored to the second). Events that would start after the
    window's end are still listed; they simply have no readings.

    * ``day``: one volunteer reports ``littering`` in one zone three times (+0, +2, +4.5 min) from
      the first 10:00 Beijing time in the window (else shortly after ``start``).
    * ``surge``: 田子坊's main lanes (zones of site ``tianzifang`` under
      :data:`TWO_CAMERA_AREA_M2`) surge, 4 minutes apart, from the first 19:00 Beijing time
      that leaves room for all of them (else shortly after ``start``); three volunteers report
      ``crowding`` in the first lane when its density reaches 3, and 2 and 4 minutes later.
    * ``holiday``: the main lanes build up together (:class:`Buildup`: 0.8 → 4.5 at 0.03 per
      minute, an hour's plateau, 90 minutes' fall), and the gate-only frontage to 2.4, from the
      first 12:00 Beijing time that leaves room for the whole build-up (else shortly after
      ``start``).
    * ``fire``: in one building zone, one detector alarms at *T*, the other at *T* + 90 s;
      both clear at *T* + 20 min.
    * ``fire_report``: in one building zone, one detector alarms at *T* until *T* + 15 min; two
      volunteers report ``fire`` there at *T* + 60 s and *T* + 110 s.
    * ``smoke_false``: one detector of one zone alarms at *T* and clears at *T* + 2 min.
    * ``flood``: two low points (``water_depth`` sensors) flood (:class:`Flood`), from *T* and
      *T* + 3 min, peaks 45 and 43 cm.
    * ``flaky``: from *T*, a camera of a 田子坊 main lane is ``jumpy`` and a camera of another
      zone is ``repeating`` (:class:`FaultyCamera`).
    * ``dropout``: one zone is silent in [*T*, *T* + 20 min); one device of another zone dies at
      *T* + 5 min.
    * ``smoke``: one detector of one zone alarms at 20 % of the window for up to 12 minutes;
      at 55 % both detectors of another zone alarm, 90 s apart, for up to 15 minutes.
    * ``demo``: one lane surges (placed as above); single-detector alarms start at
      ``min(40 min, 40 % of the window)`` and every 3 hours after, 10 minutes each.

    Zones, sensors and volunteers are chosen with ``random.Random`` seeded from ``seed`` and
    ``scenario``. Raises ``ValueError`` for an unknown scenario, a naive ``start``, a negative
    duration or no zones.
    """
    zone_list = list(zones)
    start, end = _window(start, duration)
    _check_scenario(scenario)
    if not zone_list:
        raise ValueError("no zones to simulate")
    rng = _rng(seed, f"plan:{scenario}")
    at = _whole(start + duration * _EVENT_AT)
    surges: list[Surge] = []
    alarms: list[SmokeAlarm] = []
    buildups: list[Buildup] = []
    floods: list[Flood] = []
    faults: list[FaultyCamera] = []
    outages: list[Outage] = []
    deaths: list[DeadDevice] = []
    said: list[tuple[Zone, ReportCategory, datetime, int]] = []  # (zone, category, at, reporter)
    if scenario == "day":
        zone = rng.choice(zone_list)
        reporter = rng.randrange(1000, 10000)
        litter = _daily_onset(start, end, _LITTER_REPORTS_AFTER[-1], _LITTER_HOUR)
        said += [
            (zone, ReportCategory.LITTERING, litter + d, reporter) for d in _LITTER_REPORTS_AFTER
        ]
    elif scenario == "surge":
        lanes = _surge_lanes(zone_list)
        span = SURGE_LENGTH + _SURGE_STAGGER * (len(lanes) - 1)
        onset = _surge_onset(start, end, span)
        surges = [Surge(z.id, onset + _SURGE_STAGGER * i) for i, z in enumerate(lanes)]
        crowded = surges[0].crossing(_CROWD_REPORT_DENSITY)
        assert crowded is not None
        reporters = rng.sample(range(1000, 10000), len(_CROWD_REPORTS_AFTER))
        said += [
            (lanes[0], ReportCategory.CROWDING, _whole(crowded) + d, who)
            for d, who in zip(_CROWD_REPORTS_AFTER, reporters, strict=True)
        ]
    elif scenario == "holiday":
        lanes = _surge_lanes(zone_list)
        length = Buildup("", start).end - start
        onset = _daily_onset(start, end, length, _HOLIDAY_HOUR)
        buildups = [Buildup(z.id, onset) for z in lanes]
        buildups += [
            Buildup(z.id, onset, peak_density=_HOLIDAY_FRONTAGE_PEAK)
            for z in zone_list
            if z.id in GATE_ONLY_ZONES and z.site == "tianzifang"
        ]
    elif scenario in ("fire", "fire_report", "smoke_false"):
        pool = zone_list if scenario == "smoke_false" else _buildings(zone_list)
        zone = rng.choice(pool)
        first_id, second_id = smoke_detector_ids(zone)
        if rng.randrange(2):
            first_id, second_id = second_id, first_id
        if scenario == "fire":
            alarms.append(SmokeAlarm(zone.id, first_id, at, at + _FIRE_LASTS))
            alarms.append(SmokeAlarm(zone.id, second_id, at + _FIRE_SECOND_AFTER, at + _FIRE_LASTS))
        elif scenario == "fire_report":
            alarms.append(SmokeAlarm(zone.id, first_id, at, at + _FIRE_REPORT_ALARM_LASTS))
            reporters = rng.sample(range(1000, 10000), len(_FIRE_REPORTS_AFTER))
            said += [
                (zone, ReportCategory.FIRE, at + d, who)
                for d, who in zip(_FIRE_REPORTS_AFTER, reporters, strict=True)
            ]
        else:
            alarms.append(SmokeAlarm(zone.id, first_id, at, at + _FALSE_ALARM_LASTS))
    elif scenario == "flood":
        points = _low_points(zone_list)
        if points:
            chosen = rng.sample(points, min(2, len(points)))
            floods = [
                Flood(d.zone_id, d.sensor_id, at + _FLOOD_STAGGER * i, peak_cm=_FLOOD_PEAKS[i])
                for i, d in enumerate(chosen)
            ]
    elif scenario == "flaky":
        counted = [z for z in zone_list if camera_ids(z)]
        if counted:
            lanes = [z for z in _surge_lanes(counted) if z.site == "tianzifang"] or counted
            jumpy_zone = rng.choice(lanes)
            jumpy = rng.choice(camera_ids(jumpy_zone))
            others = [z for z in counted if z.id != jumpy_zone.id] or counted
            repeating_zone = rng.choice(others)
            cams = [c for c in camera_ids(repeating_zone) if c != jumpy]
            faults = [FaultyCamera(jumpy_zone.id, jumpy, "jumpy", at)]
            if cams:
                faults.append(FaultyCamera(repeating_zone.id, rng.choice(cams), "repeating", at))
    elif scenario == "dropout":
        silent = rng.choice(zone_list)
        outages = [Outage(silent.id, at, at + _OUTAGE_LASTS)]
        others = [z for z in zone_list if z.id != silent.id]
        if others:
            victim = rng.choice(devices(rng.choice(others)))
            deaths = [DeadDevice(victim.zone_id, victim.sensor_id, at + _DEATH_AFTER)]
    elif scenario == "smoke":
        single_zone = rng.choice(zone_list)
        others = [z for z in zone_list if z.id != single_zone.id] or zone_list
        pair_zone = rng.choice(others)
        moment = start + duration * 0.2
        detector = smoke_detector_ids(single_zone)[rng.randrange(2)]
        alarms.append(
            SmokeAlarm(
                single_zone.id,
                detector,
                moment,
                moment + min(timedelta(minutes=12), duration / 5),
            )
        )
        moment = start + duration * 0.55
        gap = min(timedelta(seconds=90), duration / 20)
        clear = moment + min(timedelta(minutes=15), duration * 0.3)
        first, second = smoke_detector_ids(pair_zone)
        alarms.append(SmokeAlarm(pair_zone.id, first, moment, clear))
        alarms.append(SmokeAlarm(pair_zone.id, second, moment + gap, clear))
    elif scenario == "demo":
        lane = rng.choice(_surge_lanes(zone_list))
        surges = [Surge(lane.id, _surge_onset(start, end, SURGE_LENGTH))]
        moment = start + min(timedelta(minutes=40), duration * 0.4)
        while moment < end:
            zone = rng.choice(zone_list)
            detector = smoke_detector_ids(zone)[rng.randrange(2)]
            alarms.append(SmokeAlarm(zone.id, detector, moment, moment + timedelta(minutes=10)))
            moment += timedelta(hours=3)
    alarms = [SmokeAlarm(a.zone_id, a.sensor_id, _whole(a.start), _whole(a.end)) for a in alarms]
    return Plan(
        surges=tuple(surges),
        alarms=tuple(alarms),
        buildups=tuple(buildups),
        floods=tuple(floods),
        faults=tuple(faults),
        outages=tuple(outages),
        deaths=tuple(deaths),
        reports=tuple(_reports(said, seed, scenario, start)),
    )


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


def _tag(seed: int, scenario: str, begin: datetime) -> str:
    """Short hash of what makes a run's ids unique: seed, scenario and start."""
    text = f"{seed}|{scenario}|{begin.isoformat()}".encode()
    return hashlib.blake2s(text, digest_size=4).hexdigest()


# -------------------------------------------------------------------------------- reports ----
_DESCRIPTIONS: Final[dict[ReportCategory, tuple[str, ...]]] = {
    ReportCategory.FIRE: (
        "{zh}有浓烟冒出来，闻到很重的焦糊味，能看到火光",
        "{zh}着火了，烟从二楼窗口往外冒，我们在帮忙疏散旁边的人",
    ),
    ReportCategory.CROWDING: (
        "{zh}人太多了，几乎走不动，弄口还在不断进人",
        "{zh}人挤人，有老人和小孩被挤到墙边，建议限流",
        "{zh}拥堵很严重，前后都动不了，需要有人来疏导",
    ),
    ReportCategory.LITTERING: (
        "{zh}垃圾桶旁边堆满了外卖盒和饮料杯，没人清理",
        "{zh}又有人乱扔垃圾，地上全是纸巾和塑料袋",
        "{zh}垃圾还是没人清理，已经有异味了",
    ),
}


def _reports(
    said: Sequence[tuple[Zone, ReportCategory, datetime, int]],
    seed: int,
    scenario: str,
    begin: datetime,
) -> list[VolunteerReport]:
    tag = _tag(seed, scenario, begin)
    out: list[VolunteerReport] = []
    per_category: dict[ReportCategory, int] = {}
    for n, (zone, category, at, reporter) in enumerate(sorted(said, key=lambda s: s[2]), 1):
        # Each report of a category gets the next description: different people (and one
        # person repeating themselves) do not send identical text.
        texts = _DESCRIPTIONS[category]
        index = per_category.get(category, 0)
        per_category[category] = index + 1
        out.append(
            VolunteerReport(
                report_id=f"rep-{tag}-{n:03d}",
                reporter_id=f"vol-{reporter:04d}",
                zone_id=zone.id,
                category=category,
                description=texts[index % len(texts)].format(zh=zone.name.zh),
                submitted_at=_whole(at).astimezone(BEIJING),
                lat=zone.location.lat if zone.location else None,
                lon=zone.location.lon if zone.location else None,
            )
        )
    return out


def generate_reports(
    zones: ZoneRegistry | Sequence[Zone],
    start: datetime,
    duration: timedelta,
    *,
    scenario: str = "day",
    seed: int = 7,
) -> list[VolunteerReport]:
    """Volunteer reports of ``scenario`` in ``[start, start + duration)``, sorted by
    ``submitted_at`` (see :func:`plan`: ``day``, ``surge`` and ``fire_report`` have some).

    Pure and deterministic. Report ids are ``rep-<tag>-NNN`` (the tag as for readings), reporter
    ids ``vol-NNNN``, descriptions in Chinese naming the zone, ``submitted_at`` in +08:00 and
    whole seconds, ``lat``/``lon`` the zone's location where it has one. Raises ``ValueError``
    as :func:`plan` does.
    """
    begin, end = _window(start, duration)
    scheme = plan(zones, begin, duration, scenario=scenario, seed=seed)
    return [r for r in scheme.reports if begin <= r.submitted_at < end]


# ------------------------------------------------------------------------------- generate ----
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NOISE_KEEP: Final = 0.8  # AR(1): how much of the previous camera error carries over
_NOISE_STEP: Final = 0.025  # standard deviation of each step, at the default NOISE (scaled)
_JUMP_SHARE: Final = 0.25  # a jumpy camera: share of readings off ...
_JUMP_SIZE: Final = (0.25, 0.40)  # ... by this much, up or down
_REPEAT_THIRD: Final = 0.3  # a repeating camera: chance that a reading goes out three times
_VAN_CHANCE: Final = 0.002  # per fire-lane reading in the daytime (~3 vans a day)
_VAN_HOURS: Final = (7.0, 21.0)
_UPTIME_RANGE: Final = (6 * 3600, 60 * 86400)  # seconds since boot at the window's start

# Ordinary behaviour of the gauges: (base range, daily curve or None, amplitude on the curve,
# AR(1) step and bound of the error, clamp range, decimals). Every value stays far under the
# DOMAIN.md starting thresholds (gas 10 % LEL, 60 °C, 300 mA, 5 cm, 10°).
_GAUGES: Final[
    dict[SensorKind, tuple[tuple[float, float], str | None, float, float, float, float, float, int]]
] = {
    SensorKind.GAS_LEL: ((0.2, 0.8), "kitchen", 1.4, 0.08, 0.3, 0.0, 3.0, 1),
    SensorKind.CIRCUIT_TEMP: ((26.0, 30.0), "", 12.0, 0.3, 0.8, 25.0, 45.0, 1),  # "" = zone's
    SensorKind.LEAK_CURRENT: ((25.0, 60.0), "", 50.0, 2.0, 6.0, 20.0, 150.0, 0),
    SensorKind.WATER_DEPTH: ((0.0, 0.4), None, 0.0, 0.08, 0.2, 0.0, 1.0, 1),
    SensorKind.MANHOLE_TILT: ((0.2, 1.2), None, 0.0, 0.05, 0.15, 0.0, 2.0, 1),
}


def _rng(seed: int, purpose: str) -> random.Random:
    """A generator of its own for each purpose (the plan of a scenario, one sensor's phase and
    noise), so adding a sensor or a scenario leaves everything else unchanged. Sensors are seeded
    without the scenario: every scenario has the same ordinary background for the same seed.

    Seeding with a string is stable across processes (it does not depend on PYTHONHASHSEED).
    """
    return random.Random(f"puhui-sim:{seed}:{purpose}")


def _phase(rng: random.Random, period: timedelta) -> float:
    whole = int(period.total_seconds())
    return float(rng.randrange(whole)) if whole >= 1 else 0.0


def _ts(moment: datetime) -> float:
    return (moment - _EPOCH).total_seconds()


class _Crowd:
    """The true mean people of one zone: its ordinary curve, or a surge / build-up above it."""

    __slots__ = ("area", "events", "peak", "profile")

    def __init__(self, zone: Zone, scheme: Plan) -> None:
        self.peak = _ordinary_peak(zone)
        self.profile = profile_for(zone)
        self.area = zone.area_m2
        shapes: list[tuple[float, Callable[[float], float | None]]] = []
        shapes += [(_ts(s.onset), s.density) for s in scheme.surges if s.zone_id == zone.id]
        shapes += [(_ts(b.onset), b.density) for b in scheme.buildups if b.zone_id == zone.id]
        self.events = shapes

    def at(self, epoch: float) -> float:
        mean = self.peak * _curve(self.profile, _hour(epoch))
        for onset, shape in self.events:
            density = shape((epoch - onset) / 60)
            if density is not None:
                mean = max(mean, density * self.area)
        return mean


def mean_people(zone: Zone, at: datetime, scheme: Plan | None = None) -> float:
    """The true (noise-free) mean number of people in ``zone`` at ``at`` under ``scheme`` (an
    ordinary day without one): what the cameras count around and what the gates balance to."""
    return _Crowd(zone, scheme or Plan()).at(_ts(at))


def _silent(quiet: Sequence[tuple[float, float]], offset: float) -> bool:
    return any(lo <= offset < hi for lo, hi in quiet)


def _split(total: int, shares: Sequence[float], rng: random.Random) -> list[int]:
    """``total`` persons over gates by ``shares`` (randomly rounded; the parts sum to it)."""
    parts: list[int] = []
    left = total
    for share in shares[:-1]:
        part = min(left, int(total * share + rng.random()))
        parts.append(part)
        left -= part
    parts.append(left)
    return parts


# (offset seconds, sensor id, zone id, kind, value): sorts as the output.
_Row = tuple[float, str, str, SensorKind, float]


class _Sim:
    """One :func:`generate` call: appends rows zone by zone, then builds the readings."""

    def __init__(
        self,
        begin: datetime,
        duration: timedelta,
        seed: int,
        scheme: Plan,
        interval: timedelta,
        noise: float,
        kinds: frozenset[SensorKind] | None,
    ) -> None:
        self.begin = begin
        self.begin_s = _ts(begin)
        self.span = duration.total_seconds()
        self.seed = seed
        self.scheme = scheme
        self.interval = interval
        self.noise = noise
        self.kinds = kinds
        self.rows: list[_Row] = []

    def _offset(self, moment: datetime) -> float:
        return (moment - self.begin).total_seconds()

    def _wants(self, kind: SensorKind) -> bool:
        return self.kinds is None or kind in self.kinds

    def zone(self, zone: Zone) -> None:
        gaps = [
            (self._offset(o.start), self._offset(o.end))
            for o in self.scheme.outages
            if o.zone_id == zone.id
        ]
        deaths = {d.sensor_id: self._offset(d.at) for d in self.scheme.deaths}

        def quiet(sensor: str) -> list[tuple[float, float]]:
            death = deaths.get(sensor)
            return gaps if death is None else [*gaps, (death, math.inf)]

        crowd = _Crowd(zone, self.scheme)
        cameras = camera_ids(zone)
        shares = (1.0,) if len(cameras) == 1 else (0.55, 0.45)
        share_of = dict(zip(cameras, shares, strict=False))
        for device in devices(zone, interval=self.interval):
            kind, sensor = device.kind, device.sensor_id
            silent = quiet(sensor)
            if self._wants(kind):
                if kind is SensorKind.PEOPLE_COUNT:
                    self.camera(zone, sensor, share_of[sensor], crowd, silent)
                elif kind is SensorKind.SMOKE:
                    self.smoke(zone, sensor, silent)
                elif kind in _GAUGES:
                    self.gauge(zone, sensor, kind, silent)
                elif kind is SensorKind.FIRE_LANE_BLOCKED:
                    self.fire_lane(zone, sensor, silent)
                elif kind is SensorKind.EBIKE_IN_ELEVATOR:
                    self.constant(zone, sensor, kind, CAMERA_INTERVAL, silent)
            if self._wants(SensorKind.HEARTBEAT):
                self.heartbeat(zone, sensor, silent)
        gates = gate_ids(zone)
        if gates and (self._wants(SensorKind.ENTRIES) or self._wants(SensorKind.EXITS)):
            self.gates(zone, gates, crowd, {s: quiet(s) for pair in gates for s in pair})

    def camera(
        self, zone: Zone, sensor: str, share: float, crowd: _Crowd, quiet: list[tuple[float, float]]
    ) -> None:
        rng = _rng(self.seed, sensor)
        bound = self.noise
        step_sd = _NOISE_STEP * (bound / NOISE)
        error = rng.uniform(-bound / 2, bound / 2)
        offset = _phase(rng, self.interval)
        step = self.interval.total_seconds()
        fault = next((f for f in self.scheme.faults if f.sensor_id == sensor), None)
        fault_from = self._offset(fault.start) if fault else math.inf
        fault_rng = _rng(self.seed, f"fault:{sensor}")
        rows, begin_s, span, zone_id = self.rows, self.begin_s, self.span, zone.id
        kind = SensorKind.PEOPLE_COUNT
        while offset < span:
            mean = crowd.at(begin_s + offset)
            error = _NOISE_KEEP * error + rng.gauss(0.0, step_sd)
            error = min(max(error, -bound), bound)
            count = float(max(0, round(share * mean * (1 + error))))
            copies = 1
            if fault is not None and offset >= fault_from:
                if fault.fault == "jumpy":
                    if fault_rng.random() < _JUMP_SHARE:
                        jump = fault_rng.uniform(*_JUMP_SIZE)
                        jump = jump if fault_rng.random() < 0.5 else -jump
                        count = float(max(0, round(count * (1 + jump))))
                else:
                    copies = 3 if fault_rng.random() < _REPEAT_THIRD else 2
            if not quiet or not _silent(quiet, offset):
                rows.extend([(offset, sensor, zone_id, kind, count)] * copies)
            offset += step

    def smoke(self, zone: Zone, sensor: str, quiet: list[tuple[float, float]]) -> None:
        rng = _rng(self.seed, sensor)
        alarms = [
            (self._offset(a.start), self._offset(a.end))
            for a in self.scheme.alarms
            if a.sensor_id == sensor
        ]
        moments: set[float] = set()
        offset = _phase(rng, SMOKE_INTERVAL)
        while offset < self.span:
            moments.add(offset)
            offset += SMOKE_INTERVAL.total_seconds()
        for on, off in alarms:
            moments.update(t for t in (on, off) if 0 <= t < self.span)
        for offset in moments:
            if quiet and _silent(quiet, offset):
                continue
            alarm = any(on <= offset < off for on, off in alarms)
            self.rows.append((offset, sensor, zone.id, SensorKind.SMOKE, 1.0 if alarm else 0.0))

    def gauge(
        self, zone: Zone, sensor: str, kind: SensorKind, quiet: list[tuple[float, float]]
    ) -> None:
        (low, high), curve, amplitude, step_sd, bound, lo, hi, digits = _GAUGES[kind]
        profile = profile_for(zone) if curve == "" else curve
        rng = _rng(self.seed, sensor)
        offset = _phase(rng, SENSOR_INTERVAL)
        base = rng.uniform(low, high)
        floods = [(_ts(f.onset), f) for f in self.scheme.floods if f.sensor_id == sensor]
        error = 0.0
        rows, begin_s, span, zone_id = self.rows, self.begin_s, self.span, zone.id
        step = SENSOR_INTERVAL.total_seconds()
        while offset < span:
            error = _NOISE_KEEP * error + rng.gauss(0.0, step_sd)
            error = min(max(error, -bound), bound)
            value = base + error
            if profile is not None:
                value += amplitude * _curve(profile, _hour(begin_s + offset))
            value = min(max(value, lo), hi)
            for onset, flood in floods:
                value += flood.depth_after(begin_s + offset - onset)
            if not quiet or not _silent(quiet, offset):
                rows.append((offset, sensor, zone_id, kind, round(value, digits)))
            offset += step

    def fire_lane(self, zone: Zone, sensor: str, quiet: list[tuple[float, float]]) -> None:
        """0, or 1 for 1–3 readings in a row (a delivery van), always followed by a 0."""
        rng = _rng(self.seed, sensor)
        offset = _phase(rng, CAMERA_INTERVAL)
        step = CAMERA_INTERVAL.total_seconds()
        more, after_van = 0, False  # readings of 1 still to come; the next one must be 0
        while offset < self.span:
            draw = rng.random()
            value = 0.0
            if more > 0:
                value, more = 1.0, more - 1
                after_van = more == 0
            elif after_van:
                after_van = False
            elif (
                draw < _VAN_CHANCE and _VAN_HOURS[0] <= _hour(self.begin_s + offset) < _VAN_HOURS[1]
            ):
                value, more = 1.0, rng.randrange(1, 4) - 1
                after_van = more == 0
            if not quiet or not _silent(quiet, offset):
                self.rows.append((offset, sensor, zone.id, SensorKind.FIRE_LANE_BLOCKED, value))
            offset += step

    def constant(
        self,
        zone: Zone,
        sensor: str,
        kind: SensorKind,
        period: timedelta,
        quiet: list[tuple[float, float]],
    ) -> None:
        rng = _rng(self.seed, sensor)
        offset = _phase(rng, period)
        step = period.total_seconds()
        while offset < self.span:
            if not quiet or not _silent(quiet, offset):
                self.rows.append((offset, sensor, zone.id, kind, 0.0))
            offset += step

    def heartbeat(self, zone: Zone, sensor: str, quiet: list[tuple[float, float]]) -> None:
        rng = _rng(self.seed, f"{sensor}|heartbeat")
        uptime = float(rng.randrange(*_UPTIME_RANGE))
        offset = _phase(rng, HEARTBEAT_INTERVAL)
        step = HEARTBEAT_INTERVAL.total_seconds()
        rows, span, zone_id, kind = self.rows, self.span, zone.id, SensorKind.HEARTBEAT
        beat = heartbeat_id(sensor)
        while offset < span:
            if not quiet or not _silent(quiet, offset):
                rows.append((offset, beat, zone_id, kind, uptime + offset))
            offset += step

    def gates(
        self,
        zone: Zone,
        gates: Sequence[tuple[str, str]],
        crowd: _Crowd,
        quiet: dict[str, list[tuple[float, float]]],
    ) -> None:
        """Entries and exits of every gate of a zone, read together by one controller."""
        rng = _rng(self.seed, f"{zone.id}|gates")
        period = COUNTER_INTERVAL.total_seconds()
        offset = _phase(rng, COUNTER_INTERVAL)
        dwell = _DWELL_MIN.get(zone_type(zone), 10.0) * 60
        shares = _GATE_SHARES.get(len(gates), tuple(1 / len(gates) for _ in gates))
        previous = round(crowd.at(self.begin_s + offset - period))
        pending = [[0, 0] for _ in gates]
        counters = [
            (g, direction, sensor, kind)
            for g, pair in enumerate(gates)
            for direction, (sensor, kind) in enumerate(
                zip(pair, (SensorKind.ENTRIES, SensorKind.EXITS), strict=True)
            )
        ]
        while offset < self.span:
            mean = crowd.at(self.begin_s + offset)
            now = round(mean)
            net, previous = now - previous, now
            flow = mean * period / dwell * (1 + rng.uniform(-0.25, 0.25))
            through = int(flow) + (1 if rng.random() < flow - int(flow) else 0)
            for direction, total in enumerate((through + max(net, 0), through + max(-net, 0))):
                for g, part in enumerate(_split(total, shares, rng)):
                    pending[g][direction] += part
            for g, direction, sensor, kind in counters:
                if _silent(quiet[sensor], offset):
                    continue  # the counter keeps counting: its next reading covers the gap
                if self._wants(kind):
                    value = float(pending[g][direction])
                    self.rows.append((offset, sensor, zone.id, kind, value))
                pending[g][direction] = 0
            offset += period

    def readings(self, tag: str) -> list[SensorReading]:
        self.rows.sort()
        times: dict[float, tuple[datetime, str]] = {}
        out: list[SensorReading] = []
        append = out.append
        begin, begin_s = self.begin, self.begin_s
        for offset, sensor, zone_id, kind, value in self.rows:
            cached = times.get(offset)
            if cached is None:
                epoch = begin_s + offset
                stamp = str(int(epoch)) if epoch == int(epoch) else repr(epoch)
                cached = times[offset] = (begin + timedelta(seconds=offset), stamp)
            observed, stamp = cached
            append(
                _reading(
                    {
                        "reading_id": f"sim-{tag}-{sensor}-{stamp}",
                        "sensor_id": sensor,
                        "zone_id": zone_id,
                        "kind": kind,
                        "value": value,
                        "observed_at": observed,
                    }
                )
            )
        return out


_READING_FIELDS: Final = frozenset(SensorReading.model_fields)
_set_attr: Final = object.__setattr__


def _trusted_reading(fields: dict[str, Any]) -> SensorReading:
    """A :class:`SensorReading` from fields that are already valid, without validating them
    again: what ``SensorReading.model_construct`` does, minus its generic overhead (validation
    is ~2/3 of the time of a simulated day). Only used when :func:`_check_trusted` holds."""
    reading = SensorReading.__new__(SensorReading)
    _set_attr(reading, "__dict__", fields)
    _set_attr(reading, "__pydantic_fields_set__", _READING_FIELDS)
    _set_attr(reading, "__pydantic_extra__", None)
    _set_attr(reading, "__pydantic_private__", None)
    return reading


def _validated_reading(fields: dict[str, Any]) -> SensorReading:
    return SensorReading(**fields)


def _check_trusted() -> bool:
    """Whether the shortcut builds exactly what validation builds (with this pydantic)."""
    if SensorReading.__pydantic_post_init__ is not None or SensorReading.__private_attributes__:
        return False
    sample = {
        "reading_id": "sim-check",
        "sensor_id": "check-cam-1",
        "zone_id": "check",
        "kind": SensorKind.PEOPLE_COUNT,
        "value": 1.0,
        "observed_at": datetime(2024, 5, 4, tzinfo=BEIJING),
    }
    try:
        fast, slow = _trusted_reading(dict(sample)), _validated_reading(dict(sample))
        return fast == slow and fast.model_dump_json() == slow.model_dump_json()
    except Exception:  # any surprise means: validate
        return False


_reading: Final = _trusted_reading if _check_trusted() else _validated_reading


def generate(
    zones: ZoneRegistry | Sequence[Zone],
    start: datetime,
    duration: timedelta,
    *,
    scenario: str = "day",
    seed: int = 7,
    interval: timedelta = timedelta(seconds=30),
    noise: float = NOISE,
    kinds: Collection[SensorKind] | None = None,
) -> list[SensorReading]:
    """Readings of every zone's devices in ``[start, start + duration)``.

    Pure and deterministic: the same arguments give the same list. ``start`` must be aware; it is
    taken in Beijing time and floored to the second, and every ``observed_at`` is in +08:00.
    People cameras report every ``interval``, with a relative error bounded by ``noise`` (see the
    module docstring for the other kinds and intervals). ``kinds`` keeps only those kinds (for
    example ``{PEOPLE_COUNT, SMOKE}`` for a small replay); a kind left out changes nothing else.

    The list is sorted by ``(observed_at, sensor_id)``; apart from a ``repeating`` camera's
    resent copies (``flaky``) no sensor has two readings at one instant and no reading id occurs
    twice. See :data:`SCENARIOS` and :func:`plan` for what each scenario
    does. Raises ``ValueError`` for an unknown scenario, a naive ``start``, a negative duration,
    an ``interval`` that is not positive or a ``noise`` outside ``[0, 1)``.
    """
    if interval <= timedelta(0):
        raise ValueError("interval must be positive")
    if not 0 <= noise < 1:  # also refuses NaN
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    begin, _ = _window(start, duration)
    zone_list = list(zones)
    scheme = plan(zone_list, begin, duration, scenario=scenario, seed=seed)
    wanted = None if kinds is None else frozenset(SensorKind(k) for k in kinds)
    sim = _Sim(begin, duration, seed, scheme, interval, noise, wanted)
    collecting = gc.isenabled()
    gc.disable()  # half a million new objects for a day, none of them garbage
    try:
        for zone in zone_list:
            sim.zone(zone)
        return sim.readings(_tag(seed, scenario, begin))
    finally:
        if collecting:
            gc.enable()
