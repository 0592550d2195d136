"""Batches of a stream's events whose acknowledgements the caller gives, one by one.

Why not ``Stream.take_events`` (faust-streaming 0.15.3, ``faust/streams.py``): it acks every
event of a batch in the ``finally`` after the batch is handled (lines 538–542), whatever the
handler did, and a handler that stops a batch part-way cannot keep the rest from being
acknowledged. An acknowledgement that lands after the partition was revoked is not harmless:

* ``Consumer.on_partitions_revoked`` (``faust/transport/consumer.py:642``) drops the revoked
  partitions' ``_acked`` offsets and ``_committed_offset`` (656–662); ``Consumer.ack`` (825)
  then records any later ack of such a partition, since its committed offset reads ``None``
  (840–849), with no look at the generation the message came from;
* ``_commit_offsets`` (1039) discards offsets of partitions not in the current assignment
  (1048–1063), but if the partition comes back to this worker, ``perform_seek`` (565) sets its
  committed offset again (580) and the stale acks, still in ``_acked``, count in
  ``_new_offset`` (1097): the next commit can move past records nobody handled — lost.

So :func:`event_batches` turns the stream's own acks off (as ``take_events`` does, line 519) and
leaves them to the caller, who acks a batch's events only once it is handled (the worker skips
and never acks a batch that ran into a revocation: ``ReadingHandler.handle_batch``).

Also read for this (the revocation, in order): ``faust/app/base.py:1790``
``App._on_partitions_revoked`` suspends the flow, clears the stream buffers, waits for every
tracked message to be acked (``Consumer.wait_empty``, ``consumer.py:866``, committing as acks
come; the ``stream_wait_empty`` setting, on by default) and only then sends the
``on_partitions_revoked`` signal, on which ``streams/app.py`` flushes and forgets the zone
cache. An event is tracked when the stream takes it from the channel, right after its
generation check: ``faust/_cython/streams.pyx:181–198`` in the compiled iterator this install
runs (``Stream._c_aiter``, ``streams.py:1171``; its acks inline ``Consumer.ack`` at
``streams.pyx:131–153``), ``streams.py:1287–1304`` in the pure-Python twin. Events held in a
batch are therefore tracked: the revocation waits for the batch, and the zone cache is
normally forgotten between two batches, never inside one. The epoch check in
``handle_batch`` covers the cases where that wait does not happen (``stream_wait_empty`` off,
a wait cut short) at the cost of one integer comparison per await.

A batch is what is already queued for the agent, up to ``size`` events: no timer, so a reading
arriving alone is handled at once (``take_events`` waits ``within`` for more), while under a
backlog batches fill up to ``size``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

log = logging.getLogger("puhui.worker")


async def event_batches(stream: Any, size: int) -> AsyncIterator[list[Any]]:
    """Yield lists of ``stream``'s events: each one as soon as no more is queued, or ``size``
    are in hand. Nothing is acknowledged here: the caller acks each handled event with
    ``await stream.ack(event)`` (an event never acked is fetched again after a rebalance or a
    restart). While the caller handles a batch, the stream takes no further event."""
    stream.enable_acks = False  # read per event (streams.py:1179, and 1258 in _py_aiter)
    queue = getattr(stream.channel, "queue", None)
    batch: list[Any] = []
    async for event in stream.events():
        batch.append(event)
        if len(batch) < size and queue is not None and not queue.empty():
            continue
        yield batch
        batch = []


async def handle_in_batches(
    stream: Any, size: int, handle: Callable[[list[Any]], Awaitable[bool]]
) -> None:
    """Hand ``stream``'s events to ``handle`` in batches (:func:`event_batches`); ack a batch's
    events once ``handle`` returned True, none of them if it returned False (it stopped
    because the partitions were revoked under it: their owner replays them)."""
    async for events in event_batches(stream, size):
        if await handle(events):
            for event in events:
                await stream.ack(event)
        else:
            log.warning(
                "a batch of %d records ran into a rebalance: left unacknowledged, to be "
                "replayed by the partitions' owner",
                len(events),
            )
