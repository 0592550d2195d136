"""What ``puhui bench`` measures and how much of it (:class:`BenchOptions`), and its error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.errors import PuhuiError


class BenchError(PuhuiError, RuntimeError):
    """A bench phase failed or overran its deadline."""


@dataclass(frozen=True)
class BenchOptions:
    """What to measure, and how much of it."""

    readings: int = 50_000  # N = M: queued readings for (a), (b), (c)
    zones: int = 200  # zones of the queued readings
    rate: float = 1000.0  # (d) offered readings per second
    also_rates: tuple[float, ...] = ()  # (d) again at these rates (reported apart)
    latency_seconds: float = 30.0  # (d) how long the load is offered
    probe_zones: int = 100  # (d) zones whose gas sensor cycles 30 → 60 → 0 → 0
    rss_zones: int = 1000  # (e)
    #: (f): the busy evening with the cameras every 30 s, then every ``cadence_fast`` s (each
    #: for at least ``cadence_minutes`` of event time, on a worker of its own). Off by default.
    cadence: bool = False
    cadence_fast: float = 1.0
    cadence_minutes: float = 10.0
    partitions: int = 4
    repeat: int = 1  # runs of (a)…(f), one after the other on the same broker
    seed: int = 7
    database_url: str | None = None  # default: SQLite in the run's temporary directory
    state_dir: Path | None = None  # default: a fresh temporary directory
    keep: bool = False  # keep the state directory (logs, database) afterwards
    profile: bool = False  # py-spy the workers of (b), (c) and (d), in an extra, unmeasured run
    phase_timeout: float = 600.0  # seconds any one phase may take
    #: Run the workers of (c), (d), (e) from this source tree (a scratch copy holding a proposed
    #: change: ``python -m entrypoints.cli`` imports the tree of its working directory first).
    worker_source: Path | None = None
    #: The broker's client listener: SASL_SSL (SCRAM-SHA-512 over TLS, ACLs: what production
    #: runs), PLAINTEXT, or both: one broker of each, their runs interleaved (the cost of TLS).
    security: str = "SASL_SSL"
