"""Every use of a private Faust or aiokafka name, in one place, for the tested versions only.

Puhui runs on faust-streaming and aiokafka with a few overrides; each leans on upstream
internals that a release may change without notice. So:

* they all live in this package: :mod:`.fixes` (the takeover fixes and the pre-commit hook,
  ``docs/adr/0001-faust-takeover-record-loss.md``), :mod:`.sensors` (the Prometheus monitor that
  keeps its label children), :mod:`.stopping` (the worker's stop deadline), :mod:`.diagnostics`
  (``kill -USR1``: the consumer's and aiokafka's private state, read only), :mod:`.batches` (the
  readings' batches; a stopped one is kept from being acknowledged) and the helpers below;
* importing it on versions other than :data:`TESTED_VERSIONS` raises :class:`UntestedVersionError`;
* :data:`UPSTREAM_FINGERPRINTS` holds a hash of the source of every upstream method we override,
  copy or mirror; ``tests/adapters/test_faust_compat.py`` recomputes them, so an upgrade fails a
  test, not production.

Upgrading: read the upstream changes of every method listed below, re-check each override's
invariant (its docstring says what it is and when the override can go), run the fault tests
(``pytest tests/fault``) a few times, then update :data:`TESTED_VERSIONS`, the fingerprints and
the pins in ``pyproject.toml`` together.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from models.errors import PuhuiError

#: distribution -> the version the overrides were written and fault-tested against
TESTED_VERSIONS = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}

#: ``module:qualname`` of each upstream method an override replaces, copies or relies on ->
#: the first 16 hex digits of the SHA-256 of its source (``inspect.getsource``)
UPSTREAM_FINGERPRINTS = {
    # .fixes: SeekFirstRecovery copies on_recovery_completed (seek moved before resume)
    "faust.tables.recovery:Recovery.on_recovery_completed": "6ef567acf072e46d",
    "faust.tables.manager:TableManager.recovery": "f0bf5de78b4c3d23",
    # .fixes: SnapshotConsumerThread; aiokafka reads an empty partition set as "all"
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread._fetch_records": "39a2c6c79fc1455a",
    "aiokafka.consumer.fetcher:Fetcher.fetched_records": "be4348896b9b66af",
    # .fixes: SnapshotConsumer, PuhuiApp (the transport swap and the before_commit hook)
    "faust.transport.drivers.aiokafka:Consumer._new_consumer_thread": "0870ec53dea75083",
    "faust.transport.drivers.aiokafka:Consumer.force_commit": "cc094614d22c70fb",
    "faust.app.base:App._new_transport": "42db531312dd776f",
    # .fixes: SnapshotConsumer.getmany/_getmany/seek_to_committed (a fetched record is handed
    # over or fetched again): the fetch loop that drops records, its caller, and the seeks
    "faust.transport.consumer:Consumer.getmany": "4b168d84882a70d6",
    "faust.transport.consumer:Consumer._drain_messages": "44a2500309e83c63",
    "faust.transport.consumer:Consumer.perform_seek": "0e8c130ff4b0afd8",
    "faust.transport.consumer:ThreadDelegateConsumer._getmany": "f9d47aa9010b5ff2",
    "faust.transport.consumer:ThreadDelegateConsumer.seek_to_committed": "f1d483b861b0328b",
    "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.seek_to_beginning": "bd4250b8d1e76d33",
    "aiokafka.consumer.consumer:AIOKafkaConsumer.seek_to_committed": "f6cd85c8b70a4ccf",
    # .sensors: CachedPrometheusMonitor (same metrics, children looked up once)
    "faust.sensors.prometheus:PrometheusMonitor.__init__": "c0d8ca8cca0a20a1",
    "faust.sensors.prometheus:PrometheusMonitor.on_message_in": "ca24793cbc41deb7",
    "faust.sensors.prometheus:PrometheusMonitor.on_stream_event_in": "f592409433679cf8",
    "faust.sensors.prometheus:PrometheusMonitor.on_send_initiated": "60f5bd9e11e4aa95",
    "faust.sensors.prometheus:PrometheusMonitor.on_table_get": "cc6b84a3bb0a39b9",
    "faust.sensors.prometheus:PrometheusMonitor.on_table_set": "a68b2d345dc8398a",
    "faust.sensors.prometheus:PrometheusMonitor.on_table_del": "54f25005df3a4a31",
    "faust.sensors.prometheus:PrometheusMonitor._clear_partition_related_metrics": (
        "f733982878e5c883"
    ),
    # .stopping: Worker with a stop deadline
    "faust.worker:Worker._on_sigterm": "ba99cf23ea875c02",
    "faust.worker:Worker._on_sigint": "327193230c65ea83",
    # .batches: take_events (it acks a whole batch), Message.ack (a message marked acked is
    # not acked again), and the revocation order and ack bookkeeping that make that needed
    "faust.types.tuples:Message.ack": "4751b72c4ed84153",
    "faust.streams:Stream._c_aiter": "fa44582a5882e9df",
    "faust.streams:Stream._py_aiter": "3a48ee257a65435b",
    "faust.streams:Stream.ack": "32d7171a89b0931d",
    "faust.streams:Stream.take_events": "607d48aead118ba8",
    "faust.transport.consumer:Consumer.ack": "5fcf41cf45153475",
    "faust.transport.consumer:Consumer.on_partitions_revoked": "d04b7ae72c6fc206",
    "faust.transport.consumer:Consumer.wait_empty": "e4662fe24f094819",
    "faust.transport.consumer:Consumer._commit_offsets": "1a69799041188441",
    "faust.transport.consumer:Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "faust.app.base:App._on_partitions_revoked": "d5c895bbe57dc73a",
    # table_sensor_on_set: streams/app.py's table_writer mirrors Table.__setitem__
    "faust.tables.table:Table.__setitem__": "f3bdf602abc08dd1",
}


class UntestedVersionError(PuhuiError, RuntimeError):
    """faust-streaming or aiokafka is not the version the overrides were tested against."""


def check_versions(installed: dict[str, str] | None = None) -> None:
    """Refuse to run the overrides on an untested faust-streaming or aiokafka."""
    found = installed if installed is not None else {n: version(n) for n in TESTED_VERSIONS}
    wrong = {n: v for n, v in found.items() if TESTED_VERSIONS.get(n) != v}
    if wrong:
        got = ", ".join(f"{n} {v} (tested: {TESTED_VERSIONS.get(n)})" for n, v in wrong.items())
        raise UntestedVersionError(
            f"Puhui's Faust/aiokafka overrides (streams/faust_compat/) are untested on {got}. "
            "Check each upstream method listed in streams/faust_compat/__init__.py "
            "(UPSTREAM_FINGERPRINTS) against the new release, re-run tests/adapters/"
            "test_faust_compat.py and tests/fault/, then update TESTED_VERSIONS and the pins "
            "in pyproject.toml; docs/adr/0001-faust-takeover-record-loss.md says why they exist."
        )


check_versions()


def table_sensor_on_set(table: Any, key: Any, value: Any) -> None:
    """Tell a Faust table's sensors about a write, as ``Table.__setitem__`` does (private
    ``_sensor_on_set``); used where a table key is written outside its event."""
    table._sensor_on_set(table, key, value)


def monitor_metrics(monitor: Any) -> Any:
    """The ``FaustMetrics`` of Faust's ``PrometheusMonitor`` (private ``_metrics``)."""
    return monitor._metrics
