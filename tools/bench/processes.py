"""Process control: the processes the bench starts (the workers, their helpers, py-spy), how
their start is awaited, and how they are stopped — TERM, then KILL, and SIGKILL by the kernel
should the bench itself die."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench.options import BenchError

REPO = Path(__file__).resolve().parents[2]
READY_MARK = b"[^Worker]: Ready"

# ------------------------------------------------------------------------------ processes ----


def _prctl() -> Any:
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


#: Resolved in the parent: between fork and exec the child only calls it (no dlopen there).
_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL if the bench process dies (even by SIGKILL)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


class Children:
    """Every process the bench starts; :meth:`close` stops what still runs (TERM, then KILL)."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def spawn(
        self, name: str, cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path = REPO
    ) -> Child:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(cmd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops them in order
                preexec_fn=_die_with_parent,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    @staticmethod
    def stop(child: Child, timeout: float = 20.0) -> None:
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(timeout=10)

    def close(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                self.stop(child)
        self.children.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_for_log(child: Child, mark: bytes, deadline: float, poll: float = 0.05) -> float:
    """Wall time (``time.time()``) at which ``mark`` was first seen in the child's log."""
    while True:
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} exited {child.proc.returncode}:\n{tail(child.log)}")
        with contextlib.suppress(OSError):
            if mark in child.log.read_bytes():
                return time.time()
        if time.monotonic() > deadline:
            raise BenchError(f"{child.name}: no {mark!r} in time:\n{tail(child.log)}")
        time.sleep(poll)


def changelog_topic(prefix: str) -> str:
    """The zone-state table's changelog of the worker :meth:`Bench.worker` starts on ``prefix``
    (Faust names it ``<app id>-<table>-changelog``); one record per state change."""
    return f"{app_id(prefix)}-zone-state-changelog"


def app_id(prefix: str) -> str:
    return f"puhui-{prefix.rstrip('.')}"


def python_argv() -> list[str]:
    return [sys.executable]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")}
