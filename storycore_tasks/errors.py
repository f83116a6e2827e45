"""StoryCore error codes, the ErrorDetails shape, HTTP mappings and remediation texts.

The runtime records failure facts; this module is the one place that turns a fact (or a
typed exception from a public entry point) into the error StoryCore clients see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from actors import (
    ActorRestartedError,
    ActorUnresponsiveError,
    Cancelled,
    Completed,
    Crashed,
    DependencyFailed,
    Interrupted,
    OperationUnavailableError,
    Outcome,
    QueueFullError,
    Raised,
    ResourceExhausted,
    ResultNotStorable,
    RuntimeClosedError,
    StopReason,
    StoreError,
    TimedOut,
    UnknownGroupError,
    UnknownTaskError,
)

__all__ = [
    "HTTP_STATUS_BY_CODE",
    "REMEDIATION_BY_CODE",
    "ErrorCodes",
    "ErrorDetails",
    "cancel_conflict",
    "error_from_exception",
    "error_from_outcome",
    "http_status_for",
    "iso_utc",
]


class ErrorCodes(StrEnum):
    """Every error code StoryCore clients can receive."""

    VALIDATION_ERROR = "VALIDATION_ERROR"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    WORKER_CRASHED = "WORKER_CRASHED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    INTERRUPTED = "INTERRUPTED"
    RESULT_NOT_SERIALIZABLE = "RESULT_NOT_SERIALIZABLE"
    DEPENDENCY_ERROR = "DEPENDENCY_ERROR"
    AUTHENTICATION_REQUIRED = "AUTHENTICATION_REQUIRED"


HTTP_STATUS_BY_CODE: Mapping[ErrorCodes, int] = MappingProxyType(
    {
        ErrorCodes.VALIDATION_ERROR: 400,
        ErrorCodes.NOT_FOUND: 404,
        ErrorCodes.CONFLICT: 409,
        ErrorCodes.TIMEOUT: 504,
        ErrorCodes.CANCELLED: 409,
        ErrorCodes.INTERNAL_ERROR: 500,
        ErrorCodes.SERVICE_UNAVAILABLE: 503,
        ErrorCodes.WORKER_CRASHED: 502,
        ErrorCodes.RESOURCE_EXHAUSTED: 429,
        ErrorCodes.INTERRUPTED: 503,
        ErrorCodes.RESULT_NOT_SERIALIZABLE: 500,
        ErrorCodes.DEPENDENCY_ERROR: 424,
        ErrorCodes.AUTHENTICATION_REQUIRED: 401,
    }
)
"""The HTTP status an endpoint answers with for each error code."""

REMEDIATION_BY_CODE: Mapping[ErrorCodes, str] = MappingProxyType(
    {
        ErrorCodes.VALIDATION_ERROR: "Fix the request parameters named in the message and retry.",
        ErrorCodes.NOT_FOUND: (
            "Check the task id. Tasks are removed max_task_age seconds after they end; "
            "poll more often or raise max_task_age."
        ),
        ErrorCodes.CONFLICT: (
            "The task is already in a final state; read its status instead of changing it."
        ),
        ErrorCodes.TIMEOUT: (
            "Raise the task's timeout, split the work into smaller tasks, or resume from "
            "details.partial_result."
        ),
        ErrorCodes.CANCELLED: "The task was cancelled; create a new task to run it again.",
        ErrorCodes.INTERNAL_ERROR: (
            "The operation raised an exception; see details.exception_type and the message, "
            "fix the operation or its params, and create a new task."
        ),
        ErrorCodes.SERVICE_UNAVAILABLE: (
            "The task manager is saturated or shutting down; retry later with backoff."
        ),
        ErrorCodes.WORKER_CRASHED: (
            "The child process running the operation died (details.exit_code or "
            "details.signal): look for a crash in native code, os._exit, or the OOM killer; "
            "the manager and other tasks were not affected. Fix the operation and create a "
            "new task."
        ),
        ErrorCodes.RESOURCE_EXHAUSTED: (
            "The operation went past the limit named in details.limit; raise "
            "memory_limit_mb or cpu_time_limit, or make the operation use less."
        ),
        ErrorCodes.INTERRUPTED: (
            "The process running the task manager stopped (a crash or a kill) before the "
            "task ended. Create the task again. To have such tasks run again by themselves, "
            "register their operation by name as safe to retry: register_operation(name, fn, "
            "retry_on_interrupt=True), or operations={name: NamedOperation(fn, "
            "retry_on_interrupt=True)}."
        ),
        ErrorCodes.RESULT_NOT_SERIALIZABLE: (
            "The operation returned a value the durable store cannot keep; return JSON "
            "data (numbers, strings, booleans, None, lists, dicts with string keys)."
        ),
        ErrorCodes.DEPENDENCY_ERROR: (
            "A task this one depended on (details.dependency_id) failed or was cancelled, "
            "so this one never ran; fix or rerun that task, then create this one again."
        ),
        ErrorCodes.AUTHENTICATION_REQUIRED: (
            "Send a valid token: 'Authorization: Bearer <token>' (an event stream may pass "
            "?access_token=<token> instead). Ask the service's operator for a token."
        ),
    }
)


def http_status_for(code: ErrorCodes | str) -> int:
    """The HTTP status for ``code`` (500 for a code this version does not know)."""
    try:
        return HTTP_STATUS_BY_CODE[ErrorCodes(code)]
    except ValueError:
        return 500


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """StoryCore's error shape: ``{"code", "message", "details", "remediation"}``."""

    code: ErrorCodes
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    remediation: str = ""

    @classmethod
    def of(cls, code: ErrorCodes, message: str, **details: Any) -> ErrorDetails:
        """An error with the standard remediation text for ``code``."""
        return cls(code, message, details, REMEDIATION_BY_CODE[code])

    @property
    def http_status(self) -> int:
        return http_status_for(self.code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "message": self.message,
            "details": dict(self.details),
            "remediation": self.remediation,
        }


