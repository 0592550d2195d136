"""One assessor per risk: the zone's state in, the risk's :class:`Assessment` out (a level or
none, its evidence and summary); and :func:`step_risk`, which runs an assessment through the
alert's state machine (inhibition, re-opening, hold, latching) and keeps the result in the zone.

A new risk: its assessor here, registered in ``_ASSESSORS`` (and its sensor kinds in
``KIND_RISK``); its names in :mod:`alerts.zone.wording`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from alerts.config import ZoneRules
from alerts.explain import measured
from alerts.rules import crowding_level, fire_level, level_for, worst
from alerts.zone.alert import AlertState, Assessment, reopen, transition
from alerts.zone.forecast import forecast_crossing
from alerts.zone.keys import is_report_key, risk_key
from alerts.zone.state import ZoneState
from alerts.zone.times import from_epoch
from alerts.zone.wording import summary_for
from models.contracts import AlertRecord, AlertStatus, Level, Risk, SensorKind
from models.zones import Zone


def _crowding(state: ZoneState, zone: Zone, rules: ZoneRules, at: float, cause: str) -> Assessment:
    people = state.counted_people()
    now = from_epoch(at)
    if people is None:
        return Assessment(zone.id, Risk.CROWDING, None, now, cause)
    density = zone.density(people)
    occupancy = zone.occupancy(people)
    actual = crowding_level(density, occupancy, rules.density_levels(), rules.occupancy_levels())
    evidence: dict[str, Any] = {
        "people": people,
        "density": round(density, 3),
        "area_m2": zone.area_m2,
        "reading_id": cause,
    }
    if occupancy is not None:
        evidence["occupancy"] = round(occupancy, 3)
        evidence["capacity"] = zone.capacity
    level, predicted = actual, False
    fc = rules.crowding.forecast
    orange = Level.ORANGE
    if fc.enabled and (actual is None or actual.rank < orange.rank):
        target = rules.crowding.density.get("orange")
        cap_target = rules.crowding.occupancy.get("orange")
        targets = [t for t in (target,) if t is not None]
        if cap_target is not None and zone.capacity:
            targets.append(cap_target * zone.capacity / zone.area_m2)
        if targets:
            # Hysteresis: while a predicted alert stands, a weaker trend keeps it (half the
            # evidence, twice the horizon), so a forecast hovering at its bar does not flap.
            current = state.alerts.get(risk_key(Risk.CROWDING))
            sticky = 2.0 if current is not None and current.predicted else 1.0
            forecast = forecast_crossing(
                state.density_trend,
                min(targets),
                fc.horizon_minutes * sticky,
                min_points=fc.min_points,
                min_slope=fc.min_slope / sticky,
                min_t=fc.min_t / sticky,
            )
            if forecast is not None:
                want = Level(fc.level)
                if actual is None or want.rank > actual.rank:
                    level, predicted = want, True
                evidence["forecast"] = {
                    "target_level": orange.value,
                    "target_density": round(forecast.target, 3),
                    "expected_at": from_epoch(forecast.expected_at).isoformat(),
                    "minutes": round(forecast.minutes, 1),
                    "rate_per_min": round(forecast.rate_per_min, 4),
                    "fitted_density": round(forecast.current, 3),
                    "window_minutes": fc.window_minutes,
                }
    summary = None
    if level is not None:
        occ = f"，承载率 {occupancy:.0%}" if occupancy is not None else ""
        occ_en = f", {occupancy:.0%} of capacity" if occupancy is not None else ""
        if predicted:
            f = evidence["forecast"]
            summary = summary_for(
                zone,
                Risk.CROWDING,
                level,
                f"预计 {f['minutes']:.0f} 分钟内达到橙色（密度每分钟 +{f['rate_per_min']:.2f}），"
                f"当前 {density:.1f} 人/㎡{occ}",
                f"expected to reach orange in {f['minutes']:.0f} min "
                f"(+{f['rate_per_min']:.2f} persons/m² per min), now {density:.1f} persons/m²"
                f"{occ_en}",
            )
        else:
            summary = summary_for(
                zone,
                Risk.CROWDING,
                level,
                f"人群密度 {density:.1f} 人/㎡{occ}",
                f"density {density:.1f} persons/m²{occ_en}",
            )
    return Assessment(zone.id, Risk.CROWDING, level, now, cause, evidence, summary, predicted)


def _fire(state: ZoneState, zone: Zone, rules: ZoneRules, at: float, cause: str) -> Assessment:
    window = rules.fire.pair_window_seconds
    alarms = {sensor: from_epoch(ts) for sensor, ts in state.smoke_alarm_at.items()}
    reports = [from_epoch(t) for t in state.fire_reports if t > at - 2 * window]
    level = fire_level(alarms, timedelta(seconds=window), reports)
    evidence: dict[str, Any] = {"detectors_in_alarm": sorted(alarms), "reading_id": cause}
    summary = None
    if level is not None:
        if level == Level.RED and len(alarms) < 2:
            zh, en = (
                "烟感报警并有志愿者报告火情，确认",
                "a detector and a volunteer's report, confirmed",
            )
        elif level == Level.RED:
            zh, en = f"{len(alarms)} 个烟感报警，确认火情", f"{len(alarms)} detectors, fire likely"
        else:
            zh, en = "单个烟感报警，待核实", "one detector, to verify"
        summary = summary_for(zone, Risk.FIRE, level, zh, en)
    return Assessment(zone.id, Risk.FIRE, level, from_epoch(at), cause, evidence, summary)


def _threshold(
    risk: Risk,
) -> Callable[[ZoneState, Zone, ZoneRules, float, str], Assessment]:
    def assess(state: ZoneState, zone: Zone, rules: ZoneRules, at: float, cause: str) -> Assessment:
        level: Level | None = None
        worst_sensor: dict[str, Any] = {}
        for sensor_id, sensor in sorted(state.sensors.items()):
            rule = rules.thresholds.get(sensor.kind)
            if rule is None or rule.risk != risk:
                continue
            found = level_for(sensor.value, {Level(k): v for k, v in rule.levels.items()})
            if found is not None and (level is None or found.rank > level.rank):
                level = found
                worst_sensor = {
                    "sensor_id": sensor_id,
                    "kind": sensor.kind.value,
                    "value": sensor.value,
                    "threshold": rule.levels[found.value],
                }
        evidence: dict[str, Any] = {**worst_sensor, "reading_id": cause}
        summary = None
        if level is not None:
            zh, en = measured(SensorKind(worst_sensor["kind"]), worst_sensor["value"])
            summary = summary_for(zone, risk, level, zh, en)
        return Assessment(zone.id, risk, level, from_epoch(at), cause, evidence, summary)

    return assess


def _fire_lane(state: ZoneState, zone: Zone, rules: ZoneRules, at: float, cause: str) -> Assessment:
    level: Level | None = None
    blocked: list[str] = []
    for sensor_id, sensor in sorted(state.sensors.items()):
        rule = rules.durations.get(sensor.kind)
        if rule is None or rule.risk != Risk.FIRE_LANE or sensor.since is None:
            continue
        if at - sensor.since >= rule.after_seconds:
            level = worst(level, Level(rule.level))
            blocked.append(sensor_id)
    evidence: dict[str, Any] = {"blocked": blocked, "reading_id": cause}
    summary = None
    if level is not None:
        summary = summary_for(
            zone, Risk.FIRE_LANE, level, "持续占用超过规定时长", "blocked longer than allowed"
        )
    return Assessment(zone.id, Risk.FIRE_LANE, level, from_epoch(at), cause, evidence, summary)


def _silent_sensors(state: ZoneState, rules: ZoneRules, now: float) -> list[str]:
    ns = rules.no_signal
    default = ns.default_interval_seconds
    by_kind = ns.kind_interval_seconds
    return sorted(
        sensor_id
        for sensor_id, sensor in state.sensors.items()
        if now - sensor.at > ns.factor * (sensor.usual or by_kind.get(sensor.kind, default))
    )


def _offline(state: ZoneState, zone: Zone, rules: ZoneRules, at: float, cause: str) -> Assessment:
    silent = _silent_sensors(state, rules, at) if rules.no_signal.enabled else []
    level = Level(rules.no_signal.level) if silent else None
    evidence: dict[str, Any] = {"sensors": silent, "reading_id": cause}
    summary = None
    if level is not None:
        summary = summary_for(
            zone,
            Risk.SENSOR_OFFLINE,
            level,
            f"{len(silent)} 个设备无信号",
            f"{len(silent)} sensor(s) silent",
        )
    return Assessment(zone.id, Risk.SENSOR_OFFLINE, level, from_epoch(at), cause, evidence, summary)


_ASSESSORS: dict[Risk, Callable[[ZoneState, Zone, ZoneRules, float, str], Assessment]] = {
    Risk.CROWDING: _crowding,
    Risk.FIRE: _fire,
    Risk.GAS: _threshold(Risk.GAS),
    Risk.ELECTRICAL: _threshold(Risk.ELECTRICAL),
    Risk.FLOODING: _threshold(Risk.FLOODING),
    Risk.MANHOLE: _threshold(Risk.MANHOLE),
    Risk.EBIKE: _threshold(Risk.EBIKE),
    Risk.FIRE_LANE: _fire_lane,
    Risk.SENSOR_OFFLINE: _offline,
}

KIND_RISK: dict[SensorKind, Risk] = {
    SensorKind.PEOPLE_COUNT: Risk.CROWDING,
    SensorKind.ENTRIES: Risk.CROWDING,
    SensorKind.EXITS: Risk.CROWDING,
    SensorKind.SMOKE: Risk.FIRE,
    SensorKind.GAS_LEL: Risk.GAS,
    SensorKind.CIRCUIT_TEMP: Risk.ELECTRICAL,
    SensorKind.LEAK_CURRENT: Risk.ELECTRICAL,
    SensorKind.WATER_DEPTH: Risk.FLOODING,
    SensorKind.MANHOLE_TILT: Risk.MANHOLE,
    SensorKind.FIRE_LANE_BLOCKED: Risk.FIRE_LANE,
    SensorKind.EBIKE_IN_ELEVATOR: Risk.EBIKE,
}


def inhibitor(state: ZoneState, rules: ZoneRules, risk: Risk) -> str | None:
    """The id of a 红 alert of the zone that explains ``risk``, if there is one."""
    for alert in state.alerts.values():
        if alert.level == Level.RED and risk in rules.inhibit.get(alert.risk, []):
            return alert.alert_id
    return None


def step_risk(
    state: ZoneState, zone: Zone, rules: ZoneRules, risk: Risk, at: float, cause: str
) -> list[AlertRecord]:
    assessment = _ASSESSORS[risk](state, zone, rules, at, cause)
    key = risk_key(risk)
    current = state.alerts.get(key)
    if current is None and assessment.level is not None and assessment.level != Level.RED:
        blocker = inhibitor(state, rules, risk)
        if blocker is not None:
            assessment = Assessment(
                assessment.zone_id,
                assessment.risk,
                assessment.level,
                assessment.at,
                assessment.cause,
                assessment.evidence,
                assessment.summary,
                assessment.predicted,
                inhibited_by=blocker,
            )
    hold = timedelta(0) if risk == Risk.SENSOR_OFFLINE else rules.hold
    if current is None and assessment.level is not None and key in state.closed:
        closed_at, closed = state.closed.pop(key)
        if at - closed_at <= rules.hold_seconds:
            reopened, record = reopen(closed, assessment)
            state.alerts[key] = reopened
            return [record]
    new, records = transition(current, assessment, hold, _latch_levels(rules))
    if new is None:
        state.alerts.pop(key, None)
        for record in records:
            if record.latched and current is not None:
                _latch(state, current, record)
    else:
        state.alerts[key] = new
    return records


#: Latched alerts a zone keeps at most (the oldest is dropped beyond: it stays in the log).
LATCHED_MAX = 64


def _latch_levels(rules: ZoneRules) -> frozenset[Level]:
    return frozenset(Level(name) for name in rules.latch_levels)


def _latch(state: ZoneState, alert: AlertState, record: AlertRecord) -> None:
    """Keep a self-resolved, unacknowledged alert until a person acknowledges it."""
    state.latched[alert.alert_id] = replace(
        alert,
        status=AlertStatus.RESOLVED,
        revision=record.revision,
        evidence=record.evidence,
        summary=record.summary,
        below_since=None,
        below_peak=None,
        latched=True,
    )
    while len(state.latched) > LATCHED_MAX:
        del state.latched[next(iter(state.latched))]


#: Each risk's position in ``Risk`` (the order risks are assessed in).
_RISK_ORDER: dict[Risk, int] = {risk: i for i, risk in enumerate(Risk)}


def risks_to_assess(state: ZoneState, touched: Risk | None, rules: ZoneRules) -> list[Risk]:
    """The risks to re-assess: those with an open alert, the one the record touched, and those
    whose duration condition is running (a fire lane reported blocked and not since cleared must
    raise once its time is up, however silent the camera and whatever else reports)."""
    risks = {a.risk for key, a in state.alerts.items() if not is_report_key(key)}
    if touched is not None:
        risks.add(touched)
    for sensor in state.sensors.values():
        if sensor.since is not None:
            rule = rules.durations.get(sensor.kind)
            if rule is not None:
                risks.add(rule.risk)
    return sorted(risks, key=_RISK_ORDER.__getitem__)
