"""The worker's writer of per-minute zone figures (``zone_series``): notes a zone's people after
each reading (the minute's largest, :class:`alerts.series.MinuteMax`), merges the noted minutes
into the table with the zone status, and prunes minutes past ``PUHUI_SERIES_RETENTION_DAYS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from alerts.series import MinuteMax, series_cutoff
from infra.db import newest_series_minute, prune_zone_series, upsert_zone_series
from models.zones import ZoneRegistry
from streams.metrics import PipelineMetrics
from streams.persist import Unstorable, write

__all__ = ["SeriesPendingCollector", "ZoneSeriesWriter"]

log = logging.getLogger("puhui.worker")

PRUNE_EVERY_S = 3600.0


class SeriesPendingCollector(Collector):
    """``puhui_zone_series_pending_minutes``: minutes noted and not yet written (tests wait on
    it reaching 0; one that keeps growing means the database refuses or is away)."""

    def __init__(self, pending: Callable[[], int]) -> None:
        self.pending = pending

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "puhui_zone_series_pending_minutes",
            "Per-minute zone figures noted and not yet written to zone_series",
            value=self.pending(),
        )


class ZoneSeriesWriter:
    """Per-minute people maxima from the worker's zone states to ``zone_series``."""

    def __init__(
        self,
        zones: ZoneRegistry,
        engine: Engine,
        metrics: PipelineMetrics,
        retention_days: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.zones, self.engine, self.metrics = zones, engine, metrics
        self.retention_days, self.now = retention_days, now
        self.minutes = MinuteMax()
        self.in_flight = 0
        self.next_prune = time.monotonic() + 60.0  # not in the start-up rush

    def note(self, zone_id: str, state: Any) -> None:
        """After a reading of ``zone_id``: its people at the zone's event-time clock. Per
        reading: one sum over the zone's cameras and one dict update."""
        if state is not None and state.clock is not None:
            people = state.counted_people()
            if people is not None:
                self.minutes.note(zone_id, state.clock, people)

    def pending(self) -> int:
        return len(self.minutes) + self.in_flight

    async def flush(self) -> None:
        """Write the minutes noted since the last flush; prune hourly."""
        samples = [
            {
                "zone_id": s.zone_id,
                "minute": datetime.fromtimestamp(s.minute, tz=UTC),
                "people": s.people,
                "density": self.zones[s.zone_id].density(s.people),
            }
            for s in self.minutes.drain()
            if s.zone_id in self.zones
        ]
        if samples:
            self.in_flight = len(samples)
            try:
                # Derived figures: a refusal is logged by write(); the next minutes go on.
                with contextlib.suppress(Unstorable):
                    await write(
                        "zone series",
                        lambda: upsert_zone_series(self.engine, samples),
                        self.metrics,
                    )
            finally:
                self.in_flight = 0
        if time.monotonic() >= self.next_prune:
            self.next_prune = time.monotonic() + PRUNE_EVERY_S
            await self.prune()

    async def prune(self) -> int:
        """Delete the minutes past retention; returns how many (0 when the database is away)."""

        def prune() -> int:
            newest = newest_series_minute(self.engine)
            cutoff = series_cutoff(self.now(), newest, self.retention_days)
            return prune_zone_series(self.engine, cutoff)

        try:
            pruned = await asyncio.to_thread(prune)
        except Exception as exc:  # the database may be away: next hour
            log.warning("pruning zone_series failed: %s", type(exc).__name__)
            return 0
        if pruned:
            log.info("pruned %d zone_series minutes past retention", pruned)
        return pruned
