"""The consumer thread fetches for a snapshot of the active partitions, never for "all".

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

from faust.types import TP

from streams.faust_compat.fixes import SnapshotConsumerThread

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
