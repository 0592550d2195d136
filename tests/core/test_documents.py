"""One YAML loader for every configuration file: duplicate keys refused, one error type that
names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.config import RulesFileError, bundled_rules_path, parse_rules
from alerts.notify import EscalationPolicyError, load_escalation
from models.documents import load_document, parse_document
from models.errors import ConfigFileError, PuhuiError
from models.zones import ZoneRegistryError, load_bundled_zones, load_zones

pytestmark = pytest.mark.unit


def test_a_document_is_read_safely() -> None:
    assert parse_document("a: 1\nb: [x, y]\n") == {"a": 1, "b": ["x", "y"]}
    with pytest.raises(ConfigFileError):
        parse_document("!!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_a_duplicate_key_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("targets:\n  desk: 1\n  desk: 2\n", encoding="utf-8")
    with pytest.raises(ConfigFileError) as refused:
        load_document(path)
    assert refused.value.file == str(path)
    assert refused.value.line == 3
    assert str(refused.value).startswith(f"{path}:3: ")
    assert "duplicate key 'desk'" in str(refused.value)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"nope\.yaml: file not found"):
        load_document(tmp_path / "nope.yaml")


def test_the_rules_refuse_a_duplicate_key() -> None:
    """rules.yaml used to keep the last of two equal keys silently."""
    text = bundled_rules_path().read_text(encoding="utf-8")
    doubled = text.replace("defaults:\n", "defaults:\n  hold_seconds: 60\n  hold_seconds: 90\n", 1)
    assert doubled != text
    with pytest.raises(RulesFileError) as refused:
        parse_rules(doubled, load_bundled_zones(), file="my-rules.yaml")
    assert "duplicate key 'hold_seconds'" in str(refused.value)
    assert refused.value.file == "my-rules.yaml" and refused.value.line is not None


def test_every_loader_raises_the_one_error_type(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n", encoding="utf-8")
    errors: list[ConfigFileError] = []
    for load, kind in (
        (lambda: load_zones(bad), ZoneRegistryError),
        (lambda: load_escalation(bad), EscalationPolicyError),
        (
            lambda: parse_rules(bad.read_text(encoding="utf-8"), [], file=str(bad)),
            RulesFileError,
        ),
    ):
        with pytest.raises(kind) as refused:
            load()
        errors.append(refused.value)
    for error in errors:
        assert isinstance(error, ConfigFileError) and isinstance(error, PuhuiError)
        assert isinstance(error, ValueError)  # the builtin base callers caught before
        assert error.file == str(bad)
        assert error.line == 2
        assert str(error).startswith(f"{bad}: not valid YAML (line 2")


def test_a_field_problem_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text("zones:\n  - {id: a-1, name: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigFileError) as refused:
        load_zones(path)
    assert refused.value.file == str(path)
    assert refused.value.field is not None
    assert refused.value.field in str(refused.value)
