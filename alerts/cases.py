"""Cases: 立案 → 派遣 → 处置 → 核查 → 结案, as a pure state machine.

::

    registered ──dispatch──▶ dispatched ──accept──▶ accepted ──arrive──▶ on_site ──handle──▶ handled
                               ▲   ▲ (改派: dispatch again from dispatched / accepted / on_site)  │
                               │   └──────────────── verify: returned (核查不通过) ───────────────┤
                               │                                                    verify: closed
    any open state ──cancel──▶ cancelled                                                         ▼
                                                                                              closed

Who: operators (and admins) open, dispatch, verify and cancel; accept, arrive and handle belong
to a responder of the unit the case is dispatched to. Each step has a time limit by category and
level (:class:`CaseLimits`, ``alerts/data/case_limits.yaml``); ``due_at`` is when the current step
must be done, and a step past it is overdue. An ``escalate`` command (from the worker's overdue
check) records, once per step, that the step went overdue; the notifier then tells the targets.

No clock in here: every time is the command's ``issued_at`` or an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from models.cases import ActorRole, CaseAction, CaseCommand, VerifyResult
from models.contracts import Level, ReportCategory, Risk
from models.documents import load_document
from models.errors import ConfigFileError

__all__ = [
    "CATEGORIES",
    "OPEN_STATUSES",
    "Case",
    "CaseEvent",
    "CaseLimits",
    "CaseLimitsError",
    "CaseRejected",
    "CaseStatus",
    "apply_case_command",
    "is_overdue",
    "load_bundled_case_limits",
    "load_case_limits",
    "parse_case_limits",
]


class CaseStatus(StrEnum):
    REGISTERED = "registered"  # 已立案
    DISPATCHED = "dispatched"  # 已派遣
    ACCEPTED = "accepted"  # 已接单
    ON_SITE = "on_site"  # 已到场
    HANDLED = "handled"  # 已处置, 待核查
    CLOSED = "closed"  # 已结案
    CANCELLED = "cancelled"  # 已撤销


OPEN_STATUSES: frozenset[CaseStatus] = frozenset(
    {
        CaseStatus.REGISTERED,
        CaseStatus.DISPATCHED,
        CaseStatus.ACCEPTED,
        CaseStatus.ON_SITE,
        CaseStatus.HANDLED,
    }
)

#: What a case may be about: an alert's risk or a report's category.
CATEGORIES: frozenset[str] = frozenset({r.value for r in Risk} | {c.value for c in ReportCategory})

_OPERATORS = frozenset({ActorRole.OPERATOR, ActorRole.ADMIN})


class CaseRejected(Exception):
    """A command that cannot be applied: ``code`` is ``conflict`` (not in this state),
    ``forbidden`` (not this actor), ``invalid`` (a field is wrong; ``field`` names it) or
    ``not_found``."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Case:
    """A case's current state (one row of ``cases``)."""

    case_id: str
    title: str
    category: str
    level: Level
    zone_id: str | None
    alert_ids: tuple[str, ...]
    report_ids: tuple[str, ...]
    status: CaseStatus
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    unit_id: str | None = None
    step_seq: int = 0
    step_started_at: datetime | None = None
    due_at: datetime | None = None
    escalated_step: int | None = None
    returns: int = 0
    dispatched_at: datetime | None = None
    accepted_at: datetime | None = None
    arrived_at: datetime | None = None
    handled_at: datetime | None = None
    closed_at: datetime | None = None
    handle_note: str | None = None
    photo_ids: tuple[str, ...] = ()
    #: Steps finished after their due time (0 for a case handled on time: 按期处置).
    late_steps: int = 0

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def on_time(self) -> bool:
        """No step so far was finished after its due time (and none is overdue now, see
        :func:`is_overdue`)."""
        return self.late_steps == 0


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One entry of a case's timeline (the audit trail: who did what, when, why)."""

    case_id: str
    command_id: str
    action: CaseAction
    from_status: CaseStatus | None
    to_status: CaseStatus
    actor: str
    actor_role: ActorRole
    at: datetime
    unit_id: str | None = None
    note: str | None = None
    result: VerifyResult | None = None
    photo_ids: tuple[str, ...] = ()
    step: int | None = None


def is_overdue(case: Case, now: datetime) -> bool:
    """True when the case's current step is past its due time at ``now``."""
    return case.open and case.due_at is not None and now > case.due_at


# ----------------------------------------------------------------------------------- limits

_STEP_KEYS = tuple(s.value for s in CaseStatus if s in OPEN_STATUSES)


