"""One record in, the zone's new state and alert records out: a sensor reading
(:func:`process_reading`, with its cheap step for a reading that provably changes nothing), a
volunteer report (:func:`process_report`) and a partition's watermark (:func:`check_silence`).

Event time (``observed_at``) is the only time there is, so a day replayed in a minute gives the
same records."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from alerts.config import ZoneRules
from alerts.zone.assessors import KIND_RISK, risks_to_assess, step_risk
from alerts.zone.keys import risk_key
from alerts.zone.reports import apply_report, release_reports
from alerts.zone.state import (
    FLOW_WINDOW_S,
    GAPS_KEPT,
    Sensor,
    ZoneState,
    ZoneView,
    remember_id,
    zone_view,
)
from alerts.zone.times import beijing_day, to_epoch
from models.contracts import AlertRecord, Risk, SensorKind, SensorReading, VolunteerReport
from models.zones import Zone


@dataclass(frozen=True, slots=True)
class ZoneStep:
    """What one record did: ``duplicate`` ones change nothing and produce nothing.
    ``alert_id`` is, for a report, the alert it opened or joined."""

    duplicate: bool
    records: list[AlertRecord]
    view: ZoneView | None = None
    alert_id: str | None = None
    #: Reports handled by this step (a report waits until the zone's sensors have reached its
    #: time), each with the alert it opened or joined.
    linked: list[tuple[VolunteerReport, str | None]] = field(default_factory=list)
    pending: bool = False
    #: A reading older than its sensor's latest (out of order, or older data replayed): inert
    #: like a repeat (``duplicate`` is set too), but counted apart — it is not a repeat.
    stale: bool = False


def _advance(state: ZoneState, at: float) -> None:
    state.clock = at if state.clock is None else max(state.clock, at)


def _note_people(state: ZoneState, zone: Zone, rules: ZoneRules, at: float) -> None:
    people = state.counted_people()
    if people is None:
        return
    for window in state.peaks.values():
        window.add(at, people)
    day = beijing_day(at)
    if state.day_peak is None or state.day_peak[0] != day:
        if state.day_peak is None or day > state.day_peak[0]:
            state.day_peak = (day, people)
    elif people > state.day_peak[1]:
        state.day_peak = (day, people)
    span = rules.crowding.forecast.window_minutes * 60.0
    source = state.counting_source()
    if source != state.sample_source:
        # A camera joined (its first count adds to the sum) or cameras replaced the gates'
        # estimate: the jump is not a trend. Start the trend afresh.
        state.sample_source = source
        state.density_trend.clear()
    state.density_trend.add(at, zone.density(people))
    state.density_trend.drop_until((state.clock or at) - span)


def admits_sensor(state: ZoneState, sensor_id: str, limit: int) -> bool:
    """Whether the zone may take a reading of ``sensor_id``: a sensor it tracks, or room for one
    more below ``limit`` (made-up sensor ids must not grow a zone's state without bound)."""
    return sensor_id in state.sensors or len(state.sensors) < limit


def _apply_reading(state: ZoneState, reading: SensorReading, zone: Zone, rules: ZoneRules) -> bool:
    """Fold the reading into the zone; False if it is no newer than its sensor's latest."""
    at = to_epoch(reading.observed_at)
    kind, value = reading.kind, reading.value
    previous = state.sensors.get(reading.sensor_id)
    if previous is not None and at <= previous.at:
        return False  # a repeat, or older than the sensor's latest: it cannot change the present
    _advance(state, at)
    sensor = previous or Sensor(kind, at, value)
    if previous is not None:
        sensor.gaps = [*sensor.gaps[-(GAPS_KEPT - 1) :], at - previous.at]
        if len(sensor.gaps) >= rules.no_signal.min_gaps:
            sensor.usual = statistics.median(sensor.gaps)
        if value > 0 and (previous.value <= 0 or sensor.since is None):
            sensor.since = at
        elif value <= 0:
            sensor.since = None
    elif value > 0:
        sensor.since = at
    sensor.kind, sensor.at, sensor.value = kind, at, value
    state.sensors[reading.sensor_id] = sensor

    if kind == SensorKind.PEOPLE_COUNT:
        _note_people(state, zone, rules, at)
    elif kind in (SensorKind.ENTRIES, SensorKind.EXITS):
        entered = value if kind == SensorKind.ENTRIES else 0.0
        left = value if kind == SensorKind.EXITS else 0.0
        state.flows.append((at, entered, left))
        state.flows = [f for f in state.flows if f[0] > (state.clock or at) - FLOW_WINDOW_S]
        state.gate_people = max(0.0, (state.gate_people or 0.0) + entered - left)
        _note_people(state, zone, rules, at)
    elif kind == SensorKind.SMOKE:
        if value >= 1:
            state.smoke_alarm_at[reading.sensor_id] = at
        else:
            state.smoke_alarm_at.pop(reading.sensor_id, None)
    return True


def process_reading(
    state: ZoneState, reading: SensorReading, zone: Zone, rules: ZoneRules, *, fast: bool = True
) -> ZoneStep:
    """Apply one validated reading of ``zone`` to ``state`` (in place) and say what changed.

    A reading no newer than its sensor's latest — a repeated ``reading_id`` among them — changes
    nothing (``duplicate``). Every open alert of the zone is re-assessed at the zone's event-time
    clock, so hold times and duration rules run on while the zone's other sensors keep
    reporting; a reading also ends its sensor's silence.
    """
    previous = state.sensors.get(reading.sensor_id)
    if not _apply_reading(state, reading, zone, rules):
        older = previous is not None and to_epoch(reading.observed_at) < previous.at
        return ZoneStep(duplicate=True, records=[], stale=older)
    assert state.clock is not None
    if fast and _inert(state, reading.kind, rules, state.clock):
        return _QUIET
    return _assess_reading(state, reading, zone, rules)


#: The step of a reading that changed no alert (shared: a ZoneStep is immutable).
_QUIET = ZoneStep(duplicate=False, records=[])
#: The risks a reading's own kind can be assessed without a figure of the zone (no crowd count).
_THRESHOLD_RISKS = frozenset({Risk.GAS, Risk.ELECTRICAL, Risk.FLOODING, Risk.MANHOLE, Risk.EBIKE})


def _inert(state: ZoneState, kind: SensorKind, rules: ZoneRules, now: float) -> bool:
    """Whether the full assessment of a reading just applied would provably change nothing:
    the zone holds no open alert and no waiting report, the risk the reading touches is
    below every level on every sensor of it, no duration condition is running, and no sensor
    of the zone has gone silent. Then every risk the full step assesses yields no level and no
    open alert, so ``transition`` returns nothing and no state changes (the property test in
    tests/core/test_fast_step.py checks this against :func:`_assess_reading`)."""
    if state.alerts or state.pending_reports:
        return False
    touched = KIND_RISK.get(kind)
    if touched is Risk.FIRE:
        if state.smoke_alarm_at:
            return False
    elif touched is not None and touched not in _THRESHOLD_RISKS:
        return False  # crowding (the forecast) and fire lanes take the full step
    thresholds = rules.thresholds
    durations = rules.durations
    no_signal = rules.no_signal
    silent_after = no_signal.factor
    default = no_signal.default_interval_seconds
    by_kind = no_signal.kind_interval_seconds
    for sensor in state.sensors.values():
        if sensor.since is not None and sensor.kind in durations:
            return False
        if touched is not None and touched is not Risk.FIRE:
            rule = thresholds.get(sensor.kind)
            if (
                rule is not None
                and rule.risk == touched
                and sensor.value >= min(rule.levels.values(), default=math.inf)
            ):
                return False
        if no_signal.enabled and now - sensor.at > silent_after * (
            sensor.usual or by_kind.get(sensor.kind, default)
        ):
            return False
    return True


def _assess_reading(
    state: ZoneState, reading: SensorReading, zone: Zone, rules: ZoneRules
) -> ZoneStep:
    """The full step after a reading was applied: re-assess every risk it may concern."""
    assert state.clock is not None
    now = state.clock
    records: list[AlertRecord] = []
    for risk in risks_to_assess(state, KIND_RISK.get(reading.kind), rules):
        records.extend(step_risk(state, zone, rules, risk, now, reading.reading_id))
    if risk_key(Risk.SENSOR_OFFLINE) not in state.alerts and rules.no_signal.enabled:
        records.extend(step_risk(state, zone, rules, Risk.SENSOR_OFFLINE, now, reading.reading_id))
    linked: list[tuple[VolunteerReport, str | None]] = []
    if state.pending_reports:
        released, linked = release_reports(state, zone, rules, now)
        records.extend(released)
    view = zone_view(state, zone) if KIND_RISK.get(reading.kind) == Risk.CROWDING else None
    return ZoneStep(duplicate=False, records=records, view=view, linked=linked)


def check_silence(state: ZoneState, zone: Zone, rules: ZoneRules, now: float) -> ZoneStep:
    """Re-assess the zone at ``now`` (a partition's event-time watermark): sensors that went
    silent — even the whole zone — raise sensor_offline; due holds and durations take effect;
    reports waiting for this moment are handled."""
    if state.clock is None or now <= state.clock:
        if state.pending_reports and state.clock is None:
            early, linked = release_reports(state, zone, rules, now)
            return ZoneStep(duplicate=False, records=early, linked=linked)
        return ZoneStep(duplicate=False, records=[])
    cause = f"watermark@{now:.0f}"
    records: list[AlertRecord] = []
    for risk in risks_to_assess(
        state, Risk.SENSOR_OFFLINE if rules.no_signal.enabled else None, rules
    ):
        if risk == Risk.CROWDING:
            continue  # crowd figures only change with counts; their forecasts need fresh data
        records.extend(step_risk(state, zone, rules, risk, now, cause))
    released, linked = release_reports(state, zone, rules, now)
    records.extend(released)
    return ZoneStep(duplicate=False, records=records, linked=linked)


def process_report(
    state: ZoneState, report: VolunteerReport, zone: Zone, rules: ZoneRules
) -> ZoneStep:
    """A volunteer's report: it joins an open sensor alert of its risk as corroborating evidence
    (a fire report confirms a smoke alarm: 红), or opens / joins a ``report`` alert for triage.
    Reports of one category merge into one alert; ``escalate_reporters`` distinct reporters
    within the merge window raise it one level — one reporter repeating themselves never does.

    Reports and readings travel on different topics, so a report can arrive before the readings
    of its moment. A report newer than the zone's sensor clock therefore waits (``pending``)
    until the zone's readings — or the partition's watermark — reach its time: the outcome is
    the same however fast the day is replayed. A zone without any sensor reading has no clock
    to wait for; its reports are handled at once.
    """
    at = to_epoch(report.submitted_at)
    if not remember_id(state, report.report_id, at):
        return ZoneStep(duplicate=True, records=[])
    if state.clock is not None and at > state.clock:
        state.pending_reports.append(report.model_dump(mode="json"))
        state.pending_reports.sort(key=lambda p: (p["submitted_at"], p["report_id"]))
        return ZoneStep(duplicate=False, records=[], pending=True)
    records, alert_id = apply_report(state, report, zone, rules)
    return ZoneStep(
        duplicate=False, records=records, alert_id=alert_id, linked=[(report, alert_id)]
    )
