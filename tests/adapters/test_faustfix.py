"""The consumer thread fetches for a snapshot of the active partitions, never for "all"; a
fetched record is handed to the streams or fetched again.

aiokafka's ``Fetcher.fetched_records(partitions)`` returns every partition's records when
``partitions`` is empty, and Faust hands it its live set of active partitions, which pause and
resume mutate in place. These tests use aiokafka's real ``fetched_records`` semantics through a
stand-in fetcher that filters exactly as aiokafka does.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import ConsumerRecord
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from streams.faust_compat.fixes import SnapshotConsumer, SnapshotConsumerThread

STREAM = TP("puhui.sensor-readings", 0)
CHANGELOG = TP("puhui-zone-state-changelog", 0)


class Fetcher:
    """aiokafka's filtering: ``if partitions and tp not in partitions: skip``."""

    _closed = False

    def __init__(self, records: dict[TP, list[str]], delay: float = 0.0) -> None:
        self.records = records
        self.delay = delay
        self.asked: list[Any] = []
        self._subscriptions = SimpleNamespace(fetch_context=contextmanager(lambda: (yield)))

    async def fetched_records(
        self, partitions: Any, timeout: float = 0, max_records: int | None = None
    ) -> dict[TP, list[str]]:
        self.asked.append(partitions)
        await asyncio.sleep(self.delay)  # waiting for records, as aiokafka does
        return {tp: recs for tp, recs in self.records.items() if not partitions or tp in partitions}


def thread() -> SnapshotConsumerThread:
    # Only what _fetch_records reads: the Faust consumer's flow flag.
    self = SnapshotConsumerThread.__new__(SnapshotConsumerThread)
    self.consumer = SimpleNamespace(flow_active=True)  # type: ignore[assignment]
    return self


def client(fetcher: Fetcher) -> Any:
    return SimpleNamespace(_fetcher=fetcher, _closed=False)


async def test_an_empty_active_set_fetches_nothing() -> None:
    fetcher = Fetcher({STREAM: ["r1"], CHANGELOG: ["c1"]})
    got = await thread()._fetch_records(client(fetcher), set(), timeout=0.05)
    assert got == {}
    assert fetcher.asked == []  # aiokafka never asked with an empty set (= all partitions)


async def test_the_set_emptied_during_the_fetch_does_not_widen_it() -> None:
    """The recovery case: the changelog partition is paused (the live set becomes empty)
    while the fetch waits; the stream partition's records must not come back."""
    fetcher = Fetcher({STREAM: ["r1"], CHANGELOG: ["c1"]}, delay=0.05)
    active = {CHANGELOG}
    fetch = asyncio.create_task(thread()._fetch_records(client(fetcher), active, timeout=1.0))
    await asyncio.sleep(0.01)
    active.discard(CHANGELOG)  # Consumer.pause_partitions mutates the same set object
    got = await fetch
    assert got == {CHANGELOG: ["c1"]}
    assert STREAM not in got


async def test_active_partitions_are_fetched() -> None:
    fetcher = Fetcher({STREAM: ["r1"], CHANGELOG: ["c1"]})
    got = await thread()._fetch_records(client(fetcher), {STREAM}, timeout=0.05)
    assert got == {STREAM: ["r1"]}
    assert fetcher.asked == [frozenset({STREAM})]


# --- A fetched record is handed to the streams or fetched again (invariant 3) -----------------


class FetchLoop(SnapshotConsumer):
    """Upstream's fetch loop (``Consumer.getmany``) with what it reads around it stubbed: the
    records of one fetch, the live set of active partitions, the flow flag."""

    should_stop = False  # mode's property: the service is running

    def __init__(self, records: dict[TP, list[Any]], active: set[TP]) -> None:
        self.records, self.active = records, active
        self.app = SimpleNamespace(  # type: ignore[assignment]
            consumer_generation_id=1, monitor=SimpleNamespace(track_tp_end_offset=lambda *a: None)
        )
        self.scheduler = DefaultSchedulingStrategy()
        self.flow_active = True
        self._buffered_partitions = set()
        self.log = SimpleNamespace(dev=lambda *a, **k: None)  # type: ignore[assignment]
        self.rewinds: list[dict[TP, tuple[int, int]]] = []
        self.seeks = 0
        loop = self

        class Thread:
            async def getmany(self, active: Any, timeout: float) -> dict[TP, list[Any]]:
                return loop.records

            def highwater(self, tp: TP) -> int:
                return 100

            async def rewind(self, spans: dict[TP, tuple[int, int]]) -> list[TP]:
                loop.rewinds.append(dict(spans))
                return list(spans)

        self._thread = Thread()  # type: ignore[assignment]

    async def _wait_next_records(self, timeout: float) -> Any:
        return await self._getmany(self.active, timeout), self.active

    async def perform_seek(self) -> None:
        self.seeks += 1


