"""StoryCore error codes, the ErrorDetails shape, HTTP mappings and remediation texts.

The runtime records failure facts; this module is the one place that turns a fact (or a
typed exception from a public entry point) into the error StoryCore clients see.

An error is shown on one of three surfaces (:class:`Surface`): the Python API (the
default, and the router StoryCore embeds), the HTTP service, or the CLI. A remedy says
what the reader can do *there*: "pass --token" on the CLI, not "send an Authorization
header"; "register_operation(...)" in Python, not to an HTTP client who cannot call it.
The surface is chosen where the error is rendered (:meth:`ErrorDetails.for_surface`,
:func:`remediation_for`, ``error_from_exception(exc, surface)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, assert_never

from actors import (
    MAX_NESTING,
    ActorRestartedError,
    ActorUnresponsiveError,
    Cancelled,
    Completed,
    Crashed,
    DependencyFailed,
    Interrupted,
    NaiveRunAtError,
    NotResumableError,
    OperationUnavailableError,
    Outcome,
    QueryFailedError,
    QueueFullError,
    Raised,
    RayUnavailableError,
    ResourceExhausted,
    ResultNotStorable,
    RuntimeClosedError,
    Stalled,
    StopReason,
    StoreError,
    TimedOut,
    UnguardedMainError,
    UnknownGroupError,
    UnknownOperationError,
    UnknownTaskError,
)

__all__ = [
    "HTTP_STATUS_BY_CODE",
    "REMEDIATION_BY_CODE",
    "ErrorCodes",
    "ErrorDetails",
    "Surface",
    "cancel_conflict",
    "error_from_exception",
    "error_from_outcome",
    "http_status_for",
    "iso_utc",
    "remediation_for",
    "shown_on",
    "status_shown_on",
]


class Surface(StrEnum):
    """Where an error is shown, which decides what its remedy tells the reader to do."""

    PYTHON = "python"  # the Python API and the router StoryCore embeds
    HTTP = "http"  # the HTTP service's answers (curl, the dashboard, ServiceClient)
    CLI = "cli"  # the storycore-tasks command


class ErrorCodes(StrEnum):
    """Every error code StoryCore clients can receive."""

    VALIDATION_ERROR = "VALIDATION_ERROR"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    TIMEOUT = "TIMEOUT"
    STALLED = "STALLED"
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
        ErrorCodes.STALLED: 504,
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
        ErrorCodes.STALLED: (
            "The operation showed no sign of life for heartbeat_timeout seconds (see "
            "details.silent_seconds) and was stopped: find where it hangs, report progress "
            "or call task.heartbeat() in long steps, or raise heartbeat_timeout. With a "
            "checkpoint, resume_task(task_id) runs it again from there."
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
            "The operation returned a value that cannot be stored or sent; return JSON "
            "data (numbers, strings, booleans, None, lists, dicts with string keys), nested "
            f"at most {MAX_NESTING} levels deep, with text that is valid Unicode (a file "
            "name from os.fsdecode() can hold lone surrogates: send os.fsencode(name)"
            ".decode('utf-8', 'backslashreplace'))."
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


_SERVICE_OPERATIONS = (
    "storycore-tasks serve --operations MODULE:ATTR (or the storycore_tasks.operations "
    "entry point group)"
)

_REMEDIATION_BY_SURFACE: Mapping[Surface, Mapping[ErrorCodes, str]] = MappingProxyType(
    {
        Surface.PYTHON: REMEDIATION_BY_CODE,
        Surface.HTTP: MappingProxyType(
            {
                ErrorCodes.NOT_FOUND: (
                    "Check the task id (GET /v1/tasks lists the tasks your token may see). "
                    "Ended tasks are removed after the service's retention time (an hour by "
                    "default): read them sooner."
                ),
                ErrorCodes.STALLED: (
                    "The operation showed no sign of life for its heartbeat_timeout (see "
                    "details.silent_seconds) and was stopped; raise heartbeat_timeout, or, "
                    "with a checkpoint, POST /v1/tasks/{task_id}/resume to go on from it."
                ),
                ErrorCodes.INTERRUPTED: (
                    "The service stopped (a crash or a kill) before the task ended: create "
                    "the task again. For such tasks to run again by themselves, the "
                    "service's operator registers the operation as NamedOperation(fn, "
                    "retry_on_interrupt=True) in the mapping given to --operations."
                ),
            }
        ),
        Surface.CLI: MappingProxyType(
            {
                ErrorCodes.VALIDATION_ERROR: (
                    "Fix the argument or option the message names and run the command again "
                    "(storycore-tasks COMMAND --help lists them)."
                ),
                ErrorCodes.NOT_FOUND: (
                    "Check the id: `storycore-tasks list` shows the tasks your token may "
                    "see. Ended tasks are removed after the service's retention time (an "
                    "hour by default): look sooner."
                ),
                ErrorCodes.STALLED: (
                    "The operation showed no sign of life for its heartbeat timeout and was "
                    "stopped; give it more (submit --heartbeat-timeout S), or, with a "
                    "checkpoint, `storycore-tasks resume ID` goes on from it."
                ),
                ErrorCodes.TIMEOUT: (
                    "Give the task more time (submit --timeout S), split the work into "
                    "smaller tasks, or resume from the partial result (storycore-tasks "
                    "status ID shows it)."
                ),
                ErrorCodes.INTERRUPTED: (
                    "The service stopped (a crash or a kill) before the task ended: submit "
                    "the task again. For such tasks to run again by themselves, the "
                    "service's operator registers the operation as NamedOperation(fn, "
                    "retry_on_interrupt=True) in the mapping given to --operations."
                ),
                ErrorCodes.AUTHENTICATION_REQUIRED: (
                    "Pass --token TOKEN or set $STORYCORE_TASKS_TOKEN to a token of this "
                    "service (its operator makes one with `storycore-tasks token create`)."
                ),
            }
        ),
    }
)
"""Each surface's remedy where it differs from the Python API's (REMEDIATION_BY_CODE)."""

# Remedies more specific than the code's standard one, per surface (keyed by the
# Python text, which is what a fact or an exception carries); filled below, where
# those remedies are defined.
_SPECIFIC_BY_SURFACE: dict[str, Mapping[Surface, str]] = {}


def remediation_for(code: ErrorCodes | str, surface: Surface | str = Surface.PYTHON) -> str:
    """The standard remedy for ``code`` as shown on ``surface`` ("" for an unknown code)."""
    try:
        known = ErrorCodes(code)
    except ValueError:
        return ""
    texts = _REMEDIATION_BY_SURFACE[Surface(surface)]
    return texts.get(known) or REMEDIATION_BY_CODE[known]


def _for_surface(code: str, remediation: str, surface: Surface) -> str:
    """``remediation`` as ``surface`` shows it: a standard or specific remedy, as any
    surface words it, is swapped for ``surface``'s version; any other text is kept."""
    for variants in _SPECIFIC_BY_SURFACE.values():
        if remediation in variants.values():
            return variants.get(surface, remediation)
    try:
        known = ErrorCodes(code)
    except ValueError:
        return remediation
    if any(remediation == remediation_for(known, other) for other in Surface):
        return remediation_for(known, surface)
    return remediation


