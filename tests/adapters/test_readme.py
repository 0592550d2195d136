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


REPO = Path(__file__).resolve().parents[2]


def _layout() -> str:
    section = README.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_the_layout_names_every_package_and_test_directory() -> None:
    layout = _layout()
    packages = sorted(p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name != "tests")
    assert packages, "no packages found"
    for name in packages:
        assert f"\n{name}/" in layout, f"{name}/ is missing from the README's layout"
    listed = {line.split("/", 1)[0] for line in layout.splitlines() if "/ " in line[:14]}
    assert listed <= {*packages, "tests", "docs"}, listed - {*packages, "tests", "docs"}
    tests = sorted(d.name for d in (REPO / "tests").iterdir() if (d / "__init__.py").exists())
    for name in tests:
        assert f"{name}/" in layout.split("\ntests/", 1)[1], f"tests/{name}/ not in the layout"


def test_the_markers_read_the_same_in_pyproject_and_readme() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for marker, directories in {
        "unit": ("tests/core", "tests/adapters", "tests/http"),
        "integration": ("tests/integration",),
        "fault": ("tests/fault",),
        "e2e": ("tests/e2e",),
    }.items():
        line = next(x for x in pyproject.splitlines() if x.strip().startswith(f'"{marker}:'))
        for directory in directories:
            assert directory in line, (marker, directory)
            assert f"`{directory}`" in README, directory
