"""What the zone engine remembers about one zone between records (:class:`ZoneState`, owned by
the caller and updated in place), its stored form (``to_dict`` / ``from_dict``, versioned by
:mod:`alerts.zone.codec`), and the zone's crowd figures now (:func:`zone_view`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.zone.alert import AlertState
from alerts.zone.codec import STATE_VERSION, upgrade
from alerts.zone.forecast import TrendWindow
from alerts.zone.keys import AlertKey, risk_key
from alerts.zone.peaks import WindowMax
from alerts.zone.times import beijing_day
from models.contracts import AlertStatus, Level, Risk, SensorKind, Summary
from models.zones import Zone

#: Peak windows exported as ``puhui_zone_people_peak{window=...}``, in seconds ("day" is the
#: calendar day in Beijing time, kept apart).
PEAK_WINDOWS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
#: Gate flows are averaged over this window (persons per minute).
FLOW_WINDOW_S = 300.0
#: Gaps remembered per sensor to learn its usual reporting interval.
GAPS_KEPT = 9


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
    density_trend: TrendWindow = field(default_factory=TrendWindow)  # the forecast's samples
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
            "density_samples": [list(d) for d in self.density_trend.samples],
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
            density_trend=TrendWindow.of((d[0], d[1]) for d in data["density_samples"]),
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


#: How long (event time) and how many report / command ids a zone remembers to drop repeats.
SEEN_SECONDS = 3600.0
SEEN_MAX = 512


def remember_id(state: ZoneState, record_id: str, at: float) -> bool:
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


def zone_view(state: ZoneState, zone: Zone) -> ZoneView:
    """The zone's current figures, as of the zone's clock."""
    people = state.counted_people()
    now = state.clock or 0.0
    peaks = {}
    for name, window in state.peaks.items():
        value = window.value(now)
        if value is not None:
            peaks[name] = value
    if state.day_peak is not None and state.day_peak[0] == beijing_day(now):
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
