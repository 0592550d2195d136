"""The root of the errors Puhui raises on purpose.

``except PuhuiError`` catches every refusal the project itself makes (a bad configuration
file, an unusable setting, a broker that will not start, an untested Faust), and nothing a
bug raises. Each subclass keeps the builtin base it had (``ValueError``, ``RuntimeError``), so
existing handlers keep working.
"""

from __future__ import annotations

from pathlib import Path


class PuhuiError(Exception):
    """Base of every error Puhui raises on purpose."""


class ConfigFileError(PuhuiError, ValueError):
    """A configuration file (zone registry, rules, escalation policy, …) that cannot be used.

    ``file`` is the file (``None`` for a document built in memory), ``line`` the 1-based line of
    the problem when known (YAML syntax, duplicate keys), ``field`` the dotted field of the first
    problem (``None`` for the whole file). The message names all three where known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file: str | None = None if file is None else str(file)
        self.field = field
        self.line = line
        self.detail = message
        super().__init__(message)

    @classmethod
    def about(
        cls,
        file: str | Path | None,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
    ) -> ConfigFileError:
        """The error with the standard message ``<file>[:<line>]: [field 'x': ]message``."""
        where = "config" if file is None else str(file)
        if line is not None:
            where += f":{line}"
        text = f"{where}: field {field!r}: {message}" if field else f"{where}: {message}"
        error = cls(text, file=file, field=field, line=line)
        error.detail = message
        return error
