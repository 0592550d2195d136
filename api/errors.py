"""The one place where errors become HTTP responses.

Every error body has the same shape, ``{"error": {"code": ..., "message": ...}}`` (plus
``"details"`` for validation errors), so clients need one parser. Endpoints raise
:class:`ApiError` subclasses (or let FastAPI raise its own validation / HTTP errors); nothing else
builds error responses.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "error_body",
    "error_response",
    "install_error_handlers",
]

log = logging.getLogger(__name__)

_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """Base of the errors endpoints raise on purpose; ``status`` and ``code`` reach the client."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class Unauthorized(ApiError):
    """No credentials, or credentials we do not accept."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str = "a valid bearer token is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """Known caller, insufficient role."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """The addressed resource does not exist."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request contradicts the resource's current state."""

    status = 409
    code = "conflict"


class BadRequest(ApiError):
    """The request cannot be read at all (a body that is not JSON)."""

    status = 400
    code = "bad_request"


class PayloadTooLarge(ApiError):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    """The body (an uploaded file) is of a type the endpoint does not take."""

    status = 415
    code = "unsupported_media_type"


class RateLimited(ApiError):
    """Too many requests from one caller; ``retry_after`` seconds until the next is accepted."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class Unavailable(ApiError):
    """A part the request needs (the broker) is not available; nothing was written."""

    status = 503
    code = "unavailable"


class InvalidInput(ApiError):
    """A field-level validation failure found by the endpoint itself (an unknown zone, a window
    that ends before it starts); rendered exactly like FastAPI's own validation errors."""

    status = 422
    code = "invalid_request"

    def __init__(self, location: tuple[str, ...], message: str, kind: str = "value_error") -> None:
        super().__init__(f"{_dotted(location)}: {message}")
        self.details = [
            {"loc": list(location), "field": _dotted(location), "msg": message, "type": kind}
        ]


# Where a request value came from; not part of a field's name.
_LOCATION_ROOTS = frozenset({"body", "query", "path", "header", "cookie"})


def _dotted(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in _LOCATION_ROOTS:
        parts = parts[1:]
    return ".".join(parts) or (str(location[0]) if location else "")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"error": err}


def error_response(exc: ApiError) -> JSONResponse:
    """The response for ``exc`` (also used by middleware, which runs outside the handlers)."""
    details = getattr(exc, "details", None)
    return JSONResponse(
        error_body(exc.code, exc.message, details), status_code=exc.status, headers=exc.headers
    )


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str | None:
    """Every method some route serves at this path (the router names only the first route's)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed) or None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        if allowed:
            headers["Allow"] = allowed
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=headers or None,
    )


def _not_json(errors: list[Any]) -> bool:
    """True when the body could not be read as JSON at all: a syntax error, or a body sent with
    a content type other than JSON (FastAPI then hands the raw bytes to validation)."""
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            return True
        if loc == ("body",) and isinstance(error.get("input"), bytes | bytearray):
            return True
    return False


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if _not_json(errors):
        return error_response(
            BadRequest("the request body is not JSON (send Content-Type: application/json)")
        )
    details = []
    for error in errors:
        detail = {k: v for k, v in error.items() if k not in ("input", "url", "ctx")}
        if isinstance(error.get("ctx"), dict):
            detail["ctx"] = {k: str(v) for k, v in error["ctx"].items()}
        detail["field"] = _dotted(tuple(error.get("loc", ())))
        details.append(detail)
    fields = ", ".join(sorted({d["field"] for d in details if d["field"]}))
    message = f"the request is not valid: {fields}" if fields else "the request is not valid"
    return JSONResponse(
        error_body("invalid_request", message, jsonable_encoder(details)), status_code=422
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping from exceptions to error responses on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
