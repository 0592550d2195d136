"""The zone engine: one reading (or report, or command) in, the zone's new state and alert
records out.

Everything a worker decides per record happens here, with no I/O and no clock: drop repeated ids,
keep each sensor's latest value, derive people / density / flows / peaks / the crowd forecast,
assess each risk and run the alert state machine. Event time (``observed_at``) is the only time
there is, so a day replayed in a minute gives the same records.

:class:`ZoneState` is owned by the caller (the worker keeps one per zone in a Faust table) and is
updated in place; :meth:`ZoneState.to_dict` / :meth:`ZoneState.from_dict` move it through the
state store.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.config import ZoneRules
from alerts.explain import measured
from alerts.forecast import forecast_crossing
from alerts.peaks import WindowMax
from alerts.rules import crowding_level, fire_level, level_for, worst
from alerts.state import (
    AlertState,
    Assessment,
    amend,
    corroborate,
    join_report,
    operator_action,
    reopen,
    transition,
)
from alerts.zone.codec import STATE_VERSION, upgrade
from alerts.zone.keys import AlertKey, Outcome, is_report_key, report_key, risk_key
from models.contracts import (
    AlertCommand,
    AlertRecord,
    AlertStatus,
    Change,
    CommandAction,
    Level,
    ReportCategory,
    Risk,
    SensorKind,
    SensorReading,
    Summary,
    VolunteerReport,
)
from models.timezone import BEIJING
from models.zones import Zone

#: Peak windows exported as ``puhui_zone_people_peak{window=...}``, in seconds ("day" is the
#: calendar day in Beijing time, kept apart).
PEAK_WINDOWS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
#: Gate flows are averaged over this window (persons per minute).
FLOW_WINDOW_S = 300.0
#: Gaps remembered per sensor to learn its usual reporting interval.
GAPS_KEPT = 9

_RISK_ZH: dict[Risk, str] = {
    Risk.CROWDING: "人群聚集",
    Risk.FIRE: "火情",
    Risk.GAS: "燃气泄漏",
    Risk.ELECTRICAL: "电气火灾隐患",
    Risk.FLOODING: "积水",
    Risk.MANHOLE: "井盖异常",
    Risk.FIRE_LANE: "消防通道占用",
    Risk.EBIKE: "电动自行车进电梯",
    Risk.SENSOR_OFFLINE: "设备离线",
    Risk.REPORT: "志愿者报告",
}
_RISK_EN: dict[Risk, str] = {
    Risk.CROWDING: "Crowding",
    Risk.FIRE: "Fire",
    Risk.GAS: "Gas leak",
    Risk.ELECTRICAL: "Electrical fire risk",
    Risk.FLOODING: "Standing water",
    Risk.MANHOLE: "Manhole cover",
    Risk.FIRE_LANE: "Fire lane blocked",
    Risk.EBIKE: "E-bike in a lift",
    Risk.SENSOR_OFFLINE: "Sensor offline",
    Risk.REPORT: "Volunteer report",
}
_CATEGORY_RISK: dict[ReportCategory, Risk] = {
    ReportCategory.FIRE: Risk.FIRE,
    ReportCategory.SMOKE: Risk.FIRE,
    ReportCategory.CROWDING: Risk.CROWDING,
    ReportCategory.GAS: Risk.GAS,
    ReportCategory.ELECTRICAL: Risk.ELECTRICAL,
    ReportCategory.FLOODING: Risk.FLOODING,
    ReportCategory.MANHOLE: Risk.MANHOLE,
    ReportCategory.FIRE_LANE: Risk.FIRE_LANE,
    ReportCategory.EBIKE: Risk.EBIKE,
}
_CATEGORY_ZH: dict[ReportCategory, str] = {
    ReportCategory.INJURY: "有人受伤",
    ReportCategory.FIRE: "火情",
    ReportCategory.SMOKE: "烟雾",
    ReportCategory.CROWDING: "人员拥挤",
    ReportCategory.GAS: "燃气异味",
    ReportCategory.ELECTRICAL: "电气隐患",
    ReportCategory.FLOODING: "积水",
    ReportCategory.MANHOLE: "井盖问题",
    ReportCategory.FIRE_LANE: "消防通道被占",
    ReportCategory.EBIKE: "电动车进电梯",
    ReportCategory.LITTERING: "乱扔垃圾",
    ReportCategory.OTHER: "其他",
}


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=BEIJING).date().isoformat()


@dataclass(slots=True)
class Sensor:
    """The latest of one sensor, and what the rules need of its past."""

    kind: SensorKind
    at: float
    value: float
    gaps: list[float] = field(default_factory=list)
    since: float | None = None  # when its value last became non-zero (duration rules)
    usual: float | None = None  # median of its recent gaps, once there are enough

    def to_list(self) -> list[Any]:
        return [self.kind.value, self.at, self.value, self.gaps, self.since, self.usual]

    @classmethod
    def from_list(cls, data: list[Any]) -> Sensor:
        return cls(SensorKind(data[0]), data[1], data[2], list(data[3]), data[4], data[5])


@dataclass(slots=True)
class ZoneState:
    """What the engine remembers about one zone between records."""

    zone_id: str
    clock: float | None = None  # newest event time seen in the zone (epoch seconds)
    seen: dict[str, float] = field(default_factory=dict)  # report/command id -> event time
    sensors: dict[str, Sensor] = field(default_factory=dict)
    smoke_alarm_at: dict[str, float] = field(default_factory=dict)  # detector -> alarm reported
    gate_people: float | None = None  # occupancy estimated from entries − exits
    flows: list[tuple[float, float, float]] = field(default_factory=list)  # (at, in, out)
    density_samples: list[tuple[float, float]] = field(default_factory=list)
    sample_source: str = ""  # what the samples count with: "gates" or "cameras:<n>"
    peaks: dict[str, WindowMax] = field(
        default_factory=lambda: {name: WindowMax(span) for name, span in PEAK_WINDOWS.items()}
    )
    day_peak: tuple[str, float] | None = None  # (Beijing date, max people)
    fire_reports: list[float] = field(default_factory=list)  # times of fire/smoke reports
    # reports ahead of the zone's sensor clock, waiting for it (JSON form, oldest first)
    pending_reports: list[dict[str, Any]] = field(default_factory=list)
    # report alerts, by category: [(at, reporter_id, report_id)] within the merge window
    report_log: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)
    alerts: dict[AlertKey, AlertState] = field(default_factory=dict)
    # resolved on their own before anyone acknowledged them (alert id -> final state), waiting
    # for a person's acknowledgement; at most LATCHED_MAX per zone
    latched: dict[str, AlertState] = field(default_factory=dict)
    # alerts an operator resolved, by risk: (when, final state) — reopened if the condition is
    # present again within the hold time
    closed: dict[AlertKey, tuple[float, AlertState]] = field(default_factory=dict)

    # -- people -------------------------------------------------------------------------------
    def counting_source(self) -> str:
        """What the people count comes from; a trend across a change of source means nothing."""
        cams = sum(1 for s in self.sensors.values() if s.kind == SensorKind.PEOPLE_COUNT)
        return f"cameras:{cams}" if cams else "gates"

    def counted_people(self) -> float | None:
        """People in the zone now: the cameras' latest counts summed, else the gate estimate."""
        cams = [s.value for s in self.sensors.values() if s.kind == SensorKind.PEOPLE_COUNT]
        if cams:
            return float(sum(cams))
        return self.gate_people

    # -- storage ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form for the state store."""
        return {
            "v": STATE_VERSION,
            "zone_id": self.zone_id,
            "clock": self.clock,
            "seen": self.seen,
            "sensors": {k: s.to_list() for k, s in self.sensors.items()},
            "smoke_alarm_at": self.smoke_alarm_at,
            "gate_people": self.gate_people,
            "flows": [list(f) for f in self.flows],
            "density_samples": [list(d) for d in self.density_samples],
            "sample_source": self.sample_source,
            "peaks": {name: w.dump() for name, w in self.peaks.items()},
            "day_peak": list(self.day_peak) if self.day_peak else None,
            "fire_reports": self.fire_reports,
            "pending_reports": self.pending_reports,
            "report_log": {k: [list(e) for e in v] for k, v in self.report_log.items()},
            "alerts": {key: _alert_to_dict(a) for key, a in self.alerts.items()},
            "latched": {key: _alert_to_dict(a) for key, a in self.latched.items()},
            "closed": {key: [t, _alert_to_dict(a)] for key, (t, a) in self.closed.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoneState:
        """Inverse of :meth:`to_dict`; reads every earlier format too (:func:`upgrade`)."""
        data = upgrade(data)
        return cls(
            zone_id=data["zone_id"],
            clock=data["clock"],
            seen=dict(data["seen"]),
            sensors={k: Sensor.from_list(v) for k, v in data["sensors"].items()},
            smoke_alarm_at=dict(data["smoke_alarm_at"]),
            gate_people=data["gate_people"],
            flows=[(f[0], f[1], f[2]) for f in data["flows"]],
            density_samples=[(d[0], d[1]) for d in data["density_samples"]],
            sample_source=data["sample_source"],
            peaks={
                name: WindowMax(span, ((t, v) for t, v in data["peaks"].get(name, [])))
                for name, span in PEAK_WINDOWS.items()
            },
            day_peak=(data["day_peak"][0], data["day_peak"][1]) if data["day_peak"] else None,
            fire_reports=list(data["fire_reports"]),
            pending_reports=list(data["pending_reports"]),
            report_log={k: [(e[0], e[1], e[2]) for e in v] for k, v in data["report_log"].items()},
            alerts={k: _alert_from_dict(v) for k, v in data["alerts"].items()},
            latched={k: _alert_from_dict(v) for k, v in data["latched"].items()},
            closed={k: (v[0], _alert_from_dict(v[1])) for k, v in data["closed"].items()},
        )


def _alert_to_dict(alert: AlertState) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "zone_id": alert.zone_id,
        "risk": alert.risk.value,
        "level": alert.level.value,
        "status": alert.status.value,
        "revision": alert.revision,
        "opened_at": alert.opened_at.isoformat(),
        "predicted": alert.predicted,
        "below_since": alert.below_since.isoformat() if alert.below_since else None,
        "below_peak": alert.below_peak.value if alert.below_peak else None,
        "evidence": alert.evidence,
        "summary": alert.summary.model_dump() if alert.summary else None,
        "assignee": alert.assignee,
        "inhibited": alert.inhibited,
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "latched": alert.latched,
        "peak": alert.peak.value if alert.peak else None,
    }


def _alert_from_dict(data: dict[str, Any]) -> AlertState:
    return AlertState(
        alert_id=data["alert_id"],
        zone_id=data["zone_id"],
        risk=Risk(data["risk"]),
        level=Level(data["level"]),
        status=AlertStatus(data["status"]),
        revision=data["revision"],
        opened_at=datetime.fromisoformat(data["opened_at"]),
        predicted=data["predicted"],
        below_since=datetime.fromisoformat(data["below_since"]) if data["below_since"] else None,
        below_peak=Level(data["below_peak"]) if data["below_peak"] else None,
        evidence=data["evidence"],
        summary=Summary(**data["summary"]) if data["summary"] else None,
        assignee=data.get("assignee"),
        inhibited=data.get("inhibited", False),
        acknowledged_by=data.get("acknowledged_by"),
        acknowledged_at=(
            datetime.fromisoformat(data["acknowledged_at"]) if data.get("acknowledged_at") else None
        ),
        latched=data.get("latched", False),
        peak=Level(data["peak"]) if data.get("peak") else None,
    )


@dataclass(frozen=True, slots=True)
class ZoneView:
    """The zone's crowd figures now (for metrics, the API and the zone status table)."""

    people: float | None
    density: float | None
    occupancy: float | None
    peaks: dict[str, float]
    inflow_per_min: float | None
    outflow_per_min: float | None
    level: Level | None  # the crowding alert's level, if one is open
    at: float | None


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


# ------------------------------------------------------------------------------ bookkeeping --


#: How long (event time) and how many report / command ids a zone remembers to drop repeats.
SEEN_SECONDS = 3600.0
SEEN_MAX = 512


def _remember(state: ZoneState, record_id: str, at: float) -> bool:
    """Note a report's or command's id; False if it was seen before (a repeat changes nothing).

    Readings need no id memory: a reading no newer than its sensor's latest cannot change the
    present, so a repeated reading (same sensor, same ``observed_at``) is inert by construction.
    """
    if record_id in state.seen:
        return False
    state.seen[record_id] = at
    if len(state.seen) > SEEN_MAX or next(iter(state.seen.values())) < at - SEEN_SECONDS:
        newest = sorted(state.seen.items(), key=lambda kv: kv[1])[-SEEN_MAX:]
        state.seen = {k: t for k, t in newest if t >= at - SEEN_SECONDS}
        state.seen.setdefault(record_id, at)
    return True


def _advance(state: ZoneState, at: float) -> None:
    state.clock = at if state.clock is None else max(state.clock, at)


def _note_people(state: ZoneState, zone: Zone, rules: ZoneRules, at: float) -> None:
    people = state.counted_people()
    if people is None:
        return
    for window in state.peaks.values():
        window.add(at, people)
    day = _day_of(at)
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
        state.density_samples = []
    samples = state.density_samples
    samples.append((at, zone.density(people)))
    if len(samples) > 1 and samples[-2][0] > at:
        samples.sort()
    cut = (state.clock or at) - span
    if samples[0][0] <= cut:
        state.density_samples = [s for s in samples if s[0] > cut]


def admits_sensor(state: ZoneState, sensor_id: str, limit: int) -> bool:
    """Whether the zone may take a reading of ``sensor_id``: a sensor it tracks, or room for one
    more below ``limit`` (made-up sensor ids must not grow a zone's state without bound)."""
    return sensor_id in state.sensors or len(state.sensors) < limit


def _apply_reading(state: ZoneState, reading: SensorReading, zone: Zone, rules: ZoneRules) -> bool:
    """Fold the reading into the zone; False if it is no newer than its sensor's latest."""
    at = _ts(reading.observed_at)
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


# ------------------------------------------------------------------------------ assessments --


def _summary(zone: Zone, risk: Risk, level: Level, zh: str, en: str) -> Summary:
    return Summary(
        zh=f"{zone.name.zh} {_RISK_ZH[risk]}：{zh}（{level.zh}色预警）",
        en=f"{_RISK_EN[risk]} at {zone.name.en}: {en} ({level.value})",
    )


def _crowding(state: ZoneState, zone: Zone, rules: ZoneRules, at: float, cause: str) -> Assessment:
    people = state.counted_people()
    now = _dt(at)
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
                state.density_samples,
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
                    "expected_at": _dt(forecast.expected_at).isoformat(),
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
            summary = _summary(
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
            summary = _summary(
                zone,
                Risk.CROWDING,
                level,
                f"人群密度 {density:.1f} 人/㎡{occ}",
                f"density {density:.1f} persons/m²{occ_en}",
            )
    return Assessment(zone.id, Risk.CROWDING, level, now, cause, evidence, summary, predicted)


def _fire(state: ZoneState, zone: Zone, rules: ZoneRules, at: float, cause: str) -> Assessment:
    window = rules.fire.pair_window_seconds
    alarms = {sensor: _dt(ts) for sensor, ts in state.smoke_alarm_at.items()}
    reports = [_dt(t) for t in state.fire_reports if t > at - 2 * window]
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
        summary = _summary(zone, Risk.FIRE, level, zh, en)
    return Assessment(zone.id, Risk.FIRE, level, _dt(at), cause, evidence, summary)


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
            summary = _summary(zone, risk, level, zh, en)
        return Assessment(zone.id, risk, level, _dt(at), cause, evidence, summary)

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
        summary = _summary(
            zone, Risk.FIRE_LANE, level, "持续占用超过规定时长", "blocked longer than allowed"
        )
    return Assessment(zone.id, Risk.FIRE_LANE, level, _dt(at), cause, evidence, summary)


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
        summary = _summary(
            zone,
            Risk.SENSOR_OFFLINE,
            level,
            f"{len(silent)} 个设备无信号",
            f"{len(silent)} sensor(s) silent",
        )
    return Assessment(zone.id, Risk.SENSOR_OFFLINE, level, _dt(at), cause, evidence, summary)


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

_KIND_RISK: dict[SensorKind, Risk] = {
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


def _inhibitor(state: ZoneState, rules: ZoneRules, risk: Risk) -> str | None:
    """The id of a 红 alert of the zone that explains ``risk``, if there is one."""
    for alert in state.alerts.values():
        if alert.level == Level.RED and risk in rules.inhibit.get(alert.risk, []):
            return alert.alert_id
    return None


def _step_risk(
    state: ZoneState, zone: Zone, rules: ZoneRules, risk: Risk, at: float, cause: str
) -> list[AlertRecord]:
    assessment = _ASSESSORS[risk](state, zone, rules, at, cause)
    key = risk_key(risk)
    current = state.alerts.get(key)
    if current is None and assessment.level is not None and assessment.level != Level.RED:
        blocker = _inhibitor(state, rules, risk)
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


def zone_view(state: ZoneState, zone: Zone) -> ZoneView:
    """The zone's current figures, as of the zone's clock."""
    people = state.counted_people()
    now = state.clock or 0.0
    peaks = {}
    for name, window in state.peaks.items():
        value = window.value(now)
        if value is not None:
            peaks[name] = value
    if state.day_peak is not None and state.day_peak[0] == _day_of(now):
        peaks["day"] = state.day_peak[1]
    recent = [f for f in state.flows if f[0] > now - FLOW_WINDOW_S]
    minutes = FLOW_WINDOW_S / 60.0
    crowding = state.alerts.get(risk_key(Risk.CROWDING))
    return ZoneView(
        people=people,
        density=zone.density(people) if people is not None else None,
        occupancy=zone.occupancy(people) if people is not None else None,
        peaks=peaks,
        inflow_per_min=sum(f[1] for f in recent) / minutes if state.flows else None,
        outflow_per_min=sum(f[2] for f in recent) / minutes if state.flows else None,
        level=crowding.level if crowding else None,
        at=state.clock,
    )


#: Each risk's position in ``Risk`` (the order risks are assessed in).
_RISK_ORDER: dict[Risk, int] = {risk: i for i, risk in enumerate(Risk)}


def _risks_to_assess(state: ZoneState, touched: Risk | None, rules: ZoneRules) -> list[Risk]:
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
        older = previous is not None and _ts(reading.observed_at) < previous.at
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
    touched = _KIND_RISK.get(kind)
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
    for risk in _risks_to_assess(state, _KIND_RISK.get(reading.kind), rules):
        records.extend(_step_risk(state, zone, rules, risk, now, reading.reading_id))
    if risk_key(Risk.SENSOR_OFFLINE) not in state.alerts and rules.no_signal.enabled:
        records.extend(_step_risk(state, zone, rules, Risk.SENSOR_OFFLINE, now, reading.reading_id))
    linked: list[tuple[VolunteerReport, str | None]] = []
    if state.pending_reports:
        released, linked = release_reports(state, zone, rules, now)
        records.extend(released)
    view = zone_view(state, zone) if _KIND_RISK.get(reading.kind) == Risk.CROWDING else None
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
    for risk in _risks_to_assess(
        state, Risk.SENSOR_OFFLINE if rules.no_signal.enabled else None, rules
    ):
        if risk == Risk.CROWDING:
            continue  # crowd figures only change with counts; their forecasts need fresh data
        records.extend(_step_risk(state, zone, rules, risk, now, cause))
    released, linked = release_reports(state, zone, rules, now)
    records.extend(released)
    return ZoneStep(duplicate=False, records=records, linked=linked)


# ------------------------------------------------------------------------------ reports ------


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
    at = _ts(report.submitted_at)
    if not _remember(state, report.report_id, at):
        return ZoneStep(duplicate=True, records=[])
    if state.clock is not None and at > state.clock:
        state.pending_reports.append(report.model_dump(mode="json"))
        state.pending_reports.sort(key=lambda p: (p["submitted_at"], p["report_id"]))
        return ZoneStep(duplicate=False, records=[], pending=True)
    records, alert_id = _apply_report(state, report, zone, rules)
    return ZoneStep(
        duplicate=False, records=records, alert_id=alert_id, linked=[(report, alert_id)]
    )


def release_reports(
    state: ZoneState, zone: Zone, rules: ZoneRules, upto: float
) -> tuple[list[AlertRecord], list[tuple[VolunteerReport, str | None]]]:
    """Handle the waiting reports whose time is at or before ``upto`` (oldest first)."""
    records: list[AlertRecord] = []
    linked: list[tuple[VolunteerReport, str | None]] = []
    while state.pending_reports:
        report = VolunteerReport.model_validate(state.pending_reports[0])
        if _ts(report.submitted_at) > upto:
            break
        state.pending_reports.pop(0)
        out, alert_id = _apply_report(state, report, zone, rules)
        records.extend(out)
        linked.append((report, alert_id))
    return records, linked


def _apply_report(
    state: ZoneState, report: VolunteerReport, zone: Zone, rules: ZoneRules
) -> tuple[list[AlertRecord], str | None]:
    at = _ts(report.submitted_at)
    # Reports do not move the zone's clock: that is the sensors' event time.
    risk = _CATEGORY_RISK.get(report.category)
    records: list[AlertRecord] = []
    if risk == Risk.FIRE:
        state.fire_reports = [*state.fire_reports[-19:], at]
    sensor_alert = state.alerts.get(risk_key(risk)) if risk is not None else None
    if risk is not None and sensor_alert is not None:
        if risk == Risk.FIRE:
            records.extend(_step_risk(state, zone, rules, Risk.FIRE, at, report.report_id))
            sensor_alert = state.alerts[risk_key(Risk.FIRE)]
        new, record = corroborate(sensor_alert, _dt(at), report.report_id, report.reporter_id)
        state.alerts[risk_key(risk)] = new
        if record is not None:
            records.append(record)
        return records, new.alert_id

    key = report_key(report.category)
    window = rules.reports.merge_window_seconds
    log = [e for e in state.report_log.get(key, []) if e[0] > at - window]
    log.append((at, report.reporter_id, report.report_id))
    state.report_log[key] = log
    in_window = len({e[1] for e in log})
    base = Level(rules.reports.levels[report.category])
    level = base
    if in_window >= rules.reports.escalate_reporters:
        level = _one_up(base)
    current = state.alerts.get(key)
    # Counts and the latest ids only; the volunteer's words stay with the report (PIPL: they go
    # where they are needed — the operators' view of the report — not into every alert record).
    evidence, new_reporter = join_report(
        {"category": report.category.value} if current is None else current.evidence,
        report.report_id,
        report.reporter_id,
    )
    summary = Summary(
        zh=f"{zone.name.zh} 志愿者报告：{_CATEGORY_ZH[report.category]}"
        f"（{in_window} 人报告，{level.zh}色）",
        en=f"Volunteer report at {zone.name.en}: {report.category.value} "
        f"({in_window} reporter(s), {level.value})",
    )
    if current is None:
        blocker = _inhibitor(state, rules, Risk.REPORT) if level != Level.RED else None
        assessment = Assessment(
            zone.id,
            Risk.REPORT,
            level,
            _dt(at),
            report.report_id,
            evidence,
            summary,
            inhibited_by=blocker,
        )
        new_state, out = transition(None, assessment, rules.hold)
        assert new_state is not None
        state.alerts[key] = new_state
        records.extend(out)
        return records, new_state.alert_id
    if level.rank > current.level.rank:
        assessment = Assessment(
            zone.id, Risk.REPORT, level, _dt(at), report.report_id, evidence, summary
        )
        new_state, out = transition(current, assessment, rules.hold)
        assert new_state is not None
        state.alerts[key] = new_state
        records.extend(out)
        return records, new_state.alert_id
    if new_reporter:
        # Another volunteer saw it too: one revision, nobody paged again (same level).
        amended, record = amend(current, Change.CORROBORATED, _dt(at), evidence, summary)
        state.alerts[key] = amended
        records.append(record)
        return records, current.alert_id
    # The same volunteer again: the counts grow (carried by the next revision), no revision.
    state.alerts[key] = replace(current, evidence=evidence)
    return records, current.alert_id


def _one_up(level: Level) -> Level:
    order = sorted(Level, key=lambda lvl: lvl.rank)
    return order[min(level.rank, len(order) - 1)]


# ------------------------------------------------------------------------------ commands -----

_ACTION_CHANGES = {
    CommandAction.ACKNOWLEDGE: Change.ACKNOWLEDGED,
    CommandAction.ASSIGN: Change.ASSIGNED,
    CommandAction.RESOLVE: Change.RESOLVED,
}


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What a command did: ``applied`` with its record, or why not (``duplicate``,
    ``not_open`` — the alert is resolved or unknown here)."""

    outcome: Outcome
    record: AlertRecord | None = None


def apply_command(state: ZoneState, command: AlertCommand) -> CommandOutcome:
    """Apply an operator's command to the zone's open alert it names (in place)."""
    if not _remember(state, command.command_id, _ts(command.issued_at)):
        return CommandOutcome(Outcome.DUPLICATE)
    for key, alert in state.alerts.items():
        if alert.alert_id == command.alert_id:
            new, record = operator_action(
                alert,
                _ACTION_CHANGES[command.action],
                command.issued_at,
                command.actor,
                command.note,
                command.assignee,
                command.note_public,
            )
            if new is None:
                del state.alerts[key]
                if is_report_key(key):
                    state.report_log.pop(key, None)
                else:
                    final = replace(
                        alert,
                        status=AlertStatus.RESOLVED,
                        revision=record.revision,
                        acknowledged_by=record.acknowledged_by,
                        acknowledged_at=record.acknowledged_at,
                    )
                    state.closed[key] = (_ts(command.issued_at), final)
            else:
                state.alerts[key] = new
            return CommandOutcome(Outcome.APPLIED, record)
    latched = state.latched.get(command.alert_id)
    if latched is not None and command.action == CommandAction.ACKNOWLEDGE:
        _, record = operator_action(
            latched,
            Change.ACKNOWLEDGED,
            command.issued_at,
            command.actor,
            command.note,
            note_public=command.note_public,
        )
        del state.latched[command.alert_id]
        return CommandOutcome(Outcome.APPLIED, record)
    return CommandOutcome(Outcome.NOT_OPEN)
