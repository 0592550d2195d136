"""The zone engine: one reading in, the zone's new state and alert records out.

Everything a worker decides per reading happens here, with no I/O and no clock: drop repeated
reading ids, keep each sensor's latest value, derive people / density / peaks, assess each risk
and run the alert state machine. Event time (``observed_at``) is the only time there is, so a day
replayed in a minute gives the same records.

:class:`ZoneState` is owned by the caller (the worker keeps one per zone in a Faust table) and is
updated in place by :func:`process_reading`; :meth:`ZoneState.to_dict` / :meth:`ZoneState.from_dict`
move it through the state store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.peaks import WindowMax
from alerts.rules import RuleSet, crowding_level, fire_level
from alerts.state import AlertState, Assessment, operator_action, transition
from models.contracts import (
    AlertCommand,
    AlertRecord,
    AlertStatus,
    Change,
    CommandAction,
    Level,
    Risk,
    SensorKind,
    SensorReading,
    Summary,
)
from models.zones import Zone

#: Peak windows exported as ``puhui_zone_people_peak{window=...}``, in seconds.
PEAK_WINDOWS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}

_RISK_KINDS: dict[SensorKind, Risk] = {
    SensorKind.PEOPLE_COUNT: Risk.CROWDING,
    SensorKind.SMOKE: Risk.FIRE,
}


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


@dataclass(slots=True)
class ZoneState:
    """What the engine remembers about one zone between readings."""

    zone_id: str
    clock: float | None = None  # newest event time seen in the zone (epoch seconds)
    seen: dict[str, float] = field(default_factory=dict)  # reading id -> observed_at
    people: dict[str, tuple[float, float]] = field(default_factory=dict)  # sensor -> (at, count)
    smoke: dict[str, tuple[float, float]] = field(default_factory=dict)  # sensor -> (at, value)
    smoke_alarm_at: dict[str, float] = field(default_factory=dict)  # sensor -> alarm reported
    peaks: dict[str, WindowMax] = field(
        default_factory=lambda: {name: WindowMax(span) for name, span in PEAK_WINDOWS.items()}
    )
    alerts: dict[Risk, AlertState] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form for the state store."""
        return {
            "zone_id": self.zone_id,
            "clock": self.clock,
            "seen": self.seen,
            "people": {k: list(v) for k, v in self.people.items()},
            "smoke": {k: list(v) for k, v in self.smoke.items()},
            "smoke_alarm_at": self.smoke_alarm_at,
            "peaks": {name: w.dump() for name, w in self.peaks.items()},
            "alerts": {risk.value: _alert_to_dict(a) for risk, a in self.alerts.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoneState:
        """Inverse of :meth:`to_dict`."""
        return cls(
            zone_id=data["zone_id"],
            clock=data["clock"],
            seen=dict(data["seen"]),
            people={k: (v[0], v[1]) for k, v in data["people"].items()},
            smoke={k: (v[0], v[1]) for k, v in data["smoke"].items()},
            smoke_alarm_at=dict(data["smoke_alarm_at"]),
            peaks={
                name: WindowMax(span, ((t, v) for t, v in data["peaks"].get(name, [])))
                for name, span in PEAK_WINDOWS.items()
            },
            alerts={Risk(k): _alert_from_dict(v) for k, v in data["alerts"].items()},
        )

    def total_people(self) -> float | None:
        """People in the zone now: the sum of each counting sensor's latest count."""
        if not self.people:
            return None
        return sum(count for _, count in self.people.values())


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
    )


@dataclass(frozen=True, slots=True)
class ZoneView:
    """The zone's crowd figures after a reading (for metrics and the API)."""

    people: float | None
    density: float | None
    occupancy: float | None
    peaks: dict[str, float]


@dataclass(frozen=True, slots=True)
class Step:
    """What one reading did: ``duplicate`` readings change nothing and produce nothing."""

    duplicate: bool
    records: list[AlertRecord]
    view: ZoneView | None


def _prune_seen(state: ZoneState, now: float, window: timedelta) -> None:
    horizon = now - window.total_seconds()
    # Prune in bulk only now and then: the dict is small and pruning each time costs more.
    if len(state.seen) > 64 and next(iter(state.seen.values())) < horizon:
        state.seen = {rid: at for rid, at in state.seen.items() if at >= horizon}


def _apply_reading(state: ZoneState, reading: SensorReading, at: float) -> None:
    sensor = reading.sensor_id
    if reading.kind == SensorKind.PEOPLE_COUNT:
        previous = state.people.get(sensor)
        if previous is None or at >= previous[0]:
            state.people[sensor] = (at, reading.value)
            total = state.total_people()
            assert total is not None
            for window in state.peaks.values():
                window.add(at, total)
    elif reading.kind == SensorKind.SMOKE:
        previous = state.smoke.get(sensor)
        if previous is None or at >= previous[0]:
            state.smoke[sensor] = (at, reading.value)
            if reading.value >= 1:
                state.smoke_alarm_at[sensor] = at
            else:
                state.smoke_alarm_at.pop(sensor, None)


def _crowding(
    state: ZoneState, zone: Zone, rules: RuleSet, at: datetime, cause: str
) -> Assessment | None:
    people = state.total_people()
    if people is None:
        return None
    density = zone.density(people)
    occupancy = zone.occupancy(people)
    level = crowding_level(density, occupancy, rules)
    evidence: dict[str, Any] = {
        "people": people,
        "density": round(density, 3),
        "area_m2": zone.area_m2,
        "reading_id": cause,
    }
    if occupancy is not None:
        evidence["occupancy"] = round(occupancy, 3)
        evidence["capacity"] = zone.capacity
    summary = None
    if level is not None:
        occ_zh = f"，承载率 {occupancy:.0%}" if occupancy is not None else ""
        occ_en = f", {occupancy:.0%} of capacity" if occupancy is not None else ""
        summary = Summary(
            zh=f"{zone.name.zh} 人群密度 {density:.1f} 人/㎡{occ_zh}（{level.zh}色预警）",
            en=f"Crowd density {density:.1f} persons/m²{occ_en} at {zone.name.en} ({level.value})",
        )
    return Assessment(zone.id, Risk.CROWDING, level, at, cause, evidence, summary)


def _fire(
    state: ZoneState, zone: Zone, rules: RuleSet, at: datetime, cause: str
) -> Assessment | None:
    if not state.smoke:
        return None
    alarms = {sensor: _dt(ts) for sensor, ts in state.smoke_alarm_at.items()}
    level = fire_level(alarms, rules)
    evidence: dict[str, Any] = {
        "detectors_in_alarm": sorted(alarms),
        "reading_id": cause,
    }
    summary = None
    if level is not None:
        n = len(alarms)
        confirm_zh = "多个探测器报警，确认火情" if level == Level.RED else "单个烟感报警，待核实"
        confirm_en = (
            "several detectors, fire likely" if level == Level.RED else "one detector, to verify"
        )
        summary = Summary(
            zh=f"{zone.name.zh} 烟感报警 {n} 个（{confirm_zh}，{level.zh}色预警）",
            en=f"Smoke alarm at {zone.name.en}: {n} detector(s), {confirm_en} ({level.value})",
        )
    return Assessment(zone.id, Risk.FIRE, level, at, cause, evidence, summary)


_ASSESSORS = {Risk.CROWDING: _crowding, Risk.FIRE: _fire}


def zone_view(state: ZoneState, zone: Zone) -> ZoneView:
    """The zone's current people, density, occupancy and peaks (as of the zone's clock)."""
    people = state.total_people()
    now = state.clock or 0.0
    peaks = {}
    for name, window in state.peaks.items():
        value = window.value(now)
        if value is not None:
            peaks[name] = value
    return ZoneView(
        people=people,
        density=zone.density(people) if people is not None else None,
        occupancy=zone.occupancy(people) if people is not None else None,
        peaks=peaks,
    )


def process_reading(state: ZoneState, reading: SensorReading, zone: Zone, rules: RuleSet) -> Step:
    """Apply one validated reading of ``zone`` to ``state`` (in place) and say what changed.

    A reading id seen before (within ``rules.dedupe_window`` of event time) changes nothing.
    Every open alert of the zone is re-assessed at the zone's event-time clock, so the hold time of
    one risk runs on while the zone's other sensors keep reporting.
    """
    if reading.reading_id in state.seen:
        return Step(duplicate=True, records=[], view=None)
    at = _ts(reading.observed_at)
    state.seen[reading.reading_id] = at
    state.clock = at if state.clock is None else max(state.clock, at)
    _prune_seen(state, state.clock, rules.dedupe_window)
    _apply_reading(state, reading, at)

    now = _dt(state.clock)
    risks = set(state.alerts)
    touched = _RISK_KINDS.get(reading.kind)
    if touched is not None:
        risks.add(touched)
    records: list[AlertRecord] = []
    for risk in sorted(risks):
        assessment = _ASSESSORS[risk](state, zone, rules, now, reading.reading_id)
        if assessment is None:
            continue
        new, emitted = transition(state.alerts.get(risk), assessment, rules.hold)
        if new is None:
            state.alerts.pop(risk, None)
        else:
            state.alerts[risk] = new
        records.extend(emitted)
    view = zone_view(state, zone) if reading.kind == SensorKind.PEOPLE_COUNT else None
    return Step(duplicate=False, records=records, view=view)


_ACTION_CHANGES = {
    CommandAction.ACKNOWLEDGE: Change.ACKNOWLEDGED,
    CommandAction.ASSIGN: Change.ASSIGNED,
    CommandAction.RESOLVE: Change.RESOLVED,
}


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What a command did: ``applied`` with its record, or why not (``duplicate``,
    ``not_open`` — the alert is resolved or unknown here)."""

    outcome: str
    record: AlertRecord | None = None


def apply_command(state: ZoneState, command: AlertCommand) -> CommandOutcome:
    """Apply an operator's command to the zone's open alert it names (in place)."""
    if command.command_id in state.seen:
        return CommandOutcome("duplicate")
    at = _ts(command.issued_at)
    state.seen[command.command_id] = at
    for risk, alert in state.alerts.items():
        if alert.alert_id == command.alert_id:
            new, record = operator_action(
                alert,
                _ACTION_CHANGES[command.action],
                command.issued_at,
                command.actor,
                command.note,
                command.assignee,
            )
            if new is None:
                del state.alerts[risk]
            else:
                state.alerts[risk] = new
            return CommandOutcome("applied", record)
    return CommandOutcome("not_open")
