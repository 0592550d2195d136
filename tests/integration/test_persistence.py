"""Alert records persist idempotently, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event

from alerts.zone.alert import Assessment, transition
from infra.db import load_alerts, load_history, write_alert_records
from models.contracts import AlertRecord, Level, Risk

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, 11, 0, tzinfo=UTC)


@pytest.fixture
def engine(sql_engine: Engine) -> Engine:
    """A migrated engine, once on SQLite and once on PostgreSQL (``tests.support.parts``)."""
    return sql_engine


def episode(zone: str = "z1") -> list[AlertRecord]:
    state, records = None, []
    for minute, level in [(0, Level.BLUE), (1, Level.ORANGE), (2, Level.RED), (3, None), (9, None)]:
        state, out = transition(
            state,
            Assessment(
                zone,
                Risk.CROWDING,
                level,
                T0 + timedelta(minutes=minute),
                f"{zone}-r{minute}",
                {"density": minute},
            ),
            timedelta(minutes=5),
        )
        records.extend(out)
    assert len(records) == 4
    return records


def test_records_persist_with_history(engine: Engine) -> None:
    records = episode()
    write_alert_records(engine, records[:2])
    write_alert_records(engine, records[2:])
    (row,) = load_alerts(engine)
    assert (row.level, row.status, row.revision) == ("red", "resolved", 4)
    assert row.opened_at == T0 and row.updated_at == T0 + timedelta(minutes=9)
    assert row.summary_zh and row.evidence == records[-1].evidence
    hist = load_history(engine)
    assert [h.change for h in hist] == ["raised", "escalated", "escalated", "resolved"]
    assert AlertRecord.model_validate(hist[1].record) == records[1]


def test_replaying_the_same_records_creates_nothing_new(engine: Engine) -> None:
    records = episode()
    write_alert_records(engine, records)
    write_alert_records(engine, records)
    write_alert_records(engine, [records[1], records[0]])  # old revisions, out of order
    (row,) = load_alerts(engine)
    assert row.revision == 4 and row.status == "resolved"
    assert len(load_history(engine)) == 4


def test_a_failed_batch_writes_nothing(engine: Engine) -> None:
    """The alerts upsert and the history insert are one transaction: when the second fails
    (here: the connection dies on it), the first is rolled back too."""

    def die_on_history(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "alert_history" in statement:
            raise ConnectionError("database went away")

    event.listen(engine, "before_cursor_execute", die_on_history)
    try:
        with pytest.raises(ConnectionError):
            write_alert_records(engine, episode("z2"))
    finally:
        event.remove(engine, "before_cursor_execute", die_on_history)
    assert load_alerts(engine) == [] and load_history(engine) == []
    write_alert_records(engine, episode("z2"))  # and the retry goes through
    assert len(load_history(engine)) == 4
