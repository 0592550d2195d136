"""HTTP request metrics: a metrics object built on a passed-in registry, an ASGI middleware that
fills it, and the ``/metrics`` router that exposes the registry.

Requests are labelled by their route *template* (``/alerts/{alert_id}``), never by the raw path,
so the number of label values stays bounded; requests no route matched share one label.

Streams (a ``text/event-stream`` answer, such as ``/api/alerts/stream``) stay open for minutes by
design: their time goes to ``puhui_http_stream_duration_seconds``, never into the request latency
histogram, whose p99 would otherwise read as the stream's lifetime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["UNMATCHED_ROUTE", "HttpMetrics", "MetricsMiddleware", "metrics_router"]

UNMATCHED_ROUTE = "<unmatched>"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: How long stream connections stay open: seconds to a working day.
STREAM_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0)
STREAM_CONTENT_TYPE = b"text/event-stream"


@dataclass(frozen=True, slots=True)
class HttpMetrics:
    """The API's request metrics."""

    requests: Counter
    duration: Histogram
    stream_duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HttpMetrics:
        """Register every metric on ``registry``."""
        return cls(
            requests=Counter(
                "puhui_http_requests",
                "HTTP requests answered, by method, route template and status code",
                ["method", "route", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "puhui_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template",
                ["route"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            stream_duration=Histogram(
                "puhui_http_stream_duration_seconds",
                "How long a streamed answer (server-sent events) stayed open, by route template",
                ["route"],
                buckets=STREAM_BUCKETS,
                registry=registry,
            ),
        )

    def observe(
        self, method: str, route: str, status: int, seconds: float, *, stream: bool = False
    ) -> None:
        """Count one answered request; a stream's time goes to its own histogram."""
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        if stream:
            self.stream_duration.labels(route=route).observe(seconds)
        else:
            self.duration.labels(route=route).observe(seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that handled ``scope`` (set by the router), or a fixed label."""
    route: Any = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Pure ASGI middleware: times each HTTP request and counts it once its status is known.

    An exception that escapes the app counts as status 500 (the server error middleware outside
    this one turns it into that response).
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        stream = False
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = int(message["status"])
                stream = any(
                    name.lower() == b"content-type" and value.startswith(STREAM_CONTENT_TYPE)
                    for name, value in message.get("headers", ())
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status = 500
            raise
        finally:
            self.metrics.observe(
                scope["method"],
                route_template(scope),
                status,
                time.perf_counter() - start,
                stream=stream,
            )


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    """A router serving ``GET /metrics`` from ``registry`` in the Prometheus text format."""
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
