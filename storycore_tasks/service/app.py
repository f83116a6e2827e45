"""The HTTP service: StoryCore's task API over HTTP, on FastAPI.

Every answer is StoryCore's envelope with the HTTP status of its error code. Bad input
(malformed JSON, unknown fields, wrong types, an oversized body, an unknown operation)
is a ``VALIDATION_ERROR`` or ``NOT_FOUND``; nothing answers with a traceback. Routes are
plain functions (FastAPI runs them on its thread pool), because the manager's calls
block, briefly, on its actors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, assert_never

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from actors import Isolation, RetryPolicy, TaskPriority, TaskStatus
from actors._options import Option, options_of
from actors._resources import MAX_RESOURCE_NAMES
from actors.logs import library_logger
from actors.validation import MAX_SECONDS
from storycore_tasks.async_manager import AsyncTaskManager
from storycore_tasks.envelope import APIResponse
from storycore_tasks.errors import ErrorCodes, ErrorDetails, Surface, cancel_conflict
from storycore_tasks.manager import TaskManager, snapshot_to_status
from storycore_tasks.router import APIRouter as EndpointRouter
from storycore_tasks.router import register_task_endpoints
from storycore_tasks.service import dashboard, docs, events, metrics, webhooks
from storycore_tasks.service.auth import Principal
from storycore_tasks.service.deps import (
    ERROR_RESPONSES,
    AuthenticatedFirst,
    Envelope,
    ServiceConfig,
    ServiceError,
    await_manager,
    call_manager,
    error_response,
    principal,
    request_context,
    success,
    task_not_found,
)
from storycore_tasks.service.redaction import install_log_redaction
from storycore_tasks.service.state import ServiceState, get_state

__all__ = ["CreateTaskRequest", "RetryRequest", "create_app"]

_log = library_logger("storycore_tasks.service")
_MAX_PAGE = 1000

Who = Annotated[Principal, Depends(principal)]


# No coercion: "5" is not a number and true is not 1; unknown fields are refused. (JSON
# has no datetime: run_at alone is parsed, from an ISO-8601 string only.)
_STRICT = ConfigDict(extra="forbid", strict=True)


def _iso_text(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise ValueError(
            f"must be an ISO-8601 time string with a time zone, got {type(value).__name__}"
        )
    return value


class RetryRequest(BaseModel):
    """A task's retry policy (``actors.RetryPolicy``)."""

    model_config = _STRICT
    max_attempts: int = Field(3, ge=1, le=100)
    backoff: float = Field(1.0, ge=0, le=86_400)
    max_backoff: float = Field(60.0, ge=0, le=86_400)
    jitter: bool = True
    retry_on: list[str] | None = Field(
        None, description="Exception class names to retry on (default: any exception)"
    )
    retry_on_timeout: bool = False


class _CreateTaskBase(BaseModel):
    """``POST /v1/tasks``: a named operation, its params, the task options and the
    service's own fields (the callback)."""

    model_config = _STRICT
    operation: str = Field(min_length=1, max_length=200, description="A registered operation")
    params: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = Field(
        None, max_length=2048, description="POSTed the status envelope when the task ends"
    )
    callback_on_progress: bool = False


def _http_field(declared: Option) -> tuple[Any, Any]:
    """The request field of one task option, typed from its kind."""
    doc = declared.doc
    match declared.kind:
        case "seconds":
            bound = MAX_SECONDS if declared.http_max is None else declared.http_max
            if declared.allow_zero:
                return float | None, Field(None, ge=0, le=bound, description=doc)
            return float | None, Field(None, gt=0, le=bound, description=doc)
        case "megabytes":
            return float | None, Field(None, gt=0, le=declared.http_max, description=doc)
        case "priority":
            names = tuple(p.name.lower() for p in sorted(TaskPriority))
            return Literal[names], Field("normal", description=doc)
        case "isolation":
            modes = tuple(mode.value for mode in Isolation)
            return Literal[modes] | None, Field(None, description=doc)
        case "datetime":
            return (
                Annotated[datetime | None, BeforeValidator(_iso_text)],
                Field(None, strict=False, description=f"{doc}: an ISO-8601 time with a zone"),
            )
        case "retry":
            return RetryRequest | None, Field(None, description=doc)
        case "task_ids":
            length = None if declared.http_max is None else int(declared.http_max)
            return list[str], Field(default_factory=list, max_length=length, description=doc)
        case "resources":
            return dict[str, float] | None, Field(
                None,
                max_length=MAX_RESOURCE_NAMES,
                description=f"{doc}: resource names to amounts > 0",
            )
        case "text":
            return str | None, Field(None, max_length=1000, description=doc)
        case _:
            assert_never(declared.kind)


