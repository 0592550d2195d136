"""Liveness and readiness probes.

``/healthz`` answers while the process runs. ``/readyz`` answers 200 only when the broker answers
a metadata request, every public topic exists and the database answers a query; otherwise 503
with each failed check named and a short reason. The checks block, so they run in worker threads
with a deadline: a dead broker or database makes the probe fail quickly, never hang.

``/readyz`` is unauthenticated, so it is cheap and says little: one round of checks serves every
probe for ``PUHUI_READY_CACHE_SECONDS`` (concurrent probes wait for the round in progress rather
than start their own), and the public details name no host, port or driver message. The full
reason goes to the log (``puhui.api.health``, WARNING) when a check's outcome changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from infra.db import ping
from infra.kafka_admin import existing_topics, port_open
from infra.kafka_security import KafkaClient, KafkaConfigError, client_for
from infra.settings import Settings
from models.topics import TopicNames

__all__ = [
    "CHECK_TIMEOUT",
    "CachedReadyCheck",
    "CheckResult",
    "ReadyCheck",
    "check_broker",
    "check_database",
    "default_ready_check",
    "health_router",
]

CHECK_TIMEOUT = 2.5
"""Seconds the readiness checks may take together (they run concurrently)."""

_REASON_LIMIT = 200

log = logging.getLogger("puhui.api.health")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one readiness check; ``detail`` is a short human-readable reason."""

    ok: bool
    detail: str
    reason: str = ""
    """The full story for the log (hosts, driver messages); never in the ``/readyz`` body."""

    def as_json(self) -> dict[str, Any]:
        """The check as it appears in the ``/readyz`` body."""
        return {"ok": self.ok, "detail": self.detail}


ReadyCheck = Callable[[], Awaitable[Mapping[str, CheckResult]]]
"""Runs every readiness check and names each result (``broker``, ``topics``, ``database``)."""


