"""Request bodies must say they are JSON.

``curl -d '{...}'`` sends ``Content-Type: application/x-www-form-urlencoded`` unless
told otherwise, and the route's validation then reports only that the body "should be a
valid dictionary", which hides the cause. A request that carries a body with any other
type than JSON gets a VALIDATION_ERROR that names the header and the fix. The check runs
after the caller is authenticated (``deps.AuthenticatedFirst``), so an anonymous request
is a 401 whatever its body, and before any route reads the body.
"""

from __future__ import annotations

from collections.abc import Mapping

from storycore_tasks.errors import ErrorCodes, ErrorDetails

__all__ = ["is_json_media_type", "non_json_body"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type, whatever its parameters (charset)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def non_json_body(method: str, headers: Mapping[str, str]) -> ErrorDetails | None:
    """The error for a request body whose Content-Type is not JSON (None: no body, or a
    JSON one). ``headers`` are the request's, by lower-case name."""
    if method not in _WITH_BODY:
        return None
    length = headers.get("content-length", "").strip()
    has_body = length not in ("", "0") or "transfer-encoding" in headers
    content_type = headers.get("content-type", "")
    if not has_body or is_json_media_type(content_type):
        return None
    got = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
    return ErrorDetails(
        ErrorCodes.VALIDATION_ERROR,
        f"The request body must be JSON sent with Content-Type: application/json, got {got}",
        {"header": "Content-Type", "content_type": content_type[:200]},
        "Send the header Content-Type: application/json with the JSON body (curl: "
        "-H 'Content-Type: application/json' -d '{...}').",
    )
