"""``puhui bench``: the pipeline's throughput, latency and memory, measured side by side.

One run starts its own Apache Kafka broker (temporary state directory, free loopback ports; never
the shared test broker) and its own processes, and measures:

(a) ``raw``: a raw aiokafka consumer reading M queued readings (the client's floor);
(b) ``faust``: a bare Faust agent (one agent, ``concurrency=1``, iterating ``stream.events()`` and
    counting, in its own process) on the same queued readings (Faust's own floor);
(c) ``pipeline``: ``puhui worker`` draining the same N readings over the synthetic zones — every
    stage: validation, dedupe, classification, zone state (table changelog), alert publication,
    persistence, metrics — from worker-ready until ``puhui_readings_processed_total`` +
    duplicates + rejected reaches N on the worker's ``/metrics``; then the persist agent must
    catch up (database history rows = alert records on the topic);
(d) ``latency``: under a steady offered load (1 000 readings/s by default), for each alert record
    on ``puhui.alerts``, the delay from the produce time of the reading its
    ``evidence.reading_id`` names to the record's arrival at a consumer (another process);
(e) ``rss``: the worker's VmRSS once each of 1 000 zones holds state;
(f) ``cadence`` (with ``--cadence``): the worker's CPU per reading on the busy evening with the
    cameras every 30 s, then every ``--cadence-fast`` s (each on a fresh worker, fresh topics,
    at least ``--cadence-minutes`` of event time, about as many readings), and their ratio.

Every wait has a deadline; every process started here (broker, workers, helpers) is stopped on
the way out, on error and on Ctrl-C too. ``python -m tools.bench bare-agent|alert-latency``
are the helper processes' entry points (used by the bench itself).

The package, by concern (``lint-imports`` holds the order: a module imports only those below it):

* :mod:`~tools.bench.cli` — ``puhui bench``: its options, the command (and
  :mod:`~tools.bench.helpers`, the helper processes' entry points);
* :mod:`~tools.bench.run` — :func:`run_bench`: the private broker(s), the runs, the clean-up;
* :mod:`~tools.bench.phases` — :class:`~tools.bench.phases.Bench`: (a)…(f) on one broker;
* :mod:`~tools.bench.workloads` — what is sent and how; :mod:`~tools.bench.measure` — what is
  read off the processes, the broker and the database; :mod:`~tools.bench.report` — the
  targets, the report, the profile summaries, the table;
* :mod:`~tools.bench.processes` — starting, awaiting and stopping processes;
* :mod:`~tools.bench.options` — :class:`BenchOptions` and :class:`BenchError`.
"""

from tools.bench.cli import add_arguments, command_line, main_bench, options_from
from tools.bench.measure import percentile
from tools.bench.options import BenchError, BenchOptions
from tools.bench.report import BenchReport, render, security_ratios, summarise_profile
from tools.bench.run import run_bench
from tools.bench.workloads import Workload, busy_evening, stateful_zones, write_zones

__all__ = [
    "BenchError",
    "BenchOptions",
    "BenchReport",
    "Workload",
    "add_arguments",
    "busy_evening",
    "command_line",
    "main_bench",
    "options_from",
    "percentile",
    "render",
    "run_bench",
    "security_ratios",
    "stateful_zones",
    "summarise_profile",
    "write_zones",
]
