"""Escalation and notification: who is told about an alert, and when. Pure: no I/O, no clock.

A control room expects what PagerDuty / Opsgenie call an escalation policy: the first targets are
notified at once; if nobody acknowledges within a set time, the next step's targets are notified,
and so on; after the last step the notification repeats while the alert stays unacknowledged;
an acknowledgement stops the ladder; a resolve tells everyone who was told. The policy is a YAML
file (``alerts/data/escalation.yaml`` is bundled), one policy per site and/or risk.

The rules, applied by :func:`decide` on every tick of the caller's wall clock (``now``):

* **蓝 notifies nobody** (the console shows it). Levels from ``notify_from`` (default 黄) up
  notify; levels from ``escalate_from`` (default 橙) up run the escalation ladder.
* **Notice**: the first time a firing alert is at a notifying level below ``escalate_from``
  (a 黄), the policy's first-step targets get one ``notice``. No ladder, no repeat.
* **Escalation ladder**: an *episode* is a stretch of records in which the alert is firing
  (not acknowledged) at ``escalate_from`` or above; it is named by the revision that began it.
  Step 0 fires at the first tick of the episode and starts the episode's clock; step ``k`` fires
  once the clock has run ``steps[k].after``; ``after`` counts from the first notification
  (cumulative, not per step). After the last step, its targets get a ``repeat`` every
  ``repeat`` while unacknowledged (only the latest round that is due: a long silence does not
  release a burst). Each step and each repeat round fires once per episode.
* **Acknowledge** ends the episode: no more steps or repeats. An acknowledged alert that rises
  again (the state machine fires it again) starts a new episode, from step 0.
* **Level up**: when a firing alert reaches a level higher than any it was notified at, every
  target already notified that is not being notified by a step right now gets a ``level_up``.
* **Resolve**: every target that was notified of the alert (by anything) gets one ``resolved``;
  if nobody was notified, nothing is sent.
* **Silences** (a callable passed in) hold back everything but ``resolved``: a silence stops
  new pages, not the all-clear for a page that already went out. Steps that came due during a
  silence fire when it ends.
* **Inhibited** alerts (``inhibited: true``: a lower alert a 红 of the same zone explains, as in
  Alertmanager's inhibition) are held back the same way; the 红 itself is what pages. When the
  alert rises and stops being inhibited, it notifies like any other.

Each notification goes to one target and has a deterministic id (uuid5 of alert, key and
target) that receivers use as an idempotency key; retries of it are attempts, not new ids.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from importlib.resources import as_file, files
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, ValidationError

from alerts.privacy import public_evidence
from models.contracts import AlertRecord, AlertStatus, Level, Risk
from models.documents import StrictModel, load_document
from models.errors import ConfigFileError, PuhuiError
from models.zones import SLUG_PATTERN

__all__ = [
    "NOTIFICATION_NAMESPACE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryRejected",
    "EscalationConfig",
    "EscalationPolicyError",
    "Notification",
    "NotificationKind",
    "Policy",
    "ReplayGuard",
    "Sent",
    "Step",
    "Target",
    "Track",
    "backoff_delay",
    "bundled_escalation_path",
    "decide",
    "delivery_body",
    "load_bundled_escalation",
    "load_escalation",
    "observe",
    "restore",
    "retryable",
    "sign",
    "target_secret",
    "verify",
    "verify_delivery",
    "webhook_body",
]

#: Namespace of the deterministic notification ids (uuid5).
NOTIFICATION_NAMESPACE: Final = uuid.UUID("0b6a7c52-2f0e-4d8e-9a43-5d1b6e0f7c21")

#: Header carrying ``v1=<hex HMAC-SHA256 of "<timestamp>." + the raw body>``.
SIGNATURE_HEADER: Final = "X-Puhui-Signature"

#: Header carrying the Unix seconds the signature was made at (covered by the signature).
TIMESTAMP_HEADER: Final = "X-Puhui-Timestamp"

#: How old (or how far in the future) a delivery's timestamp may be by default.
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)

SilenceCheck = Callable[[AlertRecord, datetime], bool]
"""``silenced(record, now)``: True when a silence in effect at ``now`` matches the alert."""


def never_silenced(_record: AlertRecord, _now: datetime) -> bool:
    """The silence check when there are no silences."""
    return False


# --------------------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook receiver, named in the policy file."""

    name: str
    url: str
    secret_file: Path | None = None
    """A file holding this target's own signing secret; ``None``: derived from the master
    secret (:func:`target_secret`)."""


