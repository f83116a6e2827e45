"""The endpoint router StoryCore routes requests through, and the task endpoints.

``route_request`` never raises for a bad request: every failure comes back as an error
envelope with a StoryCore code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors.logs import library_logger
from storycore_tasks.envelope import API_VERSION, APIResponse, RequestContext
from storycore_tasks.errors import (
    ErrorCodes,
    ErrorDetails,
    cancel_conflict,
    error_from_exception,
)
from storycore_tasks.manager import TaskManager, is_task_id

__all__ = ["APIError", "APIRouter", "Handler", "register_task_endpoints"]

_log = library_logger("storycore_tasks.router")

Handler = Callable[[Mapping[str, Any], RequestContext], Any]
"""An endpoint: takes the request params and context, returns the response data or
raises :class:`APIError` (or a typed error that :func:`error_from_exception` maps)."""

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class APIError(Exception):
    """Raised by a handler to answer with a specific error."""

    def __init__(self, error: ErrorDetails) -> None:
        super().__init__(error.message)
        self.error = error


class APIRouter:
    def __init__(self, api_version: str = API_VERSION) -> None:
        self._api_version = api_version
        self._routes: dict[str, dict[str, Handler]] = {}

    def register(self, path: str, method: str, handler: Handler) -> None:
        """Serve ``method path`` with ``handler``; registering the same pair twice is an error."""
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string such as 'storycore.task.status'")
        method = _normalise_method(method)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        methods = self._routes.setdefault(path, {})
        if method in methods:
            raise ValueError(f"{method} {path} is already registered")
        methods[method] = handler

    def endpoints(self) -> list[tuple[str, str]]:
        """Every (path, method) pair served, sorted."""
        return sorted((p, m) for p, methods in self._routes.items() for m in methods)

    def route_request(
        self,
        path: str,
        method: str,
        params: Mapping[str, Any] | None = None,
        context: RequestContext | None = None,
    ) -> APIResponse:
        context = context if context is not None else RequestContext()
        try:
            handler = self._resolve(path, method)
            if params is None:
                params = {}
            elif not isinstance(params, Mapping):
                raise APIError(
                    ErrorDetails.of(
                        ErrorCodes.VALIDATION_ERROR,
                        f"params must be an object of named parameters, got "
                        f"{type(params).__name__}",
                    )
                )
            data = handler(params, context)
        except APIError as exc:
            return APIResponse.failure(exc.error, context, self._api_version)
        except Exception as exc:
            error = error_from_exception(exc)
            if error.code is ErrorCodes.INTERNAL_ERROR:
                _log.exception("router.handler_failed", path=path, method=method)
            return APIResponse.failure(error, context, self._api_version)
        return APIResponse.success(data, context, self._api_version)

    def _resolve(self, path: Any, method: Any) -> Handler:
        methods = self._routes.get(path) if isinstance(path, str) else None
        if methods is None:
            raise APIError(
                ErrorDetails(
                    ErrorCodes.NOT_FOUND,
                    f"no endpoint {path!r}",
                    {
                        "path": path if isinstance(path, str) else repr(path),
                        "available": sorted(self._routes),
                    },
                    "Use one of the endpoints listed in details.available.",
                )
            )
        normalised = method.upper() if isinstance(method, str) else None
        handler = methods.get(normalised) if normalised is not None else None
        if handler is None:
            raise APIError(
                ErrorDetails.of(
                    ErrorCodes.VALIDATION_ERROR,
                    f"{path} does not accept method {method!r}; use {' or '.join(sorted(methods))}",
                    allowed_methods=sorted(methods),
                )
            )
        return handler


def _normalise_method(method: Any) -> str:
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(sorted(_METHODS))}, got {method!r}")
    return method.upper()


def _require_task_id(params: Mapping[str, Any], field: str = "task_id") -> str:
    task_id = params.get(field)
    if task_id is None or not isinstance(task_id, str) or not task_id.strip():
        got = "missing" if task_id is None else f"{type(task_id).__name__} {task_id!r}"
        raise APIError(
            ErrorDetails.of(
                ErrorCodes.VALIDATION_ERROR,
                f"{field} is required and must be a non-empty string (got {got})",
                field=field,
            )
        )
    if not is_task_id(task_id):
        if field == "task_id":
            # StoryCore's own router answers an id that names no task NOT_FOUND, whatever
            # its shape: a malformed id names no task either.
            raise _not_found(task_id)
        raise APIError(
            ErrorDetails.of(
                ErrorCodes.VALIDATION_ERROR,
                f"{field} must be a group id as returned by create_group (a UUID), got {task_id!r}",
                field=field,
            )
        )
    return task_id


def _not_found(task_id: str) -> APIError:
    shown = task_id if is_task_id(task_id) else task_id[:64]  # a malformed id may be huge
    return APIError(ErrorDetails.of(ErrorCodes.NOT_FOUND, f"Task {shown} not found", task_id=shown))


def register_task_endpoints(router: APIRouter, manager: TaskManager) -> None:
    """Serve the task endpoints of ``manager`` on ``router``:

    ``storycore.task.status`` (GET), ``storycore.task.cancel`` (POST),
    ``storycore.task.resume`` (POST),
    ``storycore.task.list`` (GET, optional ``status`` and ``limit``),
    ``storycore.task.stats`` (GET), ``storycore.group.status`` (GET, ``group_id``) and
    ``storycore.group.cancel`` (POST, ``group_id``).
    """

    def status(params: Mapping[str, Any], context: RequestContext) -> Any:
        task_id = _require_task_id(params)
        found = manager.get_task_status(task_id, user=context.owner)
        if found is None:
            raise _not_found(task_id)
        return found

    def cancel(params: Mapping[str, Any], context: RequestContext) -> Any:
        task_id = _require_task_id(params)
        if manager.cancel_task(task_id, user=context.owner):
            return {"task_id": task_id, "cancelled": True, "message": "Task cancellation requested"}
        found = manager.get_task_status(task_id, user=context.owner)
        if found is None:
            raise _not_found(task_id)
        raise APIError(cancel_conflict(task_id, found["status"]))

    def resume(params: Mapping[str, Any], context: RequestContext) -> Any:
        task_id = _require_task_id(params)
        manager.resume_task(task_id, user=context.owner)  # NOT_FOUND, CONFLICT
        return {"task_id": task_id, "resumed": True, "status": "pending"}

    def list_tasks(params: Mapping[str, Any], context: RequestContext) -> Any:
        status_filter = params.get("status")
        limit = params.get("limit")
        tasks = manager.list_tasks(status_filter, limit, user=context.owner)
        return {"tasks": tasks, "count": len(tasks)}

    def stats(params: Mapping[str, Any], context: RequestContext) -> Any:
        return manager.get_stats()

    def group_status(params: Mapping[str, Any], context: RequestContext) -> Any:
        group_id = _require_task_id(params, "group_id")
        found = manager.get_group_status(group_id, user=context.owner)
        if found is None:
            raise APIError(
                ErrorDetails.of(
                    ErrorCodes.NOT_FOUND, f"Group {group_id} not found", group_id=group_id
                )
            )
        return found

    def group_cancel(params: Mapping[str, Any], context: RequestContext) -> Any:
        group_id = _require_task_id(params, "group_id")
        cancelled = manager.cancel_group(group_id, user=context.owner)  # unknown: NOT_FOUND
        return {"group_id": group_id, "cancelled": cancelled}

    router.register("storycore.task.status", "GET", status)
    router.register("storycore.task.cancel", "POST", cancel)
    router.register("storycore.task.resume", "POST", resume)
    router.register("storycore.task.list", "GET", list_tasks)
    router.register("storycore.task.stats", "GET", stats)
    router.register("storycore.group.status", "GET", group_status)
    router.register("storycore.group.cancel", "POST", group_cancel)
