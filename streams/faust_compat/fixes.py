"""Three fixes to faust-streaming 0.15.3 that lost records when a worker took partitions over,
and the pre-commit hook Faust lacks. How they were found:
docs/adr/0001-faust-takeover-record-loss.md.

Invariants kept:

1. **A fetch never asks aiokafka for "all" partitions.** aiokafka's
   ``Fetcher.fetched_records(partitions)`` reads an empty set as every assigned partition, and
   Faust hands the consumer thread its *live* set of active partitions (mutated in place by
   pause/resume). :class:`SnapshotConsumerThread` fetches for a copy of the set taken when the
   fetch starts, and for nothing when it is empty. Can go when Faust passes a snapshot (or
   aiokafka stops reading an empty set as "all").
2. **Stream partitions are sought to their committed offsets before they are resumed.**
   :class:`SeekFirstRecovery` is upstream's ``Recovery.on_recovery_completed`` with the seek
   moved first. Can go when upstream seeks first for apps with tables too (faust-streaming#216/#217
   did it for table-less apps only).
3. **A fetched record is handed to the streams or fetched again.** Faust's fetch loop
   (``Consumer.getmany``) drops the records of a fetch that returns while a rebalance is under
   way (the flow stopped, a newer generation, a partition paused meanwhile); aiokafka's
   position has already moved past them. Faust repairs that only by seeking to the committed
   offsets, which misses a partition with nothing committed yet (a new group's first records)
   and every changelog partition (recovery seeks them *before* such a late fetch returns).
   :class:`SnapshotConsumer` rewinds each partition to its first record not handed over, if
   nothing moved its position since; and its ``seek_to_committed`` sends a stream partition
   with nothing committed to its beginning (``consumer_auto_offset_reset="earliest"``, as a new
   group starts). Can go when Faust stops dropping fetched records.
4. **Staged zone states are flushed before the offsets are taken.** ``PuhuiApp.before_commit``:
   coroutines awaited at the start of every offset commit (``streams/app.py`` flushes the staged
   zone states there). Stays while Faust has no such hook.

Installed by :class:`PuhuiApp` (``faust.App`` with its transport and table manager swapped).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger("puhui.worker")


class SeekFirstRecovery(Recovery):
    """``Recovery`` whose completion seeks stream partitions before resuming them."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Call when active table recovery is completed (as upstream, seek moved first)."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %r param %r",
                self.app.consumer_generation_id,
                generation_id,
            )
            return
        if assignment:
            # The stream partitions are still paused here: no record can be fetched for them
            # until their positions and read offsets are the committed ones.
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        self.log.dev("Resume stream partitions")
        self.app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class SeekFirstTableManager(TableManager):
    """The table manager whose recovery is :class:`SeekFirstRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class SnapshotConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Fetches records for the partitions active when the fetch starts, never "all"."""

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        partitions: set[TP] = set(active_partitions or ())  # a copy: nothing else mutates it
        if not partitions:
            # aiokafka would read an empty set as every assigned partition.
            await asyncio.sleep(min(timeout or 0.0, 0.1))
            return {}
        return await super()._fetch_records(consumer, partitions, timeout, max_records)

    async def rewind(self, spans: Mapping[TP, tuple[int, int]]) -> list[TP]:
        """For each ``tp: (first, end)``: seek ``tp`` back to ``first`` if its position is still
        ``end`` (nothing sought it since those records were fetched) and it is still assigned.
        Returns the partitions rewound."""
        return cast(list[TP], await self.call_thread(self._rewind, spans))

    async def _rewind(self, spans: Mapping[TP, tuple[int, int]]) -> list[TP]:
        consumer = self._ensure_consumer()
        assigned = consumer.assignment()
        rewound = []
        for tp, (first, end) in spans.items():
            atp = TopicPartition(tp.topic, tp.partition)
            # position() returns at once for a partition with a valid position: no await
            # between the check and the seek.
            if atp in assigned and await consumer.position(atp) == end:
                consumer.seek(atp, first)
                rewound.append(tp)
        return rewound


class SnapshotConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with :class:`SnapshotConsumerThread`, running the app's
    ``before_commit`` hooks first in every commit.

    Faust commits (every ``commit_interval``, on rebalance, on stop) through ``force_commit``: it
    takes the offsets of the acknowledged events, flushes the producer, then commits them."""

    #: what the last fetch returned: partition -> (first offset, offset after the last)
    _fetched: dict[TP, tuple[int, int]]

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return SnapshotConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        records = await super()._getmany(active_partitions, timeout)
        self._fetched = {
            tp: (recs[0].offset, recs[-1].offset + 1) for tp, recs in records.items() if recs
        }
        return records

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """Upstream's fetch loop; afterwards, every partition whose fetched records were not all
        handed over is rewound to the first one that was not (invariant 3)."""
        self._fetched = {}
        handed: dict[TP, int] = {}
        async for tp, message in super().getmany(timeout):
            handed[tp] = message.offset + 1
            yield tp, message
        left = {
            tp: (handed.get(tp, first), end)
            for tp, (first, end) in self._fetched.items()
            if handed.get(tp, first) < end
        }
        if left:
            rewound = await cast(SnapshotConsumerThread, self._thread).rewind(left)
            if rewound:
                log.info(
                    "records fetched during a rebalance were not handed over; fetching them "
                    "again: %s",
                    ", ".join(f"{tp.topic}[{tp.partition}] from {left[tp][0]}" for tp in rewound),
                )

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Upstream's seek to the committed offsets; a stream partition with nothing committed
        goes to its beginning (invariant 3)."""
        committed = await super().seek_to_committed()
        fresh = [
            tp for tp, offset in committed.items() if not offset and not self._is_changelog_tp(tp)
        ]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)  # waits for the new positions
        return committed

    async def force_commit(self, *args: Any, **kwargs: Any) -> bool:
        for hook in getattr(self.app, "before_commit", ()):
            await hook()
        return bool(await super().force_commit(*args, **kwargs))


class SnapshotTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`SnapshotConsumer`."""

    Consumer = SnapshotConsumer


class PuhuiApp(faust.App):
    """``faust.App`` with the fixes (the transport is always Kafka here) and a pre-commit
    hook."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: awaited, in order, at the start of every offset commit
        self.before_commit: list[Callable[[], Awaitable[Any]]] = []

    def _new_transport(self) -> Any:
        return SnapshotTransport(self.conf.broker_consumer, self)
