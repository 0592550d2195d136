"""The HTTP API's factory. Nothing connects at import time: :func:`create_api` builds the engine,
the metrics registry, the zone registry, the Kafka producer + alert feed and the routers from the
settings it is given; the broker connections start in the app's lifespan, in the background.

The entrypoint reads :class:`~infra.settings.Settings` from the environment once and passes it
here; tests construct ``Settings(...)`` and call the factory directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from api.bus import AlertHub, KafkaBus, Publisher
from api.context import ApiContext, load_registry
from api.errors import install_error_handlers
from api.health import ReadyCheck, default_ready_check, health_router
from api.limits import BodyLimitMiddleware, FailureGuard, TokenBucketLimiter
from api.metrics import HttpMetrics, MetricsMiddleware, metrics_router
from api.pages import router as pages_router
from api.retention import RetentionJob
from api.routes.alerts import alerts_router
from api.routes.cases import case_photo_rule, cases_router
from api.routes.daily import daily_router
from api.routes.invitations import invitations_router
from api.routes.photos import MULTIPART_OVERHEAD, PhotoAccess, photos_router
from api.routes.reports import reports_router
from api.routes.silences import silences_router
from api.routes.zones import zones_router
from infra.db import make_engine
from infra.settings import Settings
from models.topics import TopicNames
from models.zones import ZoneRegistry

__all__ = [
    "API_TITLE",
    "Companion",
    "CompanionDeps",
    "CompanionFactory",
    "Runtime",
    "create_api",
    "package_version",
]

API_TITLE = "Puhui 浦汇 API"


def package_version() -> str:
    """The installed version of the ``puhui`` distribution (``0+unknown`` if not installed)."""
    try:
        return version("puhui")
    except PackageNotFoundError:
        return "0+unknown"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Companion(Protocol):
    """A background service run inside the API process (started and stopped with the app's
    lifespan), such as the notifier on a single machine. The API does not know what it is:
    the composition root (:mod:`entrypoints`) hands it in."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CompanionDeps:
    """What the API shares with its companions."""

    settings: Settings
    engine: Engine
    registry: CollectorRegistry
    zones: ZoneRegistry


#: builds a companion from what the API shares (``None``: it does not run)
CompanionFactory = Callable[[CompanionDeps], "Companion | None"]


def create_api(
    settings: Settings,
    *,
    engine: Engine | None = None,
    ready_check: ReadyCheck | None = None,
    publisher: Publisher | None = None,
    hub: AlertHub | None = None,
    zones: ZoneRegistry | None = None,
    now: Callable[[], datetime] = _utc_now,
    companions: Sequence[CompanionFactory] = (),
) -> FastAPI:
    """Build the API application.

    ``engine`` defaults to one for ``settings.resolved_database_url()`` (disposed when the app
    shuts down; a given engine is left to its owner). ``ready_check`` defaults to the broker,
    topic and database checks of :func:`api.health.default_ready_check`. ``publisher`` defaults
    to the aiokafka producer of a :class:`~api.bus.KafkaBus`, which also feeds ``hub`` (the live
    alert stream) from ``puhui.alerts``; both start in the lifespan. A given publisher is left to
    its owner and nothing consumes (tests feed ``hub`` themselves). ``zones`` defaults to the
    registry the settings name; ``now`` is the clock (report times, command times, rate limits,
    silence windows). The app's ``state`` carries ``settings``, ``engine``,
    ``metrics_registry``, ``zones``, ``alert_hub``, ``bus``, ``companions`` (the background
    services ``companions`` built, started in the lifespan; none unless the API consumes),
    ``photo_access`` (who may read a photo: :class:`~api.routes.photos.PhotoAccess`, rules added
    with ``allow``) and ``ctx`` (the :class:`ApiContext`).
    The console (``/``) and the volunteer page (``/report``) come from :mod:`api.pages`.

    The database must be migrated already (``puhui api`` and ``puhui migrate`` do it).
    """
    db = engine if engine is not None else make_engine(settings.resolved_database_url())
    hub = hub if hub is not None else AlertHub()
    bus = KafkaBus(settings, hub) if publisher is None else None
    ctx = _context(settings, db, publisher if publisher is not None else bus, hub, zones, now)
    registry = CollectorRegistry()
    metrics = HttpMetrics.create(registry)  # registered before the companions' metrics
    runtime = Runtime(
        engine=db,
        owns_engine=engine is None,
        bus=bus,
        companions=_companions(companions, ctx, registry) if bus is not None else [],
        retention=RetentionJob(
            db,
            now,
            settings.report_retention_days,
            settings.retention_interval_seconds,
            photo_dir=settings.resolved_photo_dir(),
        ),
    )
    app = FastAPI(
        title=API_TITLE,
        version=package_version(),
        description=API_DESCRIPTION,
        lifespan=runtime.lifespan,
        openapi_tags=OPENAPI_TAGS,
    )
    _set_state(app, ctx, registry, runtime, _photo_access(db))
    install_error_handlers(app)
    _add_middleware(app, settings, metrics)
    check = ready_check if ready_check is not None else default_ready_check(settings, db)
    _include_routers(app, ctx, check, registry)
    app.openapi = _openapi_with_zones(app, ctx.zones)  # type: ignore[method-assign]
    return app


