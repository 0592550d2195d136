"""The README stays true: every setting, topic and scenario it must document is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from models.topics import TopicNames

pytestmark = pytest.mark.unit

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_configuration_table(name: str) -> None:
    assert f"| `PUHUI_{name.upper()}`" in README


@pytest.mark.parametrize("topic", TopicNames().all())
def test_every_topic_is_in_the_contract(topic: str) -> None:
    assert f"`{topic}`" in README


def test_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
