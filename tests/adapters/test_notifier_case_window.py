"""The notifier's case escalations: each tick reads a sliding day of them, one notification per
escalated step and target, and forgets the decisions older than the window (so neither the
query nor the set of decided ids grows with the notifier's uptime). Real SQLite database,
migrated; the webhook delivery is recorded instead of posted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from alerts.notify import load_escalation
from infra.cases_db import CaseEventRow, CaseRow
from infra.db import make_engine, migrate
from models.cases import CaseAction
from notifier.service import CASE_LOOKBACK, Notifier

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def engine_in(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'puhui.db'}"
    migrate(url)
    return make_engine(url)


def escalate(engine: Engine, case_id: str, step: int, at: datetime) -> None:
    with Session(engine) as session, session.begin():
        if session.get(CaseRow, case_id) is None:
            session.add(
                CaseRow(
                    case_id=case_id, title="t", category="fire", level="red", zone_id=None,
                    status="dispatched", unit_id="u1", opened_by="op", opened_at=at,
                    updated_at=at, step_seq=step, step_started_at=at, due_at=at,
                    escalated_step=step, returns=0, dispatched_at=at, accepted_at=None,
                    arrived_at=None, handled_at=None, closed_at=None, handle_note=None,
                    photo_ids=[], alert_ids=[], report_ids=[], late_steps=step,
                )
            )  # fmt: skip
            session.flush()  # the case before its event (foreign key)
        session.add(
            CaseEventRow(
                case_id=case_id, command_id=f"esc-{case_id}-{step}",
                action=CaseAction.ESCALATE.value, from_status="dispatched",
                to_status="dispatched", actor="puhui", actor_role="system", unit_id=None, at=at,
                note=None, result=None, photo_ids=[], step=step,
            )
        )  # fmt: skip


def notifier(engine: Engine, tmp_path: Path, sent: list[Any]) -> Notifier:
    policy = tmp_path / "escalation.yaml"
    policy.write_text(
        'targets:\n  duty: {url: "http://127.0.0.1:9/duty"}\n  chief: {url: "http://127.0.0.1:9/c"}\n'
        "defaults:\n  steps:\n    - {after: 0, targets: [duty]}\n",
        encoding="utf-8",
    )
    n = Notifier(
        bootstrap="127.0.0.1:1", topic="unused", group_id="unused", engine=engine,
        config=load_escalation(policy), secret=b"s" * 32, case_targets=["duty", "chief"],
    )  # fmt: skip
    n._dispatch_case = lambda nid, key, target, event, case: sent.append(  # type: ignore[method-assign]
        (case.case_id, key, target)
    )
    return n


async def test_each_escalation_is_sent_once_per_target_within_a_sliding_window(
    tmp_path: Path,
) -> None:
    engine, sent = engine_in(tmp_path), []
    n = notifier(engine, tmp_path, sent)
    escalate(engine, "old", 1, NOW - CASE_LOOKBACK - timedelta(hours=1))  # before the window
    escalate(engine, "c1", 1, NOW - timedelta(hours=2))

    started = await n.tick_cases(NOW)
    assert sorted(sent) == [("c1", "case/1/overdue", "chief"), ("c1", "case/1/overdue", "duty")]
    assert len(started) == 2
    assert await n.tick_cases(NOW + timedelta(seconds=5)) == []  # decided: not again

    escalate(engine, "c1", 2, NOW + timedelta(hours=1))  # the next step goes overdue
    await n.tick_cases(NOW + timedelta(hours=1))
    assert len(sent) == 4 and {s[1] for s in sent[2:]} == {"case/2/overdue"}
    assert len(n._case_decided) == 4

    # A day later the first step's escalation has left the window: it is neither read nor
    # remembered, and nothing is sent twice.
    later = NOW + CASE_LOOKBACK + timedelta(minutes=30)
    assert await n.tick_cases(later) == []
    assert n._case_since == later - CASE_LOOKBACK
    assert len(n._case_decided) == 2  # only step 2's, still in the window
    assert await n.tick_cases(later + CASE_LOOKBACK) == []
    assert n._case_decided == set()
    assert len(sent) == 4


async def test_a_targets_notifications_of_one_case_are_delivered_in_order(tmp_path: Path) -> None:
    """Step 2's notification to a target waits for step 1's to that target (still retrying
    here), as an alert's notifications do."""
    engine = engine_in(tmp_path)
    n = notifier(engine, tmp_path, [])
    del n._dispatch_case  # the real one: deliveries chained per case and target
    release, events = asyncio.Event(), []

    async def post(ledger: Any, body_for: Any, what: str) -> bool:
        events.append((ledger["target"], "start", ledger["step"]))
        if ledger["step"] == 1:
            await release.wait()  # the target is down; the delivery retries
        events.append((ledger["target"], "end", ledger["step"]))
        return True

    n._post = post  # type: ignore[method-assign]
    escalate(engine, "c1", 1, NOW - timedelta(hours=1))
    await n.tick_cases(NOW)
    escalate(engine, "c1", 2, NOW)
    await n.tick_cases(NOW + timedelta(seconds=5))
    while len([e for e in events if e[1] == "start"]) < 2:  # both step-1 posts under way
        await asyncio.sleep(0)
    release.set()
    while n._deliveries:
        await asyncio.gather(*list(n._deliveries))
    for target in ("duty", "chief"):
        mine = [(what, step) for t, what, step in events if t == target]
        assert mine == [("start", 1), ("end", 1), ("start", 2), ("end", 2)], (target, events)
