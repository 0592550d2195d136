"""Risk rules: from what a zone's sensors say now to a warning level. Pure functions.

The numbers live in the rules file (``alerts/data/rules.yaml``, with their sources); these are
the functions that apply them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime, timedelta

from models.contracts import Level

#: Crowd density thresholds of the bundled rules (persons per m²; DOMAIN.md: 蓝 ≥ 2, 黄 ≥ 3,
#: 橙 ≥ 4, 红 ≥ 5) — kept here for the simulator and tests; the engine reads the rules file.
DEFAULT_DENSITY_THRESHOLDS: dict[Level, float] = {
    Level.BLUE: 2.0,
    Level.YELLOW: 3.0,
    Level.ORANGE: 4.0,
    Level.RED: 5.0,
}

#: Occupancy thresholds of the bundled rules (people ÷ capacity: 90 % 黄, 100 % 橙, 120 % 红).
DEFAULT_OCCUPANCY_THRESHOLDS: dict[Level, float] = {
    Level.YELLOW: 0.90,
    Level.ORANGE: 1.00,
    Level.RED: 1.20,
}


def level_for(value: float, thresholds: Mapping[Level, float]) -> Level | None:
    """The highest level whose threshold ``value`` reaches, or ``None`` below all of them."""
    reached: Level | None = None
    for level in sorted(thresholds, key=lambda lvl: lvl.rank):
        if value >= thresholds[level]:
            reached = level
    return reached


def worst(*levels: Level | None) -> Level | None:
    """The most severe of ``levels`` (``None`` is below blue)."""
    present = [lvl for lvl in levels if lvl is not None]
    return max(present, key=lambda lvl: lvl.rank) if present else None


def crowding_level(
    density: float,
    occupancy: float | None,
    density_thresholds: Mapping[Level, float] = DEFAULT_DENSITY_THRESHOLDS,
    occupancy_thresholds: Mapping[Level, float] = DEFAULT_OCCUPANCY_THRESHOLDS,
) -> Level | None:
    """Crowding level from density and, where the zone has a capacity, occupancy: the worse one."""
    by_density = level_for(density, density_thresholds)
    if occupancy is None or not occupancy_thresholds:
        return by_density
    return worst(by_density, level_for(occupancy, occupancy_thresholds))


def fire_level(
    alarms: Mapping[str, datetime],
    pair_window: timedelta = timedelta(minutes=5),
    reports: list[datetime] | None = None,
) -> Level | None:
    """Fire level from the detectors in alarm (sensor id → when its alarm was last reported) and
    volunteers' fire reports (their times).

    One detector: 橙 (to verify). Two distinct detectors whose alarms fall within ``pair_window``
    of each other, or a detector and a fire report within it: 红.
    """
    if not alarms:
        return None
    times = sorted(alarms.values())
    for earlier, later in itertools.pairwise(times):
        if later - earlier <= pair_window:
            return Level.RED
    for report_at in reports or []:
        if any(abs(report_at - t) <= pair_window for t in times):
            return Level.RED
    return Level.ORANGE
