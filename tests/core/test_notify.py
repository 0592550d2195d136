"""Escalation and notification decisions (alerts/notify.py): the policy file, the rules, the
signature and the retry arithmetic. Pure: no broker, no database, no clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.notify import (
    DeliveryRejected,
    EscalationConfig,
    EscalationPolicyError,
    Notification,
    NotificationKind,
    Policy,
    ReplayGuard,
    Sent,
    Step,
    Target,
    Track,
    backoff_delay,
    bundled_escalation_path,
    decide,
    load_bundled_escalation,
    load_escalation,
    notification_id,
    observe,
    restore,
    retryable,
    sign,
    target_secret,
    verify,
    verify_delivery,
    webhook_body,
)
from models.contracts import AlertRecord, AlertStatus, Change, Level, Risk, Summary
from models.zones import load_bundled_zones

pytestmark = pytest.mark.unit

T0 = datetime(2026, 10, 1, 19, 0, tzinfo=UTC)
M = timedelta(minutes=1)
POLICY = Policy(
    name="test",
    steps=(Step(0 * M, ("desk",)), Step(2 * M, ("desk", "leader")), Step(5 * M, ("district",))),
    repeat=3 * M,
)


def rec(
    revision: int,
    level: Level,
    status: AlertStatus = AlertStatus.FIRING,
    change: Change = Change.RAISED,
    alert_id: str = "a1",
) -> AlertRecord:
    return AlertRecord(
        alert_id=alert_id,
        revision=revision,
        zone_id="tianzifang-taikang-210",
        risk=Risk.CROWDING,
        level=level,
        status=status,
        change=change,
        at=T0,
        opened_at=T0,
        summary=Summary(zh="测试", en="test"),
    )


def run(
    records_at: list[tuple[float, AlertRecord]],
    ticks: list[float],
    policy: Policy = POLICY,
    silenced: set[float] | None = None,
) -> list[Notification]:
    """Fold records and tick at the given minutes (records first at equal minutes)."""
    events = sorted(
        [(m, 0, r) for m, r in records_at] + [(m, 1, None) for m in ticks],
        key=lambda e: (e[0], e[1]),
    )
    track: Track | None = None
    out: list[Notification] = []
    for minute, _, record in events:
        if record is not None:
            track = observe(track, record, policy)
            continue
        if track is None:
            continue
        now = T0 + minute * M
        muted = silenced is not None and minute in silenced
        new, notes = decide(track, policy, now, lambda _r, _n, muted=muted: muted)
        out.extend(notes)
        track = new
    return out


def summary(notes: list[Notification]) -> list[tuple[str, str, str]]:
    return [(n.kind.value, n.key, n.target) for n in notes]


# ----------------------------------------------------------------------------------- policy file


def test_bundled_policy_loads_against_the_zone_registry() -> None:
    sites = set(load_bundled_zones().sites())
    config = load_bundled_escalation(sites)
    assert config.policy_for("tianzifang", Risk.CROWDING).name == "tianzifang/crowding"
    assert config.policy_for("tianzifang", Risk.FIRE).name == "fire"
    assert config.policy_for("luone", Risk.CROWDING).name == "default"
    assert config.policy_for(None, Risk.GAS).name == "gas"
    for policy in [config.default, *config.policies.values()]:
        assert policy.steps[0].after == timedelta(0)
        assert policy.escalate_from is Level.ORANGE and policy.notify_from is Level.YELLOW
        for step in policy.steps:
            assert all(t in config.targets for t in step.targets)
    assert bundled_escalation_path().name == "escalation.yaml"


def test_policy_for_prefers_site_and_risk_then_site_then_risk() -> None:
    def p(name: str) -> Policy:
        return Policy(name, (Step(0 * M, ("x",)),))

    config = EscalationConfig(
        targets={"x": Target("x", "http://127.0.0.1/x")},
        default=p("default"),
        policies={
            ("s", Risk.FIRE): p("s/fire"),
            ("s", None): p("s"),
            (None, Risk.FIRE): p("fire"),
        },
    )
    assert config.policy_for("s", Risk.FIRE).name == "s/fire"
    assert config.policy_for("s", Risk.CROWDING).name == "s"
    assert config.policy_for("t", Risk.FIRE).name == "fire"
    assert config.policy_for(None, Risk.FIRE).name == "fire"
    assert config.policy_for("t", Risk.CROWDING).name == "default"


GOOD = """
targets:
  desk: {url: "http://127.0.0.1:1/desk"}
  leader: {url: "https://example.org/leader"}