def records(tp: TP, *offsets: int) -> list[Any]:
    return [
        ConsumerRecord(tp.topic, tp.partition, o, 0, 0, None, b"v", None, 0, 1, ()) for o in offsets
    ]


async def handed_over(loop: FetchLoop, stop_flow_after: int | None = None) -> list[tuple[TP, int]]:
    got = []
    async for tp, message in loop.getmany(timeout=0.1):
        got.append((tp, message.offset))
        if stop_flow_after is not None and len(got) == stop_flow_after:
            loop.flow_active = False  # a rebalance starts while the fetch is handed over
    return got


async def test_a_fetch_handed_over_whole_rewinds_nothing() -> None:
    loop = FetchLoop(
        {STREAM: records(STREAM, 5, 6), CHANGELOG: records(CHANGELOG, 0)}, {STREAM, CHANGELOG}
    )
    assert len(await handed_over(loop)) == 3
    assert loop.rewinds == []


async def test_a_partition_paused_during_the_fetch_is_fetched_again_from_its_first_record() -> None:
    """The recovery case above, carried on: the changelog's records came back for a partition
    no longer active; Faust drops them, so its position goes back to them."""
    loop = FetchLoop({STREAM: records(STREAM, 5, 6), CHANGELOG: records(CHANGELOG, 3, 4)}, {STREAM})
    assert await handed_over(loop) == [(STREAM, 5), (STREAM, 6)]
    assert loop.rewinds == [{CHANGELOG: (3, 5)}]


async def test_a_flow_stopped_mid_fetch_rewinds_to_the_first_record_not_handed_over() -> None:
    loop = FetchLoop(
        {STREAM: records(STREAM, 5, 6, 7), CHANGELOG: records(CHANGELOG, 0, 1)}, {STREAM, CHANGELOG}
    )
    got = await handed_over(loop, stop_flow_after=1)
    assert len(got) == 1
    first_tp, first_offset = got[0]
    expected = {STREAM: (5, 8), CHANGELOG: (0, 2)}
    expected[first_tp] = (first_offset + 1, expected[first_tp][1])
    assert loop.rewinds == [expected]


async def test_a_fetch_that_returns_with_the_flow_stopped_is_sought_and_rewound_whole() -> None:
    """Upstream seeks to the committed offsets (which moves the stream partitions that have
    one); every partition is also asked to rewind, which only happens where nothing moved it."""
    loop = FetchLoop(
        {STREAM: records(STREAM, 5), CHANGELOG: records(CHANGELOG, 0, 1, 2)}, {STREAM, CHANGELOG}
    )
    loop.flow_active = False
    assert await handed_over(loop) == []
    assert loop.seeks == 1
    assert loop.rewinds == [{STREAM: (5, 6), CHANGELOG: (0, 3)}]


async def test_a_partition_with_nothing_committed_is_sought_to_its_beginning() -> None:
    """``seek_to_committed`` leaves a partition with no committed offset where it is; a stream
    partition goes to its beginning instead (the changelog's positions are recovery's)."""
    other = TP("puhui.sensor-readings", 1)
    began: list[TP] = []

    class Thread:
        async def seek_to_committed(self) -> dict[TP, int | None]:
            return {STREAM: None, other: 7, CHANGELOG: None, TP("puhui.alerts", 0): 0}

        async def seek_to_beginning(self, *tps: TP) -> None:
            began.extend(tps)

    consumer = SnapshotConsumer.__new__(SnapshotConsumer)
    consumer._thread = Thread()  # type: ignore[assignment]
    consumer.app = SimpleNamespace(  # type: ignore[assignment]
        tables=SimpleNamespace(changelog_topics={CHANGELOG.topic})
    )
    committed = await consumer.seek_to_committed()
    assert committed[other] == 7
    assert sorted(began) == sorted([STREAM, TP("puhui.alerts", 0)])
