"""The alert state machine: one open alert per (zone, risk), driven by event time only.

``transition(state, assessment, hold)`` is a pure function. It raises an alert the first time a
condition is seen, escalates at once when the level rises, and only lowers the level (or resolves)
once the condition has stayed below the current level for the whole hold time — so a noisy sensor
hovering at a threshold does not page an operator on every reading.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from pydantic import JsonValue

from models.contracts import (
    AlertRecord,
    AlertStatus,
    Change,
    Level,
    Risk,
    Summary,
)

#: Namespace of the deterministic alert ids (uuid5), so a replay derives the same ids.
ALERT_ID_NAMESPACE: Final = uuid.UUID("6f1c1f43-3a55-4a0c-9c55-8f7e4b2d1a10")

#: Default hold time before a lower level or a resolve takes effect (issue: 5 min of event time).
DEFAULT_HOLD: Final = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the rules say about one risk in one zone at one moment of event time.

    ``level`` is ``None`` when the condition is clear. ``cause`` identifies the input behind the
    assessment (a reading id): it seeds the alert id when a new alert is raised.
    """

    zone_id: str
    risk: Risk
    level: Level | None
    at: datetime
    cause: str
    evidence: dict[str, JsonValue] = field(default_factory=dict)
    summary: Summary | None = None
    predicted: bool = False
    #: Set when the alert is raised while a worse alert of the zone explains it (inhibition).
    inhibited_by: str | None = None


@dataclass(frozen=True, slots=True)
class AlertState:
    """An open alert. ``below_since`` is when the condition last fell under ``level`` (if it did),
    and ``below_peak`` the highest level seen since then (``None``: clear all along)."""

    alert_id: str
    zone_id: str
    risk: Risk
    level: Level
    status: AlertStatus
    revision: int
    opened_at: datetime
    predicted: bool = False
    below_since: datetime | None = None
    below_peak: Level | None = None
    evidence: dict[str, JsonValue] = field(default_factory=dict)
    summary: Summary | None = None
    assignee: str | None = None
    inhibited: bool = False
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    #: Set on the final (resolved) state of an alert that latched (see :func:`latch`).
    latched: bool = False
    #: The highest level the alert has had (``None``: never above ``level``).
    peak: Level | None = None