def shown_on(error: Mapping[str, Any], surface: Surface | str) -> dict[str, Any]:
    """An error dict (``ErrorDetails.to_dict()``, as task status dicts hold it) with its
    remedy for ``surface``."""
    shown = dict(error)
    remediation = shown.get("remediation")
    if isinstance(remediation, str):
        shown["remediation"] = _for_surface(str(shown.get("code")), remediation, Surface(surface))
    return shown


def status_shown_on(status: Mapping[str, Any], surface: Surface | str) -> dict[str, Any]:
    """A task status dict whose error (if any) has its remedy for ``surface``."""
    shown = dict(status)
    error = shown.get("error")
    if isinstance(error, Mapping):
        shown["error"] = shown_on(error, surface)
    return shown


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

    def for_surface(self, surface: Surface | str) -> ErrorDetails:
        """This error with the remedy ``surface`` shows (the Python API's is the default)."""
        shown = _for_surface(self.code.value, self.remediation, Surface(surface))
        return self if shown == self.remediation else replace(self, remediation=shown)

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


_REMOTE_REGISTRY_RESTARTED = (
    "The service's registry failed while recording this task's change and restarted; "
    "only this task was affected and its outcome is unknown. Create the task again; if "
    "it keeps happening, tell the service's operator (the restarts counter is in "
    "{stats})."
)
_REMOTE_SUPERVISOR_FAILED = (
    "The service's task manager failed and stopped, ending every unfinished task; "
    "the service must be restarted by its operator (the reason is in its log, "
    "manager.giving_up). Then create the task again."
)
_SPECIFIC_BY_SURFACE.update(
    {
        _REGISTRY_RESTARTED_REMEDIATION: {
            Surface.PYTHON: _REGISTRY_RESTARTED_REMEDIATION,
            Surface.HTTP: _REMOTE_REGISTRY_RESTARTED.format(stats="GET /v1/stats"),
            Surface.CLI: _REMOTE_REGISTRY_RESTARTED.format(stats="storycore-tasks stats --json"),
        },
        _SUPERVISOR_FAILED_REMEDIATION: {
            Surface.PYTHON: _SUPERVISOR_FAILED_REMEDIATION,
            Surface.HTTP: _REMOTE_SUPERVISOR_FAILED,
            Surface.CLI: _REMOTE_SUPERVISOR_FAILED,
        },
    }
)


