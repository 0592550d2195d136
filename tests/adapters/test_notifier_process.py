"""``puhui notifier`` without a webhook secret: a configuration error, said so, nothing run."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from entrypoints.cli import build_parser
from infra.settings import Settings
from notifier.process import NOT_CONFIGURED, serve

pytestmark = pytest.mark.unit


def test_without_a_secret_it_refuses_to_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'n.db'}", webhook_secret=None
    )
    with caplog.at_level(logging.ERROR, logger="puhui.notifier"):
        assert asyncio.run(serve(settings, stop=asyncio.Event())) == NOT_CONFIGURED
    assert "PUHUI_WEBHOOK_SECRET is not set" in caplog.text


def test_the_command_exists() -> None:
    args = build_parser().parse_args(["notifier"])
    assert args.command == "notifier"
    assert args.func.__name__ == "cmd_notifier"