_REGISTRY_RESTARTED_REMEDIATION = (
    "The manager's registry failed while recording this task's change (a bug, or a "
    "fault a test injected) and restarted; this task was the only one affected and "
    "its outcome is unknown. Create the task again; if registries keep failing, see "
    "get_stats()['restarts'] and the actor.restarted log events."
)


_SUPERVISOR_FAILED_REMEDIATION = (
    "The manager's supervisor failed (a bug, or a fault a test injected), so the manager "
    "stopped itself and ended every unfinished task; the reason is in the log "
    "(manager.giving_up). Start a new manager and create the task again."
)


def cancel_conflict(task_id: str, current_status: str) -> ErrorDetails:
    """The CONFLICT of cancelling a task that has already ended (router and service)."""
    return ErrorDetails.of(
        ErrorCodes.CONFLICT,
        f"Task {task_id} cannot be cancelled: it is already {current_status}",
        task_id=task_id,
        current_status=current_status,
    )


def error_from_outcome(outcome: Outcome | None) -> ErrorDetails | None:
    """The error a terminal outcome reports; None for a completed (or unfinished) task."""
    if outcome is None or isinstance(outcome, Completed):
        return None
    if isinstance(outcome, TimedOut):
        details: dict[str, Any] = {"timeout_seconds": outcome.timeout_seconds}
        if outcome.has_partial_result:
            details["partial_result"] = outcome.partial_result
        return ErrorDetails.of(
            ErrorCodes.TIMEOUT,
            f"Operation exceeded timeout of {outcome.timeout_seconds} seconds",
            **details,
        )
    if isinstance(outcome, Raised):
        return ErrorDetails.of(
            ErrorCodes.INTERNAL_ERROR,
            f"Operation raised {outcome.exception_type}: {outcome.message}"
            if outcome.message
            else f"Operation raised {outcome.exception_type}",
            exception_type=outcome.exception_type,
            exception_message=outcome.message,
        )
    if isinstance(outcome, Crashed):
        if outcome.reason is not None:
            how = f"was ended by the task manager: {outcome.reason}"
        elif outcome.signal is not None:
            how = f"was killed by {outcome.signal_name}"
        else:
            how = f"exited with code {outcome.exit_code}"
        crash_details: dict[str, Any] = {}
        if outcome.reason is not None:
            crash_details["reason"] = outcome.reason
        return ErrorDetails.of(
            ErrorCodes.WORKER_CRASHED,
            f"The worker process running the operation {how}",
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            signal_name=outcome.signal_name,
            **crash_details,
        )
    if isinstance(outcome, ResourceExhausted):
        unit = "MB" if outcome.limit == "memory_limit_mb" else "seconds of CPU time"
        return ErrorDetails.of(
            ErrorCodes.RESOURCE_EXHAUSTED,
            f"Operation exceeded its {outcome.limit} of {outcome.value:g} {unit}",
            limit=outcome.limit,
            value=outcome.value,
            reason=outcome.message,
        )
    if isinstance(outcome, Interrupted):
        stage = f"while attempt {outcome.attempt} ran" if outcome.was_running else "before it ran"
        what = {
            "registry_restarted": (
                "The task manager's registry failed on this task's update and restarted"
            ),
            "supervisor_failed": "The task manager's supervisor failed and the manager stopped",
        }.get(outcome.cause, "The task manager's process stopped")
        error = ErrorDetails.of(
            ErrorCodes.INTERRUPTED,
            f"{what} {stage}; the task cannot be resumed",
            cause=outcome.cause,
            was_running=outcome.was_running,
            attempt=outcome.attempt,
            last_seen_at=iso_utc(outcome.last_seen_at),
            recovered_at=iso_utc(outcome.recovered_at),
        )
        if outcome.cause == "registry_restarted":
            error = replace(error, remediation=_REGISTRY_RESTARTED_REMEDIATION)
        elif outcome.cause == "supervisor_failed":
            error = replace(error, remediation=_SUPERVISOR_FAILED_REMEDIATION)
        return error
    if isinstance(outcome, DependencyFailed):
        return ErrorDetails.of(
            ErrorCodes.DEPENDENCY_ERROR,
            f"Task was cancelled because its dependency {outcome.dependency_id} "
            f"{outcome.dependency_status}",
            dependency_id=outcome.dependency_id,
            dependency_status=outcome.dependency_status,
        )
    if isinstance(outcome, ResultNotStorable):
        return ErrorDetails.of(
            ErrorCodes.RESULT_NOT_SERIALIZABLE,
            f"Operation returned a {outcome.type_name}, which is not JSON and cannot be "
            f"stored: {outcome.message}",
            result_type=outcome.type_name,
        )
    assert isinstance(outcome, Cancelled)
    message = {
        StopReason.CANCEL_REQUESTED: "Task was cancelled on request",
        StopReason.SHUTDOWN: "Task was cancelled because the task manager shut down",
        StopReason.TIMEOUT: "Task was cancelled by its timeout",
    }[outcome.reason]
    return ErrorDetails.of(ErrorCodes.CANCELLED, message, reason=outcome.reason.value)


