"""Integration: the consumer thread's rewind and the seek of a partition with nothing committed
(``streams/faust_compat/fixes.py``, invariant 3), on aiokafka against the real test broker.

The broker is not started here: ``make test`` starts one (``PUHUI_TEST_KAFKA_BOOTSTRAP``). Without
a broker these tests FAIL — they are never skipped.
"""

from __future__ import annotations

import os
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from infra.kafka_admin import ensure_topics, wait_for_metadata
from streams.faust_compat.fixes import SnapshotConsumer, SnapshotConsumerThread
from tests.support.parts import kafka_client, produce

pytestmark = pytest.mark.integration

BOOTSTRAP = os.environ.get("PUHUI_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def topic_with(count: int) -> str:
    wait_for_metadata(kafka_client(BOOTSTRAP), timeout=30)
    name = f"test.rewind.{uuid.uuid4().hex[:12]}"
    ensure_topics(kafka_client(BOOTSTRAP), {name: 1})
    produce(BOOTSTRAP, name, [(None, str(i).encode()) for i in range(count)])
    return name


async def consumer_of(*topics: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        **kafka_client(BOOTSTRAP).aiokafka(),
        group_id=f"test-rewind-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.assign([TopicPartition(t, 0) for t in topics])
    return consumer


async def read_to_end(consumer: AIOKafkaConsumer, atp: TopicPartition, end: int) -> list[int]:
    offsets: list[int] = []
    for _ in range(100):
        batch = await consumer.getmany(atp, timeout_ms=500)
        offsets += [r.offset for r in batch.get(atp, [])]
        if await consumer.position(atp) >= end:
            return offsets
    raise AssertionError(f"{atp} not read to {end}: {offsets}")


def thread_of(consumer: AIOKafkaConsumer) -> Any:
    thread = SnapshotConsumerThread.__new__(SnapshotConsumerThread)
    thread._consumer = consumer
    return thread


async def test_a_partition_is_rewound_to_the_records_not_handed_over_unless_sought_since() -> None:
    topic = topic_with(5)
    atp, tp = TopicPartition(topic, 0), TP(topic, 0)
    consumer = await consumer_of(topic)
    try:
        assert await read_to_end(consumer, atp, 5) == [0, 1, 2, 3, 4]
        # Records 2-4 of that fetch were not handed over: fetched again.
        assert await thread_of(consumer)._rewind({tp: (2, 5)}) == [tp]
        assert await read_to_end(consumer, atp, 5) == [2, 3, 4]
        # Sought since (recovery, a seek to the committed offset): left where it was put.
        consumer.seek(atp, 1)
        assert await thread_of(consumer)._rewind({tp: (2, 5)}) == []
        assert await consumer.position(atp) == 1
        # A partition no longer assigned is left alone.
        consumer.assign([TopicPartition(topic_with(1), 0)])
        assert await thread_of(consumer)._rewind({tp: (2, 5)}) == []
    finally:
        await consumer.stop()


async def test_seek_to_committed_sends_a_stream_partition_with_nothing_committed_to_its_start() -> (
    None
):
    stream, changelog = topic_with(4), topic_with(3)
    s_atp, c_atp = TopicPartition(stream, 0), TopicPartition(changelog, 0)
    consumer = await consumer_of(stream, changelog)
    try:
        await read_to_end(consumer, s_atp, 4)
        await read_to_end(consumer, c_atp, 3)
        snapshot = SnapshotConsumer.__new__(SnapshotConsumer)
        # Faust's thread delegates both seeks to this aiokafka consumer.
        snapshot._thread = SimpleNamespace(  # type: ignore[assignment]
            seek_to_committed=consumer.seek_to_committed,
            seek_to_beginning=consumer.seek_to_beginning,
        )
        snapshot.app = SimpleNamespace(  # type: ignore[assignment]
            tables=SimpleNamespace(changelog_topics={changelog})
        )
        await snapshot.seek_to_committed()
        assert await consumer.position(s_atp) == 0  # nothing committed: from the start
        assert await consumer.position(c_atp) == 3  # a changelog's position is recovery's
        # With an offset committed, upstream's seek to it is kept.
        await consumer.commit({s_atp: 3})
        await read_to_end(consumer, s_atp, 4)
        await snapshot.seek_to_committed()
        assert await consumer.position(s_atp) == 3
    finally:
        await consumer.stop()