def _context(
    settings: Settings,
    engine: Engine,
    publisher: Publisher | None,
    hub: AlertHub,
    zones: ZoneRegistry | None,
    now: Callable[[], datetime],
) -> ApiContext:
    """What every route factory is given."""
    return ApiContext(
        settings=settings,
        engine=engine,
        zones=zones if zones is not None else load_registry(settings),
        topics=TopicNames.with_prefix(settings.topic_prefix),
        publisher=publisher,  # type: ignore[arg-type]
        hub=hub,
        report_limiter=TokenBucketLimiter(
            burst=settings.report_rate_burst,
            per_minute=settings.report_rate_per_minute,
            now=now,
        ),
        now=now,
    )


def _companions(
    factories: Sequence[CompanionFactory], ctx: ApiContext, registry: CollectorRegistry
) -> list[Companion]:
    """The background services the factories build (the notifier on a single machine)."""
    deps = CompanionDeps(
        settings=ctx.settings, engine=ctx.engine, registry=registry, zones=ctx.zones
    )
    return [c for c in (make(deps) for make in factories) if c is not None]


@dataclass
class Runtime:
    """What runs beside the routes, started and stopped by the app's lifespan: the Kafka bus
    (producer + alert feed; ``None`` when a publisher was given), the companions, the retention
    job; and the engine, disposed at the end when the app created it."""

    engine: Engine
    owns_engine: bool
    bus: KafkaBus | None
    companions: list[Companion]
    retention: RetentionJob

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """Start in order (bus, companions, retention); stop in reverse, whatever happens."""
        if self.bus is not None:
            await self.bus.start()
        for companion in self.companions:
            await companion.start()
        erasing = asyncio.create_task(self.retention.run_forever(), name="puhui-retention")
        try:
            yield
        finally:
            erasing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await erasing
            for companion in reversed(self.companions):
                await companion.stop()
            if self.bus is not None:
                await self.bus.stop()
            if self.owns_engine:
                self.engine.dispose()


def _photo_access(engine: Engine) -> PhotoAccess:
    """Who may read a photo: its uploader, operators, and the responders of their unit's cases
    that refer to it (more rules: ``app.state.photo_access.allow``)."""
    access = PhotoAccess()
    access.allow(case_photo_rule(engine))
    return access


