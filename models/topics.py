"""Names and partition counts of the public topics (the contract is ``docs/asyncapi.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from models.cases import TOPIC_CASES
from models.contracts import (
    TOPIC_ALERTS,
    TOPIC_COMMANDS,
    TOPIC_DEAD_LETTERS,
    TOPIC_READINGS,
    TOPIC_REPORTS,
)


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The public topic names, with an optional prefix (empty in production; tests use one
    so that several runs can share a broker)."""

    readings: str = TOPIC_READINGS
    reports: str = TOPIC_REPORTS
    alerts: str = TOPIC_ALERTS
    dead_letters: str = TOPIC_DEAD_LETTERS
    commands: str = TOPIC_COMMANDS
    cases: str = TOPIC_CASES

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        """Topic names behind ``prefix`` (``""`` gives the contract's names)."""
        return cls(
            readings=prefix + TOPIC_READINGS,
            reports=prefix + TOPIC_REPORTS,
            alerts=prefix + TOPIC_ALERTS,
            dead_letters=prefix + TOPIC_DEAD_LETTERS,
            commands=prefix + TOPIC_COMMANDS,
            cases=prefix + TOPIC_CASES,
        )

    def all(self) -> tuple[str, ...]:
        """Every public topic (all created at start-up)."""
        return (
            self.readings,
            self.reports,
            self.alerts,
            self.dead_letters,
            self.commands,
            self.cases,
        )

    def partitions(self, count: int) -> dict[str, int]:
        """Every public topic with ``count`` partitions (what the project creates at start-up)."""
        return {name: count for name in self.all()}