class CaseLimitsError(ConfigFileError):
    """The case time-limits file is unusable (each line names the file and the field)."""

    def __init__(
        self, file: str | Path | None, problems: Iterable[str], line: int | None = None
    ) -> None:
        self.problems = list(problems)
        where = "case limits" if file is None else str(file)
        if line is not None:
            where += f":{line}"
        message = "\n".join(f"{where}: {p}" for p in self.problems)
        super().__init__(message, file=file, line=line)


@dataclass(frozen=True, slots=True)
class CaseLimits:
    """Time limits of each open step, by category and level (most specific wins)."""

    defaults: Mapping[str, timedelta]
    by_level: Mapping[str, Mapping[str, timedelta]] = field(default_factory=dict)
    by_category: Mapping[str, Mapping[str, Mapping[str, timedelta]]] = field(default_factory=dict)
    escalate_to: tuple[str, ...] = ()

    def limit(self, category: str, level: Level, status: CaseStatus) -> timedelta | None:
        """How long a case of ``category`` and ``level`` may stay in ``status``."""
        if status not in OPEN_STATUSES:
            return None
        key = status.value
        cat = self.by_category.get(category, {})
        for table in (
            cat.get(level.value, {}),
            cat.get("any", {}),
            self.by_level.get(level.value, {}),
        ):
            if key in table:
                return table[key]
        return self.defaults.get(key)


def _duration(value: object, where: str, problems: list[str]) -> timedelta | None:
    if isinstance(value, bool):
        problems.append(f"{where}: must be a duration like 90s, 10m, 1.5h")
        return None
    if isinstance(value, int | float):
        seconds = float(value) * 60
    elif isinstance(value, str) and value.strip()[-1:] in {"s", "m", "h", "d"}:
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            problems.append(f"{where}: {value!r} is not a duration like 90s, 10m, 1.5h")
            return None
        seconds = number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[value.strip()[-1]]
    else:
        problems.append(f"{where}: {value!r} is not a duration like 90s, 10m, 1.5h")
        return None
    if seconds <= 0:
        problems.append(f"{where}: must be positive")
        return None
    return timedelta(seconds=seconds)


def _steps(raw: object, where: str, problems: list[str]) -> dict[str, timedelta]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of step -> duration")
        return {}
    out: dict[str, timedelta] = {}
    for key, value in raw.items():
        if key not in _STEP_KEYS:
            problems.append(f"{where}.{key}: unknown step (steps: {', '.join(_STEP_KEYS)})")
            continue
        d = _duration(value, f"{where}.{key}", problems)
        if d is not None:
            out[str(key)] = d
    return out


def _category_limits(
    raw_cats: Any, levels: set[str], problems: list[str]
) -> dict[str, dict[str, dict[str, timedelta]]]:
    """``categories: {category: {level | any: steps}}``; faults appended to ``problems``."""
    by_category: dict[str, dict[str, dict[str, timedelta]]] = {}
    if not isinstance(raw_cats, dict):
        problems.append("categories: must be a mapping category -> level -> steps")
        return by_category
    for cat, per_level in raw_cats.items():
        if cat not in CATEGORIES:
            problems.append(f"categories.{cat}: unknown category")
            continue
        if not isinstance(per_level, dict):
            problems.append(f"categories.{cat}: must be a mapping level -> steps")
            continue
        by_category[cat] = {}
        for lv, steps in per_level.items():
            if lv not in levels and lv != "any":
                problems.append(f"categories.{cat}.{lv}: unknown level (blue … red, or any)")
                continue
            by_category[cat][lv] = _steps(steps, f"categories.{cat}.{lv}", problems)
    return by_category


