"""The registry actor: the single writer of every task record.

It owns a :class:`TaskTable`; every state change arrives here as a message, and every
query is answered from here. It logs each lifecycle transition once, with the task id
bound, and wakes the callers waiting on a task when it becomes terminal. It never runs
user code.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka

from actors._clock import Clock
from actors._messages import (
    Cleanup,
    Finish,
    GetSnapshot,
    GetStats,
    ListTasks,
    MarkRunning,
    ProgressReady,
    Register,
    Unwatch,
    Watch,
)
from actors._outcome import (
    Cancelled,
    Completed,
    Crashed,
    Raised,
    ResourceExhausted,
    StopReason,
    TimedOut,
)
from actors._records import TaskRecord, TaskSnapshot
from actors._table import FinishResult, TaskTable
from actors.logs import library_logger

__all__ = ["RegistryActor", "TerminalWaiter"]

_log = library_logger("actors.registry")


class TerminalWaiter:
    """Handed to a caller of ``wait``: set once its task is terminal (or the registry
    stopped), carrying the terminal snapshot."""

    __slots__ = ("_event", "snapshot")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.snapshot: TaskSnapshot | None = None

    def set(self, snapshot: TaskSnapshot | None) -> None:
        self.snapshot = snapshot
        self._event.set()

    def wait(self, timeout: float | None) -> bool:
        return self._event.wait(timeout)


class RegistryActor(pykka.ThreadingActor):
    use_daemon_thread = True  # see SupervisorActor: a forgotten shutdown must not hang exit

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        return queue.SimpleQueue()  # see SupervisorActor

    def __init__(self, table: TaskTable, clock: Clock) -> None:
        super().__init__()
        self._table = table
        self._clock = clock
        self._waiters: dict[str, list[TerminalWaiter]] = {}

    def on_receive(self, message: Any) -> Any:
        # Ordered by frequency on the hot path.
        if isinstance(message, ProgressReady):
            return self._on_progress(message)
        if isinstance(message, Register):
            record = self._table.add(message.spec)
            _log.info(
                "task.created",
                task_id=record.task_id,
                operation=record.operation_name,
                priority=record.priority.label,
                user=record.user,
            )
            return None
        if isinstance(message, MarkRunning):
            started = self._table.mark_running(message.task_id, message.at)
            if started is not None:
                _log.info("task.started", task_id=started.task_id, operation=started.operation_name)
            return None
        if isinstance(message, Finish):
            return self._on_finish(message)
        if isinstance(message, GetSnapshot):
            found = self._table.get(message.task_id)
            return None if found is None else found.snapshot()
        if isinstance(message, Watch):
            return self._on_watch(message)
        if isinstance(message, Unwatch):
            waiters = self._waiters.get(message.task_id, [])
            if message.waiter in waiters:
                waiters.remove(message.waiter)
            if not waiters:
                self._waiters.pop(message.task_id, None)
            return None
        if isinstance(message, ListTasks):
            return [r.snapshot() for r in self._table.list(message.status, message.limit)]
        if isinstance(message, GetStats):
            return self._table.stats()
        if isinstance(message, Cleanup):
            removed = self._table.remove_ended_before(message.cutoff)
            if removed:
                _log.info("tasks.cleaned_up", count=len(removed))
            return len(removed)
        return super().on_receive(message)

    def on_stop(self) -> None:
        # Nobody waits forever on a registry that is gone: wake every waiter with the
        # latest snapshot it can have (the caller sees the task is not terminal).
        for task_id, waiters in self._waiters.items():
            record = self._table.get(task_id)
            snapshot = None if record is None else record.snapshot()
            for waiter in waiters:
                waiter.set(snapshot)
        self._waiters.clear()

    def _on_progress(self, message: ProgressReady) -> None:
        progress, partial, has_partial = message.context.drain()
        record = self._table.apply_progress(
            message.task_id, progress, partial, has_partial, self._clock.time()
        )
        if record is not None and progress is not None:
            _log.debug("task.progress", task_id=record.task_id, progress=progress)

    def _on_finish(self, message: Finish) -> None:
        outcome = message.outcome
        if isinstance(outcome, Cancelled) and outcome.reason is StopReason.CANCEL_REQUESTED:
            # Logged here, not by the supervisor, so it always follows task.created and
            # task.started in the log: this actor logs every step of a task, in order.
            current = self._table.get(message.task_id)
            if current is not None and not current.status.is_terminal:
                _log.info(
                    "task.cancel_requested", task_id=message.task_id, state=current.status.value
                )
        result, record = self._table.finish(message.task_id, outcome, message.at)
        if record is None:
            return
        if result is FinishResult.LATE_RESULT:
            _log.info("task.late_result_kept", task_id=record.task_id, status=record.status.value)
            return
        if result is FinishResult.IGNORED:
            return
        self._log_terminal(record)
        waiters = self._waiters.pop(record.task_id, None)
        if waiters:
            snapshot = record.snapshot()
            for waiter in waiters:
                waiter.set(snapshot)

    def _on_watch(self, message: Watch) -> TerminalWaiter | None:
        record = self._table.get(message.task_id)
        if record is None:
            return None
        waiter = TerminalWaiter()
        if record.status.is_terminal:
            waiter.set(record.snapshot())
        else:
            self._waiters.setdefault(message.task_id, []).append(waiter)
        return waiter

    @staticmethod
    def _log_terminal(record: TaskRecord) -> None:
        outcome = record.outcome
        duration = record.duration_seconds
        assert duration is not None
        duration_ms = round(duration * 1000.0, 3)
        task_id = record.task_id
        if isinstance(outcome, Completed):
            _log.info("task.completed", task_id=task_id, duration_ms=duration_ms)
        elif isinstance(outcome, TimedOut):
            _log.warning(
                "task.timed_out",
                task_id=task_id,
                duration_ms=duration_ms,
                timeout_seconds=outcome.timeout_seconds,
                has_partial_result=outcome.has_partial_result,
            )
        elif isinstance(outcome, Raised):
            _log.warning(
                "task.failed",
                task_id=task_id,
                duration_ms=duration_ms,
                exception_type=outcome.exception_type,
                error=outcome.message,
            )
        elif isinstance(outcome, Crashed):
            _log.warning(
                "task.failed",
                task_id=task_id,
                duration_ms=duration_ms,
                crashed=True,
                exit_code=outcome.exit_code,
                signal=outcome.signal_name,
            )
        elif isinstance(outcome, ResourceExhausted):
            _log.warning(
                "task.failed",
                task_id=task_id,
                duration_ms=duration_ms,
                limit=outcome.limit,
                limit_value=outcome.value,
            )
        elif isinstance(outcome, Cancelled):
            _log.info(
                "task.cancelled",
                task_id=task_id,
                duration_ms=duration_ms,
                reason=outcome.reason.value,
            )
