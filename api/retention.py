"""The retention job: volunteers' personal data erased once ``PUHUI_REPORT_RETENTION_DAYS`` old
(see ``infra.privacy.erase_expired`` and docs/privacy.md). Runs in the API process at start-up
and every ``PUHUI_RETENTION_INTERVAL_SECONDS``; the erasure is idempotent, so two API replicas
running it do no harm."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from infra.privacy import Erased, erase_expired

log = logging.getLogger("puhui.api.retention")


class RetentionJob:
    """Runs :func:`erase_expired` now and then; ``run_once`` for tests and the CLI."""

    def __init__(
        self, engine: Engine, now: Callable[[], datetime], days: float, every_seconds: float
    ) -> None:
        self.engine, self.now, self.days, self.every = engine, now, days, every_seconds
        self.runs = 0

    async def run_once(self) -> Erased:
        erased = await run_in_threadpool(erase_expired, self.engine, self.now(), self.days)
        self.runs += 1
        if erased.reports or erased.alerts or erased.history:
            log.info(
                "retention: erased the personal fields of %d report(s), volunteer ids in %d "
                "alert(s) and %d history row(s) older than %g days",
                erased.reports,
                erased.alerts,
                erased.history,
                self.days,
            )
        return erased

    async def run_forever(self) -> None:
        """Run now, then every ``every_seconds``, until cancelled (the API's lifespan)."""
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the database may be away: try again next time
                log.warning("retention job failed: %s", type(exc).__name__)
            await asyncio.sleep(self.every)
