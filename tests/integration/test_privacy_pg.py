"""Volunteers' personal data on PostgreSQL and on the topics (issue 10): the retention job and an
erasure rewrite JSON evidence the way PostgreSQL stores it, and the topics that carry
volunteers' data keep it no longer than the database does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.zone.alert import Assessment, transition
from infra.db import (
    AlertHistoryRow,
    AlertRow,
    ReportRow,
    make_engine,
    migrate,
    upsert_reports,
    write_alert_records,
)
from infra.kafka_admin import topic_configs
from infra.privacy import erase_expired, erase_volunteer
from models.contracts import Level, ReportCategory, Risk, Summary, VolunteerReport
from tests.support.parts import Worker, kafka_client

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ZONE = "tianzifang-taikang-210"


def test_retention_and_erasure_on_postgresql(fresh_pg_database: str) -> None:
    migrate(fresh_pg_database)
    engine = make_engine(fresh_pg_database)
    try:
        opened, records = transition(
            None,
            Assessment(
                ZONE,
                Risk.REPORT,
                Level.YELLOW,
                NOW - timedelta(days=300),
                "r-old",
                {"category": "fire", "reporters": ["p_a", "p_王"], "reporter_count": 2},
                Summary(zh="报告", en="report"),
            ),
        )
        assert opened is not None
        write_alert_records(engine, records)
        reports = [
            VolunteerReport(
                report_id=rid,
                reporter_id=who,
                zone_id=ZONE,
                category=ReportCategory.FIRE,
                description="有烟\n从二楼冒出",
                submitted_at=NOW - timedelta(days=days),
                lat=31.2,
                lon=121.47,
            )
            for rid, who, days in (
                ("r-old", "p_a", 300),
                ("r-new", "p_王", 3),
                ("r-mid", "p_a", 10),
            )
        ]
        upsert_reports(engine, [(r, opened.alert_id) for r in reports])

        erased = erase_volunteer(engine, "p_王", "admin:test", NOW)
        assert (erased.reports, erased.alerts, erased.history) == (1, 1, 1)
        expired = erase_expired(engine, NOW, days=180)
        assert (expired.reports, expired.alerts, expired.history) == (1, 1, 1)

        with Session(engine) as session:
            rows = {r.report_id: r for r in session.scalars(select(ReportRow))}
            alert = session.get(AlertRow, opened.alert_id)
            history = list(session.scalars(select(AlertHistoryRow)))
        assert rows["r-new"].reporter_id == "erased" and rows["r-new"].lat is None
        assert rows["r-old"].description == "" and rows["r-old"].erased_at is not None
        assert rows["r-mid"].reporter_id == "p_a" and rows["r-mid"].description.startswith("有烟")
        assert alert is not None and "reporters" not in alert.evidence
        assert alert.evidence["reporter_count"] == 2
        assert all("reporters" not in h.record["evidence"] for h in history)
    finally:
        engine.dispose()


def test_the_topics_that_carry_volunteers_data_keep_it_as_long_as_configured(
    make_worker: Callable[..., Worker], kafka_bootstrap: str
) -> None:
    worker = make_worker(PUHUI_REPORT_RETENTION_DAYS="30")
    thirty_days_ms = str(30 * 86_400_000)
    admin = kafka_client(kafka_bootstrap)
    for topic in (worker.topics.reports, worker.topics.alerts, worker.topics.dead_letters):
        assert topic_configs(admin, topic)["retention.ms"] == thirty_days_ms, topic
    # readings carry no personal data: the broker's default (no topic override)
    assert "retention.ms" not in topic_configs(admin, worker.topics.readings)