@dataclass(frozen=True, slots=True)
class Step:
    """Notify ``targets`` once the alert has gone unacknowledged for ``after``."""

    after: timedelta
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """An escalation policy: ordered steps (the first at ``after`` 0), the repeat interval after
    the last step (``None``: no repeat) and the levels that notify / escalate."""

    name: str
    steps: tuple[Step, ...]
    repeat: timedelta | None = None
    notify_from: Level = Level.YELLOW
    escalate_from: Level = Level.ORANGE

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a policy needs at least one step")
        if self.steps[0].after != timedelta(0):
            raise ValueError("the first step must notify at once (after 0)")
        afters = [step.after for step in self.steps]
        if any(b <= a for a, b in pairwise(afters)):
            raise ValueError("steps' `after` must increase")
        if self.notify_from.rank > self.escalate_from.rank:
            raise ValueError("notify_from must not be above escalate_from")
        if self.repeat is not None and self.repeat <= timedelta(0):
            raise ValueError("repeat must be positive (or None)")


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    """Targets by name, a default policy, and policies per (site, risk), either part optional.

    :meth:`policy_for` picks the most specific: (site, risk), then site, then risk, then default.
    """

    targets: Mapping[str, Target]
    default: Policy
    policies: Mapping[tuple[str | None, Risk | None], Policy] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def policy_for(self, site: str | None, risk: Risk) -> Policy:
        """The policy of an alert of ``risk`` in a zone of ``site`` (``None``: site unknown)."""
        for key in ((site, risk), (site, None), (None, risk)):
            if key[0] is None and key[1] is None:
                continue
            found = self.policies.get(key)
            if found is not None:
                return found
        return self.default

    def url(self, target: str) -> str:
        """The webhook URL of a target name."""
        return self.targets[target].url


class EscalationPolicyError(ConfigFileError):
    """The escalation policy file is unusable; every line names the file and the field.

    ``problems`` holds ``(field, message)`` pairs, ``field`` a dotted path such as
    ``policies[2].steps[1].targets[0]`` (``None`` for the whole file).
    """

    def __init__(
        self,
        file: str | Path | None,
        problems: Sequence[tuple[str | None, str]],
        *,
        line: int | None = None,
    ) -> None:
        if not problems:
            raise ValueError("EscalationPolicyError needs at least one problem")
        name = None if file is None else str(file)
        self.problems: list[tuple[str | None, str]] = list(problems)
        where = name or "escalation policy"
        lines = [
            f"{where}: field {fld!r}: {msg}" if fld else f"{where}: {msg}"
            for fld, msg in self.problems
        ]
        if len(lines) > 1:
            lines.insert(0, f"{where}: {len(lines)} problems")
        super().__init__("\n".join(lines), file=name, field=self.problems[0][0], line=line)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)\s*$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600}
_LEVEL_ALIASES: Final = {level.zh: level.value for level in Level}