defaults:
  repeat: 0
  steps:
    - {after: 0, targets: [desk]}
    - {after: 90s, targets: [desk, leader]}
policies:
  - risk: fire
    escalate_from: 橙
    notify_from: 黄
    steps:
      - {after: 0, targets: [leader]}
      - {after: 1.5h, targets: [desk]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "escalation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_durations_levels_and_defaults_parse(tmp_path: Path) -> None:
    config = load_escalation(write(tmp_path, GOOD))
    assert config.default.repeat is None
    assert config.default.steps[1] == Step(timedelta(seconds=90), ("desk", "leader"))
    fire = config.policy_for("anywhere", Risk.FIRE)
    assert fire.steps[1].after == timedelta(hours=1.5)
    assert fire.escalate_from is Level.ORANGE and fire.notify_from is Level.YELLOW
    assert config.url("leader") == "https://example.org/leader"


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (
            "targets: [desk, leader]}",
            "targets: [desk, boss]}",
            "defaults.steps[1].targets[1]",
            "unknown target 'boss'",
        ),
        (
            "- {after: 0, targets: [desk]}",
            "- {after: 1, targets: [desk]}",
            "defaults.steps[0].after",
            "at once",
        ),
        ("after: 90s", "after: 0", "defaults.steps[1].after", "later than the step before"),
        ("after: 90s", "after: 5 minutes", "defaults.steps[1].after", "duration"),
        ("after: 90s", "after: -3", "defaults.steps[1].after", "duration"),
        ("repeat: 0", "repeet: 0", "defaults.repeet", "Extra inputs"),
        ("risk: fire", "risk: volcano", "policies[0].risk", "Input should be"),
        ("escalate_from: 橙", "escalate_from: 紫", "policies[0].escalate_from", "Input should be"),
        ("notify_from: 黄", "notify_from: red", "policies[0].notify_from", "above escalate_from"),
        (
            '{url: "http://127.0.0.1:1/desk"}',
            '{url: "ftp://x/desk"}',
            "targets.desk.url",
            "pattern",
        ),
        ("  - risk: fire\n", "  - note: nothing to match\n", "policies[0]", "a `site`, a `risk`"),
        (
            "targets: [desk, leader]}",
            "targets: [desk, desk]}",
            "defaults.steps[1].targets",
            "listed twice",
        ),
    ],
)
def test_policy_errors_name_the_file_and_the_field(
    tmp_path: Path, old: str, new: str, field: str, words: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(EscalationPolicyError) as caught:
        load_escalation(path)
    error = caught.value
    assert error.file == str(path)
    assert field in [f for f, _ in error.problems], error.problems
    line = next(line for line in str(error).splitlines() if f"field {field!r}" in line)
    assert line.startswith(str(path)) and words in line


def test_unknown_site_and_duplicate_policies_are_errors(tmp_path: Path) -> None:
    text = GOOD + "  - {site: nowhere, risk: fire}\n  - {site: nowhere, risk: fire}\n"
    with pytest.raises(EscalationPolicyError) as caught:
        load_escalation(write(tmp_path, text), sites={"tianzifang"})
    problems = caught.value.problems
    assert ("policies[1].site", "unknown site 'nowhere'") in problems
    assert ("policies[2]", "same site/risk as policies[1]") in problems


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "file not found"),
        ("targets: [a", "not valid YAML"),
        ("- 1\n- 2\n", "top level must be a mapping"),
        (GOOD.replace("  leader:", "  desk:"), "duplicate key"),
        ("targets: {}\ndefaults: {steps: []}\n", "at least 1"),
    ],
)
def test_unusable_files_say_why(tmp_path: Path, text: str | None, words: str) -> None:
    path = tmp_path / "escalation.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(EscalationPolicyError) as caught:
        load_escalation(path)
    assert str(caught.value).startswith(str(path)) and words in str(caught.value)


