"""The browser pages: the operators' console at ``/``, the volunteers' page at ``/report`` and the
responders' field page at ``/field``.

Plain HTML, CSS and JavaScript from ``api/static/``, no build step and nothing loaded from another
origin. The pages talk to the JSON API with the bearer token the user typed or a one-time sign-in
link gave (the console keeps it in the tab's ``sessionStorage``; the volunteer page in
``localStorage`` until "sign out"). Every response here carries a Content-Security-Policy that
allows scripts, styles, connections and the web app manifest from this origin only (images
also from ``blob:`` URLs: photos are fetched with the token and shown from the browser's
memory): the pages insert user text as text, never as markup, and the policy is a second line
should that ever slip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.errors import NotFound

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "router"]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"

_MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files that change with the code: always revalidate (ETag / Last-Modified).
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    media_type = _MEDIA_TYPES.get(path.suffix)
    # Only files directly in static/ with a known type: no traversal, no directory listing.
    if "/" in name or "\\" in name or name.startswith(".") or media_type is None:
        raise NotFound(f"no such file: {name}")
    if not path.is_file():
        raise NotFound(f"no such file: {name}")
    return FileResponse(path, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
def console_page() -> FileResponse:
    """The operators' console."""
    return _file("console.html")


@router.get("/report")
def report_page() -> FileResponse:
    """The volunteers' report page."""
    return _file("report.html")


@router.get("/daily-report")
def daily_report_page() -> FileResponse:
    """The printable daily report (operators)."""
    return _file("daily-report.html")


@router.get("/field")
def field_page() -> FileResponse:
    """The responders' field page (their unit's open cases)."""
    return _file("field.html")


@router.get("/report-sw.js")
def report_service_worker() -> FileResponse:
    """The volunteer page's service worker (at the root so that it may control ``/report``)."""
    return _file("report-sw.js")


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """A script, stylesheet or icon of the pages."""
    return _file(name)
