"""``kill -USR1 <worker pid>``: the worker logs what it is waiting on.

A stream processor that has stopped making progress usually sits idle on its event loop, where a
thread dump (py-spy) shows nothing. This logs the asyncio tasks with their coroutine stacks and
the Faust consumer's view of its partitions (assigned, active, paused, buffered; read, committed
and acknowledged offsets), which is what answers "why is this partition not moving?".
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from typing import Any

log = logging.getLogger("puhui.diagnostics")


def _tp(tp: Any) -> str:
    return f"{tp.topic}[{tp.partition}]"


def consumer_report(app: Any) -> str:
    """The Faust consumer's partitions and offsets, one line per assigned partition."""
    out = io.StringIO()
    consumer = app.consumer
    try:
        assignment = sorted(consumer.assignment())
    except Exception as exc:  # not started, or between generations
        return f"consumer: no assignment ({exc!r})\n"
    active = getattr(consumer, "_active_partitions", None) or set()
    paused: set[Any] = getattr(consumer, "_paused_partitions", set())
    buffered: set[Any] = getattr(consumer, "_buffered_partitions", set())
    read = getattr(consumer, "_read_offset", {})
    committed = getattr(consumer, "_committed_offset", {})
    acked = getattr(consumer, "_acked", {})
    gaps = getattr(consumer, "_gap", {})
    print(
        f"consumer: flow_active={getattr(consumer, 'flow_active', '?')} "
        f"flow_control_active={app.flow_control.is_active()} "
        f"in_recovery={app.in_recovery} rebalancing={app.rebalancing}",
        file=out,
    )
    for tp in assignment:
        acks = acked.get(tp) or []
        print(
            f"  {_tp(tp)} active={tp in active} paused={tp in paused} "
            f"buffered={tp in buffered} read={read.get(tp)} committed={committed.get(tp)} "
            f"acked={len(acks)}{'' if not acks else f' ({min(acks)}..{max(acks)})'} "
            f"gaps={list(gaps.get(tp) or [])[:5]}",
            file=out,
        )
    return out.getvalue()


def _awaiting(obj: Any) -> list[str]:
    """The frames of a coroutine / async generator chain, innermost last."""
    lines = []
    seen = 0
    while obj is not None and seen < 40:
        seen += 1
        frame = (
            getattr(obj, "cr_frame", None)
            or getattr(obj, "gi_frame", None)
            or getattr(obj, "ag_frame", None)
        )
        if frame is not None:
            code = frame.f_code
            lines.append(f"    {code.co_filename}:{frame.f_lineno} {code.co_name}")
        nxt = (
            getattr(obj, "cr_await", None)
            or getattr(obj, "gi_yieldfrom", None)
            or getattr(obj, "ag_await", None)
        )
        if nxt is None and frame is None:
            lines.append(f"    awaiting {obj!r:.200}")
        obj = nxt
    return lines


def client_report(app: Any) -> str:
    """aiokafka's own view (the client under Faust): positions, buffered records, in-flight
    fetches per partition."""
    client = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    fetcher = getattr(client, "_fetcher", None)
    if fetcher is None:
        return "aiokafka: no consumer\n"
    out = io.StringIO()
    assignment = fetcher._subscriptions.subscription.assignment
    print(
        f"aiokafka: in_flight={sorted(fetcher._in_flight)} "
        f"pending_tasks={len(getattr(fetcher, '_pending_tasks', ()))}",
        file=out,
    )
    for tp in sorted(assignment.tps):
        state = assignment.state_value(tp)
        buffered = fetcher._records.get(tp)
        print(
            f"  {_tp(tp)} position={state.position if state.has_valid_position else None} "
            f"paused={state.paused} buffered={buffered!r:.120}",
            file=out,
        )
    return out.getvalue()


def tasks_report(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Every asyncio task of ``loop`` (the running one by default) with what it awaits."""
    out = io.StringIO()
    tasks = sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name())
    print(f"{len(tasks)} asyncio tasks", file=out)
    for task in tasks:
        print(f"--- {task.get_name()}", file=out)
        for line in _awaiting(task.get_coro()):
            print(line, file=out)
    return out.getvalue()


def _thread_loops(app: Any) -> list[asyncio.AbstractEventLoop]:
    """Event loops of the consumer's own thread (aiokafka runs there), if any."""
    thread = getattr(app.consumer, "_thread", None)
    loop = getattr(thread, "thread_loop", None)
    return [loop] if loop is not None else []


def install(app: Any) -> None:
    """Log the reports on SIGUSR1 (call from within the running loop)."""

    def dump() -> None:
        report = consumer_report(app)
        try:
            report += client_report(app)
        except Exception as exc:  # private attributes of another version
            report += f"aiokafka: {exc!r}\n"
        report += tasks_report()
        for loop in _thread_loops(app):
            report += "consumer thread: " + tasks_report(loop)
        log.warning("SIGUSR1 diagnostics\n%s", report)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
