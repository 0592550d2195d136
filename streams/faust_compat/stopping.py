"""A worker whose stop is bounded: SIGTERM or SIGINT, and the process is gone within
``stop_timeout`` seconds, whatever it was waiting for (a database that does not answer, a broker
that is gone).

Faust stops by letting each agent finish its record, then committing what was acknowledged. An
agent whose write is retrying would hold that stop forever. Past the deadline the process exits
at once, with status 70: offsets are committed only for records already persisted (the one being
retried is not acknowledged), so nothing is lost — the next start replays it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import faust

#: The exit status of a worker that had to be ended by its stop deadline (EX_SOFTWARE).
DEADLINE_EXIT = 70


class Worker(faust.Worker):
    """``faust.Worker`` with a stop deadline, armed by the first SIGTERM or SIGINT (same name,
    so its log lines read as Faust's: "[^Worker]: Ready")."""

    def __init__(self, *args: Any, stop_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_timeout = stop_timeout
        self._deadline: threading.Timer | None = None

    def _arm_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self.stop_timeout, _exit_now, (self.stop_timeout,))
            self._deadline.daemon = True
            self._deadline.start()

    def _on_sigterm(self) -> None:
        self._arm_deadline()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm_deadline()
        super()._on_sigint()


def _exit_now(timeout: float) -> None:
    os.write(
        2,
        f"puhui worker: not stopped within {timeout:g} s; exiting without committing "
        "what was not persisted (it is replayed on the next start)\n".encode(),
    )
    os._exit(DEADLINE_EXIT)
