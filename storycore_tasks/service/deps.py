"""What every route of the HTTP service shares: its configuration and state, who is
asking, and StoryCore's envelope as responses (documented in the OpenAPI schema)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from storycore_tasks.envelope import APIResponse, RequestContext
from storycore_tasks.errors import (
    ErrorCodes,
    ErrorDetails,
    Surface,
    error_from_exception,
    status_shown_on,
)
from storycore_tasks.manager import TaskManager, is_task_id
from storycore_tasks.service.auth import Principal, TokenStore
from storycore_tasks.service.content_type import non_json_body

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ERROR_RESPONSES",
    "LOCAL_ADMIN",
    "AuthenticatedFirst",
    "Envelope",
    "ServiceConfig",
    "ServiceError",
    "await_manager",
    "call_manager",
    "error_response",
    "manager_of",
    "principal",
    "request_context",
    "stream_principal",
    "success",
    "task_not_found",
]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
LOCAL_ADMIN = Principal("local", "admin")
"""Who every request is with ``--no-auth``."""


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """How the service runs. ``tokens`` None turns authentication off (``--no-auth``)."""

    tokens: TokenStore | None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Webhooks: the shared secret that signs them (None: callback_url is refused), the
    # hosts they may go to (None: any), and how long one is retried.
    webhook_secret: str | None = None
    webhook_allowed_hosts: tuple[str, ...] | None = None
    webhook_retry_seconds: float = 300.0
    webhook_timeout: float = 5.0
    # Events kept per task for an event stream to resume from (Last-Event-ID).
    event_history: int = 1000


class ServiceError(Exception):
    """Raised by a route to answer with this error's envelope and HTTP status."""

    def __init__(self, error: ErrorDetails, headers: dict[str, str] | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.headers = headers


_T = TypeVar("_T")


def call_manager(function: Callable[[], _T]) -> _T:
    """Run a manager call; its typed errors become the envelope's error codes."""
    try:
        return function()
    except ServiceError:
        raise
    except Exception as exc:
        raise ServiceError(error_from_exception(exc, Surface.HTTP)) from exc


async def await_manager(call: Awaitable[_T]) -> _T:
    """Await an :class:`AsyncTaskManager` call; its typed errors become the envelope's
    error codes, as :func:`call_manager`'s do."""
    try:
        return await call
    except ServiceError:
        raise
    except Exception as exc:
        raise ServiceError(error_from_exception(exc, Surface.HTTP)) from exc


def task_not_found(task_id: str) -> ServiceError:
    """NOT_FOUND for a task: unknown, malformed, or another user's (not revealed)."""
    shown = task_id if is_task_id(task_id) else task_id[:64]
    return ServiceError(
        ErrorDetails.of(ErrorCodes.NOT_FOUND, f"Task {shown} not found", task_id=shown)
    )


def config_of(request: Request) -> ServiceConfig:
    """How the service runs (``app.state.service.config``)."""
    config: ServiceConfig = request.app.state.service.config
    return config


def manager_of(request: Request) -> TaskManager:
    """The manager the service serves (``app.state.service.manager``)."""
    manager: TaskManager = request.app.state.service.manager
    return manager


def request_context(request: Request, who: Principal | None = None) -> RequestContext:
    """The envelope's request context: the caller's request id (``X-Request-ID``) or a
    new one, the user, and whether the user sees only their own tasks."""
    started = getattr(request.state, "started_at", None)
    request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
    kwargs: dict[str, Any] = {"request_id": request_id[:128]}
    if started is not None:
        kwargs["started_at"] = started
    if who is not None:
        kwargs["user"] = who.user
        kwargs["owner_only"] = not who.is_admin
    return RequestContext(**kwargs)


def _authenticate(request: Request, token: str | None) -> Principal:
    tokens = config_of(request).tokens
    if tokens is None:
        return LOCAL_ADMIN
    found = tokens.authenticate(token)
    if found is None:
        message = "A bearer token is required" if not token else "The bearer token is not valid"
        raise ServiceError(
            ErrorDetails.of(ErrorCodes.AUTHENTICATION_REQUIRED, message),
            headers={"WWW-Authenticate": 'Bearer realm="storycore-tasks"'},
        )
    request.state.principal = found
    return found


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _bearer_principal(request: Request) -> Principal:
    return _authenticate(request, _bearer(request))


def _stream_principal(request: Request) -> Principal:
    return _authenticate(request, _bearer(request) or request.query_params.get("access_token"))


async def principal(request: Request) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 without a valid one. A
    coroutine (it only hashes the token), so FastAPI solves it on the event loop instead
    of handing it to its thread pool."""
    return _bearer_principal(request)


async def stream_principal(request: Request) -> Principal:
    """As :func:`principal`, but an event stream may also pass ``?access_token=``: a
    browser's EventSource cannot set headers."""
    return _stream_principal(request)


class AuthenticatedFirst(APIRoute):
    """A route that authenticates its caller before anything else of the request is
    read: FastAPI parses a JSON body before it solves any dependency, so without this
    an anonymous malformed body would get 400 instead of 401. Every route that depends
    on :func:`principal` or :func:`stream_principal` runs that check first (and again as
    its dependency, which costs one hash), then refuses a body not sent as JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        check = next(
            (
                _AUTHENTICATORS[d.call]
                for d in _dependencies(self.dependant)
                if d.call in _AUTHENTICATORS
            ),
            None,
        )
        if check is None:
            return handler  # a public route (the page, /healthz)
        authenticate: Callable[[Request], Principal] = check

        async def authenticated_first(request: Request) -> Response:
            authenticate(request)  # raises ServiceError: 401 AUTHENTICATION_REQUIRED
            refused = non_json_body(request.method, request.headers)
            if refused is not None:
                raise ServiceError(refused)  # before the route reads the body
            return await handler(request)

        return authenticated_first


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


# Each authenticating dependency, and the check it makes (run first, synchronously).
_AUTHENTICATORS: dict[Any, Callable[[Request], Principal]] = {
    principal: _bearer_principal,
    stream_principal: _stream_principal,
}


def success(
    request: Request, data: Any, who: Principal | None, status_code: int = 200
) -> JSONResponse:
    envelope = APIResponse.success(_shown_on_http(data), request_context(request, who))
    return JSONResponse(envelope.to_dict(), status_code=status_code)


def _shown_on_http(data: Any) -> Any:
    """Task status dicts (alone, or a page's or group's ``tasks``) with the remedies of
    their errors worded for HTTP clients."""
    if not isinstance(data, dict):
        return data
    if "task_id" in data and isinstance(data.get("error"), dict):
        data = status_shown_on(data, Surface.HTTP)
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        data = {**data, "tasks": [_shown_on_http(task) for task in tasks]}
    return data


def error_response(
    request: Request, error: ErrorDetails, headers: dict[str, str] | None = None
) -> JSONResponse:
    who = getattr(request.state, "principal", None)
    envelope = APIResponse.failure(error.for_surface(Surface.HTTP), request_context(request, who))
    return JSONResponse(envelope.to_dict(), status_code=error.http_status, headers=headers)


# -- the envelope, for the OpenAPI document ----------------------------------------------


class ErrorModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    message: str
    details: dict[str, Any]
    remediation: str


class MetadataModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str
    timestamp: str
    duration_ms: float
    api_version: str


class Envelope(BaseModel):
    """StoryCore's envelope: ``data`` on success, ``error`` otherwise."""

    model_config = ConfigDict(extra="forbid")
    status: str
    data: Any = None
    error: ErrorModel | None = None
    metadata: MetadataModel


def _documented(code: int, what: str) -> dict[str, Any]:
    return {"model": Envelope, "description": what}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented(
        400,
        "VALIDATION_ERROR: malformed JSON, unknown fields, wrong types, an "
        "oversized body, an unknown operation",
    ),
    401: _documented(401, "AUTHENTICATION_REQUIRED: no valid bearer token"),
    404: _documented(404, "NOT_FOUND: no such task (or another user's)"),
    409: _documented(409, "CONFLICT: the task has already ended"),
    500: _documented(500, "INTERNAL_ERROR"),
    503: _documented(503, "SERVICE_UNAVAILABLE: queue full, shutting down, operation tripped"),
}
"""The error answers every authenticated route may give."""
