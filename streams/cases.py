"""The case worker: the single writer of cases.

::

    puhui.cases ──cases agent──▶ cases + case_events + case_links (database)
        ▲   (bad records ──▶ puhui.dead-letters)
        └── overdue check (timer): an ``escalate`` command per overdue step

The HTTP API and the overdue check only *produce* commands; this agent applies them, in order
per case (the topic is keyed by case id), through :func:`alerts.cases.apply_case_command`, and
stores the case and its timeline entry in one transaction. The timeline is unique by command id,
so a command delivered twice (a retry, a rebalance) is applied once. ``install(...)`` adds the
agent and the timer to the worker's Faust app (one line in ``streams/app.py``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine

from alerts.cases import CaseLimits, load_bundled_case_limits, load_case_limits
from infra.cases_db import StoreOutcome, apply_and_store, overdue_steps
from infra.settings import Settings
from models.cases import ActorRole, CaseAction, CaseCommand, decode_case_command
from models.contracts import UNSTORABLE, RejectedRecord
from models.units import UnitRegistry, load_bundled_units, load_units
from models.zones import ZoneRegistry
from streams.handlers import Source, dead_letter_headers
from streams.metrics import PipelineMetrics
from streams.persist import Unstorable, write

__all__ = [
    "CASE_NAMESPACE",
    "CaseWorker",
    "case_commands_counter",
    "escalation_command",
    "install",
    "load_case_config",
]

log = logging.getLogger("puhui.worker.cases")

#: Escalation command ids are uuid5(namespace, "<case_id>|<step>"): one per step, whoever sends.
CASE_NAMESPACE = uuid.UUID("6f1c2a64-3c55-4c57-9d7a-0c8a35c1e3b1")


def case_commands_counter(registry: CollectorRegistry) -> Counter:
    """``puhui_case_commands_total{action, outcome}``: commands the case worker took."""
    return Counter(
        "puhui_case_commands",
        "Case commands applied by the case worker, by action and outcome "
        "(applied, duplicate, rejected)",
        ["action", "outcome"],
        registry=registry,
    )


def load_case_config(settings: Settings, zones: ZoneRegistry) -> tuple[UnitRegistry, CaseLimits]:
    """The units and case time limits the settings point at (the bundled ones by default)."""
    units = (
        load_units(settings.units_file, zones) if settings.units_file else load_bundled_units(zones)
    )
    limits = (
        load_case_limits(settings.case_limits_file)
        if settings.case_limits_file
        else load_bundled_case_limits()
    )
    return units, limits


def escalation_command(case_id: str, step: int, now: datetime) -> CaseCommand:
    """The ``escalate`` command of one overdue step (deterministic id: sent once per step)."""
    return CaseCommand(
        command_id=str(uuid.uuid5(CASE_NAMESPACE, f"{case_id}|{step}")),
        case_id=case_id,
        action=CaseAction.ESCALATE,
        actor="system",
        actor_role=ActorRole.SYSTEM,
        issued_at=now,
        step=step,
    )


@dataclass
class CaseWorker:
    """Applies ``puhui.cases`` records; see the module docstring."""

    engine: Engine
    units: UnitRegistry
    limits: CaseLimits
    metrics: PipelineMetrics
    commands: Counter
    send_dead_letter: Any

    async def __call__(self, raw: bytes | None, source: Source) -> StoreOutcome | None:
        try:
            cmd = decode_case_command(raw or b"")
        except RejectedRecord as rejected:
            self.metrics.readings_rejected.labels(rejected.reason).inc()
            await self.send_dead_letter(
                source.key,
                raw or b"",
                dead_letter_headers(source, rejected.reason, rejected.detail),
            )
            return None
        unit_ids = frozenset(u.id for u in self.units)
        try:
            outcome = await write(
                "case",
                lambda: apply_and_store(self.engine, cmd, self.limits, unit_ids),
                self.metrics,
            )
        except Unstorable as exc:
            self.metrics.readings_rejected.labels(UNSTORABLE).inc()
            await self.send_dead_letter(
                source.key, raw or b"", dead_letter_headers(source, UNSTORABLE, exc.detail)
            )
            return None
        self.commands.labels(cmd.action.value, outcome.outcome).inc()
        if outcome.rejected is not None:
            # The API checked the command against the case it saw; another command got there
            # first. Nothing is stored; the caller sees the case as it is.
            log.warning(
                "case command %s %s on %s by %s not applied: %s",
                cmd.command_id,
                cmd.action.value,
                cmd.case_id,
                cmd.actor,
                outcome.rejected.message,
            )
        else:
            log.info(
                "case command %s %s on %s by %s: %s",
                cmd.command_id,
                cmd.action.value,
                cmd.case_id,
                cmd.actor,
                outcome.outcome,
            )
        return outcome


def install(
    app: Any,
    settings: Settings,
    engine: Engine,
    zones: ZoneRegistry,
    topics: Any,
    registry: CollectorRegistry,
    metrics: PipelineMetrics,
    raw_topic: Any,
    send_dead_letter: Any,
) -> CaseWorker:
    """Add the cases agent and the overdue check to the worker's app."""
    units, limits = load_case_config(settings, zones)
    cases_topic = raw_topic(topics.cases)
    counter = case_commands_counter(registry)
    worker = CaseWorker(engine, units, limits, metrics, counter, send_dead_letter)

    @app.agent(cases_topic, concurrency=1, name="cases")
    async def cases(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            source = Source(msg.topic, msg.partition, msg.offset, msg.key, msg.timestamp)
            try:
                await worker(event.value, source)
            except Exception:  # never let one escape: it would stop the agent
                log.exception("internal error on a case command")

    @app.timer(settings.case_check_seconds)
    async def check_overdue() -> None:
        """Every open step past its time limit gets one ``escalate`` command."""
        now = datetime.now(UTC)
        try:
            due = await write("overdue cases", lambda: overdue_steps(engine, now), metrics)
        except Unstorable:
            return
        for case_id, step in due:
            cmd = escalation_command(case_id, step, now)
            await cases_topic.send(key=case_id.encode(), value=cmd.to_bytes())

    return worker
