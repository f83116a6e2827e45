"""The dashboard page at ``GET /``: the tasks a token may see, live.

One static page (HTML, vanilla JavaScript and CSS; no build step, nothing fetched from
elsewhere), shipped as package data in ``storycore_tasks/service/static/`` and served
from memory: the files are read once, when this module is imported, and ``/static/``
serves exactly those (any other name is NOT_FOUND without touching the file system). The
page itself needs no token: it asks for one (kept in the tab's ``sessionStorage``)
unless ``GET /v1/stats`` answers without one (``--no-auth``), then uses the task API and
``GET /v1/events`` like any other client. A Content-Security-Policy allows only this
origin's scripts, styles and connections, and no inline script.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

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
    ".png": "image/png",
    ".ico": "image/x-icon",
}

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


def _shipped() -> Mapping[str, tuple[bytes, str]]:
    """Every file of the package's ``static/`` folder that has a known media type: its
    bytes and media type, by name. Read once: a request never reaches the file system,
    and nothing a caller names is kept."""
    folder = resources.files("storycore_tasks.service").joinpath("static")
    files: dict[str, tuple[bytes, str]] = {}
    if folder.is_dir():
        for entry in folder.iterdir():
            suffix = entry.name[entry.name.rfind(".") :] if "." in entry.name else ""
            if entry.is_file() and suffix in _MEDIA_TYPES:
                files[entry.name] = (entry.read_bytes(), _MEDIA_TYPES[suffix])
    return MappingProxyType(files)


_FILES = _shipped()


def _static(name: str) -> tuple[bytes, str] | None:
    """A shipped static file and its media type, or None if there is no such file."""
    return _FILES.get(name)


def _not_found(name: str) -> ServiceError:
    return ServiceError(
        ErrorDetails.of(ErrorCodes.NOT_FOUND, f"No static file {name[:64]!r}", name=name[:64])
    )


@router.get("/", include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    """The dashboard (no token needed: the page asks for one)."""
    found = _static(PAGE)
    if found is None:  # a broken install: the package data is missing
        raise _not_found(PAGE)
    return HTMLResponse(found[0], headers=_HEADERS)


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> Response:
    """The page's script, style sheet and icon."""
    found = _static(name)
    if found is None:
        raise _not_found(name)
    body, media_type = found
    return Response(body, media_type=media_type, headers=_HEADERS)
