"""The zone engine: one reading (or report, or command) in, the zone's new state and alert
records out. This module is its front door; the engine itself lives in :mod:`alerts.zone`:

- :mod:`alerts.zone.step` — a reading, a report or a watermark in, a :class:`ZoneStep` out;
- :mod:`alerts.zone.state` — :class:`ZoneState` (owned by the caller, updated in place) and its
  stored form, versioned by :mod:`alerts.zone.codec`; :func:`zone_view`, the crowd figures now;
- :mod:`alerts.zone.assessors` — one assessor per risk, and the step that runs an assessment
  through the alert state machine (:mod:`alerts.zone.alert`);
- :mod:`alerts.zone.reports`, :mod:`alerts.zone.commands` — volunteers' reports, operators'
  commands;
- :mod:`alerts.zone.wording` — the zh/en names and summaries; :mod:`alerts.zone.keys` — alert
  keys and command outcomes.

Everything happens with no I/O and no clock: event time (``observed_at``) is the only time there
is, so a day replayed in a minute gives the same records.
"""

from __future__ import annotations

from alerts.zone.assessors import LATCHED_MAX
from alerts.zone.commands import CommandOutcome, apply_command
from alerts.zone.keys import AlertKey, Outcome
from alerts.zone.reports import release_reports
from alerts.zone.state import (
    FLOW_WINDOW_S,
    GAPS_KEPT,
    PEAK_WINDOWS,
    SEEN_MAX,
    SEEN_SECONDS,
    Sensor,
    ZoneState,
    ZoneView,
    zone_view,
)
from alerts.zone.step import (
    ZoneStep,
    admits_sensor,
    check_silence,
    process_reading,
    process_report,
)

__all__ = [
    "FLOW_WINDOW_S",
    "GAPS_KEPT",
    "LATCHED_MAX",
    "PEAK_WINDOWS",
    "SEEN_MAX",
    "SEEN_SECONDS",
    "AlertKey",
    "CommandOutcome",
    "Outcome",
    "Sensor",
    "ZoneState",
    "ZoneStep",
    "ZoneView",
    "admits_sensor",
    "apply_command",
    "check_silence",
    "process_reading",
    "process_report",
    "release_reports",
    "zone_view",
]
