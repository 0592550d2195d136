"""Database writes from the worker: retried while the database is unreachable, given up (and the
record dead-lettered as ``unstorable``) when the database refuses the record itself.

One bad record must never stall a stream: a record the database refuses (a data, integrity or
value error) would fail the same way forever, so retrying it blocks every later record of its
partition. Only failures of the connection or the server — which pass — are retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

from models.contracts import UNSTORABLE, AlertRecord
from models.errors import PuhuiError
from streams.metrics import PipelineMetrics

log = logging.getLogger("puhui.worker")

T = TypeVar("T")

#: Dead-letters the batch's record at an index, with a reason and a detail.
DeadLetter = Callable[[int, str, str], Awaitable[None]]


class Unstorable(PuhuiError):
    """The database refused this record; retrying cannot help. ``detail`` is the database's
    message (first line, without the statement or its parameters)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def is_record_error(exc: BaseException) -> bool:
    """True when ``exc`` is about the data written, not about reaching the database: a data or
    integrity error, or a value the driver could not send (PostgreSQL's NUL in text)."""
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):  # operational, interface, internal, programming…
        return False
    if isinstance(exc, sa_exc.StatementError):  # raised before the statement reached the server
        return isinstance(exc.orig, ValueError | TypeError | UnicodeError)
    return isinstance(exc, ValueError | TypeError | UnicodeError)


def db_message(exc: BaseException) -> str:
    """The database's own words, first line only: never the SQL or its parameters (they would
    copy a volunteer's text into a header or a log line)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]


async def write(what: str, call: Callable[[], T], metrics: PipelineMetrics) -> T:
    """Run a blocking database call off the event loop. Retried (backing off to 10 s) until the
    database takes it, so the stream is never acknowledged past what was persisted; raises
    :class:`Unstorable` at once when the database refuses the data itself.

    A cancellation (the worker stopping) does not end the retries: Faust acknowledges a record
    whose agent is cancelled, and its offset would be committed unpersisted. The write goes on
    (it is idempotent) and the cancellation is raised once it succeeded; a database that stays
    down is ended by the worker's stop deadline (``PUHUI_STOP_TIMEOUT_SECONDS``, see
    ``entrypoints.cli``), which exits without committing, so the record is replayed on the next
    start.
    """
    delay = 0.5
    cancelled = False
    while True:
        try:
            result = await asyncio.to_thread(call)
        except asyncio.CancelledError:
            cancelled = True
            log.warning("stopping while %s is not yet persisted: writing it first", what)
            continue
        except Exception as exc:
            metrics.db_errors.inc()
            if is_record_error(exc):
                detail = db_message(exc)
                log.error("database refused %s: %s", what, detail)
                raise Unstorable(detail) from None
            log.error(
                "database write (%s) failed: %s; retrying in %.1fs", what, db_message(exc), delay
            )
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                cancelled = True
            delay = min(delay * 2, 10.0)
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


async def write_alert_batch(
    write_records: Callable[[Sequence[AlertRecord]], Any],
    batch: Sequence[AlertRecord],
    metrics: PipelineMetrics,
    dead_letter: DeadLetter,
) -> int:
    """Write ``batch`` in one transaction; if the database refuses it, write each record on its
    own and dead-letter those it refuses. Returns how many records were dead-lettered."""
    try:
        await write(f"{len(batch)} alert records", lambda: write_records(batch), metrics)
        return 0
    except Unstorable:
        pass  # find the culprit(s): one record at a time
    refused = 0
    for index, record in enumerate(batch):
        try:
            await write(f"alert record {index}", partial(write_records, [record]), metrics)
        except Unstorable as exc:
            refused += 1
            await dead_letter(index, UNSTORABLE, exc.detail)
    return refused
