"""The API's connection to Kafka: one aiokafka producer (reports, operator commands) and one
aiokafka consumer of ``puhui.alerts`` whose records fan out to every live-stream subscriber.

Both are started in the app's lifespan, in the background: the API serves (and ``/readyz`` says
what is missing) while the broker is away, and a request that must produce answers 503 until the
producer is connected. The consumer belongs to no consumer group and starts at the end of the
topic: each API process sees every new alert record, and none from before it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from infra.kafka_security import KafkaConfigError, client_for
from infra.settings import Settings
from models.contracts import AlertRecord, decode_alert
from models.errors import PuhuiError
from models.topics import TopicNames

__all__ = ["AlertHub", "KafkaBus", "PublishError", "Publisher", "Subscription"]

log = logging.getLogger("puhui.api")

_RETRY_MIN = 0.5
_RETRY_MAX = 10.0


class PublishError(PuhuiError):
    """The broker did not take a record (not connected, timed out, refused)."""


class Publisher(Protocol):
    """Produces one record and returns once the broker has acknowledged it (acks=all)."""

    async def publish(self, topic: str, key: bytes, value: bytes) -> None: ...


@dataclass(eq=False)
class Subscription:
    """One subscriber's queue of alert records. ``overflowed`` is set when it fell so far behind
    that records had to be dropped: its stream then ends, and the client reconnects and reloads."""

    queue: asyncio.Queue[AlertRecord]
    overflowed: bool = False

    async def get(self) -> AlertRecord:
        """The next record (waits)."""
        return await self.queue.get()


@dataclass
class AlertHub:
    """Fans alert records out to subscribers (the live streams, and anything else in-process
    that wants them). ``live`` is set once the consumer is positioned at the end of the topic:
    from then on every new record reaches every subscriber."""

    queue_size: int = 1000
    _subscribers: set[Subscription] = field(default_factory=set)
    _live: asyncio.Event | None = None

    @property
    def live(self) -> asyncio.Event:
        if self._live is None:
            self._live = asyncio.Event()
        return self._live

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        """``with hub.subscribe() as sub:`` — records published meanwhile reach ``sub``."""
        sub = Subscription(asyncio.Queue(self.queue_size))
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, record: AlertRecord) -> None:
        """Hand ``record`` to every subscriber (never blocks)."""
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(record)
            except asyncio.QueueFull:
                sub.overflowed = True


class KafkaBus:
    """The producer and the alert-feed consumer, with their connect-and-retry loops."""

    def __init__(self, settings: Settings, hub: AlertHub) -> None:
        self.settings = settings
        self.hub = hub
        self.topics = TopicNames.with_prefix(settings.topic_prefix)
        self._producer: AIOKafkaProducer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._kafka_kwargs: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        """True once the producer is connected."""
        return self._producer is not None

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        try:
            self._kafka_kwargs = client_for(self.settings, "api").aiokafka()
        except KafkaConfigError as exc:
            # /readyz says so too ("no Kafka credentials configured"); nothing to retry.
            log.error("the API cannot connect to Kafka: %s", exc)
            return
        self._tasks = [
            asyncio.create_task(self._connect_producer(), name="puhui-api-producer"),
            asyncio.create_task(self._feed_alerts(), name="puhui-api-alert-feed"),
        ]

    async def stop(self) -> None:
        """Stop both loops and close the clients."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def publish(self, topic: str, key: bytes, value: bytes) -> None:
        producer = self._producer
        if producer is None:
            raise PublishError("not connected to the broker")
        timeout = self.settings.publish_timeout_seconds
        try:
            # The producer's own request timeout is the same figure, so it normally gives up
            # first and the record is definitely not sent; this outer bound is a safety net.
            async with asyncio.timeout(timeout + 1.0):
                await producer.send_and_wait(topic, value=value, key=key)
        except TimeoutError as exc:
            raise PublishError(f"the broker did not acknowledge within {timeout:g}s") from exc
        except Exception as exc:
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc

    def _kafka(self) -> dict[str, Any]:
        """aiokafka's connection kwargs for the API's own principal."""
        return self._kafka_kwargs

    async def _connect_producer(self) -> None:
        timeout_ms = int(self.settings.publish_timeout_seconds * 1000)
        delay = _RETRY_MIN
        while not self._stopping:
            producer = AIOKafkaProducer(
                **self._kafka(),
                client_id="puhui-api",
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=timeout_ms,
                linger_ms=0,
            )
            try:
                await producer.start()
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning("API producer cannot connect (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            self._producer = producer
            log.info("API producer connected to %s", self.settings.kafka_bootstrap)
            return

    async def _feed_alerts(self) -> None:
        delay = _RETRY_MIN
        while not self._stopping:
            consumer = AIOKafkaConsumer(
                self.topics.alerts,
                **self._kafka(),
                client_id="puhui-api-feed",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                metadata_max_age_ms=5000,  # notice a topic created after we started
            )
            try:
                await consumer.start()
                await self._position_at_end(consumer)
                self.hub.live.set()
                log.info("alert feed live on %s", self.topics.alerts)
                delay = _RETRY_MIN
                async for batch in _batches(consumer):
                    for raw in batch:
                        self._fan_out(raw)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.hub.live.clear()
                log.warning("alert feed interrupted (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _position_at_end(self, consumer: AIOKafkaConsumer) -> None:
        # The feed is live only once each partition's position is fixed; a record produced
        # after that is guaranteed to reach the subscribers.
        while not consumer.assignment():
            await asyncio.sleep(0.2)
        for tp in consumer.assignment():
            await consumer.position(tp)

    def _fan_out(self, raw: bytes | None) -> None:
        try:
            record = decode_alert(raw or b"")
        except (ValidationError, ValueError):
            log.warning("ignoring an undecodable record on %s", self.topics.alerts)
            return
        self.hub.publish(record)


async def _batches(consumer: AIOKafkaConsumer) -> AsyncIterator[list[bytes | None]]:
    while True:
        fetched = await consumer.getmany(timeout_ms=1000)
        for records in fetched.values():
            yield [record.value for record in records]