def parse_case_limits(document: Any, file: str | Path | None = None) -> CaseLimits:
    """Validate a parsed limits document (the format is in ``alerts/data/case_limits.yaml``)."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise CaseLimitsError(file, ["top level must be a mapping"])
    known = {"defaults", "levels", "categories", "escalate_to"}
    problems += [f"{k}: unknown top-level key" for k in document if k not in known]
    defaults = _steps(document.get("defaults"), "defaults", problems)
    missing = [k for k in _STEP_KEYS if k not in defaults]
    if "defaults" in document and isinstance(document["defaults"], dict) and missing:
        problems.append(f"defaults: every step needs a limit (missing: {', '.join(missing)})")
    levels = {lv.value for lv in Level}
    by_level: dict[str, dict[str, timedelta]] = {}
    raw_levels = document.get("levels") or {}
    if not isinstance(raw_levels, dict):
        problems.append("levels: must be a mapping level -> steps")
        raw_levels = {}
    for lv, steps in raw_levels.items():
        if lv not in levels:
            problems.append(f"levels.{lv}: unknown level (blue, yellow, orange, red)")
            continue
        by_level[lv] = _steps(steps, f"levels.{lv}", problems)
    by_category = _category_limits(document.get("categories") or {}, levels, problems)
    escalate = document.get("escalate_to") or []
    if not isinstance(escalate, list) or not all(isinstance(t, str) and t for t in escalate):
        problems.append("escalate_to: must be a list of target names of the escalation policy")
        escalate = []
    if problems:
        raise CaseLimitsError(file, problems)
    return CaseLimits(defaults, by_level, by_category, tuple(escalate))


def load_case_limits(path: Path) -> CaseLimits:
    """Read and validate a case time-limits file."""
    try:
        document = load_document(path)
    except ConfigFileError as exc:
        raise CaseLimitsError(path, [exc.detail], line=exc.line) from exc
    return parse_case_limits(document, path)


def bundled_case_limits_path() -> Path:
    return Path(str(files("alerts").joinpath("data", "case_limits.yaml")))


def load_bundled_case_limits() -> CaseLimits:
    with as_file(files("alerts").joinpath("data", "case_limits.yaml")) as path:
        return load_case_limits(path)


# ---------------------------------------------------------------------------- state machine

_NEXT: dict[CaseAction, tuple[frozenset[CaseStatus], CaseStatus]] = {
    CaseAction.DISPATCH: (
        frozenset(
            {
                CaseStatus.REGISTERED,
                CaseStatus.DISPATCHED,
                CaseStatus.ACCEPTED,
                CaseStatus.ON_SITE,
            }
        ),
        CaseStatus.DISPATCHED,
    ),
    CaseAction.ACCEPT: (frozenset({CaseStatus.DISPATCHED}), CaseStatus.ACCEPTED),
    CaseAction.ARRIVE: (frozenset({CaseStatus.ACCEPTED}), CaseStatus.ON_SITE),
    CaseAction.HANDLE: (frozenset({CaseStatus.ON_SITE}), CaseStatus.HANDLED),
    CaseAction.CANCEL: (OPEN_STATUSES, CaseStatus.CANCELLED),
}


def _step(case: Case, status: CaseStatus, at: datetime, limits: CaseLimits) -> Case:
    limit = limits.limit(case.category, case.level, status)
    return replace(
        case,
        status=status,
        updated_at=at,
        step_seq=case.step_seq + 1,
        step_started_at=at,
        due_at=None if limit is None else at + limit,
    )


def _event(case_before: Case | None, after: Case, cmd: CaseCommand, **extra: Any) -> CaseEvent:
    return CaseEvent(
        case_id=after.case_id,
        command_id=cmd.command_id,
        action=cmd.action,
        from_status=None if case_before is None else case_before.status,
        to_status=after.status,
        actor=cmd.actor,
        actor_role=cmd.actor_role,
        at=cmd.issued_at,
        note=cmd.note,
        **extra,
    )


def apply_case_command(
    case: Case | None,
    cmd: CaseCommand,
    limits: CaseLimits,
    units: Mapping[str, object] | Iterable[str],
) -> tuple[Case, CaseEvent]:
    """Apply ``cmd`` to ``case`` (``None``: not opened yet); the new state and its timeline entry,
    or :class:`CaseRejected`. ``units``: the known unit ids. A step finished (the case moved on)
    after its due time counts in ``late_steps``."""
    after, event = _apply(case, cmd, limits, units)
    moved = case is not None and cmd.action is not CaseAction.ESCALATE
    if moved and case is not None and case.due_at is not None and cmd.issued_at > case.due_at:
        after = replace(after, late_steps=case.late_steps + 1)
    return after, event


def _apply(  # noqa: C901, PLR0912, PLR0915 — one branch per action: the transition table, read top to bottom
    case: Case | None,
    cmd: CaseCommand,
    limits: CaseLimits,
    units: Mapping[str, object] | Iterable[str],
) -> tuple[Case, CaseEvent]:
    at = cmd.issued_at
    action = cmd.action
    if action is CaseAction.OPEN:
        if case is not None:
            raise CaseRejected("conflict", f"case {cmd.case_id} already exists")
        if cmd.actor_role not in _OPERATORS:
            raise CaseRejected("forbidden", "only operators open cases")
        if not cmd.title:
            raise CaseRejected("invalid", "a case needs a title", "title")
        if not cmd.category or cmd.category not in CATEGORIES:
            raise CaseRejected("invalid", f"unknown category {cmd.category!r}", "category")
        if not cmd.alert_ids and not cmd.report_ids:
            raise CaseRejected("invalid", "a case needs alert_ids or report_ids", "alert_ids")
        new = Case(
            case_id=cmd.case_id,
            title=cmd.title,
            category=cmd.category,
            level=cmd.level or Level.YELLOW,
            zone_id=cmd.zone_id,
            alert_ids=cmd.alert_ids,
            report_ids=cmd.report_ids,
            status=CaseStatus.REGISTERED,
            opened_by=cmd.actor,
            opened_at=at,
            updated_at=at,
            step_seq=0,
        )
        new = _step(replace(new, step_seq=-1), CaseStatus.REGISTERED, at, limits)
        return new, _event(None, new, cmd)
    if case is None:
        raise CaseRejected("not_found", f"no case {cmd.case_id}")
    if action is CaseAction.ESCALATE:
        if cmd.actor_role is not ActorRole.SYSTEM:
            raise CaseRejected("forbidden", "only the system escalates")
        if not case.open or cmd.step != case.step_seq or case.escalated_step == case.step_seq:
            raise CaseRejected("conflict", "that step is no longer open or was escalated already")
        if case.due_at is None or at <= case.due_at:
            raise CaseRejected("conflict", "the step is not overdue")
        new = replace(case, escalated_step=case.step_seq, updated_at=at)
        return new, _event(case, new, cmd, unit_id=case.unit_id, step=case.step_seq)

    operator_only = action in {CaseAction.DISPATCH, CaseAction.VERIFY, CaseAction.CANCEL}
    if operator_only and cmd.actor_role not in _OPERATORS:
        raise CaseRejected("forbidden", f"only operators {action.value} cases")
    if not operator_only:
        if cmd.actor_role is not ActorRole.RESPONDER:
            raise CaseRejected(
                "forbidden", f"only a responder of the assigned unit may {action.value}"
            )
        if case.unit_id is None or cmd.actor_unit != case.unit_id:
            raise CaseRejected("forbidden", f"case {case.case_id} is not dispatched to your unit")

    if action is CaseAction.VERIFY:
        if case.status is not CaseStatus.HANDLED:
            raise CaseRejected(
                "conflict",
                f"case {case.case_id} is {case.status.value}; only a handled case is verified",
            )
        if cmd.result is None:
            raise CaseRejected("invalid", "result must be closed or returned", "result")
        if cmd.result is VerifyResult.CLOSED:
            new = replace(
                case,
                status=CaseStatus.CLOSED,
                updated_at=at,
                step_seq=case.step_seq + 1,
                step_started_at=at,
                due_at=None,
                closed_at=at,
            )
        else:
            new = replace(_step(case, CaseStatus.DISPATCHED, at, limits), returns=case.returns + 1)
        return new, _event(case, new, cmd, unit_id=new.unit_id, result=cmd.result)

    allowed, target = _NEXT[action]
    if case.status not in allowed:
        raise CaseRejected(
            "conflict", f"case {case.case_id} is {case.status.value}; cannot {action.value}"
        )
    if action is CaseAction.CANCEL:
        new = replace(
            case,
            status=CaseStatus.CANCELLED,
            updated_at=at,
            step_seq=case.step_seq + 1,
            step_started_at=at,
            due_at=None,
            closed_at=at,
        )
        return new, _event(case, new, cmd, unit_id=case.unit_id)
    if action is CaseAction.DISPATCH:
        units_known = set(units)
        if not cmd.unit_id or cmd.unit_id not in units_known:
            raise CaseRejected("invalid", f"unknown unit {cmd.unit_id!r}", "unit_id")
        new = replace(
            _step(case, target, at, limits),
            unit_id=cmd.unit_id,
            dispatched_at=case.dispatched_at or at,
        )
        return new, _event(case, new, cmd, unit_id=cmd.unit_id)
    new = _step(case, target, at, limits)
    if action is CaseAction.ACCEPT:
        new = replace(new, accepted_at=case.accepted_at or at)
    elif action is CaseAction.ARRIVE:
        new = replace(new, arrived_at=case.arrived_at or at)
    elif action is CaseAction.HANDLE:
        if not cmd.note or not cmd.note.strip():
            raise CaseRejected("invalid", "say what was done (note)", "note")
        new = replace(new, handled_at=at, handle_note=cmd.note, photo_ids=cmd.photo_ids)
    return new, _event(case, new, cmd, unit_id=case.unit_id, photo_ids=cmd.photo_ids)
