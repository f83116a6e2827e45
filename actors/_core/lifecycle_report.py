"""``LifecycleReport``: what the registry says about each step of a task.

A step is said twice, in one place: its line in the lifecycle log (with the task id
bound) and, while anyone is subscribed, its event for the notifier (through the
:class:`EventOutbox`, which holds it for its commit with a durable store). The registry
decides which step a message is; this object words it, so a handler says "created" or
"ended" once instead of a log call with an event beside it, and the two cannot drift
apart. The outcome-specific log lines are ``lifecycle_log``'s.

Without subscribers an event costs one call of the outbox's probe: its fields are not
even built.
"""

from __future__ import annotations

from actors._core.lifecycle_log import log_injected, log_terminal
from actors._core.outbox import EventOutbox
from actors._records import TaskRecord
from actors.logs import library_logger

__all__ = ["LifecycleReport"]

_log = library_logger("actors.registry")


class LifecycleReport:
    """The log line and the subscribers' event of each step of a task."""

    __slots__ = ("_emit", "_listened")

    def __init__(self, outbox: EventOutbox) -> None:
        # Bound once: called for every step of every task.
        self._listened = outbox.probe()
        self._emit = outbox.emit

    def created(self, record: TaskRecord) -> None:
        options = record.options
        if not _log.drops("info"):  # every task: no fields built for a dropped line
            _log.info(
                "task.created",
                task_id=record.task_id,
                operation=record.operation_name,
                priority=options.priority.label,
                user=options.user,
            )
        if self._listened():
            self._emit(
                "created",
                record,
                operation=record.operation_name,
                priority=options.priority.label,
                user=options.user,
                group_id=options.group_id,
            )

    def started(self, record: TaskRecord, injected_fault: str | None) -> None:
        if injected_fault is None:
            if not _log.drops("info"):  # as in created
                _log.info(
                    "task.started",
                    task_id=record.task_id,
                    operation=record.operation_name,
                    attempt=record.attempt,
                )
        else:
            log_injected(record, injected_fault)
        if self._listened():
            self._emit("started", record, attempt=record.attempt, operation=record.operation_name)

    def progress(self, record: TaskRecord, progress: float) -> None:
        _log.debug("task.progress", task_id=record.task_id, progress=progress)
        # Not held for a commit: progress is not a durable fact (see GroupCommit).
        if self._listened():
            self._emit("progress", record, now=True, progress=progress)

    def retry_scheduled(self, record: TaskRecord, next_at: float, error: str) -> None:
        _log.info(
            "task.retry_scheduled",
            task_id=record.task_id,
            attempt=record.attempt,
            next_attempt_at=next_at,
            error=error,
        )
        if self._listened():
            self._emit(
                "retry_scheduled", record, attempt=record.attempt, next_attempt_at=next_at,
                error=error,
            )  # fmt: skip

    def resumed(self, record: TaskRecord) -> None:
        """An ended task reopened for a new attempt (``resume_task``): subscribers see it
        as a retry scheduled now."""
        _log.info(
            "task.resumed",
            task_id=record.task_id,
            attempt=record.attempt + 1,
            checkpointed_at=record.checkpointed_at,
        )
        if self._listened():
            self._emit(
                "retry_scheduled", record, attempt=record.attempt, next_attempt_at=None,
                error="resumed",
            )  # fmt: skip

    def ended(self, record: TaskRecord) -> None:
        """The task became terminal (once)."""
        log_terminal(record)
        if self._listened():
            duration = record.duration_seconds
            status = record.status.value
            self._emit(
                status,
                record,
                status=status,
                outcome=type(record.outcome).__name__,
                duration_ms=None if duration is None else round(duration * 1000.0, 3),
            )