def alert_id_for(zone_id: str, risk: Risk, cause: str) -> str:
    """Deterministic id of the alert opened by ``cause`` (a reading id, unique per episode)."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{zone_id}|{risk.value}|{cause}"))


def _record(state: AlertState, change: Change, at: datetime) -> AlertRecord:
    summary = state.summary or Summary(
        zh=f"{state.zone_id} {state.risk.value} {state.level.zh}色预警",
        en=f"{state.risk.value} {state.level.value} alert in {state.zone_id}",
    )
    return AlertRecord(
        alert_id=state.alert_id,
        revision=state.revision,
        zone_id=state.zone_id,
        risk=state.risk,
        level=state.level,
        status=state.status,
        change=change,
        predicted=state.predicted,
        inhibited=state.inhibited,
        at=at,
        opened_at=state.opened_at,
        evidence=state.evidence,
        summary=summary,
        assignee=state.assignee,
        acknowledged_by=state.acknowledged_by,
        acknowledged_at=state.acknowledged_at,
        latched=state.latched,
    )


#: Evidence an alert keeps for its whole life, whatever later readings say.
_STICKY = (
    "reports",
    "reporters",
    "report_count",
    "reporter_count",
    "corroborated",
    "inhibited_by",
)

#: How many report and reporter ids an alert's evidence keeps (the latest): an alert may gather
#: thousands of reports in its life, its records stay the same size. ``report_count`` and
#: ``reporter_count`` count them all.
KEPT_IDS = 10


def _carry(old: dict[str, JsonValue], new: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """New evidence, keeping (and merging) what an alert keeps for its whole life."""
    out = dict(new)
    for key in _STICKY:
        if key not in old:
            continue
        before, after = old[key], new.get(key)
        if isinstance(before, list):
            merged = list(before)
            merged += [x for x in (after if isinstance(after, list) else []) if x not in merged]
            out[key] = merged[-KEPT_IDS:]
        else:
            out[key] = before if after is None else after
    return out


def join_report(
    evidence: dict[str, JsonValue], report_id: str, reporter_id: str
) -> tuple[dict[str, JsonValue], bool]:
    """Evidence with one more volunteer report: the latest ``KEPT_IDS`` report and reporter ids,
    and counts of all. Also says whether the reporter is new to the alert (one of the kept ids
    is not: a reporter beyond the latest ``KEPT_IDS`` counts again — a bounded memory)."""
    reports = _as_list(evidence.get("reports"))
    reporters = _as_list(evidence.get("reporters"))
    report_count = _count(evidence.get("report_count"), len(reports))
    reporter_count = _count(evidence.get("reporter_count"), len(reporters))
    new_reporter = reporter_id not in reporters
    if new_reporter:
        reporters = [*reporters, reporter_id][-KEPT_IDS:]
        reporter_count += 1
    if report_id not in reports:
        reports = [*reports, report_id][-KEPT_IDS:]
        report_count += 1
    return {
        **evidence,
        "reports": reports,
        "report_count": report_count,
        "reporters": reporters,
        "reporter_count": reporter_count,
    }, new_reporter


def _count(value: JsonValue, floor: int) -> int:
    return int(value) if isinstance(value, int | float) and value >= floor else floor


def _rank(level: Level | None) -> int:
    return 0 if level is None else level.rank


def peak_of(state: AlertState) -> Level:
    """The highest level ``state`` has had."""
    if state.peak is not None and state.peak.rank > state.level.rank:
        return state.peak
    return state.level


def transition(
    state: AlertState | None,
    assessment: Assessment,
    hold: timedelta = DEFAULT_HOLD,
    latch: Collection[Level] = (),
) -> tuple[AlertState | None, list[AlertRecord]]:
    """Apply one assessment to the open alert of its (zone, risk), if any.

    Returns the new state (``None`` once resolved or when nothing is open) and the alert records
    the change produced (zero or one). Pure: the same inputs always give the same outputs.
    A hold of zero lowers or resolves at once (used for sensor_offline: a sensor that reports
    again is back). An alert that resolves on its own before a person acknowledged it, having
    reached a level in ``latch``, is marked ``latched``: it stays on the board until someone
    acknowledges it (ISA-18.2's "returned to normal, unacknowledged").
    """
    level, at = assessment.level, assessment.at
    if state is None:
        if level is None:
            return None, []
        evidence = assessment.evidence
        if assessment.inhibited_by:
            evidence = {**evidence, "inhibited_by": assessment.inhibited_by}
        opened = AlertState(
            alert_id=alert_id_for(assessment.zone_id, assessment.risk, assessment.cause),
            zone_id=assessment.zone_id,
            risk=assessment.risk,
            level=level,
            status=AlertStatus.FIRING,
            revision=1,
            opened_at=at,
            predicted=assessment.predicted,
            evidence=evidence,
            summary=assessment.summary,
            inhibited=assessment.inhibited_by is not None,
        )
        return opened, [_record(opened, Change.RAISED, at)]

    if _rank(level) > state.level.rank:
        assert level is not None
        up = replace(
            state,
            level=level,
            peak=peak_of(state),
            status=AlertStatus.FIRING,
            acknowledged_by=None,
            acknowledged_at=None,
            revision=state.revision + 1,
            predicted=assessment.predicted,
            below_since=None,
            below_peak=None,
            evidence=_carry(state.evidence, assessment.evidence),
            summary=assessment.summary,
            inhibited=False,
        )
        return up, [_record(up, Change.ESCALATED, at)]

    if level == state.level:
        if state.predicted and not assessment.predicted:
            # The predicted level was actually reached: an ordinary alert from now on.
            real = replace(
                state,
                predicted=False,
                revision=state.revision + 1,
                below_since=None,
                below_peak=None,
                evidence=_carry(state.evidence, assessment.evidence),
                summary=assessment.summary,
            )
            return real, [_record(real, Change.CONFIRMED, at)]
        # Back at (or still at) the alert's level: any pending de-escalation starts over.
        if state.below_since is None:
            return state, []
        return replace(state, below_since=None, below_peak=None), []

    # Below the current level: wait for the hold time, remembering the highest level meanwhile.
    pending = state.below_since is not None and at >= state.below_since
    since = state.below_since if pending and state.below_since is not None else at
    peak = level
    if pending and _rank(state.below_peak) > _rank(level):
        peak = state.below_peak
    if at - since < hold:
        return replace(state, below_since=since, below_peak=peak), []
    if peak is None:
        shown = _record(state, Change.RESOLVED, at).summary
        resolved = replace(
            state,
            status=AlertStatus.RESOLVED,
            latched=state.acknowledged_by is None and peak_of(state) in latch,
            revision=state.revision + 1,
            below_since=None,
            below_peak=None,
            evidence={**state.evidence, "clear_seconds": (at - since).total_seconds()},
            summary=Summary(zh=f"已解除：{shown.zh}", en=f"Resolved: {shown.en}"),
        )
        return None, [_record(resolved, Change.RESOLVED, at)]
    down = replace(
        state,
        level=peak,
        peak=peak_of(state),
        revision=state.revision + 1,
        predicted=assessment.predicted,
        # The hold window restarts from now for whatever is still below the new level.
        below_since=at if _rank(level) < peak.rank else None,
        below_peak=level if _rank(level) < peak.rank else None,
        evidence=_carry(state.evidence, assessment.evidence),
        summary=assessment.summary,
    )
    return down, [_record(down, Change.DEESCALATED, at)]


def corroborate(
    state: AlertState, at: datetime, report_id: str, reporter_id: str
) -> tuple[AlertState, AlertRecord | None]:
    """A volunteer's report joins an open alert as evidence and marks it corroborated.

    A new revision only when that changes the alert — its first corroboration, or a reporter new
    to it; a volunteer repeating themselves only adds to the counts (carried by the next
    revision), so one reporter cannot grow an alert's history."""
    evidence, new_reporter = join_report(state.evidence, report_id, reporter_id)
    first = state.evidence.get("corroborated") is not True
    evidence["corroborated"] = True
    if not (first or new_reporter):
        return replace(state, evidence=evidence), None
    return amend(state, Change.CORROBORATED, at, evidence)


def amend(
    state: AlertState,
    change: Change,
    at: datetime,
    evidence: dict[str, JsonValue],
    summary: Summary | None = None,
) -> tuple[AlertState, AlertRecord]:
    """The next revision of an open alert with new evidence (and summary), level unchanged."""
    new = replace(
        state,
        revision=state.revision + 1,
        evidence=evidence,
        summary=summary if summary is not None else state.summary,
    )
    return new, _record(new, change, at)


def _as_list(value: JsonValue) -> list[JsonValue]:
    return list(value) if isinstance(value, list) else []


def operator_action(
    state: AlertState,
    change: Change,
    at: datetime,
    actor: str,
    note: str | None = None,
    assignee: str | None = None,
    note_public: bool = False,
) -> tuple[AlertState | None, AlertRecord]:
    """An operator acknowledges, assigns or resolves an open alert (a command, not a reading).

    Acknowledging keeps the alert open (an escalation fires it again) and records who and
    when; acknowledging a latched (resolved, unacknowledged) alert takes it off the board;
    assigning names who handles it; resolving closes it — if the condition is present again
    within the hold time, the engine reopens the same alert (:func:`reopen`), so an operator
    cannot silence a live danger by resolving it and no unlinked twin appears.
    """
    if change == Change.ACKNOWLEDGED and state.status == AlertStatus.RESOLVED:
        # A latched alert (resolved on its own, unacknowledged): a person has now seen it.
        shown = replace(
            state,
            revision=state.revision + 1,
            latched=False,
            acknowledged_by=actor,
            acknowledged_at=at,
        )
        new: AlertState | None = None
    elif change == Change.ACKNOWLEDGED:
        new = replace(
            state,
            status=AlertStatus.ACKNOWLEDGED,
            revision=state.revision + 1,
            acknowledged_by=actor,
            acknowledged_at=at,
        )
        shown = new
    elif change == Change.ASSIGNED:
        new = replace(state, revision=state.revision + 1, assignee=assignee or actor)
        shown = new
    elif change == Change.RESOLVED:
        # A person closing the alert has seen it: that is an acknowledgement too.
        shown = replace(
            state,
            status=AlertStatus.RESOLVED,
            revision=state.revision + 1,
            acknowledged_by=state.acknowledged_by or actor,
            acknowledged_at=state.acknowledged_at or at,
        )
        new = None
    else:
        raise ValueError(f"{change.value} is not an operator action")
    assert shown is not None
    record = _record(shown, change, at).model_copy(
        update={"actor": actor, "note": note, "note_public": note_public and note is not None}
    )
    return new, record


def reopen(closed: AlertState, assessment: Assessment) -> tuple[AlertState, AlertRecord]:
    """The condition of an alert an operator resolved is present again (within the hold time):
    the same alert fires again at the assessed level, next revision, ``change`` reopened.
    Acknowledgement is cleared (a person must look again); the assignee stays."""
    assert assessment.level is not None
    opened = replace(
        closed,
        level=assessment.level,
        peak=None,
        status=AlertStatus.FIRING,
        revision=closed.revision + 1,
        predicted=assessment.predicted,
        below_since=None,
        below_peak=None,
        evidence=_carry(closed.evidence, assessment.evidence),
        summary=assessment.summary,
        acknowledged_by=None,
        acknowledged_at=None,
        latched=False,
        inhibited=False,
    )
    return opened, _record(opened, Change.REOPENED, assessment.at)
