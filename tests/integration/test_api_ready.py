"""``/readyz`` against a real Apache Kafka broker.

The broker address comes from ``PUHUI_TEST_KAFKA_BOOTSTRAP`` (default ``127.0.0.1:9092``); start
one with ``python -m infra.broker start``. Each run uses its own topic prefix, so runs can share
a broker. Without a broker the test fails: it never skips.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_api
from infra.kafka_admin import ensure_topics, wait_for_metadata
from infra.settings import Settings
from models.topics import TopicNames
from tests.support.parts import kafka_client

pytestmark = pytest.mark.integration

BOOTSTRAP = os.environ.get("PUHUI_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def test_readyz_waits_for_the_topics(tmp_path: Path) -> None:
    # Fails (TimeoutError) rather than skips when no broker answers.
    wait_for_metadata(kafka_client(BOOTSTRAP), timeout=30)
    prefix = f"test-api-{uuid.uuid4().hex[:12]}."
    settings = Settings(
        kafka_bootstrap=BOOTSTRAP,
        state_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        topic_prefix=prefix,
    )
    names = TopicNames.with_prefix(prefix)

    with TestClient(create_api(settings)) as client:
        before = client.get("/readyz")
        assert before.status_code == 503, before.text
        body = before.json()
        assert body["failed"] == ["topics"], body
        assert body["checks"]["broker"]["ok"] is True
        assert body["checks"]["database"]["ok"] is True
        detail = body["checks"]["topics"]["detail"]
        for name in names.all():
            assert name in detail

        ensure_topics(kafka_client(BOOTSTRAP), names.partitions(2), timeout=60)

        # ensure_topics returns once every partition has a leader; a fresh client's metadata
        # may still trail by a moment, so allow a short grace period.
        deadline = time.monotonic() + 15
        while True:
            after = client.get("/readyz")
            if after.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert after.status_code == 200, after.text
        assert after.json()["status"] == "ready"
        assert all(check["ok"] for check in after.json()["checks"].values())