def _duration(value: object) -> timedelta:
    """A number is minutes; a string takes a unit: ``"90s"``, ``"10m"``, ``"1.5h"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is minutes (a number) or text like '90s', '10m', '1h'")
    if isinstance(value, int | float):
        if value < 0 or value != value or value == float("inf"):
            raise ValueError("a duration must be a finite number of minutes >= 0")
        return timedelta(minutes=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError("a duration is minutes (a number) or text like '90s', '10m', '1h'")


def _level(value: object) -> object:
    return _LEVEL_ALIASES.get(value, value) if isinstance(value, str) else value


_Duration = Annotated[timedelta, BeforeValidator(_duration)]
_Level = Annotated[Level, BeforeValidator(_level)]
_Name = Annotated[str, Field(pattern=SLUG_PATTERN)]


_Strict = StrictModel


class _RawTarget(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+\S*$", max_length=2048)]
    description: str | None = None
    secret_file: Annotated[str, Field(min_length=1, max_length=4096)] | None = None


class _RawStep(_Strict):
    after: _Duration
    targets: Annotated[list[_Name], Field(min_length=1)]


class _RawDefaults(_Strict):
    steps: Annotated[list[_RawStep], Field(min_length=1)]
    repeat: _Duration = timedelta(0)
    notify_from: _Level = Level.YELLOW
    escalate_from: _Level = Level.ORANGE


class _RawPolicy(_Strict):
    site: _Name | None = None
    risk: Risk | None = None
    steps: Annotated[list[_RawStep], Field(min_length=1)] | None = None
    repeat: _Duration | None = None
    notify_from: _Level | None = None
    escalate_from: _Level | None = None
    note: str | None = None


class _RawFile(_Strict):
    targets: Annotated[dict[_Name, _RawTarget], Field(min_length=1)]
    defaults: _RawDefaults
    policies: list[_RawPolicy] = Field(default_factory=list)


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _steps_problems(
    where: str, steps: Sequence[_RawStep], targets: Collection[str]
) -> list[tuple[str | None, str]]:
    problems: list[tuple[str | None, str]] = []
    if steps[0].after != timedelta(0):
        problems.append((f"{where}[0].after", "the first step must notify at once (after: 0)"))
    for i, step in enumerate(steps):
        if i and step.after <= steps[i - 1].after:
            problems.append(
                (
                    f"{where}[{i}].after",
                    "must be later than the step before (`after` is counted "
                    "from the first notification)",
                )
            )
        for j, name in enumerate(step.targets):
            if name not in targets:
                known = ", ".join(sorted(targets))
                problems.append(
                    (f"{where}[{i}].targets[{j}]", f"unknown target {name!r} (known: {known})")
                )
        if len(set(step.targets)) != len(step.targets):
            problems.append((f"{where}[{i}].targets", "a target is listed twice"))
    return problems


def _policy(
    name: str, steps: Sequence[_RawStep], repeat: timedelta, notify: Level, escalate: Level
) -> Policy:
    return Policy(
        name=name,
        steps=tuple(Step(s.after, tuple(s.targets)) for s in steps),
        repeat=repeat if repeat > timedelta(0) else None,
        notify_from=notify,
        escalate_from=escalate,
    )


def parse_escalation(
    document: object, file: str | Path | None = None, sites: Collection[str] | None = None
) -> EscalationConfig:
    """Validate a parsed policy document (see ``alerts/data/escalation.yaml`` for the format).

    ``sites`` (the zone registry's site slugs), when given, makes an unknown ``site`` an error.
    Raises :class:`EscalationPolicyError` listing every problem.
    """
    if not isinstance(document, dict):
        got = "null" if document is None else type(document).__name__
        raise EscalationPolicyError(
            file,
            [(None, f"top level must be a mapping {{targets, defaults, policies}}, got {got}")],
        )
    try:
        raw = _RawFile.model_validate(document)
    except ValidationError as exc:
        raise EscalationPolicyError(
            file, [(_path(e["loc"]) or None, e["msg"]) for e in exc.errors()]
        ) from None

    problems = _steps_problems("defaults.steps", raw.defaults.steps, raw.targets)
    if raw.defaults.notify_from.rank > raw.defaults.escalate_from.rank:
        problems.append(("defaults.notify_from", "must not be above escalate_from"))
    policies: dict[tuple[str | None, Risk | None], Policy] = {}
    first_at: dict[tuple[str | None, Risk | None], int] = {}
    for i, p in enumerate(raw.policies):
        where = f"policies[{i}]"
        if p.site is None and p.risk is None:
            problems.append(
                (
                    where,
                    "a policy needs a `site`, a `risk` or both (the default policy is `defaults`)",
                )
            )
            continue
        if sites is not None and p.site is not None and p.site not in sites:
            problems.append((f"{where}.site", f"unknown site {p.site!r}"))
        key = (p.site, p.risk)
        if key in first_at:
            problems.append((where, f"same site/risk as policies[{first_at[key]}]"))
            continue
        first_at[key] = i
        steps = p.steps if p.steps is not None else raw.defaults.steps
        if p.steps is not None:
            problems.extend(_steps_problems(f"{where}.steps", p.steps, raw.targets))
        notify = p.notify_from or raw.defaults.notify_from
        escalate = p.escalate_from or raw.defaults.escalate_from
        if notify.rank > escalate.rank:
            problems.append((f"{where}.notify_from", "must not be above escalate_from"))
        if problems:
            continue
        label = "/".join(part for part in (p.site, p.risk and p.risk.value) if part)
        repeat = p.repeat if p.repeat is not None else raw.defaults.repeat
        policies[key] = _policy(label, steps, repeat, notify, escalate)
    if problems:
        raise EscalationPolicyError(file, problems)
    d = raw.defaults
    return EscalationConfig(
        targets=MappingProxyType(
            {
                n: Target(n, t.url, _beside(file, t.secret_file) if t.secret_file else None)
                for n, t in raw.targets.items()
            }
        ),
        default=_policy("default", d.steps, d.repeat, d.notify_from, d.escalate_from),
        policies=MappingProxyType(policies),
    )


def load_escalation(path: Path, sites: Collection[str] | None = None) -> EscalationConfig:
    """Read and validate an escalation policy file (errors name the file and the field)."""
    file = str(path)
    try:
        document = load_document(path)  # duplicate keys refused
    except ConfigFileError as exc:
        raise EscalationPolicyError(file, [(None, exc.detail)], line=exc.line) from exc
    return parse_escalation(document, file, sites)


def _beside(file: str | Path | None, name: str) -> Path:
    """``name`` as a path; a relative one is taken from the policy file's folder."""
    path = Path(name)
    if path.is_absolute() or file is None:
        return path
    return Path(file).parent / path


def bundled_escalation_path() -> Path:
    """The file-system path of the bundled policy, ``alerts/data/escalation.yaml``."""
    return Path(str(files("alerts").joinpath("data", "escalation.yaml")))


def load_bundled_escalation(sites: Collection[str] | None = None) -> EscalationConfig:
    """Load the escalation policy shipped with the package."""
    with as_file(files("alerts").joinpath("data", "escalation.yaml")) as path:
        return load_escalation(path, sites)


# ---------------------------------------------------------------------------------- decisions


class NotificationKind(StrEnum):
    """Why a notification goes out."""

    NOTICE = "notice"  # first notice of a notifying level below escalate_from (a 黄)
    STEP = "step"  # a step of the escalation ladder (step 0 = the first page)
    REPEAT = "repeat"  # after the last step, while still unacknowledged
    LEVEL_UP = "level_up"  # the alert got worse; to those already notified
    RESOLVED = "resolved"  # the all-clear, to everyone notified
    CASE_OVERDUE = "case_overdue"  # a case's step went past its time limit (alerts/cases.py)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one target about one alert, decided at ``at`` (the caller's clock).

    ``key`` names the decision (``e3/step/1``: step 1 of the episode begun at revision 3;
    ``e3/repeat/2``, ``notice/yellow``, ``level/red``, ``resolved``); with the alert and the
    target it makes ``notification_id``.
    """

    notification_id: str
    key: str
    kind: NotificationKind
    step: int
    target: str
    record: AlertRecord
    at: datetime

    @property
    def alert_id(self) -> str:
        """The alert this notification is about."""
        return self.record.alert_id


@dataclass(frozen=True, slots=True)
class Sent:
    """A notification already decided (from the attempts ledger), to :func:`restore` a track."""

    key: str
    kind: NotificationKind
    target: str
    level: Level
    step: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Track:
    """What the notifier knows of one open alert.

    ``record`` is the newest revision seen; ``episode`` the revision that began the current
    unacknowledged 橙/红 stretch (``None``: not escalating); ``started`` the wall time the
    episode's first step went out (its clock); ``fired`` the keys decided; ``notified`` every
    target told anything, in order; ``told`` the highest level anyone was told of;
    ``top_step`` the highest step fired (-1: none).
    """

    record: AlertRecord
    episode: int | None = None
    started: datetime | None = None
    fired: frozenset[str] = frozenset()
    notified: tuple[str, ...] = ()
    told: Level | None = None
    top_step: int = -1


def notification_id(alert_id: str, key: str, target: str) -> str:
    """Deterministic id of the notification ``key`` of an alert to ``target``."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{alert_id}|{key}|{target}"))