# How a Raised fact names it (actors' exception_name: module and qualified name).
_UNGUARDED_MAIN = f"{UnguardedMainError.__module__}.{UnguardedMainError.__qualname__}"
_UNGUARDED_MAIN_REMEDIATION = (
    "Process isolation starts child processes that import the main module again: put "
    'the code that creates the TaskManager under `if __name__ == "__main__":` in that '
    "module, then create the task again."
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
    match outcome:
        case None | Completed():
            return None
        case TimedOut():
            details: dict[str, Any] = {"timeout_seconds": outcome.timeout_seconds}
            if outcome.has_partial_result:
                details["partial_result"] = outcome.partial_result
            if outcome.has_checkpoint:
                details["checkpoint"] = outcome.checkpoint
            return ErrorDetails.of(
                ErrorCodes.TIMEOUT,
                f"Operation exceeded timeout of {outcome.timeout_seconds} seconds",
                **details,
            )
        case Stalled():
            stall: dict[str, Any] = {
                "heartbeat_timeout": outcome.heartbeat_timeout,
                "silent_seconds": outcome.silent_seconds,
                "progress": outcome.progress,
            }
            if outcome.has_partial_result:
                stall["partial_result"] = outcome.partial_result
            if outcome.has_checkpoint:
                stall["checkpoint"] = outcome.checkpoint
            return ErrorDetails.of(
                ErrorCodes.STALLED,
                f"Operation showed no sign of life for {outcome.silent_seconds:g} seconds "
                f"(heartbeat_timeout {outcome.heartbeat_timeout:g} s) and was stopped",
                **stall,
            )
        case Raised() if outcome.exception_type == _UNGUARDED_MAIN:
            # Not the operation's exception: the script that runs the manager lacks the guard.
            return ErrorDetails(
                ErrorCodes.INTERNAL_ERROR,
                outcome.message,
                {"exception_type": outcome.exception_type},
                _UNGUARDED_MAIN_REMEDIATION,
            )
        case Raised():
            return ErrorDetails.of(
                ErrorCodes.INTERNAL_ERROR,
                f"Operation raised {outcome.exception_type}: {outcome.message}"
                if outcome.message
                else f"Operation raised {outcome.exception_type}",
                exception_type=outcome.exception_type,
                exception_message=outcome.message,
            )
        case Crashed():
            if outcome.reason is not None:
                how = f"was ended by the task manager: {outcome.reason}"
            elif outcome.ray_error is not None:
                how = f"died on Ray node {outcome.node_id}: {outcome.ray_error}"
            elif outcome.signal is not None:
                how = f"was killed by {outcome.signal_name}"
            else:
                how = f"exited with code {outcome.exit_code}"
            crash_details: dict[str, Any] = {}
            if outcome.reason is not None:
                crash_details["reason"] = outcome.reason
            if outcome.ray_error is not None:
                crash_details["node_id"] = outcome.node_id
                crash_details["ray_error"] = outcome.ray_error
            return ErrorDetails.of(
                ErrorCodes.WORKER_CRASHED,
                f"The worker process running the operation {how}",
                exit_code=outcome.exit_code,
                signal=outcome.signal,
                signal_name=outcome.signal_name,
                **crash_details,
            )
        case ResourceExhausted() if outcome.limit == "node_memory":
            return ErrorDetails.of(
                ErrorCodes.RESOURCE_EXHAUSTED,
                "Ray's memory monitor killed the operation's worker: its node ran out of memory",
                limit=outcome.limit,
                reason=outcome.message,
            )
        case ResourceExhausted():
            unit = "MB" if outcome.limit == "memory_limit_mb" else "seconds of CPU time"
            return ErrorDetails.of(
                ErrorCodes.RESOURCE_EXHAUSTED,
                f"Operation exceeded its {outcome.limit} of {outcome.value:g} {unit}",
                limit=outcome.limit,
                value=outcome.value,
                reason=outcome.message,
            )
        case Interrupted():
            stage = (
                f"while attempt {outcome.attempt} ran" if outcome.was_running else "before it ran"
            )
            what = {
                "registry_restarted": (
                    "The task manager's registry failed on this task's update and restarted"
                ),
                "supervisor_failed": "The task manager's supervisor failed and the manager stopped",
                "resources_unavailable": (
                    "The task asks for resources this task manager does not declare (or "
                    "has less of than it asks), so it was not run"
                ),
                "ray_unavailable": "The task manager lost its connection to the Ray cluster",
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
        case DependencyFailed():
            return ErrorDetails.of(
                ErrorCodes.DEPENDENCY_ERROR,
                f"Task was cancelled because its dependency {outcome.dependency_id} "
                f"{outcome.dependency_status}",
                dependency_id=outcome.dependency_id,
                dependency_status=outcome.dependency_status,
            )
        case ResultNotStorable():
            return ErrorDetails.of(
                ErrorCodes.RESULT_NOT_SERIALIZABLE,
                f"Operation returned a {outcome.type_name}, which cannot be stored or sent: "
                f"{outcome.message}",
                result_type=outcome.type_name,
            )
        case Cancelled():
            message = {
                StopReason.CANCEL_REQUESTED: "Task was cancelled on request",
                StopReason.SHUTDOWN: "Task was cancelled because the task manager shut down",
                StopReason.TIMEOUT: "Task was cancelled by its timeout",
                StopReason.STALLED: "Task was cancelled because it stalled",
            }[outcome.reason]
            return ErrorDetails.of(ErrorCodes.CANCELLED, message, reason=outcome.reason.value)
        case _:
            assert_never(outcome)


def error_from_exception(
    exc: BaseException, surface: Surface | str = Surface.PYTHON
) -> ErrorDetails:
    """The error a public entry point's exception maps to (for the router and service),
    with its message and remedy as ``surface`` shows them."""
    return _error_from_exception(exc, Surface(surface)).for_surface(surface)


def _error_from_exception(exc: BaseException, surface: Surface) -> ErrorDetails:
    remote = surface is not Surface.PYTHON  # the reader cannot call the Python API
    if remote and isinstance(exc, UnknownOperationError):
        shown = ", ".join(repr(n) for n in exc.known[:10]) or "none"
        more = f" and {len(exc.known) - 10} more" if len(exc.known) > 10 else ""
        return ErrorDetails(
            ErrorCodes.VALIDATION_ERROR,
            f"no operation is registered as {exc.name!r} (registered: {shown}{more})",
            {"operation": exc.name, "registered": exc.known[:100]},
            "Use one of the registered operations; the service registers operations when "
            f"it starts: {_SERVICE_OPERATIONS}.",
        )
    if remote and isinstance(exc, NaiveRunAtError):
        return ErrorDetails(
            ErrorCodes.VALIDATION_ERROR,
            f"run_at must carry a time zone, got {exc.value}",
            {"field": "run_at"},
            "Give run_at as ISO-8601 with a time zone, e.g. 2030-01-01T12:00:00Z or "
            "2030-01-01T14:00:00+02:00 (or use delay, in seconds).",
        )
    if remote and isinstance(exc, QueueFullError):
        return ErrorDetails(
            ErrorCodes.SERVICE_UNAVAILABLE,
            f"the service's pending queue is full ({exc.max_pending} tasks waiting); the "
            "task was not accepted",
            {"max_pending": exc.max_pending},
            "Retry later with backoff, or cancel tasks you no longer need.",
        )
    if isinstance(exc, RayUnavailableError):
        if not exc.no_backend:  # the cluster is out of reach: try again later
            return ErrorDetails.of(ErrorCodes.SERVICE_UNAVAILABLE, str(exc))
        fix = (
            "Leave isolation out (or use 'thread' or 'process'), or start the service "
            "with --ray-address ADDRESS or --ray-local to run tasks on a Ray cluster."
            if remote
            else "Pass ray=RayBackend(...) to the manager, or use another isolation."
        )
        return ErrorDetails(
            ErrorCodes.VALIDATION_ERROR,
            "isolation='ray' is not available: this task manager has no Ray back-end",
            {"field": "isolation"},
            fix,
        )
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
    if isinstance(exc, QueryFailedError):
        return ErrorDetails(
            ErrorCodes.INTERNAL_ERROR,
            str(exc),
            {"request": exc.request, "exception_type": type(exc.error).__qualname__},
            "The task manager failed to answer this query; nothing changed and it keeps "
            "running. Make the call again, and report the message if it repeats.",
        )
    if isinstance(exc, StoreError):
        return ErrorDetails.of(ErrorCodes.SERVICE_UNAVAILABLE, str(exc), location=exc.location)
    if isinstance(exc, NotResumableError):
        return ErrorDetails(
            ErrorCodes.CONFLICT,
            f"task {exc.task_id} cannot be resumed: {exc.reason}",
            {"task_id": exc.task_id, "reason": exc.reason},
            _resume_fix(exc, surface),
        )
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


def _resume_fix(exc: NotResumableError, surface: Surface) -> str:
    """What makes a task resumable, as the reader on ``surface`` can do it."""
    if surface is Surface.PYTHON or "register" not in exc.fix:
        return exc.fix[0].upper() + exc.fix[1:] + "."
    return (
        "Only tasks of operations the service registers by name can be resumed "
        f"({_SERVICE_OPERATIONS}); create a new task to run this one again."
    )


def iso_utc(timestamp: float | None) -> str | None:
    """How StoryCore shows a moment: ISO-8601 in UTC (None stays None), exactly as
    ``datetime.fromtimestamp(timestamp, tz=UTC).isoformat()`` writes it. Never raises:
    a stored moment beyond what a datetime holds (a record from before start times were
    bounded) shows as the first or last moment one can, NaN as None, so one odd record
    cannot break a listing of them all.

    Every status read and ``wait`` shows four to seven moments, mostly within a second
    of each other and of other tasks' moments: each second is formatted once and kept,
    and only the microseconds are written per moment (tests/test_iso_utc.py checks the
    result against the datetime's)."""
    if timestamp is None:
        return None
    try:
        # Split as datetime.fromtimestamp splits it: microseconds rounded half to even.
        fraction, whole = math.modf(timestamp)
        micro = round(fraction * 1e6)
        second = int(whole)
    except (OverflowError, ValueError):  # infinite, NaN
        return _iso_utc_edge(timestamp)
    if micro >= 1_000_000:
        micro -= 1_000_000
        second += 1
    elif micro < 0:
        micro += 1_000_000
        second -= 1
    prefix = _SECONDS.get(second)
    if prefix is None:
        prefix = _second_prefix(second)
        if prefix is None:
            return _iso_utc_edge(timestamp)
    if micro:
        return f"{prefix}.{micro:06d}+00:00"
    return prefix + "+00:00"


# Seconds since the epoch -> "YYYY-MM-DDTHH:MM:SS", for the seconds in use.
_SECONDS: dict[int, str] = {}
_SECONDS_KEPT = 4096


def _second_prefix(second: int) -> str | None:
    """The moment ``second`` seconds after the epoch, to the second and without its
    offset; None beyond what a datetime holds. Kept for the next moments in it."""
    try:
        prefix = datetime.fromtimestamp(second, tz=UTC).isoformat()[: -len("+00:00")]
    except (OverflowError, OSError, ValueError):
        return None
    if len(_SECONDS) >= _SECONDS_KEPT:  # never grows for long (a race here is harmless)
        _SECONDS.clear()
    _SECONDS[second] = prefix
    return prefix


def _iso_utc_edge(timestamp: float) -> str | None:
    """A moment the split above cannot take: as the datetime writes it, or, beyond
    what a datetime holds, its first or last moment; NaN: None."""
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        if math.isnan(timestamp):
            return None
        edge = datetime.max if timestamp > 0 else datetime.min
        return edge.replace(tzinfo=UTC).isoformat()
