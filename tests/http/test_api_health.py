"""The API factory: probes, request metrics, error mapping and the OpenAPI document.

No broker runs here: the broker check must fail fast against a closed port and against a port
that accepts connections but never answers. The database is a SQLite file in ``tmp_path``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api.app import API_TITLE, create_api, package_version
from api.errors import NotFound
from api.health import CheckResult
from api.metrics import UNMATCHED_ROUTE
from infra.settings import Settings

pytestmark = pytest.mark.unit

CLOSED_BOOTSTRAP = "127.0.0.1:1"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "kafka_bootstrap": CLOSED_BOOTSTRAP,
        "state_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "topic_prefix": "unit.",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _registry(app: FastAPI) -> CollectorRegistry:
    registry = app.state.metrics_registry
    assert isinstance(registry, CollectorRegistry)
    return registry


@pytest.fixture
def silent_port() -> Iterator[str]:
    """A port that completes TCP handshakes (listen backlog) but never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# -- probes -----------------------------------------------------------------------------------


def test_healthz_is_always_ok(tmp_path: Path) -> None:
    with TestClient(create_api(_settings(tmp_path))) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_the_broker_when_nothing_listens(tmp_path: Path) -> None:
    with TestClient(create_api(_settings(tmp_path))) as client:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert "broker" in body["failed"]
    assert body["checks"]["broker"]["ok"] is False
    # Unauthenticated: the reason is told, the broker's address is not.
    assert body["checks"]["broker"]["detail"] == "the broker does not accept connections"
    assert CLOSED_BOOTSTRAP not in response.text and "127.0.0.1" not in response.text
    assert body["checks"]["topics"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "database" not in body["failed"]
    assert elapsed < 3.0


def test_readyz_does_not_hang_on_a_silent_broker(tmp_path: Path, silent_port: str) -> None:
    with TestClient(create_api(_settings(tmp_path, kafka_bootstrap=silent_port))) as client:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert elapsed < 3.5


def test_readyz_names_the_database_when_it_is_unreachable(tmp_path: Path) -> None:
    url = "postgresql+psycopg://puhui:s3cret-pw@127.0.0.1:1/puhui"
    with TestClient(create_api(_settings(tmp_path, database_url=url))) as client:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert "database" in body["failed"]
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["detail"] == "the database did not answer a query"
    # No driver message, host or password in an unauthenticated answer.
    for leak in ("s3cret-pw", "127.0.0.1", "psycopg", "OperationalError", "refused"):
        assert leak not in response.text, leak
    assert elapsed < 3.0


def test_readyz_is_200_when_every_check_passes(tmp_path: Path) -> None:
    async def all_good() -> Mapping[str, CheckResult]:
        return {
            "broker": CheckResult(True, "fine"),
            "topics": CheckResult(True, "fine"),
            "database": CheckResult(True, "fine"),
        }

    with TestClient(create_api(_settings(tmp_path), ready_check=all_good)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"broker", "topics", "database"}
    assert "failed" not in body


def test_readyz_reports_only_the_failed_check(tmp_path: Path) -> None:
    async def topics_missing() -> Mapping[str, CheckResult]:
        return {
            "broker": CheckResult(True, "fine"),
            "topics": CheckResult(False, "missing: unit.puhui.alerts"),
            "database": CheckResult(True, "fine"),
        }

    with TestClient(create_api(_settings(tmp_path), ready_check=topics_missing)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["topics"]
    assert response.json()["checks"]["topics"]["detail"] == "missing: unit.puhui.alerts"


# -- metrics ----------------------------------------------------------------------------------


def _app_with_test_routes(tmp_path: Path) -> FastAPI:
    app = create_api(_settings(tmp_path))

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id == 404:
            raise NotFound(f"no item {item_id}")
        return {"item_id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom: internal detail")

    return app


def test_metrics_count_requests_by_route_template(tmp_path: Path) -> None:
    app = _app_with_test_routes(tmp_path)
    registry = _registry(app)
    with TestClient(app) as client:
        assert client.get("/items/1").status_code == 200
        assert client.get("/items/2").status_code == 200
        assert client.get("/items/404").status_code == 404
        assert client.get("/healthz").status_code == 200
        assert client.get("/no/such/path").status_code == 404
        exposition = client.get("/metrics")

    def count(route: str, status: str, method: str = "GET") -> float | None:
        return registry.get_sample_value(
            "puhui_http_requests_total", {"method": method, "route": route, "status": status}
        )

    assert count("/items/{item_id}", "200") == 2
    assert count("/items/{item_id}", "404") == 1
    assert count("/healthz", "200") == 1
    assert count(UNMATCHED_ROUTE, "404") == 1
    assert count("/items/1", "200") is None
    assert (
        registry.get_sample_value(
            "puhui_http_request_duration_seconds_count", {"route": "/items/{item_id}"}
        )
        == 3
    )

    assert exposition.status_code == 200
    assert exposition.headers["content-type"].startswith("text/plain")
    assert 'route="/items/{item_id}"' in exposition.text
    assert "/items/1" not in exposition.text
    assert "puhui_http_request_duration_seconds_bucket" in exposition.text


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    first = create_api(_settings(tmp_path))
    second = create_api(_settings(tmp_path))
    with TestClient(first) as client:
        client.get("/healthz")
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert _registry(first).get_sample_value("puhui_http_requests_total", labels) == 1
    assert _registry(second).get_sample_value("puhui_http_requests_total", labels) is None


# -- error mapping ----------------------------------------------------------------------------


def test_errors_share_one_shape(tmp_path: Path) -> None:
    app = _app_with_test_routes(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as client:
        not_found = client.get("/items/404")
        invalid = client.get("/items/abc")
        unmatched = client.get("/no/such/path")
        wrong_method = client.post("/healthz")
        crashed = client.get("/boom")

    assert not_found.status_code == 404
    assert not_found.json() == {"error": {"code": "not_found", "message": "no item 404"}}
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid_request"
    assert invalid.json()["error"]["details"]
    assert unmatched.status_code == 404
    assert unmatched.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert crashed.status_code == 500
    assert crashed.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
    assert "kaboom" not in crashed.text

    counted = _registry(app).get_sample_value(
        "puhui_http_requests_total", {"method": "GET", "route": "/boom", "status": "500"}
    )
    assert counted == 1


# -- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_document(tmp_path: Path) -> None:
    with TestClient(create_api(_settings(tmp_path))) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    info = response.json()["info"]
    assert info["title"] == API_TITLE == "Puhui 浦汇 API"
    assert info["version"] == package_version() != "0+unknown"
    assert {"/healthz", "/readyz", "/metrics"} <= set(response.json()["paths"])


def test_factory_connects_to_nothing(tmp_path: Path) -> None:
    # Building the app against dead endpoints must succeed; only the probe notices.
    url = "postgresql+psycopg://puhui:pw@127.0.0.1:1/puhui"
    app = create_api(_settings(tmp_path, database_url=url))
    assert app.title == API_TITLE


def test_readyz_runs_one_round_of_checks_per_cache_period(tmp_path: Path) -> None:
    """Probes (and floods of them) within ``ready_cache_seconds`` share one round of checks."""
    rounds = 0

    async def check() -> Mapping[str, CheckResult]:
        nonlocal rounds
        rounds += 1
        return {"database": CheckResult(True, "the database answered a query")}

    settings = _settings(tmp_path, ready_cache_seconds=30)
    with TestClient(create_api(settings, ready_check=check)) as client:
        answers = [client.get("/readyz") for _ in range(25)]
    assert {a.status_code for a in answers} == {200}
    assert rounds == 1

    rounds = 0
    with TestClient(create_api(_settings(tmp_path, ready_cache_seconds=0), ready_check=check)) as c:
        for _ in range(3):
            c.get("/readyz")
    assert rounds == 3


async def test_concurrent_probes_share_the_round_in_progress() -> None:
    import asyncio

    from api.health import CachedReadyCheck

    started = 0
    release = asyncio.Event()

    async def slow() -> Mapping[str, CheckResult]:
        nonlocal started
        started += 1
        await release.wait()
        return {"broker": CheckResult(False, "the broker does not accept connections", "x:1")}

    now = [0.0]
    cached = CachedReadyCheck(slow, 1.5, clock=lambda: now[0])
    probes = [asyncio.ensure_future(cached()) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*probes)
    assert started == 1 and all(r["broker"].ok is False for r in results)
    now[0] = 1.4
    await cached()
    assert started == 1
    now[0] = 1.6
    await cached()
    assert started == 2