def _escalating(record: AlertRecord, policy: Policy) -> bool:
    return record.status is AlertStatus.FIRING and record.level.rank >= policy.escalate_from.rank


def observe(track: Track | None, record: AlertRecord, policy: Policy) -> Track:
    """Fold one alert record into the alert's track (records of older revisions change nothing).

    ``policy`` is the alert's policy (its ``escalate_from`` decides where an episode begins).
    """
    if track is None:
        return Track(
            record=record, episode=record.revision if _escalating(record, policy) else None
        )
    if record.alert_id != track.record.alert_id:
        raise ValueError(f"record of {record.alert_id} folded into {track.record.alert_id}")
    if record.revision <= track.record.revision:
        return track
    if _escalating(record, policy):
        episode = track.episode if track.episode is not None else record.revision
    else:
        episode = None
    started = track.started if episode == track.episode else None
    return replace(track, record=record, episode=episode, started=started)


def restore(track: Track, sent: Iterable[Sent]) -> Track:
    """Put back what was decided before a restart (the attempts ledger), so nothing is sent twice
    and the episode's clock keeps its start."""
    fired = set(track.fired)
    notified = list(track.notified)
    told, top, started = track.told, track.top_step, track.started
    step0 = None if track.episode is None else f"e{track.episode}/step/0"
    for s in sorted(sent, key=lambda s: s.at):
        fired.add(s.key)
        if s.kind is NotificationKind.RESOLVED:
            continue
        if s.target not in notified:
            notified.append(s.target)
        if told is None or s.level.rank > told.rank:
            told = s.level
        top = max(top, s.step)
        if s.key == step0 and (started is None or s.at < started):
            started = s.at
    return replace(
        track,
        fired=frozenset(fired),
        notified=tuple(notified),
        told=told,
        top_step=top,
        started=started,
    )


