"""The HTTP API's factory. Nothing connects at import time: :func:`create_api` builds the engine,
the metrics registry and the routers from the settings it is given.

The entrypoint reads :class:`~infra.settings.Settings` from the environment once and passes it
here; tests construct ``Settings(...)`` and call the factory directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from api.errors import install_error_handlers
from api.health import ReadyCheck, default_ready_check, health_router
from api.metrics import HttpMetrics, MetricsMiddleware, metrics_router
from infra.db import make_engine
from infra.settings import Settings

__all__ = ["API_TITLE", "create_api", "package_version"]

API_TITLE = "Puhui 浦汇 API"


def package_version() -> str:
    """The installed version of the ``puhui`` distribution (``0+unknown`` if not installed)."""
    try:
        return version("puhui")
    except PackageNotFoundError:
        return "0+unknown"


def create_api(
    settings: Settings,
    *,
    engine: Engine | None = None,
    ready_check: ReadyCheck | None = None,
) -> FastAPI:
    """Build the API application.

    ``engine`` defaults to one for ``settings.resolved_database_url()`` (disposed when the app
    shuts down; a given engine is left to its owner). ``ready_check`` defaults to the broker,
    topic and database checks of :func:`api.health.default_ready_check`. The app's
    ``state`` carries ``settings``, ``engine`` and ``metrics_registry``.
    """
    owns_engine = engine is None
    db = engine if engine is not None else make_engine(settings.resolved_database_url())
    check = ready_check if ready_check is not None else default_ready_check(settings, db)
    registry = CollectorRegistry()
    metrics = HttpMetrics.create(registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owns_engine:
                db.dispose()

    app = FastAPI(
        title=API_TITLE,
        version=package_version(),
        description="Incident monitoring for 打浦桥街道: health, metrics and the control room.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = db
    app.state.metrics_registry = registry

    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(health_router(check))
    app.include_router(metrics_router(registry))
    return app
