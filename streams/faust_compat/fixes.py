"""Two fixes to faust-streaming 0.15.3 that lost records when a worker took partitions over.

Found by the fault tests (a worker SIGKILLed and restarted while readings keep arriving; two
workers, one killed) and diagnosed with ``kill -USR1`` (streams/diagnostics.py): after the
takeover, aiokafka's positions were at the end of the partitions while Faust had handed none of
the records to the agents — or, in other runs, one record in the middle was skipped and the offset
committed past it. Before: 2 of 6 restarts of tests/fault/test_database_outage.py lost readings
or alert records; the takeover in tests/fault/test_failover.py lost one in 2 of 8 runs.

1. **An empty set of active partitions means "all" to aiokafka.** Faust's fetch loop hands the
   consumer thread its *live* set of active partitions (``Consumer._active_partitions``, mutated
   in place by pause/resume), and aiokafka's ``Fetcher.fetched_records(partitions)`` returns the
   records of every partition when that set is empty. During recovery the set becomes empty (the
   changelog partitions are paused once read; the stream partitions are not resumed yet) while a
   fetch is waiting in the thread: aiokafka then returns the stream partitions' records, advances
   its positions past them, and Faust discards them because those partitions are not active.
   :class:`SnapshotConsumerThread` fetches for a copy of the set taken when the fetch starts, and
   for nothing when it is empty.
2. **Stream partitions were resumed before they were sought** to their committed offsets
   (``Recovery.on_recovery_completed``), so records fetched from the old positions raced the
   seek. Fixed upstream for table-less apps only (faust-streaming#216/#217).
   :class:`SeekFirstRecovery` seeks first.

Installed by :class:`PuhuiApp` (``faust.App`` with its transport and table manager swapped),
which also gives the worker the hook Faust lacks: ``PuhuiApp.before_commit``, coroutines awaited
at the start of every offset commit, before Faust takes the offsets (``streams/app.py`` flushes
the staged zone states there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka


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
        partitions = frozenset(active_partitions or ())
        if not partitions:
            # aiokafka would read an empty set as every assigned partition.
            await asyncio.sleep(min(timeout or 0.0, 0.1))
            return {}
        return await super()._fetch_records(consumer, partitions, timeout, max_records)


class SnapshotConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with :class:`SnapshotConsumerThread`, running the app's
    ``before_commit`` hooks first in every commit.

    Faust commits (every ``commit_interval``, on rebalance, on stop) through ``force_commit``: it
    takes the offsets of the acknowledged events, flushes the producer, then commits them."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return SnapshotConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def force_commit(self, *args: Any, **kwargs: Any) -> bool:
        for hook in getattr(self.app, "before_commit", ()):
            await hook()
        return bool(await super().force_commit(*args, **kwargs))


class SnapshotTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`SnapshotConsumer`."""

    Consumer = SnapshotConsumer


class PuhuiApp(faust.App):
    """``faust.App`` with both fixes (the transport is always Kafka here) and a pre-commit
    hook."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: awaited, in order, at the start of every offset commit
        self.before_commit: list[Callable[[], Awaitable[Any]]] = []

    def _new_transport(self) -> Any:
        return SnapshotTransport(self.conf.broker_consumer, self)
