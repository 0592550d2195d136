"""The bench's helper processes (``python -m tools.bench bare-agent|alert-latency``): the bare
Faust agent of (b) and the alert consumer of (d)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------ helper processes ----


def _helper_kafka(bootstrap: str) -> Any:
    """A helper process's connection: ``--bootstrap`` and the ``PUHUI_KAFKA_*`` settings the
    bench put in its environment."""
    from infra.kafka_security import client_for
    from infra.settings import Settings

    return client_for(Settings(kafka_bootstrap=bootstrap), "admin")


def _bare_agent(args: argparse.Namespace) -> int:
    """(b): a Faust app with one agent that only counts events."""
    import faust

    app = faust.App(
        args.group,
        **_helper_kafka(args.bootstrap).faust(),
        store="memory://",
        datadir=args.datadir,
        web_enabled=False,
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    topic = app.topic(
        args.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=args.partitions,
    )
    target = args.count
    tenth = max(1, target // 10)
    out = Path(args.out)

    @app.agent(topic, concurrency=1, name="count")
    async def count(stream: Any) -> None:
        n = 0
        first = tenth_at = 0.0
        async for _event in stream.events():
            n += 1
            if n == 1:
                first = time.time()
            if n == tenth:
                tenth_at = time.time()
            if n == target:
                done = time.time()
                result = {
                    "count": n,
                    "first": first,
                    "tenth": tenth_at,
                    "tenth_count": tenth,
                    "done": done,
                }
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(result))
                tmp.replace(out)

    ready_file = out.with_name("ready.json")

    class Worker(faust.Worker):  # same name: its log still says "[^Worker]: Ready"
        async def on_startup_finished(self) -> None:
            # The child's own clock, not the parent's reading of the log: a fast agent may
            # count everything before the parent has seen the "Ready" line.
            ready_file.write_text(json.dumps({"ready": time.time()}))
            await super().on_startup_finished()

    Worker(app, loglevel="INFO").execute_from_commandline()
    return 0


def _alert_latency(args: argparse.Namespace) -> int:
    """(d)'s consumer: times each alert record from its causing reading's produce time."""

    async def consume() -> dict[str, Any]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        consumer = AIOKafkaConsumer(
            **_helper_kafka(args.bootstrap).aiokafka(),
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        samples: list[dict[str, Any]] = []
        records = untimed = 0
        try:
            tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for tp in tps:
                await consumer.position(tp)
            Path(args.ready_file).write_text("ready\n")
            deadline = time.monotonic() + args.max_seconds
            while not stop.is_set() and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=50)
                arrived = time.time_ns()
                for messages in batch.values():
                    for message in messages:
                        records += 1
                        sample = _timed(message.value, arrived)
                        if sample is None:
                            untimed += 1
                        else:
                            samples.append(sample)
        finally:
            await consumer.stop()
        return {"records": records, "untimed": untimed, "samples": samples}

    result = asyncio.run(consume())
    Path(args.out).write_text(json.dumps(result))
    return 0


_LATENCY_ID = re.compile(r"^l[0-9a-f]+-\d+-(\d+)$")


def _timed(raw: bytes, arrived_ns: int) -> dict[str, Any] | None:
    """Latency of one alert record, if its ``evidence.reading_id`` is the reading that caused
    it: a resolved record keeps the evidence of the reading that raised the alert, and sweeps
    (``watermark@…``) have no produce time, so neither is timed."""
    try:
        record = json.loads(raw)
        change = record["change"]
        rid = record.get("evidence", {}).get("reading_id", "")
    except (ValueError, KeyError, AttributeError):
        return None
    match = _LATENCY_ID.match(rid) if isinstance(rid, str) else None
    if change == "resolved" or match is None:
        return None
    return {"change": change, "ms": (arrived_ns - int(match.group(1))) / 1e6}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tools.bench bare-agent|alert-latency`` (the bench's helper processes)."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    sub = parser.add_subparsers(dest="helper", required=True)
    bare = sub.add_parser("bare-agent")
    bare.add_argument("--bootstrap", required=True)
    bare.add_argument("--topic", required=True)
    bare.add_argument("--group", required=True)
    bare.add_argument("--partitions", type=int, required=True)
    bare.add_argument("--count", type=int, required=True)
    bare.add_argument("--datadir", required=True)
    bare.add_argument("--out", required=True)
    bare.set_defaults(func=_bare_agent)
    lat = sub.add_parser("alert-latency")
    lat.add_argument("--bootstrap", required=True)
    lat.add_argument("--topic", required=True)
    lat.add_argument("--partitions", type=int, required=True)
    lat.add_argument("--ready-file", required=True)
    lat.add_argument("--out", required=True)
    lat.add_argument("--max-seconds", type=float, required=True)
    lat.set_defaults(func=_alert_latency)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
