"""``kill -USR1``: the reports name what the worker waits on, partition by partition."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from streams.faust_compat import diagnostics

READINGS0 = TP("puhui.sensor-readings", 0)
READINGS1 = TP("puhui.sensor-readings", 1)


def stub_app() -> Any:
    consumer = SimpleNamespace(
        assignment=lambda: {READINGS0, READINGS1},
        _active_partitions={READINGS0},
        _paused_partitions={READINGS1},
        _buffered_partitions=set(),
        _read_offset={READINGS0: 17},
        _committed_offset={READINGS0: 12},
        _acked={READINGS0: [13, 14, 15]},
        _gap={},
        flow_active=True,
    )
    return SimpleNamespace(
        consumer=consumer,
        flow_control=SimpleNamespace(is_active=lambda: True),
        in_recovery=False,
        rebalancing=False,
    )


def test_consumer_report_names_each_partitions_state_and_offsets() -> None:
    report = diagnostics.consumer_report(stub_app())
    lines = report.splitlines()
    assert lines[0].startswith("consumer: flow_active=True")
    (p0,) = [line for line in lines if "puhui.sensor-readings[0]" in line]
    (p1,) = [line for line in lines if "puhui.sensor-readings[1]" in line]
    assert "active=True" in p0 and "read=17" in p0 and "committed=12" in p0
    assert "acked=3 (13..15)" in p0
    assert "active=False" in p1 and "paused=True" in p1


async def test_tasks_report_follows_the_coroutine_chain() -> None:
    gate = asyncio.Event()

    async def innermost_wait() -> None:
        await gate.wait()

    async def outer_agent() -> None:
        await innermost_wait()

    task = asyncio.create_task(outer_agent(), name="agent-under-test")
    await asyncio.sleep(0)
    try:
        report = diagnostics.tasks_report()
    finally:
        gate.set()
        await task
    section = report.split("--- agent-under-test", 1)[1].split("---", 1)[0]
    assert "outer_agent" in section
    assert section.index("outer_agent") < section.index("innermost_wait")


async def test_sigusr1_logs_the_report(caplog: pytest.LogCaptureFixture) -> None:
    diagnostics.install(stub_app())
    try:
        with caplog.at_level(logging.WARNING, logger="puhui.diagnostics"):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(100):
                await asyncio.sleep(0.01)
                if caplog.records:
                    break
        (record,) = caplog.records
        assert "SIGUSR1 diagnostics" in record.getMessage()
        assert "puhui.sensor-readings[0]" in record.getMessage()
        assert "asyncio tasks" in record.getMessage()
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
