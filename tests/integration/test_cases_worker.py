"""The case worker on the real parts: commands produced onto ``puhui.cases`` (with kafka-python,
not the project's producer) reach a real ``puhui worker``, which stores cases in a real
PostgreSQL; a record delivered twice is applied once, a command the case's state does not allow
changes nothing, and a malformed record is dead-lettered with its reason, losing nothing. And the
0010 migration goes down and up again on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from tests.support.api import wait_for
from tests.support.parts import Worker, consume, produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ZONE = "tianzifang-taikang-210"


def command(case_id: str, action: str, role: str = "operator", **fields: object) -> bytes:
    body = {
        "command_id": str(uuid.uuid4()),
        "case_id": case_id,
        "action": action,
        "actor": "值班员 张伟" if role == "operator" else "网格员 李强",
        "actor_role": role,
        "issued_at": datetime.now(UTC).isoformat(),
        **fields,
    }
    return json.dumps(body, ensure_ascii=False).encode()


def test_the_worker_is_the_one_writer_of_cases(
    make_worker: Callable[..., Worker], fresh_pg_database: str
) -> None:
    from infra.cases_db import case_events, load_case
    from infra.db import make_engine

    worker = make_worker(PUHUI_DATABASE_URL=fresh_pg_database)
    bootstrap = worker.env["PUHUI_KAFKA_BOOTSTRAP"]
    topic = worker.topics.cases
    case_id = "cs_" + uuid.uuid4().hex
    key = case_id.encode()
    opened = command(
        case_id,
        "open",
        title="泰康路210弄 人群拥挤",
        category="crowding",
        level="red",
        zone_id=ZONE,
        alert_ids=["a-1"],
    )
    dispatched = command(case_id, "dispatch", unit_id="grid-zhongtai")
    too_early = command(case_id, "handle", "responder", actor_unit="grid-zhongtai", note="x")
    accepted = command(case_id, "accept", "responder", actor_unit="grid-zhongtai")
    garbage = b'{"command_id": "x", "case_id": "not-a-case"'
    produce(
        bootstrap,
        topic,
        [
            (key, opened),
            (key, dispatched),
            (key, dispatched),
            (key, too_early),
            (key, garbage),
            (key, accepted),
        ],
    )
    engine = make_engine(fresh_pg_database)
    try:

        def accepted_case() -> object:
            case = load_case(engine, case_id)
            return case if case is not None and case.status.value == "accepted" else None

        try:
            case = wait_for(accepted_case, timeout=120)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{worker.tail()}") from None
        assert case.unit_id == "grid-zhongtai"  # type: ignore[attr-defined]
        actions = [e.action.value for e in case_events(engine, case_id)]
        # dispatched once though delivered twice; the early handle changed nothing
        assert actions == ["open", "dispatch", "accept"]
    finally:
        engine.dispose()
    dead = consume(
        bootstrap,
        worker.topics.dead_letters,
        until=lambda ms: any(m.value == garbage for m in ms),
    )
    (letter,) = [m for m in dead if m.value == garbage]
    headers = dict(letter.headers)
    assert headers["error.reason"] == b"malformed_json"
    assert headers["source.topic"] == topic.encode()


def test_migration_0010_goes_down_and_up_on_postgresql(fresh_pg_database: str) -> None:
    from alembic import command as alembic

    from infra.db import alembic_config, make_engine, migrate

    migrate(fresh_pg_database)
    engine = make_engine(fresh_pg_database)
    try:
        assert {"cases", "case_events", "case_links"} <= set(inspect(engine).get_table_names())
        config = alembic_config(fresh_pg_database)
        alembic.downgrade(config, "0009")
        tables = set(inspect(engine).get_table_names())
        assert not {"cases", "case_events", "case_links"} & tables
        assert "unit_id" not in {c["name"] for c in inspect(engine).get_columns("api_tokens")}
        alembic.upgrade(config, "head")
        assert "unit_id" in {c["name"] for c in inspect(engine).get_columns("api_tokens")}
    finally:
        engine.dispose()