def _set_state(
    app: FastAPI,
    ctx: ApiContext,
    registry: CollectorRegistry,
    runtime: Runtime,
    photo_access: PhotoAccess,
) -> None:
    """``app.state``: what the entrypoint, the dependencies and the tests reach for."""
    settings = ctx.settings
    app.state.settings = settings
    app.state.engine = ctx.engine
    app.state.metrics_registry = registry
    app.state.zones = ctx.zones
    app.state.alert_hub = ctx.hub
    app.state.bus = runtime.bus
    app.state.companions = runtime.companions
    app.state.retention = runtime.retention
    app.state.photo_access = photo_access
    app.state.ctx = ctx
    app.state.auth_guard = FailureGuard(
        limit=settings.auth_failure_limit,
        window_seconds=settings.auth_failure_window_seconds,
        now=ctx.now,
    )


def _add_middleware(app: FastAPI, settings: Settings, metrics: HttpMetrics) -> None:
    """The body-size limit (the photo upload's own), inside the request metrics."""
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        per_path={"/api/photos": settings.photo_max_bytes + MULTIPART_OVERHEAD},
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)


def _include_routers(
    app: FastAPI, ctx: ApiContext, check: ReadyCheck, registry: CollectorRegistry
) -> None:
    """Every route, in matching order: one line per area (``api/routes/<area>.py``)."""
    app.include_router(health_router(check, ctx.settings.ready_cache_seconds))
    app.include_router(metrics_router(registry))
    app.include_router(zones_router(ctx))
    app.include_router(daily_router(ctx))
    app.include_router(invitations_router(ctx))
    app.include_router(reports_router(ctx))
    app.include_router(photos_router(ctx, app.state.photo_access))
    app.include_router(alerts_router(ctx))
    app.include_router(silences_router(ctx))
    app.include_router(cases_router(ctx))
    app.include_router(pages_router)


API_DESCRIPTION = """\
Incident monitoring for 打浦桥街道: health, metrics, the control room and volunteer reports.

**Access**: `Authorization: Bearer <token>` (`puhui token create --role volunteer|operator|admin
--name NAME [--expires-in 8h]`), in the header only: a token in the URL (`?access_token=`) is a
400. Volunteers submit reports and read their own; operators read and act on alerts; admins also
manage silences. No, unknown, revoked or expired token: 401; a role too low: 403; many 401s from
one address: 429 for a while.

**Errors** share one shape, `{"error": {"code", "message", "details"?}}`; a 422 names each bad
field in `details[].field`. A body that is not JSON is a 400, one over the size limit a 413.
Nothing is written when a request is rejected.

**Operator actions are commands**: they go to `puhui.alert-commands`; the worker applies them and
publishes the alert record, so they answer 202 and show up on the live stream and in the alert's
history moments later.
"""

OPENAPI_TAGS = [
    {"name": "reports", "description": "Volunteer reports (Open311 GeoReport v2 in spirit)"},
    {"name": "photos", "description": "Photos: uploaded, stripped of metadata, served by role"},
    {"name": "alerts", "description": "The alert board, actions, live stream and CAP export"},
    {"name": "incidents", "description": "Every alert episode, open and closed"},
    {"name": "cases", "description": "Cases: 立案 → 派遣 → 处置 → 核查 → 结案, and units"},
    {"name": "silences", "description": "Hold back notifications for matching alerts"},
    {"name": "zones", "description": "The zone registry with live crowd figures"},
    {"name": "access", "description": "Who the token belongs to"},
    {"name": "operations", "description": "Probes and metrics"},
]


def _openapi_with_zones(app: FastAPI, zones: ZoneRegistry) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the registry's zone ids and sites as the allowed values of the
    request bodies' ``zone_id`` and ``site`` (clients can offer them as choices)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        choices = {"zone_id": sorted(zones.ids()), "site": sorted(zones.sites())}
        for component in schema.get("components", {}).get("schemas", {}).values():
            for name, values in choices.items():
                prop = component.get("properties", {}).get(name)
                if prop is None or component.get("additionalProperties") is not False:
                    continue  # request bodies only (they forbid extra fields)
                branches = prop.get("anyOf", [prop])
                for branch in branches:
                    if branch.get("type") == "string":
                        branch["enum"] = values
        app.openapi_schema = schema
        return schema

    return openapi
