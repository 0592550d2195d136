"""Risk rules: from what a zone's sensors say now to a warning level. Pure functions.

Thresholds are defaults with their sources beside them; every one of them is a starting point to
tune per zone, not a truth (see ``../shared/guide/DOMAIN.md``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.contracts import Level

#: Crowd density (persons per m² of walkable area) at which each level starts.
#: DOMAIN.md "Sensor kinds": 蓝 ≥ 2, 黄 ≥ 3, 橙 ≥ 4, 红 ≥ 5. Flow peaks at 2–3 (G. K. Still),
#: involuntary contact ≈ 3.6 (Fruin-derived scale, EPJ Data Science), ≈ 5 "throttle inflow" (Still).
DEFAULT_DENSITY_THRESHOLDS: dict[Level, float] = {
    Level.BLUE: 2.0,
    Level.YELLOW: 3.0,
    Level.ORANGE: 4.0,
    Level.RED: 5.0,
}

#: Occupancy (people ÷ 最大承载量) at which each level starts, where a zone has a capacity.
#: Tourism Law art. 45: a scenic area must not exceed its 最大承载量 and must give early notice and
#: divert visitors as numbers approach it (LB/T 034-2014 defines instantaneous capacity). Our
#: choice: 90 % is 黄 (early notice), reaching the capacity is 橙 (the same level as 4 persons/m²:
#: stop inflow), 120 % is 红. No 蓝 from occupancy: the density rule gives the early blue.
DEFAULT_OCCUPANCY_THRESHOLDS: dict[Level, float] = {
    Level.YELLOW: 0.90,
    Level.ORANGE: 1.00,
    Level.RED: 1.20,
}


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The thresholds the engine applies. Built from configuration at the edge."""

    density: Mapping[Level, float] = field(default_factory=lambda: dict(DEFAULT_DENSITY_THRESHOLDS))
    occupancy: Mapping[Level, float] = field(
        default_factory=lambda: dict(DEFAULT_OCCUPANCY_THRESHOLDS)
    )
    #: A second smoke detector alarming within this time of another one makes a fire 红
    #: (DOMAIN.md: one detector 橙 "to verify"; a second detector: 红).
    smoke_pair_window: timedelta = timedelta(minutes=5)
    #: How long a condition must stay below an alert's level before it is lowered or resolved.
    hold: timedelta = timedelta(minutes=5)
    #: How long (event time) a reading id is remembered to drop repeats.
    dedupe_window: timedelta = timedelta(hours=1)


def level_for(value: float, thresholds: Mapping[Level, float]) -> Level | None:
    """The highest level whose threshold ``value`` reaches, or ``None`` below all of them."""
    reached: Level | None = None
    for level in sorted(thresholds, key=lambda lvl: lvl.rank):
        if value >= thresholds[level]:
            reached = level
    return reached


def crowding_level(density: float, occupancy: float | None, rules: RuleSet) -> Level | None:
    """Crowding level from density and, where the zone has a capacity, occupancy: the worse one."""
    by_density = level_for(density, rules.density)
    if occupancy is None:
        return by_density
    by_occupancy = level_for(occupancy, rules.occupancy)
    ranks = [lvl for lvl in (by_density, by_occupancy) if lvl is not None]
    return max(ranks, key=lambda lvl: lvl.rank) if ranks else None


def fire_level(alarms: Mapping[str, datetime], rules: RuleSet) -> Level | None:
    """Fire level from the detectors now in alarm (sensor id → when its alarm was last reported).

    One detector: 橙 (to verify). Two distinct detectors whose alarms fall within
    ``rules.smoke_pair_window`` of each other: 红.
    """
    if not alarms:
        return None
    times = sorted(alarms.values())
    for earlier, later in itertools.pairwise(times):
        if later - earlier <= rules.smoke_pair_window:
            return Level.RED
    return Level.ORANGE