def test_policy_itself_refuses_inconsistent_steps() -> None:
    with pytest.raises(ValueError, match="at once"):
        Policy("p", (Step(M, ("a",)),))
    with pytest.raises(ValueError, match="increase"):
        Policy("p", (Step(0 * M, ("a",)), Step(0 * M, ("b",))))
    with pytest.raises(ValueError, match="notify_from"):
        Policy("p", (Step(0 * M, ("a",)),), notify_from=Level.RED)


# ------------------------------------------------------------------------------------- decisions


def test_blue_notifies_nobody_even_when_resolved() -> None:
    notes = run(
        [(0, rec(1, Level.BLUE)), (30, rec(2, Level.BLUE, AlertStatus.RESOLVED, Change.RESOLVED))],
        ticks=[0, 1, 10, 29, 31],
    )
    assert notes == []


def test_yellow_gets_one_notice_and_an_all_clear_but_no_ladder() -> None:
    notes = run(
        [(0, rec(1, Level.YELLOW)), (30, rec(2, Level.YELLOW, AlertStatus.RESOLVED))],
        ticks=[0, 1, 5, 10, 20, 29, 31, 32],
    )
    assert summary(notes) == [
        ("notice", "notice/yellow", "desk"),
        ("resolved", "resolved", "desk"),
    ]


def test_unacknowledged_red_climbs_every_step_once_then_repeats() -> None:
    notes = run([(0, rec(1, Level.RED))], ticks=[m / 2 for m in range(0, 30)])
    assert summary(notes) == [
        ("step", "e1/step/0", "desk"),
        ("step", "e1/step/1", "desk"),
        ("step", "e1/step/1", "leader"),
        ("step", "e1/step/2", "district"),
        ("repeat", "e1/repeat/1", "district"),
        ("repeat", "e1/repeat/2", "district"),
        ("repeat", "e1/repeat/3", "district"),
    ]
    at = {(n.key, n.target): (n.at - T0) / M for n in notes}
    assert at[("e1/step/0", "desk")] == 0 and at[("e1/step/1", "leader")] == 2
    assert at[("e1/step/2", "district")] == 5 and at[("e1/repeat/1", "district")] == 8
    assert [n.step for n in notes] == [0, 1, 1, 2, 2, 2, 2]


def test_acknowledge_stops_the_ladder_and_resolve_tells_whoever_was_told() -> None:
    notes = run(
        [
            (0, rec(1, Level.ORANGE)),
            (2.5, rec(2, Level.ORANGE, AlertStatus.ACKNOWLEDGED, Change.ACKNOWLEDGED)),
            (40, rec(3, Level.ORANGE, AlertStatus.RESOLVED, Change.RESOLVED)),
        ],
        ticks=[m / 2 for m in range(0, 90)],
    )
    assert summary(notes) == [
        ("step", "e1/step/0", "desk"),
        ("step", "e1/step/1", "desk"),
        ("step", "e1/step/1", "leader"),
        ("resolved", "resolved", "desk"),
        ("resolved", "resolved", "leader"),
    ]


def test_clock_starts_at_the_first_notification_not_at_the_record() -> None:
    # The record says 19:00, the notifier first sees it at 19:10: step 1 is due at 19:12.
    notes = run([(0, rec(1, Level.RED))], ticks=[10, 11, 11.9, 12])
    assert [(n.key, (n.at - T0) / M) for n in notes] == [
        ("e1/step/0", 10),
        ("e1/step/1", 12),
        ("e1/step/1", 12),
    ]


def test_worse_level_tells_everyone_already_notified() -> None:
    notes = run(
        [(0, rec(1, Level.ORANGE)), (3, rec(2, Level.RED, change=Change.ESCALATED))],
        ticks=[0, 2, 3, 3.5],
    )
    assert summary(notes) == [
        ("step", "e1/step/0", "desk"),
        ("step", "e1/step/1", "desk"),
        ("step", "e1/step/1", "leader"),
        ("level_up", "level/red", "desk"),
        ("level_up", "level/red", "leader"),
    ]


