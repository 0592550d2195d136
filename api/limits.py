"""Request limits: a cap on body size (413), a per-caller token bucket (429), and a per-address
guard that answers 429 to an address after repeated 401s (:class:`FailureGuard`).

The body limit is checked twice: a declared ``Content-Length`` over the limit is refused before
anything is read, and a body streamed without one (chunked) is counted as it arrives and refused
as soon as it passes the limit. Either way the endpoint never runs, so nothing is written.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PayloadTooLarge, RateLimited, error_response

__all__ = ["BodyLimitMiddleware", "FailureGuard", "TokenBucketLimiter"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse request bodies over ``max_bytes`` with 413.

    A body within the limit is read in full here and replayed to the app (at most ``max_bytes``
    are ever held), so the app sees it exactly as sent. ``per_path`` gives some paths their own
    limit (the photo upload takes megabytes, a JSON report 64 KiB).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope.get("path", ""), self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, f"{declared} bytes declared", limit)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, f"more than {limit} bytes sent", limit)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, why: str, limit: int
    ) -> None:
        error = PayloadTooLarge(f"the request body is too large ({why}; limit {limit})")
        response = error_response(error)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


@dataclass
class _Bucket:
    tokens: float
    at: float  # epoch seconds of the last refill


@dataclass
class TokenBucketLimiter:
    """A token bucket per key (a reporter): ``burst`` requests at once, refilled at
    ``per_minute``. The clock is injected so tests control time.

    :meth:`take` either consumes a token or raises :class:`~api.errors.RateLimited` with the
    seconds until one is available; :meth:`give_back` returns a token for a request that was
    accepted but then failed for reasons not the caller's (the broker was down).
    """

    burst: int
    per_minute: float
    now: Callable[[], datetime]
    max_keys: int = 10_000
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _refilled(self, key: str, at: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), at)
            self._buckets[key] = bucket
        elapsed = max(0.0, at - bucket.at)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.per_minute / 60.0)
        bucket.at = at
        return bucket

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may make another request (0 when it may now)."""
        bucket = self._refilled(key, self.now().timestamp())
        if bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) * 60.0 / self.per_minute

    def take(self, key: str) -> None:
        """Consume one token of ``key`` or raise :class:`RateLimited`."""
        at = self.now().timestamp()
        self._prune(at)
        bucket = self._refilled(key, at)
        if bucket.tokens < 1.0:
            # A hair below a whole second is float noise, not another second to wait.
            wait = math.ceil((1.0 - bucket.tokens) * 60.0 / self.per_minute - 1e-6)
            raise RateLimited(f"too many reports; try again in {wait} s", retry_after=wait)
        bucket.tokens -= 1.0

    def give_back(self, key: str) -> None:
        """Return the token a failed request took."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(float(self.burst), bucket.tokens + 1.0)

    def _prune(self, at: float) -> None:
        # Keys whose bucket has refilled completely carry no information: forget them, so the
        # table cannot grow without bound.
        if len(self._buckets) < self.max_keys:
            return
        full = 60.0 * self.burst / self.per_minute
        for key in [k for k, b in self._buckets.items() if at - b.at >= full]:
            del self._buckets[key]


@dataclass
class FailureGuard:
    """Refuse an address after ``limit`` authentication failures within ``window_seconds``.

    :meth:`check` raises :class:`RateLimited` (429 with ``Retry-After``) while the address is
    blocked — before any token lookup, so a flood of bad tokens costs no database query; a
    blocked address stays blocked until its oldest counted failure is ``window_seconds`` old.
    :meth:`failed` counts a 401. Memory is bounded: at most ``max_addresses`` addresses are
    tracked (the least recently failing forgotten first), each with at most ``limit`` times.
    The clock is injected so tests control time. Thread-safe: the authentication dependencies
    run in FastAPI's threadpool.
    """

    limit: int
    window_seconds: float
    now: Callable[[], datetime]
    max_addresses: int = 10_000
    _failures: OrderedDict[str, list[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _recent(self, address: str, at: float) -> list[float]:
        times = self._failures.get(address)
        if times is None:
            return []
        cutoff = at - self.window_seconds
        while times and times[0] <= cutoff:
            times.pop(0)
        if not times:
            del self._failures[address]
        return times

    def check(self, address: str) -> None:
        """Raise :class:`RateLimited` if ``address`` has failed too often lately."""
        at = self.now().timestamp()
        with self._lock:
            times = self._recent(address, at)
            blocked = len(times) >= self.limit
            oldest = times[0] if times else at
        if blocked:
            wait = math.ceil(oldest + self.window_seconds - at)
            raise RateLimited(
                f"too many failed sign-ins from this address; try again in {max(1, wait)} s",
                retry_after=wait,
            )

    def failed(self, address: str) -> None:
        """Count one authentication failure of ``address``."""
        at = self.now().timestamp()
        with self._lock:
            times = self._recent(address, at)
            if not times:
                times = self._failures[address] = []
            times.append(at)
            del times[: -self.limit]  # only the newest ``limit`` matter
            self._failures.move_to_end(address)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    def tracked(self) -> int:
        """How many addresses are being tracked (for tests of the memory bound)."""
        return len(self._failures)
