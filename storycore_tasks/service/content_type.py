"""Request bodies must say they are JSON.

``curl -d '{...}'`` sends ``Content-Type: application/x-www-form-urlencoded`` unless
told otherwise, and the route's validation then reports only that the body "should be a
valid dictionary", which hides the cause. A request that carries a body with any other
type than JSON is answered here, before any route reads it, with a VALIDATION_ERROR that
names the header and the fix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request

from storycore_tasks.errors import ErrorCodes, ErrorDetails
from storycore_tasks.service.deps import error_response

__all__ = ["RequireJsonBodies", "is_json_media_type"]

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type, whatever its parameters (charset)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequireJsonBodies:
    """Refuse a request body whose Content-Type is not JSON (no body: no check)."""

    def __init__(self, app: _ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _WITH_BODY:
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length", b"").strip()
        has_body = (length not in (b"", b"0")) or b"transfer-encoding" in headers
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not has_body or is_json_media_type(content_type):
            await self._app(scope, receive, send)
            return
        got = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        error = ErrorDetails(
            ErrorCodes.VALIDATION_ERROR,
            f"The request body must be JSON sent with Content-Type: application/json, got {got}",
            {"header": "Content-Type", "content_type": content_type[:200]},
            "Send the header Content-Type: application/json with the JSON body (curl: "
            "-H 'Content-Type: application/json' -d '{...}').",
        )
        response = error_response(Request(scope, receive), error)
        await response(scope, receive, send)