def test_yellow_rising_to_orange_starts_the_ladder() -> None:
    notes = run(
        [(0, rec(1, Level.YELLOW)), (3, rec(2, Level.ORANGE, change=Change.ESCALATED))],
        ticks=[0, 1, 3, 4, 5],
    )
    assert summary(notes) == [
        ("notice", "notice/yellow", "desk"),
        ("step", "e2/step/0", "desk"),
        ("step", "e2/step/1", "desk"),
        ("step", "e2/step/1", "leader"),
    ]


def test_acknowledged_alert_that_rises_again_starts_over_from_step_zero() -> None:
    notes = run(
        [
            (0, rec(1, Level.ORANGE)),
            (3, rec(2, Level.ORANGE, AlertStatus.ACKNOWLEDGED, Change.ACKNOWLEDGED)),
            (10, rec(3, Level.RED, change=Change.ESCALATED)),
        ],
        ticks=[0, 2, 3, 4, 10, 11, 12],
    )
    assert summary(notes) == [
        ("step", "e1/step/0", "desk"),
        ("step", "e1/step/1", "desk"),
        ("step", "e1/step/1", "leader"),
        # 10': a new unacknowledged episode at 红: the first step again, the rise to the others
        ("step", "e3/step/0", "desk"),
        ("level_up", "level/red", "leader"),
        ("step", "e3/step/1", "desk"),
        ("step", "e3/step/1", "leader"),
    ]


def test_silence_holds_back_pages_but_not_the_all_clear() -> None:
    records = [(0, rec(1, Level.RED)), (20, rec(2, Level.RED, AlertStatus.RESOLVED))]
    ticks = [0, 1, 2, 3, 4, 5, 6, 7, 20]
    notes = run(records, ticks, silenced={1, 2, 3, 4, 5, 20})
    assert summary(notes) == [
        ("step", "e1/step/0", "desk"),
        # the silence ends at 6': steps 1 and 2 came due meanwhile and go out now
        ("step", "e1/step/1", "desk"),
        ("step", "e1/step/1", "leader"),
        ("step", "e1/step/2", "district"),
        ("resolved", "resolved", "desk"),
        ("resolved", "resolved", "leader"),
        ("resolved", "resolved", "district"),
    ]
    assert {(n.at - T0) / M for n in notes[1:4]} == {6}


def test_silenced_from_the_start_means_nobody_is_told_anything() -> None:
    records = [(0, rec(1, Level.RED)), (20, rec(2, Level.RED, AlertStatus.RESOLVED))]
    assert run(records, [0, 5, 10, 21], silenced={0, 5, 10, 21}) == []


def test_inhibited_alert_pages_nobody_until_it_rises_on_its_own() -> None:
    inhibited = rec(1, Level.ORANGE).model_copy(update={"inhibited": True})
    notes = run([(0, inhibited), (10, rec(2, Level.RED, change=Change.ESCALATED))], [0, 5, 10])
    assert summary(notes) == [("step", "e1/step/0", "desk")]  # the stretch began at rev 1
    assert (notes[0].at - T0) / M == 10


def test_alert_resolved_before_anyone_was_told_sends_nothing() -> None:
    notes = run([(0, rec(1, Level.RED)), (0.1, rec(2, Level.RED, AlertStatus.RESOLVED))], [1, 2])
    assert notes == []


def test_older_revisions_change_nothing() -> None:
    track = observe(None, rec(2, Level.RED, AlertStatus.ACKNOWLEDGED), POLICY)
    assert observe(track, rec(1, Level.RED), POLICY) is track
    assert track.episode is None
    with pytest.raises(ValueError, match="folded"):
        observe(track, rec(3, Level.RED, alert_id="other"), POLICY)
    with pytest.raises(ValueError, match="timezone"):
        decide(track, POLICY, datetime(2026, 10, 1, 19, 0))


