"""``puhui notifier``: the notifier as a process of its own.

It consumes ``puhui.alerts`` in its own consumer group (the ``notifier`` Kafka principal),
reads the silences and the attempts ledger from the database, and serves its Prometheus
metrics on ``PUHUI_NOTIFIER_HOST:PUHUI_NOTIFIER_PORT`` (loopback by default). SIGTERM or
SIGINT stops it: deliveries in flight get a moment, then it exits. Run it with
``PUHUI_NOTIFIER_IN_API=false`` on the API, so that one notifier runs per deployment.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry, start_http_server

from infra.db import make_engine
from infra.settings import Settings
from notifier.service import Notifier

log = logging.getLogger("puhui.notifier")

#: exit status when there is nothing to run (no PUHUI_WEBHOOK_SECRET): a configuration error
NOT_CONFIGURED = 78  # EX_CONFIG


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run the notifier until ``stop`` is set (by default: until SIGTERM or SIGINT)."""
    engine = make_engine(settings.resolved_database_url())
    try:
        registry = CollectorRegistry()
        notifier = Notifier.from_settings(settings, engine, registry=registry)
        if notifier is None:
            log.error("PUHUI_WEBHOOK_SECRET is not set: the notifier has nothing it may send")
            return NOT_CONFIGURED
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        server, thread = start_http_server(
            settings.notifier_port, addr=settings.notifier_host, registry=registry
        )
        log.info(
            "notifier metrics on http://%s:%d/metrics",
            settings.notifier_host,
            settings.notifier_port,
        )
        try:
            await notifier.start()
            await stop.wait()
            await notifier.stop()
        finally:
            server.shutdown()
            thread.join(timeout=5)
        return 0
    finally:
        engine.dispose()


def run(settings: Settings) -> int:
    """``puhui notifier``."""
    return asyncio.run(serve(settings))