def _reason(exc: BaseException) -> str:
    """A one-line, bounded description of ``exc`` (driver messages can run to many lines)."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    name = type(exc).__name__
    reason = line if line.startswith(name) else f"{name}: {line}" if line else name
    return reason if len(reason) <= _REASON_LIMIT else reason[: _REASON_LIMIT - 1] + "…"


def _any_port_open(bootstrap: str, timeout: float) -> bool:
    entries = [e.strip() for e in bootstrap.split(",") if e.strip()]
    return any(port_open(entry, timeout=timeout) for entry in entries)


def check_broker(
    bootstrap: str,
    topics: Iterable[str],
    timeout: float = CHECK_TIMEOUT,
    kafka: KafkaClient | None = None,
) -> dict[str, CheckResult]:
    """Check (blocking) that the broker answers a metadata request and that ``topics`` exist.

    Returns the ``broker`` and ``topics`` results. One attempt only, bounded by ``timeout``:
    a closed port fails at once, without waiting for a Kafka client to give up bootstrapping.
    """
    wanted = list(topics)
    skipped = CheckResult(False, "not checked: the broker is unavailable")
    deadline = time.monotonic() + timeout
    try:
        if not _any_port_open(bootstrap, timeout=min(1.0, timeout)):
            return {
                "broker": CheckResult(
                    False,
                    "the broker does not accept connections",
                    f"nothing accepts connections on {bootstrap}",
                ),
                "topics": skipped,
            }
        present = existing_topics(kafka or bootstrap, timeout=max(0.1, deadline - time.monotonic()))
    except Exception as exc:
        return {
            "broker": CheckResult(
                False,
                "the broker did not answer a metadata request",
                f"no metadata from {bootstrap}: {_reason(exc)}",
            ),
            "topics": skipped,
        }
    broker = CheckResult(True, "the broker answered a metadata request")
    missing = [name for name in wanted if name not in present]
    if missing:
        return {"broker": broker, "topics": CheckResult(False, "missing: " + ", ".join(missing))}
    return {"broker": broker, "topics": CheckResult(True, f"all {len(wanted)} topics exist")}


def check_database(engine: Engine) -> CheckResult:
    """Check (blocking) that the database answers a trivial query."""
    try:
        ping(engine)
    except Exception as exc:
        return CheckResult(False, "the database did not answer a query", _reason(exc))
    return CheckResult(True, "the database answered a query")


def default_ready_check(
    settings: Settings, engine: Engine, timeout: float = CHECK_TIMEOUT
) -> ReadyCheck:
    """The production readiness check: broker, public topics and database, run concurrently in
    worker threads; a check still running after ``timeout`` seconds counts as failed."""
    bootstrap = settings.kafka_bootstrap
    topics = TopicNames.with_prefix(settings.topic_prefix).all()

    # The broker check gets a slightly smaller budget than the deadline, so that it normally
    # reports its own, more precise reason before the deadline cuts it off.
    broker_budget = max(0.1, timeout - 0.3)

    def broker_check() -> dict[str, CheckResult]:
        try:
            kafka: KafkaClient | None = client_for(settings, "api")
        except KafkaConfigError:
            kafka = None
        if kafka is None and _any_port_open(bootstrap, timeout=min(1.0, broker_budget)):
            return {
                "broker": CheckResult(False, "no Kafka credentials configured"),
                "topics": CheckResult(False, "not checked: the broker is unavailable"),
            }
        # (without credentials, a closed port is what gets reported)
        return check_broker(bootstrap, topics, broker_budget, kafka=kafka)

    async def ready_check() -> Mapping[str, CheckResult]:
        broker_results, database = await asyncio.gather(
            asyncio.wait_for(asyncio.to_thread(broker_check), timeout),
            asyncio.wait_for(asyncio.to_thread(check_database, engine), timeout),
            return_exceptions=True,
        )
        results: dict[str, CheckResult] = {}
        if isinstance(broker_results, BaseException):
            results["broker"] = CheckResult(
                False, _public_timeout(broker_results, timeout), _reason(broker_results)
            )
            results["topics"] = CheckResult(False, "not checked: the broker is unavailable")
        else:
            results.update(broker_results)
        if isinstance(database, BaseException):
            results["database"] = CheckResult(
                False, _public_timeout(database, timeout), _reason(database)
            )
        else:
            results["database"] = database
        return results

    return ready_check


def _public_timeout(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return "the check failed"


class CachedReadyCheck:
    """``ready_check`` run at most once per ``seconds``: a probe within that time of the last
    round gets its results; probes arriving during a round wait for it. Logs the full reason of
    each check whose outcome changed."""

    def __init__(
        self,
        ready_check: ReadyCheck,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = ready_check
        self._seconds = seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._at: float | None = None
        self._results: Mapping[str, CheckResult] = {}
        self.rounds = 0
        """How many rounds of checks ran (tests count them)."""

    def _fresh(self) -> bool:
        return self._at is not None and self._clock() - self._at < self._seconds

    async def __call__(self) -> Mapping[str, CheckResult]:
        if self._fresh():
            return self._results
        async with self._lock:
            if self._fresh():
                return self._results
            results = await self._check()
            self.rounds += 1
            for name, result in results.items():
                before = self._results.get(name)
                if before is None or (before.ok, before.detail) != (result.ok, result.detail):
                    level = logging.INFO if result.ok else logging.WARNING
                    log.log(level, "readiness %s: %s", name, result.reason or result.detail)
            self._results = results
            self._at = self._clock()
            return results


def health_router(ready_check: ReadyCheck, cache_seconds: float = 0.0) -> APIRouter:
    """A router with ``GET /healthz`` (liveness) and ``GET /readyz`` (readiness; one round of
    checks serves the probes of ``cache_seconds``)."""
    router = APIRouter(tags=["operations"])
    cached = CachedReadyCheck(ready_check, cache_seconds)

    @router.get("/healthz", summary="Liveness: the process is running")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: broker, topics and database are usable",
        responses={503: {"description": "Not ready; the failed checks are named"}},
    )
    async def readyz() -> JSONResponse:
        results = await cached()
        failed = [name for name, result in results.items() if not result.ok]
        body: dict[str, Any] = {
            "status": "not_ready" if failed else "ready",
            "checks": {name: result.as_json() for name, result in results.items()},
        }
        if failed:
            body["failed"] = failed
        return JSONResponse(
            body, status_code=503 if failed else 200, headers={"Cache-Control": "no-store"}
        )

    return router
