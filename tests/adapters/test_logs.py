"""Log lines: text by default, or one JSON object per line carrying the ids a record concerns."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mode.utils.logging import setup_logging
from pydantic import ValidationError

from infra.logs import CONTEXT_FIELDS, TEXT_FORMAT, JsonFormatter, configure_logging, logging_config
from infra.settings import Settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes the process's root logger; put it back for the other tests."""
    root = logging.getLogger()
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name, lg in [("", root), *((n, logging.getLogger(n)) for n in UVICORN_LOGGERS)]
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name or None)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def record(msg: str = "alert %s raised", *args: Any, **extra: Any) -> logging.LogRecord:
    log = logging.getLogger("puhui.worker")
    return log.makeRecord(
        log.name, logging.WARNING, __file__, 1, msg, args or ("a-1",), None, extra=extra
    )


def lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines()]


def test_json_line_has_the_fields_and_the_ids_present() -> None:
    line = JsonFormatter().format(
        record(zone_id="tianzifang-taikang-210", alert_id="a-1", reading_id=None)
    )
    entry = json.loads(line)
    assert "\n" not in line
    assert entry.pop("ts").endswith("+00:00")
    assert entry == {
        "level": "WARNING",
        "logger": "puhui.worker",
        "msg": "alert a-1 raised",
        "zone_id": "tianzifang-taikang-210",
        "alert_id": "a-1",
    }


def test_json_line_keeps_every_context_field() -> None:
    ids = {name: f"{name}-7" for name in CONTEXT_FIELDS}
    entry = json.loads(JsonFormatter().format(record(**ids)))
    assert {name: entry[name] for name in CONTEXT_FIELDS} == ids
    assert set(CONTEXT_FIELDS) == {"zone_id", "alert_id", "reading_id", "command_id", "report_id"}


def test_json_line_timestamp_is_utc_with_milliseconds() -> None:
    rec = record()
    rec.created = 1_790_000_000.25
    assert json.loads(JsonFormatter().format(rec))["ts"] == "2026-09-21T14:13:20.250+00:00"


def test_json_line_is_one_line_whatever_the_message() -> None:
    rec = record("rejected: %s", "line one\nline two — 田子坊")
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    assert json.loads(line)["msg"] == "rejected: line one\nline two — 田子坊"
    assert "田子坊" in line  # readable, not \\u escapes


def test_json_line_carries_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record(zone_id="mengxi-residential")
        rec.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["exc"].startswith("Traceback")
    assert "ValueError: boom" in entry["exc"]
    assert entry["zone_id"] == "mengxi-residential"


def test_json_line_survives_ids_that_are_not_strings() -> None:
    alert_id = uuid.uuid5(uuid.NAMESPACE_URL, "puhui")
    entry = json.loads(JsonFormatter().format(record(alert_id=alert_id)))
    assert entry["alert_id"] == str(alert_id)


def test_json_configuration_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="info"))
    logging.getLogger("puhui.worker").info(
        "alert %s raised", "a-9", extra={"zone_id": "luone-atrium", "alert_id": "a-9"}
    )
    logging.getLogger("puhui.worker").debug("not at INFO")
    [entry] = lines(capsys.readouterr().err)
    assert entry["msg"] == "alert a-9 raised"
    assert (entry["zone_id"], entry["alert_id"]) == ("luone-atrium", "a-9")


def test_text_is_the_default_and_keeps_the_old_format(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUHUI_LOG_FORMAT", raising=False)
    settings = Settings()
    assert settings.log_format == "text"
    configure_logging(settings)
    logging.getLogger("puhui").info("worker ready", extra={"zone_id": "luone-atrium"})
    err = capsys.readouterr().err
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO puhui worker ready\n", err)
    assert TEXT_FORMAT == "%(asctime)s %(levelname)s %(name)s %(message)s"


def test_log_format_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUHUI_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("PUHUI_LOG_FORMAT", "yaml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()


def test_json_wins_when_the_faust_worker_sets_up_logging(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Faust's Worker (mode) clears the root handlers and applies its own dictConfig when it
    starts; given ``logging_config=logging_config(settings)`` it applies ours instead."""
    settings = Settings(log_format="json")
    configure_logging(settings)
    setup_logging(loglevel="INFO", logging_config=logging_config(settings))
    logging.getLogger("faust.worker").info("[^Worker]: Ready")
    [entry] = lines(capsys.readouterr().err)
    assert (entry["logger"], entry["msg"]) == ("faust.worker", "[^Worker]: Ready")


def test_uvicorn_loggers_reach_the_root_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """uvicorn gives its loggers handlers of their own; the configuration takes them back."""
    logging.getLogger("uvicorn.access").addHandler(logging.StreamHandler(sys.stderr))
    logging.getLogger("uvicorn.access").propagate = False
    configure_logging(Settings(log_format="json"))
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "ip", "GET", "/", "1.1", 200
    )
    [entry] = lines(capsys.readouterr().err)
    assert entry["logger"] == "uvicorn.access"
    assert entry["msg"] == 'ip - "GET / HTTP/1.1" 200'


def test_the_cli_logs_json_lines(tmp_path: Path) -> None:
    """A real ``puhui`` process (database migrations log at INFO): every stderr line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")}
    env.update(PUHUI_LOG_FORMAT="json", PUHUI_STATE_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "migrate"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    entries = lines(result.stderr)
    assert entries, "no log lines"
    assert {e["logger"].split(".")[0] for e in entries} >= {"alembic"}
    assert all({"ts", "level", "logger", "msg"} <= e.keys() for e in entries)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_tokens_never_reach_a_log_line(log_format: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Defence in depth: a client that puts its token in the URL (the API refuses it, but the
    access log has written the request line by then) or a token in an error message."""
    token = "ph_" + "Abc-_9" * 7
    configure_logging(Settings(log_format=log_format))  # type: ignore[arg-type]
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/api/alerts/stream?zone=a&access_token={token}&Ticket=t-123",
        "1.1",
        400,
    )
    try:
        raise RuntimeError(f"bad token {token}")
    except RuntimeError:
        logging.getLogger("puhui.api").exception("failed with %s", token)
    logging.getLogger("puhui.api").info("graph_metrics_total stays; ?zone=a stays")
    err = capsys.readouterr().err
    assert token not in err and "t-123" not in err
    assert "access_token=[redacted]" in err and "Ticket=[redacted]" in err
    assert "zone=a" in err and "graph_metrics_total stays" in err
    assert err.count("[redacted]") >= 4
