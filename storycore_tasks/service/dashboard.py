"""The dashboard page at ``GET /``: the tasks a token may see, live.

One static page (HTML, vanilla JavaScript and CSS; no build step, nothing fetched from
elsewhere), shipped as package data in ``storycore_tasks/service/static/`` and served
from memory. The page itself needs no token: it asks for one (kept in the tab's
``sessionStorage``) unless ``GET /v1/stats`` answers without one (``--no-auth``), then
uses the task API and ``GET /v1/events`` like any other client. A Content-Security-Policy
allows only this origin's scripts, styles and connections, and no inline script.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from storycore_tasks.errors import ErrorCodes, ErrorDetails
from storycore_tasks.service.deps import ServiceError

__all__ = ["PAGE", "router"]

PAGE = "dashboard.html"

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(?:html|js|css|svg)$")

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The event stream carries the token in its URL: never send it on as a referrer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter()


@cache
def _static(name: str) -> bytes | None:
    """A file of the package's ``static/`` folder, or None if there is no such file."""
    if not _NAME.match(name):
        return None
    file = resources.files("storycore_tasks.service").joinpath("static", name)
    if not file.is_file():
        return None
    return file.read_bytes()


def _not_found(name: str) -> ServiceError:
    return ServiceError(
        ErrorDetails.of(ErrorCodes.NOT_FOUND, f"No static file {name[:64]!r}", name=name[:64])
    )


@router.get("/", include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    """The dashboard (no token needed: the page asks for one)."""
    body = _static(PAGE)
    if body is None:  # a broken install: the package data is missing
        raise _not_found(PAGE)
    return HTMLResponse(body, headers=_HEADERS)


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    """The page's script, style sheet and icon."""
    body = _static(name)
    if body is None:
        raise _not_found(name)
    suffix = name[name.rindex(".") :]
    return Response(body, media_type=_MEDIA_TYPES[suffix], headers=_HEADERS)
