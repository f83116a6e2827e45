"""StoryCore's response envelope: ``{"status", "data", "error", "metadata"}``."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from storycore_tasks.errors import ErrorDetails

__all__ = ["API_VERSION", "APIResponse", "RequestContext", "ResponseMetadata", "to_jsonable"]

API_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asks, and when the request started (for ``duration_ms``)."""

    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    user: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    # True when ``user`` may see only their own tasks (the HTTP service's role "user"):
    # another user's task then reads as not found. Embedding code sees everything.
    owner_only: bool = False

    def __post_init__(self) -> None:
        if self.owner_only and self.user is None:
            # Fail closed: "only this user's tasks" with no user must not mean "all".
            raise ValueError("RequestContext(owner_only=True) needs the user it limits to")

    @property
    def owner(self) -> str | None:
        """The user whose tasks this request is limited to, or None for all."""
        return self.user if self.owner_only else None


@dataclass(frozen=True, slots=True)
class ResponseMetadata:
    request_id: str
    timestamp: str
    duration_ms: float
    api_version: str = API_VERSION

    @classmethod
    def for_request(
        cls, context: RequestContext, api_version: str = API_VERSION
    ) -> ResponseMetadata:
        return cls(
            request_id=context.request_id,
            timestamp=datetime.now(UTC).isoformat(),
            duration_ms=round((time.monotonic() - context.started_at) * 1000.0, 3),
            api_version=api_version,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "timestamp": self.timestamp,
            "duration_ms": self.duration_ms,
            "api_version": self.api_version,
        }


@dataclass(frozen=True, slots=True)
class APIResponse:
    status: Literal["success", "error"]
    metadata: ResponseMetadata
    data: Any = None
    error: ErrorDetails | None = None

    @classmethod
    def success(
        cls, data: Any, context: RequestContext, api_version: str = API_VERSION
    ) -> APIResponse:
        return cls("success", ResponseMetadata.for_request(context, api_version), data=data)

    @classmethod
    def failure(
        cls, error: ErrorDetails, context: RequestContext, api_version: str = API_VERSION
    ) -> APIResponse:
        return cls("error", ResponseMetadata.for_request(context, api_version), error=error)

    @property
    def is_success(self) -> bool:
        return self.status == "success"

    @property
    def http_status(self) -> int:
        """200 for success, else the mapping of the error code."""
        return 200 if self.error is None else self.error.http_status

    def to_dict(self) -> dict[str, Any]:
        """The envelope as plain JSON types: anything else in ``data`` (a custom result
        object, a tuple, a NaN) is converted so ``json.dumps`` always succeeds."""
        return {
            "status": self.status,
            "data": to_jsonable(self.data),
            "error": None if self.error is None else to_jsonable(self.error.to_dict()),
            "metadata": self.metadata.to_dict(),
        }


def to_jsonable(value: Any) -> Any:
    """``value`` with every part made a JSON type: mappings with string keys, lists,
    strings, finite numbers, booleans and None. Other objects become their ``repr``, and
    a container that contains itself is cut at the cycle."""
    return _jsonable(value, set())


def _jsonable(value: Any, open_containers: set[int]) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Enum):
        return _jsonable(value.value, open_containers)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if id(value) in open_containers:
            return f"<cycle: {type(value).__name__}>"
        open_containers.add(id(value))
        try:
            if isinstance(value, Mapping):
                return {str(k): _jsonable(v, open_containers) for k, v in value.items()}
            return [_jsonable(v, open_containers) for v in value]
        finally:
            open_containers.discard(id(value))
    return repr(value)