def test_ids_are_deterministic_per_alert_key_and_target() -> None:
    first = run([(0, rec(1, Level.RED))], ticks=[0, 2])
    again = run([(0, rec(1, Level.RED))], ticks=[0, 2])
    assert [n.notification_id for n in first] == [n.notification_id for n in again]
    assert len({n.notification_id for n in first}) == len(first) == 3
    assert first[0].notification_id == notification_id("a1", "e1/step/0", "desk")


def test_restore_after_a_restart_sends_nothing_twice_and_keeps_the_clock() -> None:
    track = observe(None, rec(1, Level.RED), POLICY)
    track, notes = decide(track, POLICY, T0)
    assert track is not None
    sent = [Sent(n.key, n.kind, n.target, Level.RED, n.step, n.at) for n in notes]
    fresh = restore(observe(None, rec(1, Level.RED), POLICY), sent)
    assert fresh.started == T0 and fresh.notified == ("desk",) and fresh.told is Level.RED
    again, notes = decide(fresh, POLICY, T0 + M)
    assert notes == []
    _, notes = decide(again or fresh, POLICY, T0 + 2 * M)
    assert summary(notes) == [("step", "e1/step/1", "desk"), ("step", "e1/step/1", "leader")]
    resolved = observe(fresh, rec(2, Level.RED, AlertStatus.RESOLVED), POLICY)
    done, notes = decide(resolved, POLICY, T0 + 3 * M)
    assert done is None and summary(notes) == [("resolved", "resolved", "desk")]


# --------------------------------------------------------------------------------- the webhook


NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
STAMP = int(NOW.timestamp())


