"""The worker flushes its staged zone states at the start of every offset commit.

Readings stage their zone's state (``ZoneStates.save`` with a partition); the table write and
its changelog record happen at the next flush. The readings topic's offset must never be
committed past a reading whose state is not in the changelog, so the flush has to come before
Faust's consumer takes the offsets to commit. This exercises the real Faust consumer the real
app builds (no broker is contacted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.settings import Settings
from streams.app import create_app


async def test_a_commit_flushes_the_staged_states_before_it_takes_the_offsets(
    tmp_path: Path,
) -> None:
    settings = Settings(
        state_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'puhui.db'}",
        kafka_security_protocol="PLAINTEXT",  # never connects
    )
    pipeline = create_app(settings)
    order: list[str] = []
    states = pipeline.states
    state = states.get("zone-a")
    state.clock = 1.0
    states.save(state, partition=2)
    assert states.staged == {"zone-a": 2}

    def write(key: str, value: dict[str, Any], partition: int) -> None:
        order.append(f"write {key}@{partition}")

    states.writer = write
    consumer = pipeline.app.consumer

    def offsets(tps: Any) -> dict[Any, int]:
        order.append("take offsets")
        return {}

    consumer._filter_committable_offsets = offsets  # type: ignore[method-assign]
    await consumer.commit()
    assert order == ["write zone-a@2", "take offsets"]
    assert states.staged == {}
    await consumer.commit()
    assert order[2:] == ["take offsets"], "nothing staged: no write"
