"""The one YAML loader of every configuration file (zone registry, rules, escalation policy).

:func:`load_document` reads a file and :func:`parse_document` text, with PyYAML's safe loader
(no object construction) refusing duplicate mapping keys (PyYAML silently keeps the last one:
a second ``leader:`` would quietly replace the first). Every failure is one
:class:`~models.errors.ConfigFileError` naming the file and, where YAML knows it, the line;
each loader then validates the document's shape and names the field.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from models.errors import ConfigFileError

__all__ = ["ConfigFileError", "StrictModel", "load_document", "parse_document"]


class StrictModel(BaseModel):
    """A configuration document's model: immutable, unknown fields refused (a typo is an
    error, not a silently ignored key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class UniqueKeySafeLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base constructor reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_error_message(exc: yaml.YAMLError) -> str:
    """What went wrong, with the line and column where YAML knows them."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "syntax error"
        return f"not valid YAML (line {mark.line + 1}, column {mark.column + 1}): {problem}"
    return f"not valid YAML: {exc}"


def _line(exc: yaml.YAMLError) -> int | None:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        return int(exc.problem_mark.line) + 1
    return None


def parse_document(text: str, file: str | Path | None = None) -> Any:
    """The YAML document in ``text`` (``file`` names it in errors); duplicate keys refused."""
    try:
        # UniqueKeySafeLoader subclasses SafeLoader: no arbitrary object construction.
        return yaml.load(text, Loader=UniqueKeySafeLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise ConfigFileError.about(file, yaml_error_message(exc), line=_line(exc)) from exc


def load_document(path: str | Path) -> Any:
    """The YAML document in the file at ``path``; a missing, unreadable or invalid file (or a
    duplicate key) is a :class:`ConfigFileError` naming the file and the line."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError.about(file, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError.about(file, f"cannot read file: {exc}") from exc
    return parse_document(text, file)