def test_signature_is_hmac_sha256_of_the_timestamp_and_the_raw_body() -> None:
    secret, body = b"s3cret-s3cret-s3cret", b'{"alert_id":"a1"}'
    expected = hmac.new(secret, f"{STAMP}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"v1={expected}"
    assert sign(secret, STAMP, body) == header
    assert verify(secret, body, str(STAMP), header, now=NOW)
    assert not verify(secret, body + b" ", str(STAMP), header, now=NOW)
    assert not verify(b"other-secret-other", body, str(STAMP), header, now=NOW)
    # The timestamp is signed: moving it forward (to pass the age check) breaks the signature.
    later = NOW + timedelta(minutes=10)
    assert not verify(secret, body, str(int(later.timestamp())), header, now=later)
    assert not verify(secret, body, None, header, now=NOW)
    assert not verify(secret, body, str(STAMP), None, now=NOW)


@pytest.mark.parametrize(
    ("stamp", "at", "reason"),
    [
        (None, NOW, "missing"),
        ("", NOW, "missing"),
        ("12.5", NOW, "not Unix seconds"),
        ("-5", NOW, "not Unix seconds"),
        ("١٢٣", NOW, "not Unix seconds"),  # digits, but not ASCII
        (str(STAMP), NOW + timedelta(minutes=5, seconds=1), "too old"),
        (str(STAMP), NOW - timedelta(minutes=5, seconds=1), "too far in the future"),
    ],
)
def test_deliveries_with_bad_or_stale_timestamps_are_rejected(
    stamp: str | None, at: datetime, reason: str
) -> None:
    secret, body = b"s3cret-s3cret-s3cret", b"{}"
    with pytest.raises(DeliveryRejected, match=reason):
        verify_delivery(secret, body, stamp, sign(secret, STAMP, body), now=at)


def test_a_delivery_within_the_tolerance_is_accepted_once() -> None:
    secret, body = b"s3cret-s3cret-s3cret", b'{"attempt":1}'
    header = sign(secret, STAMP, body)
    guard = ReplayGuard()
    at = NOW + timedelta(minutes=4, seconds=59)
    verify_delivery(secret, body, str(STAMP), header, now=at, replays=guard)
    with pytest.raises(DeliveryRejected, match="replay"):
        verify_delivery(secret, body, str(STAMP), header, now=at, replays=guard)
    # A retry of the same notification is a new delivery (new timestamp, new signature).
    retry_stamp = STAMP + 60
    retry = sign(secret, retry_stamp, body)
    verify_delivery(secret, body, str(retry_stamp), retry, now=at, replays=guard)
    # The guard forgets what its window no longer needs: memory stays bounded.
    much_later = NOW + timedelta(hours=1)
    fresh = sign(secret, int(much_later.timestamp()), body)
    verify_delivery(
        secret, body, str(int(much_later.timestamp())), fresh, now=much_later, replays=guard
    )
    assert len(guard) == 1


def test_each_target_has_its_own_secret() -> None:
    master = b"master-secret-of-the-street"
    desk, leader = target_secret(master, "desk"), target_secret(master, "leader")
    assert desk != leader and len(desk) == 64 and master not in desk
    assert desk == target_secret(master, "desk")  # stable across restarts
    assert target_secret(b"another-master-secret", "desk") != desk
    body = b"{}"
    assert not verify(leader, body, str(STAMP), sign(desk, STAMP, body), now=NOW)


def test_body_is_the_record_plus_the_notification() -> None:
    (note,) = run([(0, rec(1, Level.RED))], ticks=[0])
    sent_at = T0 + timedelta(seconds=5)
    body = json.loads(webhook_body(note, 3, sent_at))
    record = rec(1, Level.RED).model_dump(mode="json")
    assert {k: body[k] for k in record} == record
    assert body["notification_id"] == note.notification_id
    assert (body["kind"], body["key"], body["step"], body["target"], body["attempt"]) == (
        "step",
        "e1/step/0",
        0,
        "desk",
        3,
    )
    assert datetime.fromisoformat(body["sent_at"]) == sent_at


def test_backoff_doubles_is_capped_jittered_and_honours_retry_after() -> None:
    assert [backoff_delay(a, 1.0, 10.0, 1.0) for a in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 10, 10]
    assert [backoff_delay(a, 1.0, 10.0, 0.0) for a in (1, 2, 3)] == [0.5, 1, 2]
    assert backoff_delay(1, 1.0, 10.0, 0.0, retry_after=7) == 7
    assert backoff_delay(1, 1.0, 10.0, 0.0, retry_after=99) == 10
    assert backoff_delay(3, 1.0, 10.0, 0.5, retry_after=0.1) == 3


def test_what_is_worth_retrying() -> None:
    assert all(retryable(s) for s in (None, 408, 425, 429, 500, 502, 503, 504))
    assert not any(retryable(s) for s in (200, 301, 400, 401, 403, 404, 410, 422))


# ---------------------------------------------------------------------------------- properties


@dataclass
class Sim:
    """A random alert life (records) interleaved with notifier ticks, for the properties."""

    level: Level
    status: AlertStatus = AlertStatus.FIRING
    revision: int = 1
    records: list[AlertRecord] = field(default_factory=list)


events = st.lists(
    st.one_of(
        st.tuples(st.just("level"), st.sampled_from(list(Level))),
        st.tuples(st.just("ack"), st.none()),
        st.tuples(st.just("resolve"), st.none()),
        st.tuples(st.just("tick"), st.integers(min_value=0, max_value=400)),
        st.tuples(st.just("silence"), st.booleans()),
    ),
    max_size=60,
)


def simulate(
    first: Level, script: list[tuple[str, object]]
) -> list[tuple[AlertRecord, bool, list[Notification]]]:
    """Return, for every decide, the record it saw, whether silenced, and what it emitted."""
    sim = Sim(level=first)
    track: Track | None = observe(None, rec(1, first), POLICY)
    now, muted = T0, False
    out: list[tuple[AlertRecord, bool, list[Notification]]] = []
    for kind, arg in [*script, ("tick", 0)]:
        record: AlertRecord | None = None
        if track is None:
            break
        if sim.status is AlertStatus.RESOLVED and kind != "tick":
            continue
        if kind == "level":
            assert isinstance(arg, Level)
            if arg.rank > sim.level.rank:
                sim.level, sim.status = arg, AlertStatus.FIRING
                record = rec(sim.revision + 1, arg, sim.status, Change.ESCALATED)
            elif arg.rank < sim.level.rank:
                sim.level = arg
                record = rec(sim.revision + 1, arg, sim.status, Change.DEESCALATED)
        elif kind == "ack" and sim.status is AlertStatus.FIRING:
            sim.status = AlertStatus.ACKNOWLEDGED
            record = rec(sim.revision + 1, sim.level, sim.status, Change.ACKNOWLEDGED)
        elif kind == "resolve":
            sim.status = AlertStatus.RESOLVED
            record = rec(sim.revision + 1, sim.level, sim.status, Change.RESOLVED)
        elif kind == "silence":
            muted = bool(arg)
        elif kind == "tick":
            assert isinstance(arg, int)
            now += timedelta(seconds=arg)
            seen = track.record
            track, notes = decide(track, POLICY, now, lambda _r, _n, m=muted: m)
            out.append((seen, muted, notes))
        if record is not None and track is not None:
            sim.revision += 1
            track = observe(track, record, POLICY)
    return out


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Level)), events)
def test_properties_of_the_decisions(first: Level, script: list[tuple[str, object]]) -> None:
    decisions = simulate(first, script)
    notes = [n for _, _, batch in decisions for n in batch]
    # Each notification (a step of an episode, a repeat round, a notice, the all-clear) goes to
    # each target at most once.
    assert len({n.notification_id for n in notes}) == len(notes)
    told: set[str] = set()
    resolved_batches = 0
    for seen, muted, batch in decisions:
        kinds = {n.kind for n in batch}
        if seen.status is AlertStatus.ACKNOWLEDGED:
            # No escalation step or repeat for an acknowledged alert.
            assert not kinds & {NotificationKind.STEP, NotificationKind.REPEAT}
        if seen.level.rank < Level.ORANGE.rank:
            assert not kinds & {NotificationKind.STEP, NotificationKind.REPEAT}
        if seen.level is Level.BLUE:
            assert kinds <= {NotificationKind.RESOLVED}
        if muted:
            assert kinds <= {NotificationKind.RESOLVED}
        if NotificationKind.RESOLVED in kinds:
            resolved_batches += 1
            assert kinds == {NotificationKind.RESOLVED}
            # The all-clear goes to exactly those who were told something.
            assert {n.target for n in batch} == told
        told.update(n.target for n in batch)
    # Resolved notifies once, and only if someone was told of the alert.
    assert resolved_batches <= 1
    last_seen = decisions[-1][0] if decisions else None
    if last_seen is not None and last_seen.status is AlertStatus.RESOLVED:
        assert resolved_batches == (1 if told else 0)
    # Step k of an episode never fires before its `after` from that episode's first step.
    first_at: dict[str, datetime] = {}
    for n in notes:
        if n.kind is NotificationKind.STEP:
            episode, _, k = n.key.split("/")
            first_at.setdefault(episode, n.at)
            assert n.at - first_at[episode] >= POLICY.steps[int(k)].after
    # Deterministic.
    assert simulate(first, script) == decisions