if TYPE_CHECKING:
    CreateTaskRequest = _CreateTaskBase
else:
    # The task options come from their one declaration (actors.TaskOptions): a new
    # option the HTTP API offers needs no line here.
    CreateTaskRequest = create_model(
        "CreateTaskRequest",
        __base__=_CreateTaskBase,
        __doc__=_CreateTaskBase.__doc__,
        **{declared.name: _http_field(declared) for declared in options_of(http=True)},
    )


def _option_values(body: _CreateTaskBase) -> dict[str, Any]:
    """The task options of a request, as ``create_task`` takes them."""
    values: dict[str, Any] = {}
    for declared in options_of(http=True):
        value = getattr(body, declared.name)
        if isinstance(value, RetryRequest):
            value = call_manager(functools.partial(_retry_policy, value))  # bad: 400
        values[declared.name] = value
    return values


def _retry_policy(asked: RetryRequest) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=asked.max_attempts,
        backoff=asked.backoff,
        max_backoff=asked.max_backoff,
        jitter=asked.jitter,
        retry_on=tuple(asked.retry_on) if asked.retry_on else (Exception,),
        retry_on_timeout=asked.retry_on_timeout,
    )


def create_app(manager: TaskManager, config: ServiceConfig) -> FastAPI:
    """The service's ASGI app around ``manager`` (which the caller keeps and shuts down)."""
    install_log_redaction()  # however it is served: no token from a URL in uvicorn's logs
    event_log = events.EventLog(manager, history=config.event_history)
    service_metrics = metrics.ServiceMetrics(manager)
    state = ServiceState(manager, config, event_log, service_metrics)
    state.closers.extend([event_log.close, service_metrics.close])
    if config.webhook_secret is not None:
        try:
            sender = webhooks.WebhookSender(
                manager,
                secret=config.webhook_secret,
                allowed_hosts=config.webhook_allowed_hosts,
                retry_seconds=config.webhook_retry_seconds,
                timeout=config.webhook_timeout,
            )
        except BaseException:
            state.close()  # nothing started here outlives a failed start
            raise
        state.webhooks = sender
        state.closers.append(sender.close)
        service_metrics.track_webhooks(sender)
    rpc = EndpointRouter()
    register_task_endpoints(rpc, manager)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="storycore-tasks",
        version="1",
        summary="StoryCore's long operations: create, poll, cancel, stream, as tasks.",
        lifespan=lifespan,
        responses={},
        # "/v1/tasks/" would get a bare 307 to "/v1/tasks": every path that is not a
        # route answers a NOT_FOUND envelope instead.
        redirect_slashes=False,
        # FastAPI's Swagger UI and ReDoc load from a CDN: docs.router serves a page that
        # needs nothing from elsewhere at both paths instead.
        docs_url=None,
        redoc_url=None,
    )
    # Authentication before the body is parsed, on every route that needs a token.
    app.router.route_class = AuthenticatedFirst
    app.state.service = state
    app.add_middleware(_BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(_Unexpected)  # outermost: an unexpected error is one envelope
    _install_error_handlers(app)
    _task_routes(app, rpc, AsyncTaskManager(manager))
    app.include_router(events.router)
    app.include_router(metrics.router)
    app.include_router(dashboard.router)
    app.include_router(docs.router)
    return app


def _problem(request: Request, error: Mapping[str, Any]) -> str:
    """What a validation error says; an unknown field also lists the known ones (the
    fields of the model at that place of the body, e.g. the task options)."""
    problem = str(error.get("msg", "invalid"))
    location = tuple(error.get("loc", ()))
    if error.get("type") != "extra_forbidden" or len(location) < 2 or location[0] != "body":
        return problem
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    model: Any = getattr(getattr(body_field, "field_info", None), "annotation", None)
    for part in location[1:-1]:  # down through nested models (body.retry.x)
        field = model.model_fields.get(part) if _is_model(model) else None
        model = _model_in(field.annotation) if field is not None else None
    if not _is_model(model):
        return problem
    known = ", ".join(sorted(model.model_fields))
    return f"unknown field {location[-1]!r}; the fields are {known}"


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _model_in(annotation: Any) -> Any:
    """The model in ``Model`` or ``Model | None``."""
    if _is_model(annotation):
        return annotation
    return next((arg for arg in typing.get_args(annotation) if _is_model(arg)), None)


# -- routes -------------------------------------------------------------------------------


def _task_routes(app: FastAPI, rpc: EndpointRouter, tasks: AsyncTaskManager) -> None:
    """The task routes. Creating, reading, listing and cancelling tasks, the stats and
    the health check (and, in ``events``, opening a stream) are coroutines over the
    awaitable facade: they take no thread of
    FastAPI's pool (only registering a webhook, which reads the task's status, runs on
    one, and so do StoryCore's router endpoints, which are blocking by design)."""
    rpc_methods = dict(rpc.endpoints())

    @app.get("/healthz", response_model=Envelope, tags=["service"])
    async def healthz(request: Request) -> JSONResponse:
        """Liveness: no token needed."""
        manager = get_state(request).manager
        closed = manager.runtime.closed
        if closed:
            raise ServiceError(
                ErrorDetails.of(ErrorCodes.SERVICE_UNAVAILABLE, "The task manager is shut down")
            )
        return success(request, {"status": "ok"}, None)

    @app.post(
        "/v1/tasks",
        status_code=202,
        response_model=Envelope,
        responses=ERROR_RESPONSES,
        tags=["tasks"],
    )
    async def create_task(request: Request, body: CreateTaskRequest, who: Who) -> JSONResponse:
        """Create a task of a named operation; answers at once with its id."""
        state = get_state(request)
        if body.callback_url is not None:
            if state.webhooks is None:
                raise _validation(
                    "callback_url needs the service to have a webhook secret "
                    "(storycore-tasks serve --webhook-secret-env NAME)"
                )
            sender, url = state.webhooks, body.callback_url
            call_manager(lambda: sender.check_url(url))  # VALIDATION_ERROR
        options = _option_values(body)
        task_id = await await_manager(
            tasks.create_task(body.operation, body.params, user=who.user, **options)
        )
        if body.callback_url is not None and state.webhooks is not None:
            await asyncio.to_thread(
                state.webhooks.register, task_id, body.callback_url, body.callback_on_progress
            )
        return success(
            request,
            {
                "task_id": task_id,
                "status": "pending",
                "links": {
                    "self": f"/v1/tasks/{task_id}",
                    "events": f"/v1/tasks/{task_id}/events",
                    "cancel": f"/v1/tasks/{task_id}/cancel",
                    "resume": f"/v1/tasks/{task_id}/resume",
                },
            },
            who,
            status_code=202,
        )

    @app.get(
        "/v1/tasks/{task_id}", response_model=Envelope, responses=ERROR_RESPONSES, tags=["tasks"]
    )
    async def task_status(request: Request, task_id: str, who: Who) -> JSONResponse:
        """A task's status, progress, result or error. Another user's task is NOT_FOUND."""
        found = await await_manager(tasks.get_task_status(task_id, user=who.owner_filter))
        if found is None:
            raise task_not_found(task_id)
        return success(request, found, who)

    @app.post(
        "/v1/tasks/{task_id}/cancel",
        response_model=Envelope,
        responses=ERROR_RESPONSES,
        tags=["tasks"],
    )
    async def cancel_task(request: Request, task_id: str, who: Who) -> JSONResponse:
        """Cancel a pending or running task: 409 CONFLICT once it has ended."""
        owner = who.owner_filter
        if await await_manager(tasks.cancel_task(task_id, user=owner)):
            return success(request, {"task_id": task_id, "cancelled": True}, who)
        found = await await_manager(tasks.get_task_status(task_id, user=owner))
        if found is None:
            raise task_not_found(task_id)
        raise ServiceError(cancel_conflict(task_id, found["status"]))

    @app.post(
        "/v1/tasks/{task_id}/resume",
        response_model=Envelope,
        responses=ERROR_RESPONSES,
        tags=["tasks"],
        status_code=202,
    )
    async def resume_task(request: Request, task_id: str, who: Who) -> JSONResponse:
        """Run a failed or cancelled task again from its latest checkpoint (same id):
        409 CONFLICT, naming the reason and the fix, when it cannot be resumed."""
        await await_manager(tasks.resume_task(task_id, user=who.owner_filter))
        return success(
            request,
            {"task_id": task_id, "status": "pending", "resumed": True},
            who,
            status_code=202,
        )

    @app.get("/v1/tasks", response_model=Envelope, responses=ERROR_RESPONSES, tags=["tasks"])
    async def list_tasks(
        request: Request,
        who: Who,
        status: Literal["pending", "running", "completed", "failed", "cancelled"] | None = None,
        limit: Annotated[int, Query(ge=1, le=_MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> JSONResponse:
        """Tasks in creation order, oldest first, ``limit`` per page; pass
        ``next_cursor`` back as ``cursor`` for the next page (stable while tasks change
        state: each task is listed once)."""
        after = _decode_cursor(cursor) if cursor is not None else -1
        wanted = None if status is None else TaskStatus(status)
        # The registry answers the page from its seq-ordered indexes (O(page), not O(n)).
        page = await await_manager(
            tasks.runtime.page(wanted, after=after, limit=limit, user=who.owner_filter)
        )
        next_after = page.next_after
        next_cursor = None if next_after is None else _encode_cursor(next_after)
        shown = [snapshot_to_status(s) for s in page.tasks]
        return success(
            request, {"tasks": shown, "count": len(shown), "next_cursor": next_cursor}, who
        )

    @app.get("/v1/whoami", response_model=Envelope, responses=ERROR_RESPONSES, tags=["service"])
    async def whoami(request: Request, who: Who) -> JSONResponse:
        """Who this token is: ``user``, ``role`` (``user`` sees only their own tasks,
        ``admin`` all of them) and ``authentication`` (False under ``--no-auth``)."""
        authentication = get_state(request).config.tokens is not None
        return success(
            request, {"user": who.user, "role": who.role, "authentication": authentication}, who
        )

    @app.get("/v1/stats", response_model=Envelope, responses=ERROR_RESPONSES, tags=["service"])
    async def stats(request: Request, who: Who) -> JSONResponse:
        """The manager's counters (``get_stats()``): they count every task of the
        service, whoever created it, for a user-role token too (``scope``: ``service``);
        ``GET /v1/tasks`` lists only the tasks the token may see."""
        counters = await await_manager(tasks.get_stats())
        return success(request, {**counters, "scope": "service"}, who)

    @app.post(
        "/v1/rpc/{endpoint}", response_model=Envelope, responses=ERROR_RESPONSES, tags=["rpc"]
    )
    def call_endpoint(
        request: Request,
        endpoint: str,
        who: Who,
        params: Annotated[dict[str, Any] | None, Body(embed=False)] = None,
    ) -> JSONResponse:
        """StoryCore's router endpoints (``storycore.task.status``, ``.cancel``,
        ``.list``, ``.stats``, ``storycore.group.status``, ``.cancel``); the body is the
        endpoint's params object."""
        method = rpc_methods.get(endpoint)
        if method is None:
            known = ", ".join(sorted(rpc_methods))
            raise ServiceError(
                ErrorDetails.of(
                    ErrorCodes.NOT_FOUND,
                    f"No endpoint {endpoint!r}; known: {known}",
                    endpoint=endpoint,
                )
            )
        answer: APIResponse = rpc.route_request(
            endpoint, method, params or {}, request_context(request, who)
        )
        if answer.error is not None:  # worded for an HTTP client, not the Python API
            answer = replace(answer, error=answer.error.for_surface(Surface.HTTP))
        return JSONResponse(answer.to_dict(), status_code=answer.http_status)


def _validation(message: str) -> ServiceError:
    return ServiceError(ErrorDetails.of(ErrorCodes.VALIDATION_ERROR, message))


def _encode_cursor(seq: int) -> str:
    """An opaque page cursor: the submission number of the page's last task."""
    return base64.urlsafe_b64encode(json.dumps({"after": seq}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        seq = json.loads(raw)["after"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ValueError
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise _validation(
            "cursor is not one this service gave out; pass the next_cursor of the previous "
            "page, or no cursor for the first page"
        ) from None
    return seq


# -- errors -------------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(request, exc.error, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "location": ".".join(str(part) for part in error.get("loc", ())),
                "problem": _problem(request, error),
            }
            for error in exc.errors()[:20]
        ]
        first = problems[0] if problems else {"location": "body", "problem": "invalid"}
        message = f"Invalid request: {first['location']}: {first['problem']}"
        error = ErrorDetails.of(ErrorCodes.VALIDATION_ERROR, message, problems=problems)
        return error_response(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = ErrorCodes.NOT_FOUND if exc.status_code == 404 else ErrorCodes.VALIDATION_ERROR
        if exc.status_code in (404, 405):
            error = ErrorDetails(
                code,
                f"No route {request.method} {request.url.path}",
                {},
                "Check the method and the path; every route is listed in /openapi.json.",
            )
        else:
            error = ErrorDetails.of(code, str(exc.detail))
        return error_response(request, error, dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _unexpected_error(request, exc)  # only if _Unexpected itself failed


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """INTERNAL_ERROR for an exception no handler took, logged once with its traceback."""
    _log.error(
        "service.unexpected_error",
        path=request.url.path,
        error=repr(exc),
        exception_type=type(exc).__qualname__,
        exc_info=exc,
    )
    return error_response(
        request,
        ErrorDetails.of(
            ErrorCodes.INTERNAL_ERROR,
            "The service failed to answer this request; it was logged",
            exception_type=type(exc).__qualname__,
        ),
    )


# -- the body limit ------------------------------------------------------------------------

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


class _Unexpected:
    """Answer an exception that no handler took with the INTERNAL_ERROR envelope, logged
    once. Starlette's last-resort handler would answer too, but then re-raise it to the
    server, which logs a second traceback and drops the client's connection."""

    def __init__(self, app: _ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def sending(message: _Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._app(scope, receive, sending)
        except Exception as exc:
            if started:  # mid-answer (a stream): nothing more can be said to the client
                raise
            response = _unexpected_error(Request(scope, receive), exc)
            await response(scope, receive, send)


def _replay(messages: list[_Message], receive: _Receive) -> _Receive:
    """A receive that gives ``messages`` first, then what ``receive`` gives (a client's
    disconnect, which a live event stream waits for)."""
    pending = list(messages)

    async def replayed() -> _Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class _BodyLimit:
    """Refuse request bodies over ``max_bytes`` (declared or streamed) with a
    VALIDATION_ERROR envelope, before the app reads them. Also stamps the start time
    the envelope's ``duration_ms`` is measured from."""

    def __init__(self, app: _ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        scope.setdefault("state", {})["started_at"] = time.monotonic()
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await self._refuse(scope, receive, send)
            return
        # Read the whole body first (at most max_bytes of it is ever held), so a
        # streamed body over the limit is refused here, saying why, before any route
        # reads it; the route then gets the body as one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self._app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self._app(scope, _replay([whole], receive), send)

    async def _refuse(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        request = Request(scope, receive)
        error = ErrorDetails.of(
            ErrorCodes.VALIDATION_ERROR,
            f"The request body is larger than the service's limit of {self._max} bytes",
            max_body_bytes=self._max,
        )
        response = error_response(request, error)
        await response(scope, receive, send)
