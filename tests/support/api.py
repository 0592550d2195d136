"""Helpers for the HTTP API tests: a migrated SQLite database with one token per role, a fake
publisher (only for the HTTP-validation tests, which need no broker), an adjustable clock, and
alert episodes written the way the worker's persist agent writes them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from alerts.zone.alert import Assessment, operator_action, transition
from api.app import create_api
from api.bus import AlertHub, PublishError
from infra.db import make_engine, migrate, write_alert_records
from infra.settings import Settings
from infra.tokens import Role, create_token
from models.contracts import AlertRecord, Change, Level, Risk, Summary

T0 = datetime(2026, 10, 1, 11, 0, tzinfo=UTC)  # 19:00 in Shanghai, 国庆 evening
LANE = "tianzifang-taikang-210"
ATRIUM = "zhonghai-intl-centre-lobby"

NAMES = {
    "volunteer": "志愿者 王芳",
    "volunteer2": "志愿者 李明",
    "operator": "值班员 张伟",
    "admin": "管理员 陈静",
}


@dataclass
class FakePublisher:
    """Records what would have been produced; ``fail`` makes the broker refuse."""

    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    fail: bool = False

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        if self.fail:
            raise PublishError("broker down (test)")
        self.sent.append((topic, key, value))


@dataclass
class Clock:
    """A clock the test moves by hand."""

    at: datetime = T0 + timedelta(minutes=5)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class ApiSetup:
    app: FastAPI
    engine: Engine
    tokens: dict[str, str]
    clock: Clock
    publisher: FakePublisher | None
    hub: AlertHub
    settings: Settings

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "127.0.0.1:1",
        "state_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "topic_prefix": "unit.",
    }
    values.update(overrides)
    return Settings(**values)


def make_tokens(engine: Engine, now: datetime) -> dict[str, str]:
    roles = {
        "volunteer": Role.VOLUNTEER,
        "volunteer2": Role.VOLUNTEER,
        "operator": Role.OPERATOR,
        "admin": Role.ADMIN,
    }
    return {who: create_token(engine, NAMES[who], role, now) for who, role in roles.items()}


def make_api(
    tmp_path: Path,
    *,
    fake_publisher: bool = True,
    clock: Clock | None = None,
    **overrides: Any,
) -> ApiSetup:
    settings = settings_for(tmp_path, **overrides)
    url = settings.resolved_database_url()
    migrate(url)
    engine = make_engine(url)
    clock = clock or Clock()
    tokens = make_tokens(engine, clock())
    publisher = FakePublisher() if fake_publisher else None
    hub = AlertHub()
    app = create_api(settings, engine=engine, publisher=publisher, hub=hub, now=clock)
    return ApiSetup(app, engine, tokens, clock, publisher, hub, settings)


def episode(
    zone: str = LANE,
    levels: Iterable[Level | None] = (Level.BLUE, Level.ORANGE),
    *,
    risk: Risk = Risk.CROWDING,
    start: datetime = T0,
    cause: str = "r",
) -> list[AlertRecord]:
    """Alert records of one episode, as the engine would emit them (one level per minute)."""
    state = None
    records: list[AlertRecord] = []
    for minute, level in enumerate(levels):
        summary = (
            Summary(zh=f"{zone} {level.zh}色预警", en=f"{level.value} alert in {zone}")
            if level
            else None
        )
        state, out = transition(
            state,
            Assessment(
                zone,
                risk,
                level,
                start + timedelta(minutes=minute),
                f"{cause}{minute}",
                {"people": 100 * (minute + 1), "density": 2.0 + minute},
                summary,
            ),
            timedelta(minutes=5),
        )
        records.extend(out)
    return records


def act(
    record: AlertRecord,
    change: Change,
    actor: str,
    at: datetime,
    note: str | None = None,
    assignee: str | None = None,
) -> AlertRecord:
    """The record an operator's action on ``record``'s alert produces (what the worker does)."""
    from alerts.zone.alert import AlertState

    state = AlertState(
        alert_id=record.alert_id,
        zone_id=record.zone_id,
        risk=record.risk,
        level=record.level,
        status=record.status,
        revision=record.revision,
        opened_at=record.opened_at,
        predicted=record.predicted,
        evidence=record.evidence,
        summary=record.summary,
        assignee=record.assignee,
    )
    _, out = operator_action(state, change, at, actor, note, assignee)
    return out


def store(engine: Engine, records: list[AlertRecord]) -> None:
    write_alert_records(engine, records)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)