def error_from_exception(exc: BaseException) -> ErrorDetails:
    """The error a public entry point's exception maps to (for the router and service)."""
    if isinstance(exc, OperationUnavailableError):
        return ErrorDetails.of(
            ErrorCodes.SERVICE_UNAVAILABLE,
            str(exc),
            operation=exc.operation,
            retry_after=round(exc.retry_after, 3),
        )
    if isinstance(exc, QueueFullError):
        return ErrorDetails.of(
            ErrorCodes.SERVICE_UNAVAILABLE, str(exc), max_pending=exc.max_pending
        )
    if isinstance(exc, RuntimeClosedError | ActorUnresponsiveError | ActorRestartedError):
        return ErrorDetails.of(ErrorCodes.SERVICE_UNAVAILABLE, str(exc))
    if isinstance(exc, StoreError):
        return ErrorDetails.of(ErrorCodes.SERVICE_UNAVAILABLE, str(exc), location=exc.location)
    if isinstance(exc, UnknownGroupError):
        return ErrorDetails.of(ErrorCodes.NOT_FOUND, str(exc), group_id=exc.group_id)
    if isinstance(exc, UnknownTaskError):
        return ErrorDetails.of(ErrorCodes.NOT_FOUND, str(exc), task_id=exc.task_id)
    if isinstance(exc, TypeError | ValueError):
        return ErrorDetails.of(ErrorCodes.VALIDATION_ERROR, str(exc))
    return ErrorDetails.of(
        ErrorCodes.INTERNAL_ERROR,
        f"{type(exc).__name__}: {exc}",
        exception_type=type(exc).__qualname__,
    )


def iso_utc(timestamp: float | None) -> str | None:
    """How StoryCore shows a moment: ISO-8601 in UTC (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
