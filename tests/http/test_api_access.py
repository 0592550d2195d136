"""Who may call, and for how long: tokens in headers only, expiry, revocation that ends an open
stream, principals instead of display names, and 429 for an address that keeps failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.errors import RateLimited
from api.limits import FailureGuard
from infra.tokens import Role, create_token, revoke_token, verify_token
from tests.support.api import LANE, ApiSetup, make_api

pytestmark = pytest.mark.unit

REPORT = {"zone_id": LANE, "category": "crowding", "description": "弄堂口人挤人"}


@pytest.fixture
def api(tmp_path: Path) -> ApiSetup:
    return make_api(
        tmp_path,
        report_rate_burst=2,
        report_rate_per_minute=1.0,
        sse_max_seconds=60.0,
        sse_keepalive_seconds=0.5,
        stream_recheck_seconds=0.2,
        auth_failure_limit=5,
        auth_failure_window_seconds=60.0,
    )


@pytest.fixture
def client(api: ApiSetup) -> Iterator[TestClient]:
    with TestClient(api.app) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- stable identity ------------------------------------------------------------------------


def test_two_volunteers_with_the_same_name_are_two_people(
    api: ApiSetup, client: TestClient
) -> None:
    first = create_token(api.engine, "王芳", Role.VOLUNTEER, api.clock())
    second = create_token(api.engine, "王芳", Role.VOLUNTEER, api.clock())

    mine = client.post("/api/reports", headers=bearer(first), json=REPORT)
    assert mine.status_code == 202, mine.text
    report_id = mine.json()["report_id"]

    # The other 王芳 neither lists nor opens it ...
    assert client.get("/api/reports", headers=bearer(second)).json()["total"] == 0
    assert client.get(f"/api/reports/{report_id}", headers=bearer(second)).status_code == 404
    # ... while the author does.
    assert client.get("/api/reports", headers=bearer(first)).json()["total"] == 1
    assert client.get(f"/api/reports/{report_id}", headers=bearer(first)).status_code == 200

    # Rate limits are per person: the first 王芳 uses up her burst of 2; the second still has hers.
    assert client.post("/api/reports", headers=bearer(first), json=REPORT).status_code == 202
    assert client.post("/api/reports", headers=bearer(first), json=REPORT).status_code == 429
    assert client.post("/api/reports", headers=bearer(second), json=REPORT).status_code == 202
    assert client.post("/api/reports", headers=bearer(second), json=REPORT).status_code == 202


def test_a_replacement_token_keeps_the_volunteers_reports(
    api: ApiSetup, client: TestClient
) -> None:
    old = create_token(api.engine, "王芳", Role.VOLUNTEER, api.clock())
    info = verify_token(api.engine, old)
    assert info is not None
    assert client.post("/api/reports", headers=bearer(old), json=REPORT).status_code == 202
    revoke_token(api.engine, info.id, api.clock())
    new = create_token(
        api.engine, "王芳 新手机", Role.VOLUNTEER, api.clock(), principal=info.principal
    )
    assert client.get("/api/reports", headers=bearer(new)).json()["total"] == 1


# -- expiry ---------------------------------------------------------------------------------


def test_an_expired_token_is_401(api: ApiSetup, client: TestClient) -> None:
    token = create_token(
        api.engine, "夜班", Role.OPERATOR, api.clock(), expires_in=timedelta(hours=8)
    )
    me = client.get("/api/me", headers=bearer(token))
    assert me.status_code == 200
    assert datetime.fromisoformat(me.json()["expires_at"]) == api.clock() + timedelta(hours=8)
    api.clock.advance(8 * 3600 - 1)
    assert client.get("/api/alerts", headers=bearer(token)).status_code == 200
    api.clock.advance(1)
    expired = client.get("/api/alerts", headers=bearer(token))
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "the token is unknown, revoked or expired"


# -- the stream ends when its token stops being valid -----------------------------------------


async def _stream_until_closed(
    api: ApiSetup, token: str, when_connected: Any, limit: float
) -> tuple[str, float]:
    """Open the stream (ASGI, directly); call ``when_connected`` once the first bytes arrive;
    return everything received and the seconds from then until the app finished."""
    chunks: list[str] = []
    connected_at: list[float] = []
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()  # the client never leaves by itself
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b"").decode())
            if not connected_at and ": connected" in "".join(chunks):
                connected_at.append(time.monotonic())
                await asyncio.to_thread(when_connected)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/alerts/stream",
        "raw_path": b"/api/alerts/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    try:
        await asyncio.wait_for(api.app(scope, receive, send), timeout=limit)
    finally:
        gone.set()
    return "".join(chunks), time.monotonic() - connected_at[0]


async def test_revoking_a_token_ends_its_open_stream_within_seconds(api: ApiSetup) -> None:
    api.hub.live.set()
    token = create_token(api.engine, "值班员 甲", Role.OPERATOR, api.clock())
    info = verify_token(api.engine, token)
    assert info is not None

    def revoke() -> None:
        revoke_token(api.engine, info.id, datetime.now(UTC))

    text, after = await _stream_until_closed(api, token, revoke, limit=10)
    assert text.rstrip().endswith("event: revoked\ndata: {}")
    assert after < 5.0  # recheck every 0.2 s here; the default (2 s) is within 5 s too


async def test_an_expiring_token_ends_its_open_stream(api: ApiSetup) -> None:
    api.hub.live.set()
    token = create_token(
        api.engine, "值班员 乙", Role.OPERATOR, api.clock(), expires_in=timedelta(minutes=1)
    )

    def expire() -> None:
        api.clock.advance(61)

    text, after = await _stream_until_closed(api, token, expire, limit=10)
    assert "event: revoked" in text
    assert after < 5.0


# -- repeated 401s from one address -------------------------------------------------------------


def test_an_address_that_keeps_failing_gets_429_then_is_let_in_again(
    api: ApiSetup, client: TestClient
) -> None:
    good = create_token(api.engine, "值班员 丙", Role.OPERATOR, api.clock())
    for attempt in range(5):
        bad = client.get("/api/alerts", headers=bearer(f"ph_guess{attempt}"))
        assert bad.status_code == 401
    assert client.get("/api/alerts").status_code == 429  # no token at all: refused the same
    blocked = client.get("/api/alerts", headers=bearer(good))
    assert blocked.status_code == 429  # answered before any lookup, whatever the token
    assert blocked.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # Another address is not affected.
    with TestClient(api.app, client=("10.0.0.7", 40000)) as other:
        assert other.get("/api/alerts", headers=bearer(good)).status_code == 200
    api.clock.advance(61)
    assert client.get("/api/alerts", headers=bearer(good)).status_code == 200


def test_the_failure_guard_forgets_the_least_recent_addresses() -> None:
    at = [datetime(2026, 12, 5, tzinfo=UTC)]
    guard = FailureGuard(limit=3, window_seconds=60, now=lambda: at[0], max_addresses=100)
    for n in range(10_000):
        guard.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert guard.tracked() == 100
    for _ in range(1000):
        guard.failed("203.0.113.9")
    assert guard.tracked() == 100
    assert len(guard._failures["203.0.113.9"]) == 3  # only the newest `limit` times are kept
    with pytest.raises(RateLimited) as refused:
        guard.check("203.0.113.9")
    assert refused.value.retry_after == 60
    guard.check("10.0.0.1")  # forgotten long ago: allowed
    at[0] += timedelta(seconds=61)
    guard.check("203.0.113.9")
    assert "203.0.113.9" not in guard._failures