def test_a_target_may_have_its_own_secret_file(tmp_path: Path) -> None:
    from notifier.service import target_secrets

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "desk.key").write_text("  desk-only-secret-0123456789\n")
    policy = tmp_path / "escalation.yaml"
    policy.write_text(
        "targets:\n"
        "  desk: {url: 'http://127.0.0.1:9/desk', secret_file: secrets/desk.key}\n"
        "  leader: {url: 'http://127.0.0.1:9/leader'}\n"
        "defaults:\n"
        "  steps: [{after: 0, targets: [desk, leader]}]\n"
    )
    config = load_escalation(policy)
    assert config.targets["desk"].secret_file == tmp_path / "secrets" / "desk.key"
    master = b"master-secret-of-the-street"
    secrets = target_secrets(config, master)
    assert secrets == {
        "desk": b"desk-only-secret-0123456789",
        "leader": target_secret(master, "leader"),
    }

    (tmp_path / "secrets" / "desk.key").write_text("short\n")
    with pytest.raises(ValueError, match=r"desk: secret_file .* fewer than 16 bytes") as short:
        target_secrets(config, master)
    assert "short" not in str(short.value).replace("secret_file", "")
    (tmp_path / "secrets" / "desk.key").unlink()
    with pytest.raises(ValueError, match="desk: cannot read secret_file"):
        target_secrets(config, master)
