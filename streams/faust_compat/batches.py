"""The readings' batches: ``Stream.take_events``, with the events of a stopped batch kept from
being acknowledged.

``take_events`` (faust-streaming 0.15.3, ``faust/streams.py:456``) turns the stream's own acks
off (519), buffers events in a background drainer, yields a batch when it is full or ``within``
has passed, and acks **every** event of the batch in its ``finally`` (538–542), whatever the
handler did. An acknowledgement that lands after the partition was revoked is not harmless:

* ``Consumer.on_partitions_revoked`` (``faust/transport/consumer.py:642``) drops the revoked
  partitions' ``_acked`` offsets and ``_committed_offset`` (656–662); ``Consumer.ack`` (825)
  then records any later ack of such a partition, since its committed offset reads ``None``
  (840–849), with no look at the generation the message came from;
* ``_commit_offsets`` (1039) discards offsets of partitions not in the current assignment
  (1048–1063), but if the partition comes back to this worker, ``perform_seek`` (565) sets its
  committed offset again (580) and the stale acks, still in ``_acked``, count in
  ``_new_offset`` (1097): the next commit can move past records nobody handled — lost.

So when the handler says a batch stopped (``ReadingHandler.handle_batch`` returns False), the
batch's messages are marked ``acked`` before ``take_events`` acks them: ``Message.ack``
(``faust/types/tuples.py:222–234``) returns at once for a message marked so, ``Consumer.ack`` is
never called and the offsets are never committed; the partitions' owner fetches them again
from the last commit. (Marked, they also leave the consumer's set of unacked messages, so a
revocation's wait for the streams does not wait for them.)

When can a batch stop? The revocation, in order: ``faust/app/base.py:1790``
``App._on_partitions_revoked`` suspends the flow, clears the stream buffers, waits for every
tracked message to be acked (``Consumer.wait_empty``, ``consumer.py:866``, committing as acks
come; the ``stream_wait_empty`` setting, on by default) and only then sends the
``on_partitions_revoked`` signal, on which ``streams/app.py`` flushes and forgets the zone
cache. An event is tracked when the stream takes it from the channel, right after its
generation check: ``faust/_cython/streams.pyx:181–198`` in the compiled iterator this install
runs (``Stream._c_aiter``, ``streams.py:1171``), ``streams.py:1287–1304`` in the pure-Python
twin. The events in ``take_events``' buffer are therefore tracked: the revocation waits for the
batch, and the zone cache is normally forgotten between two batches, never inside one. The
epoch check in ``handle_batch`` covers the cases where that wait does not happen
(``stream_wait_empty`` off, the consumer stopping in a rebalance) at the cost of one integer
comparison per await; and a batch is handed over only while the flow is active and its
events are of the current generation (Faust's own per-event check, repeated at hand-over:
``take_events``' buffer may hold events taken before a revocation for up to ``within``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("puhui.worker")


async def handle_in_batches(
    stream: Any, size: int, within: float, handle: Callable[[list[Any]], Awaitable[bool]]
) -> None:
    """Hand ``stream``'s events to ``handle`` in batches of up to ``size``, each waited for at
    most ``within`` seconds (``take_events``); a batch's events are acknowledged once ``handle``
    returned True, none of them if it returned False (it stopped because the partitions were
    revoked under it: their owner replays them).

    Events are checked again when their batch is handed over, as Faust's own iterator checks
    each event right before the agent sees it: while a rebalance is under way (the flow
    suspended) or for events of an older consumer generation, the batch is not handled and
    not acknowledged (the buffer may hold events taken before the revocation, up to
    ``within`` earlier)."""
    app = stream.app
    async for events in stream.take_events(size, within=within):
        if not app.flow_control.is_active() or any(
            event.message.generation_id != app.consumer_generation_id for event in events
        ):
            _unacknowledged(events, "was taken before a rebalance")
        elif not await handle(events):
            _unacknowledged(events, "ran into a rebalance")


def _unacknowledged(events: list[Any], why: str) -> None:
    for event in events:
        event.message.acked = True  # take_events' acks become no-ops (see above)
    log.warning(
        "a batch of %d records %s: left unacknowledged, to be replayed by the partitions' owner",
        len(events),
        why,
    )