def decide(  # noqa: C901, PLR0912 — the module's rules, one branch per rule, in order
    track: Track, policy: Policy, now: datetime, silenced: SilenceCheck = never_silenced
) -> tuple[Track | None, list[Notification]]:
    """The notifications due at ``now`` for one alert (see the module's rules), and its new track
    (``None`` once the alert is resolved: nothing more will be sent about it).

    Deterministic: the same track, policy, ``now`` and silences give the same result.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    record = track.record
    out: list[Notification] = []

    def emit(key: str, kind: NotificationKind, step: int, targets: Iterable[str]) -> None:
        for target in targets:
            out.append(
                Notification(
                    notification_id(record.alert_id, key, target),
                    key,
                    kind,
                    step,
                    target,
                    record,
                    now,
                )
            )

    if record.status is AlertStatus.RESOLVED:
        if track.notified and "resolved" not in track.fired:
            emit("resolved", NotificationKind.RESOLVED, max(track.top_step, 0), track.notified)
        return None, out
    if record.inhibited or silenced(record, now):
        return track, []

    fired = set(track.fired)
    started, top = track.started, track.top_step
    stepped: set[str] = set()
    if track.episode is not None:
        episode = track.episode
        if started is None:
            started = now
        all_fired = True
        for k, step in enumerate(policy.steps):
            key = f"e{episode}/step/{k}"
            if key in fired:
                continue
            if now < started + step.after:
                all_fired = False
                break
            fired.add(key)
            emit(key, NotificationKind.STEP, k, step.targets)
            stepped.update(step.targets)
            top = max(top, k)
        if all_fired and policy.repeat is not None:
            last = policy.steps[-1]
            rounds = (now - started - last.after) // policy.repeat
            key = f"e{episode}/repeat/{rounds}"
            if rounds >= 1 and key not in fired:
                fired.add(key)
                emit(key, NotificationKind.REPEAT, len(policy.steps) - 1, last.targets)
                stepped.update(last.targets)

    level, told = record.level, track.told
    rising = told is None or level.rank > told.rank
    if record.status is AlertStatus.FIRING and level.rank >= policy.notify_from.rank and rising:
        if track.episode is None:
            key = f"notice/{level.value}"
            first = policy.steps[0].targets
            if key not in fired:
                fired.add(key)
                emit(key, NotificationKind.NOTICE, 0, first)
            stepped.update(first)
        key = f"level/{level.value}"
        others = [t for t in track.notified if t not in stepped]
        if others and key not in fired:
            fired.add(key)
            emit(key, NotificationKind.LEVEL_UP, max(top, 0), others)
        told = level

    notified = list(track.notified)
    for note in out:
        if note.target not in notified:
            notified.append(note.target)
    return (
        replace(
            track,
            started=started,
            fired=frozenset(fired),
            notified=tuple(notified),
            told=told,
            top_step=top,
        ),
        out,
    )


# ----------------------------------------------------------------------------------- delivery


def webhook_body(note: Notification, attempt: int, sent_at: datetime) -> bytes:
    """The JSON body of one delivery attempt: the alert record plus ``notification_id``,
    ``kind``, ``key``, ``step``, ``target``, ``attempt`` and ``sent_at`` (signed with the rest,
    so a receiver can refuse stale replays by the body alone)."""
    payload: dict[str, Any] = note.record.model_dump(mode="json")
    # Outside targets get counts and categories, never a volunteer's identity or words.
    payload["evidence"] = public_evidence(note.record.evidence)
    return delivery_body(
        payload,
        notification_id=note.notification_id,
        kind=note.kind,
        key=note.key,
        step=note.step,
        target=note.target,
        attempt=attempt,
        sent_at=sent_at,
    )


def delivery_body(
    facts: Mapping[str, Any],
    *,
    notification_id: str,
    kind: NotificationKind,
    key: str,
    step: int | None,
    target: str,
    attempt: int,
    sent_at: datetime,
) -> bytes:
    """The JSON body of one delivery attempt of any kind: what it is about (``facts``) plus
    the envelope every webhook carries (``notification_id``, ``kind``, ``key``, ``step``,
    ``target``, ``attempt``, ``sent_at``), compact UTF-8."""
    payload = dict(facts)
    payload.update(
        notification_id=notification_id,
        kind=kind.value,
        key=key,
        step=step,
        target=target,
        attempt=attempt,
        sent_at=sent_at.isoformat(),
    )
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def target_secret(master: bytes, target: str) -> bytes:
    """The signing secret of ``target`` derived from the master secret: 64 hex digits of
    HMAC-SHA256(master, ``"puhui-webhook-target:" + target``). Each target gets its own, and
    knowing one target's secret tells nothing of another's or of the master."""
    label = f"puhui-webhook-target:{target}".encode()
    return hmac.new(master, label, hashlib.sha256).hexdigest().encode()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of b"<timestamp>." + body>`` (the ``X-Puhui-Signature`` header):
    the signature covers the time it was made, so a captured delivery cannot be passed off as
    a new one."""
    message = str(int(timestamp)).encode() + b"." + body
    return "v1=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


