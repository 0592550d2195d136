"""Small topic-admin helpers on top of kafka-python 3.x's ``KafkaAdminClient``.

Everything here is synchronous and opens (and closes) its own admin client. kafka-python 3.x
returns plain dicts from the admin API and starts a background I/O thread in the client's
constructor; a constructor that fails to bootstrap does not stop that thread, so clients are
opened only through :func:`admin_client`, which cleans up after a failed construction too.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from infra.kafka_security import KafkaClient, as_client

__all__ = [
    "admin_client",
    "ensure_topics",
    "existing_topics",
    "port_open",
    "set_topic_configs",
    "split_bootstrap",
    "topic_configs",
    "wait_for_metadata",
]

log = logging.getLogger(__name__)

_CLIENT_ID = "puhui-admin"


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    """Split ``"host:port"`` (or ``"[v6addr]:port"``) into host and port.

    Only the first entry of a comma-separated list is used.
    """
    first = bootstrap.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bootstrap must look like host:port, got {bootstrap!r}")
    return host.strip("[]"), int(port)


def port_open(bootstrap: str, timeout: float = 1.0) -> bool:
    """Return True if a TCP connection to the (first) bootstrap address succeeds."""
    host, port = split_bootstrap(bootstrap)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def admin_client(kafka: KafkaClient | str, timeout: float = 30.0) -> Iterator[KafkaAdminClient]:
    """Open a ``KafkaAdminClient`` for ``kafka`` (a bare ``host:port`` is PLAINTEXT) and close
    it on exit.

    ``timeout`` (seconds) bounds the initial bootstrap and each request. Raises
    ``kafka.errors.KafkaTimeoutError`` if the cluster cannot be bootstrapped in time; in that
    case the client's background I/O thread is stopped as well (kafka-python 3.0 would
    otherwise leave it running).
    """
    timeout_ms = max(int(timeout * 1000), 100)
    client: KafkaAdminClient = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        client.__init__(
            **as_client(kafka).kafka_python(),
            client_id=_CLIENT_ID,
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )
    except BaseException:
        _close_half_built(client)
        raise
    try:
        yield client
    finally:
        client.close()


def _close_half_built(client: KafkaAdminClient) -> None:
    """Release what a ``KafkaAdminClient.__init__`` that raised had already started."""
    if not hasattr(client, "_net"):
        # Failed before the I/O thread was started: close whatever else exists.
        for attr in ("_client", "_metrics"):
            obj: Any = getattr(client, attr, None)
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()
        return
    client._closed = False  # close() is a no-op unless the constructor got this far
    with contextlib.suppress(Exception):
        client.close()


def wait_for_metadata(kafka: KafkaClient | str, timeout: float) -> None:
    """Block until the broker at ``bootstrap`` answers a metadata request.

    An open port is not enough: the broker must bootstrap a client (a metadata response that
    lists at least one broker) and answer a second, explicit metadata request. Raises
    ``TimeoutError`` if that does not happen within ``timeout`` seconds.
    """
    bootstrap = as_client(kafka).bootstrap
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if not port_open(bootstrap, timeout=min(1.0, remaining)):
            last_error = ConnectionRefusedError(f"nothing accepts connections on {bootstrap}")
        else:
            try:
                with admin_client(kafka, timeout=min(10.0, remaining)) as admin:
                    admin.list_topics()
                return
            except (kafka_errors.KafkaError, OSError) as exc:
                last_error = exc
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
    raise TimeoutError(
        f"Kafka at {bootstrap} did not answer a metadata request within {timeout:.1f}s"
        f" (last error: {last_error!r})"
    )


def existing_topics(kafka: KafkaClient | str, timeout: float = 30.0) -> set[str]:
    """Return the names of all topics on the cluster the principal may see, internal ones
    included."""
    with admin_client(kafka, timeout=timeout) as admin:
        return set(admin.list_topics())


def ensure_topics(kafka: KafkaClient | str, topics: Mapping[str, int], timeout: float = 30) -> None:
    """Create the missing ones of ``topics`` (name -> partition count), replication factor 1.

    Topics that already exist are left alone (a differing partition count is only logged).
    Safe to call repeatedly and from several processes at once: a topic that someone else
    creates between our check and our request (``TopicAlreadyExistsError``) counts as
    created. Returns once every requested topic has a leader for each partition; raises
    ``TimeoutError`` if that takes longer than ``timeout`` seconds, and the broker's error
    (a ``kafka.errors.KafkaError``) if it refuses a topic.
    """
    for name, partitions in topics.items():
        if not name or int(partitions) < 1:
            raise ValueError(f"bad topic spec {name!r}: {partitions!r}")
    if not topics:
        return
    deadline = time.monotonic() + timeout

    def remaining_ms() -> int:
        return max(int((deadline - time.monotonic()) * 1000), 100)

    try:
        with admin_client(kafka, timeout=timeout) as admin:
            present = set(admin.list_topics())
            missing = {n: int(p) for n, p in topics.items() if n not in present}
            if missing:
                _create(admin, missing, remaining_ms())
            _warn_on_partition_mismatch(admin, topics, present)
            admin.wait_for_topics(list(topics), timeout_ms=remaining_ms())
    except kafka_errors.KafkaTimeoutError as exc:
        raise TimeoutError(
            f"topics {sorted(topics)} not ready on {as_client(kafka).bootstrap}: {exc}"
        ) from exc


def _create(admin: KafkaAdminClient, missing: Mapping[str, int], timeout_ms: int) -> None:
    """Send one CreateTopics request; tolerate topics that appeared in the meantime."""
    spec = {
        name: {"num_partitions": partitions, "replication_factor": 1}
        for name, partitions in missing.items()
    }
    response = admin.create_topics(spec, timeout_ms=timeout_ms, raise_errors=False)
    for result in response.get("topics", []):
        error_type = kafka_errors.for_code(result.get("error_code", 0))
        if error_type is kafka_errors.NoError:
            log.info(
                "created topic %s (%s partitions)",
                result.get("name"),
                missing.get(result.get("name", ""), "?"),
            )
        elif error_type is kafka_errors.TopicAlreadyExistsError:
            log.debug("topic %s was created concurrently", result.get("name"))
        else:
            raise error_type(
                f"creating topic {result.get('name')!r} failed: {result.get('error_message')}"
            )


def _warn_on_partition_mismatch(
    admin: KafkaAdminClient, wanted: Mapping[str, int], present: set[str]
) -> None:
    """Log topics that existed beforehand with a different partition count."""
    pre_existing = [name for name in wanted if name in present]
    if not pre_existing:
        return
    for info in admin.describe_topics(pre_existing):
        name = info.get("name")
        have = len(info.get("partitions") or [])
        if name in wanted and have and have != int(wanted[name]):
            log.warning(
                "topic %s exists with %d partitions, wanted %d; left alone",
                name,
                have,
                wanted[name],
            )


def set_topic_configs(
    kafka: KafkaClient | str, configs: Mapping[str, Mapping[str, str]], timeout: float = 30
) -> None:
    """Set configs (e.g. ``retention.ms``) on existing topics, incrementally: other configs of
    a topic are left as they are. Raises ``RuntimeError`` naming the topic if the broker refuses
    one."""
    if not configs:
        return
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(values))
        for name, values in configs.items()
    ]
    with admin_client(kafka, timeout=timeout) as admin:
        # raise_on_unknown would first describe the topic's configs, which a principal may
        # lack the right to do: the broker itself refuses an unknown or forbidden key.
        result = admin.alter_configs(resources, raise_on_unknown=False)
    for name, outcome in (result.get("topic") or {}).items():
        if str(outcome) != "OK":
            raise RuntimeError(f"config of topic {name!r} refused: {outcome}")


def topic_configs(kafka: KafkaClient | str, name: str, timeout: float = 30) -> dict[str, str]:
    """The configs of one topic (name -> value), as the broker describes them."""
    with admin_client(kafka, timeout=timeout) as admin:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    entries = (described.get("topic") or {}).get(name) or {}
    return {key: str(info.get("value")) for key, info in entries.items()}
