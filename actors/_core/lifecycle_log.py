"""The lifecycle log: the one line each step of a task writes, with the task id bound.

The registry sees every transition in order, so it alone logs them (``task.created``,
``task.started``, then exactly one terminal event), which makes a task's log read in the
order it happened. What each outcome logs, at which level and with which facts, is a
concern of its own, kept here out of the registry's handlers; these functions only log.
(The plain ``task.created`` and ``task.started`` lines stay inline in the registry's
handlers: they are its hot path, where a call per message counts.)
"""

from __future__ import annotations

from typing import assert_never

from actors._outcome import (
    Cancelled,
    Completed,
    Crashed,
    DependencyFailed,
    Interrupted,
    Raised,
    ResourceExhausted,
    ResultNotStorable,
    Stalled,
    TimedOut,
)
from actors._records import TaskRecord
from actors.logs import library_logger

__all__ = ["log_injected", "log_terminal"]

_log = library_logger("actors.registry")


def log_injected(record: TaskRecord, fault: str) -> None:
    """An attempt started with a fault a test injected into it."""
    # Said twice, so neither a reader of task.started nor a search for injected
    # faults can take this attempt's failure for a real one.
    _log.warning(
        "fault.injected",
        task_id=record.task_id,
        operation=record.operation_name,
        attempt=record.attempt,
        fault=fault,
    )
    _log.info(
        "task.started",
        task_id=record.task_id,
        operation=record.operation_name,
        attempt=record.attempt,
        injected_fault=fault,
    )


def log_terminal(record: TaskRecord) -> None:
    """A task's end, once: one event per kind of outcome, with its facts."""
    outcome = record.outcome
    if type(outcome) is Completed and _log.drops("info"):
        return  # the busiest case, and its level dropped: no fields computed
    duration = record.duration_seconds
    assert duration is not None
    duration_ms = round(duration * 1000.0, 3)
    task_id = record.task_id
    match outcome:
        case None:
            return  # not terminal: nothing to say
        case Completed():
            _log.info("task.completed", task_id=task_id, duration_ms=duration_ms)
        case TimedOut():
            _log.warning(
                "task.timed_out",
                task_id=task_id,
                duration_ms=duration_ms,
                timeout_seconds=outcome.timeout_seconds,
                has_partial_result=outcome.has_partial_result,
            )
        case Stalled():
            _log.warning(
                "task.stalled",
                task_id=task_id,
                duration_ms=duration_ms,
                heartbeat_timeout=outcome.heartbeat_timeout,
                silent_seconds=outcome.silent_seconds,
            )
        case Raised():
            _log.warning(
                "task.failed",
                task_id=task_id,
                duration_ms=duration_ms,
                exception_type=outcome.exception_type,
                error=outcome.message,
            )
        case Crashed():
            _log.warning(
                "task.failed",
                task_id=task_id,
                duration_ms=duration_ms,
                crashed=True,
                exit_code=outcome.exit_code,
                signal=outcome.signal_name,
            )
        case ResourceExhausted():
            _log.warning(
                "task.failed",
                task_id=task_id,
                duration_ms=duration_ms,
                limit=outcome.limit,
                limit_value=outcome.value,
            )
        case Interrupted():
            _log.warning(
                "task.interrupted_by_restart",
                task_id=task_id,
                was_running=outcome.was_running,
                attempt=outcome.attempt,
                cause=outcome.cause,
            )
        case ResultNotStorable():
            _log.warning(
                "task.failed",
                task_id=task_id,
                duration_ms=duration_ms,
                result_type=outcome.type_name,
            )
        case DependencyFailed():
            _log.info(
                "task.cancelled",
                task_id=task_id,
                duration_ms=duration_ms,
                reason="dependency_failed",
                dependency_id=outcome.dependency_id,
                dependency_status=outcome.dependency_status,
            )
        case Cancelled():
            _log.info(
                "task.cancelled",
                task_id=task_id,
                duration_ms=duration_ms,
                reason=outcome.reason.value,
            )
        case _:
            assert_never(outcome)
