"""The retention job: volunteers' personal data (reports' personal fields, photos) erased once
``PUHUI_REPORT_RETENTION_DAYS`` old (see ``infra.privacy.erase_expired`` and docs/privacy.md);
photo files no live row refers to (a crash mid-upload or mid-erasure) removed after an hour.
Runs in the API process at start-up and every ``PUHUI_RETENTION_INTERVAL_SECONDS``; the erasure
is idempotent, so two API replicas running it do no harm."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from infra.photos import PhotoStore, sweep_orphans
from infra.privacy import Erased, erase_expired

log = logging.getLogger("puhui.api.retention")

#: A photo file without a live row this old is an orphan (an upload takes seconds).
ORPHAN_AGE = timedelta(hours=1)


def _wall() -> datetime:
    # File modification times are wall-clock; the injected clock may be a test's.
    return datetime.now().astimezone()


class RetentionJob:
    """Runs :func:`erase_expired` now and then; ``run_once`` for tests and the CLI."""

    def __init__(
        self,
        engine: Engine,
        now: Callable[[], datetime],
        days: float,
        every_seconds: float,
        photo_dir: Path | None = None,
    ) -> None:
        self.engine, self.now, self.days, self.every = engine, now, days, every_seconds
        self.photos = PhotoStore(photo_dir) if photo_dir is not None else None
        self.runs = 0

    async def run_once(self) -> Erased:
        now = self.now()
        erased = await run_in_threadpool(erase_expired, self.engine, now, self.days, self.photos)
        if self.photos is not None:
            # Wall-clock file times: an upload in progress is seconds old, an orphan an hour.
            await run_in_threadpool(sweep_orphans, self.engine, self.photos, _wall() - ORPHAN_AGE)
        self.runs += 1
        if erased.reports or erased.alerts or erased.history or erased.photos:
            log.info(
                "retention: erased the personal fields of %d report(s), %d photo(s), volunteer "
                "ids in %d alert(s) and %d history row(s) older than %g days",
                erased.reports,
                erased.photos,
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