class DeliveryRejected(PuhuiError, ValueError):
    """A webhook delivery that must not be acted on; the message says why."""


@dataclass
class ReplayGuard:
    """The signatures accepted lately, to refuse a delivery seen before. Entries older than the
    tolerance are forgotten (a delivery that old is refused by its timestamp anyway), so the
    memory is bounded by the deliveries of one tolerance window."""

    tolerance: timedelta = DEFAULT_TOLERANCE
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def first_time(self, signature: str, timestamp: int, now: datetime) -> bool:
        """Record ``signature``; False if it was recorded before (a replay). Thread-safe."""
        horizon = now.timestamp() - self.tolerance.total_seconds()
        with self._lock:
            for old in [sig for sig, at in self._seen.items() if at < horizon]:
                del self._seen[old]
            if signature in self._seen:
                return False
            self._seen[signature] = timestamp
            return True

    def __len__(self) -> int:
        return len(self._seen)


def verify_delivery(
    secret: bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    replays: ReplayGuard | None = None,
) -> None:
    """Check a received delivery (the raw body and the ``X-Puhui-Timestamp`` and
    ``X-Puhui-Signature`` headers) against the target's secret at ``now``.

    Raises :class:`DeliveryRejected` when a header is missing or malformed, the timestamp is
    more than ``tolerance`` away from ``now``, the signature does not match (constant-time
    comparison), or — with ``replays`` — the same delivery was accepted before. Retries of a
    notification are new deliveries (new timestamp and signature): de-duplicate those by
    ``X-Puhui-Notification-Id``.
    """
    if not timestamp or not signature:
        raise DeliveryRejected("missing X-Puhui-Timestamp or X-Puhui-Signature")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise DeliveryRejected("X-Puhui-Timestamp is not Unix seconds")
    at = int(timestamp)
    skew = now.timestamp() - at
    if abs(skew) > tolerance.total_seconds():
        when = "old" if skew > 0 else "far in the future"
        raise DeliveryRejected(f"the delivery is too {when} ({abs(skew):.0f} s)")
    if not hmac.compare_digest(sign(secret, at, body), signature):
        raise DeliveryRejected("the signature does not match")
    if replays is not None and not replays.first_time(signature, at, now):
        raise DeliveryRejected("the delivery was received before (a replay)")


def verify(
    secret: bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    replays: ReplayGuard | None = None,
) -> bool:
    """:func:`verify_delivery` as a yes/no answer."""
    try:
        verify_delivery(
            secret, body, timestamp, signature, now=now, tolerance=tolerance, replays=replays
        )
    except DeliveryRejected:
        return False
    return True


def retryable(status: int | None) -> bool:
    """Whether a failed attempt is worth retrying: no answer (``None``: connection error,
    timeout), 408, 425, 429 or any 5xx. Other 4xx mean the request itself is refused."""
    return status is None or status in (408, 425, 429) or status >= 500


def backoff_delay(
    attempt: int, base: float, cap: float, jitter: float, retry_after: float | None = None
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped, with
    "equal jitter" (half fixed, half ``jitter`` ∈ [0, 1) of it) so many senders do not retry in
    step; a receiver's ``Retry-After`` is honoured up to ``cap``."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    delay = ceiling / 2 + ceiling / 2 * min(max(jitter, 0.0), 1.0)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, cap)
    return delay
