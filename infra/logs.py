"""Logging for every ``puhui`` process: plain text (the default) or one JSON object per line.

``PUHUI_LOG_FORMAT=json`` makes each record a line such as::

    {"ts": "2026-10-01T11:02:03.412+00:00", "level": "INFO", "logger": "puhui.worker",
     "msg": "alert ... raised", "zone_id": "tianzifang-taikang-210", "alert_id": "..."}

``ts`` is UTC with milliseconds. The ids a record concerns (:data:`CONTEXT_FIELDS`) are copied
from the record when the caller passed them with ``extra=``; a traceback goes to ``exc``.

Faust's worker and uvicorn both set up logging themselves when they start, replacing what was
configured before. Hand them the same configuration so this format wins: ``faust.Worker(...,
logging_config=logging_config(settings))`` and ``uvicorn.run(..., log_config=None)`` (uvicorn
then leaves the configuration of :func:`configure_logging` alone).

Every line goes through :class:`RedactSecrets` first: an API token (``ph_…``) or the value of a
``access_token=`` / ``token=`` / ``ticket=`` query parameter is replaced by ``[redacted]``. The
API never puts a token in a URL and refuses one that arrives there, but a client may still send
one, and uvicorn's access log writes the request line before the API can refuse it.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any, Final

from infra.settings import Settings

__all__ = [
    "CONTEXT_FIELDS",
    "TEXT_FORMAT",
    "JsonFormatter",
    "RedactSecrets",
    "configure_logging",
    "logging_config",
    "redact",
]

#: Ids a log record may carry (``log.info(..., extra={"zone_id": ...})``); JSON lines keep them.
CONTEXT_FIELDS: Final = ("zone_id", "alert_id", "reading_id", "command_id", "report_id")

#: The text format (``PUHUI_LOG_FORMAT=text``).
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Loggers that install handlers of their own; they are reset to pass records to the root.
_HANDLER_OWNING_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")


_SECRET = re.compile(
    r"\bph_[A-Za-z0-9_\-]{8,}"  # an API token (infra.tokens.TOKEN_PREFIX + urlsafe base64)
    r"|(?<=[?&;])((?:access_)?token|ticket)=[^&\s\"']*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with API tokens and credential query parameters replaced by ``[redacted]``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{name}=[redacted]" if name else "[redacted]"

    return _SECRET.sub(replace, text)


class RedactSecrets(logging.Filter):
    """A handler filter that takes tokens out of every record's message (and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``ts``, ``level``, ``logger``, ``msg``, the
    :data:`CONTEXT_FIELDS` the record carries, and ``exc`` / ``stack`` when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_text:  # already formatted (and redacted by RedactSecrets)
            entry["exc"] = record.exc_text
        elif record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an id passed as a UUID (or anything else) must not lose the line.
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration for ``settings.log_format`` and
    ``settings.log_level``: one handler on the root logger, writing to stderr."""
    if settings.log_format == "json":
        formatter: dict[str, Any] = {"()": JsonFormatter}
    else:
        formatter = {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"puhui": formatter},
        "filters": {"redact": {"()": RedactSecrets}},
        "handlers": {
            "puhui": {
                "class": "logging.StreamHandler",
                "formatter": "puhui",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["puhui"]},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": "NOTSET"}
            for name in _HANDLER_OWNING_LOGGERS
        },
    }


def configure_logging(settings: Settings) -> None:
    """Configure the process's logging from ``settings`` (call once, at the entrypoint)."""
    logging.config.dictConfig(logging_config(settings))
