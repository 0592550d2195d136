"""Schemathesis against ``/openapi.json``: generated requests to every operation, as each role,
against the ASGI app with a real SQLite database and a real broker behind its producer.

No generated request may produce a server error (5xx), and every answer must match what the
document promises (status codes, content types, response schemas). Path parameters have
examples that exist in the seeded database, so actions, reports and CAP exports are exercised on
real rows too, not only on 404s.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis

# Imported here, at the shallow stack of collection, not lazily by `from_asgi` deep inside a
# fixture: there CPython 3.11.7 once failed to compile it ("SystemError: AST constructor
# recursion depth mismatch", the AST recursion check that CPython later fixed).
import schemathesis.openapi.loaders
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi

from api.app import create_api
from api.schemas import ALERT_ID_EXAMPLE, REPORT_ID_EXAMPLE, SILENCE_ID_EXAMPLE
from infra.db import SilenceRow, insert_silence, make_engine, migrate, upsert_reports
from infra.kafka_admin import ensure_topics
from infra.settings import Settings
from models.contracts import Level, ReportCategory, VolunteerReport
from models.topics import TopicNames
from tests.support.api import LANE, NAMES, T0, Clock, episode, make_tokens, store, wait_for
from tests.support.parts import kafka_client

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies trip this; nothing of ours
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

ROLES = ("volunteer", "operator", "admin")
#: Every check but ``positive_data_acceptance``: schema-valid input may still break a rule the
#: schema cannot state (a silence must end in the future; an action needs an open alert).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
    allow_header_conformance,
]
CALLS: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


def _seed(engine: Any) -> None:
    (open_alert,) = [
        r.model_copy(update={"alert_id": ALERT_ID_EXAMPLE}) for r in episode(LANE, [Level.ORANGE])
    ]
    store(engine, [open_alert])
    store(engine, episode("riyueguang-atrium", [Level.RED, Level.YELLOW], cause="st"))
    report = VolunteerReport(
        report_id=REPORT_ID_EXAMPLE,
        reporter_id=NAMES["volunteer"],
        zone_id=LANE,
        category=ReportCategory.CROWDING,
        description="弄堂口人挤人",
        submitted_at=T0,
    )
    upsert_reports(engine, [(report, ALERT_ID_EXAMPLE)])
    insert_silence(
        engine,
        SilenceRow(
            id=SILENCE_ID_EXAMPLE,
            zone_id=LANE,
            starts_at=T0,
            ends_at=T0 + timedelta(days=1),
            comment="演练",
            created_by=NAMES["admin"],
            created_at=T0,
        ),
    )


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    prefix = f"st-{uuid.uuid4().hex[:8]}."
    ensure_topics(
        kafka_client(kafka_bootstrap), TopicNames.with_prefix(prefix).partitions(2), timeout=60
    )
    url = f"sqlite:///{tmp / 'api.db'}"
    migrate(url)
    engine = make_engine(url)
    clock = Clock()  # the documented examples (2026-10-01 evening) lie in its future
    tokens = make_tokens(engine, clock())
    _seed(engine)
    app = create_api(
        Settings(
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=prefix,
            database_url=url,
            state_dir=tmp,
            report_rate_burst=100_000,  # let generated reports reach the broker, not the limit
            auth_failure_limit=100_000,  # generated bad tokens must not lock the client out
            sse_max_seconds=0.3,  # streams end, so each case gets an answer
            sse_keepalive_seconds=0.1,
        ),
        engine=engine,
        now=clock,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=40,
        # An extra query parameter generated with a null value is dropped by the HTTP client
        # before it is sent, so the API never sees it; unknown parameters are covered by the
        # unit tests (tests/http/test_api_alerts.py) instead.
        allow_extra_parameters=False,
    )
    with asgi.get_client(app) as client:  # starts the lifespan: producer and alert feed
        assert client.get("/healthz").status_code == 200
    wait_for(lambda: app.state.bus.connected, timeout=30)
    yield schema, tokens
    asgi.shutdown_lifespans()
    engine.dispose()
    print(
        f"\nschemathesis: {sum(CALLS.values())} calls over {len(CALLS)} operations; "
        f"status codes {dict(sorted(STATUSES.items()))}"
    )


@pytest.fixture(scope="module")
def api_schema(deployment: Any) -> Any:
    return deployment[0]


@pytest.fixture(scope="module")
def tokens(deployment: Any) -> dict[str, str]:
    return dict(deployment[1])


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_answers_match_the_document(
    case: schemathesis.Case, tokens: dict[str, str]
) -> None:
    for role in ROLES:
        response = case.call(headers={"Authorization": f"Bearer {tokens[role]}"})
        CALLS[case.operation.label] += 1
        STATUSES[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)
        assert response.status_code < 500, (role, case.operation.label, response.text)


def test_the_run_covered_every_operation() -> None:
    # Runs after the generated cases (pytest keeps file order).
    operations = {label for label in CALLS}
    assert len(operations) >= 16, sorted(operations)
    assert sum(CALLS.values()) >= 1000
    assert not any(code >= 500 for code in STATUSES)
    assert {200, 201, 202, 204, 401, 403, 404, 422} <= set(STATUSES)
