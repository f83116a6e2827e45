"""The task context handed to an operation as its second argument.

Progress and partial results are coalesced: the context keeps only the latest values
and has at most one ``ProgressReady`` message in flight to the registry, which drains
the context when it handles that message. A tight loop of a million ``update_progress``
calls therefore sends a handful of messages and holds constant memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pykka

from actors._clock import blocking_timeout
from actors._core.messages import ProgressReady
from actors._execution.interrupt import TaskInterrupted, clear_interrupt, raise_in_thread
from actors._execution.published import Published
from actors._execution.wire import CancelTask
from actors._outcome import StopReason

if TYPE_CHECKING:
    from actors._execution.processes import ChildProcess

__all__ = ["TaskContext"]


class TaskContext:
    """What an operation sees of its task: cancellation, progress, partial result."""

    __slots__ = (
        "_child",
        "_interrupts",
        "_lock",
        "_operation_thread",
        "_published",
        "_registry",
        "_stop_event",
        "_stop_reason",
        "dependency_results",
        "task_id",
    )

    def __init__(self, task_id: str, registry: pykka.ActorRef[Any]) -> None:
        self.task_id = task_id
        self._registry = registry
        self._lock = threading.Lock()
        # Created on first wait_cancelled(): most operations only poll is_cancelled(),
        # and an Event (a Condition and a lock) costs more than the rest of the context.
        self._stop_event: threading.Event | None = None
        self._stop_reason: StopReason | None = None
        # Coalesced: at most one ProgressReady is in flight to the registry at a time.
        self._published = Published()
        self._operation_thread: int | None = None  # ident while the operation runs
        self._child: ChildProcess | None = None  # process isolation: the child running it
        self._interrupts = 0
        # The results of the tasks this one depended on, by task id (empty without any).
        self.dependency_results: Mapping[str, Any] = {}

    # -- for operations ----------------------------------------------------------------

    def is_cancelled(self) -> bool:
        """True once the task was cancelled or timed out: return soon (see stop_grace)."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the operation is being asked to stop, or None while it may carry on."""
        return self._stop_reason

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds or until a stop is requested; returns
        :meth:`is_cancelled`. Use it instead of ``time.sleep`` inside operations."""
        with self._lock:
            event = self._stop_event
            if event is None:
                event = self._stop_event = threading.Event()
                if self._stop_reason is not None:
                    event.set()
        return event.wait(blocking_timeout(timeout))

    def update_progress(self, fraction: float) -> None:
        """Report progress as a fraction from 0.0 to 1.0."""
        if self._published.progress(fraction):
            self._notify()

    @property
    def partial_result(self) -> Any:
        """The latest partial result set by the operation (None if never set)."""
        return self._published.latest_partial()

    @partial_result.setter
    def partial_result(self, value: Any) -> None:
        if self._published.partial(value):
            self._notify()

    # -- for the runtime -----------------------------------------------------------------

    def request_stop(self, reason: StopReason) -> None:
        """Ask the operation to stop (cooperatively). The first reason wins."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            event = self._stop_event
        if event is not None:
            event.set()

    @property
    def interrupts(self) -> int:
        """How many times the operation's thread was interrupted."""
        return self._interrupts

    def attach_child(self, child: ChildProcess) -> None:
        """Process isolation: ``child`` now runs this task's operation."""
        with self._lock:
            self._child = child

    def detach_child(self) -> None:
        """Called before the child goes back to its pool: from then on no signal or
        cancel meant for this task can reach the child's next task."""
        with self._lock:
            self._child = None

    def signal_child(self, signum: int) -> int | None:
        """Send ``signum`` to the child running this task; returns its pid, or None if
        no child runs it (not attached yet, or already given back)."""
        with self._lock:
            child = self._child
            if child is None:
                return None
            child.signal(signum)
            return child.pid

    def cancel_child(self, reason: StopReason) -> None:
        """Relay a stop request to the child running this task, if one does."""
        with self._lock:
            child = self._child
            if child is not None:
                child.send(CancelTask(self.task_id, reason.value))

    def enter_operation(self) -> None:
        """Called by the operation's thread just before it calls the operation."""
        with self._lock:
            self._operation_thread = threading.get_ident()

    def leave_operation(self) -> None:
        """Called by the operation's thread once the operation has returned or raised.

        Call it until it returns: a :class:`TaskInterrupted` set just before can still be
        raised here. Once it has returned, no interrupt is pending or can be set, so the
        thread may go back to its pool.
        """
        with self._lock:
            ident = self._operation_thread
            self._operation_thread = None
            if ident is not None and self._interrupts:
                clear_interrupt(ident)

    def interrupt(self) -> bool:
        """Raise :class:`TaskInterrupted` in the operation's thread, if it is still in the
        operation. Returns whether an interrupt was set."""
        with self._lock:
            ident = self._operation_thread
            if ident is None:
                return False
            self._interrupts += 1
            return raise_in_thread(ident, TaskInterrupted)

    def drain(self) -> tuple[float | None, Any, bool]:
        """Take the values published since the last drain: (progress, partial, has_partial).

        Called by the registry when it handles ``ProgressReady``; re-arms the notification.
        """
        return self._published.drain()

    def _notify(self) -> None:
        # The registry may be gone (shutdown without wait while an operation still
        # reports progress): progress then has nowhere to go, which is harmless.
        with contextlib.suppress(pykka.ActorDeadError):
            self._registry.tell(ProgressReady(self.task_id, self))

    def __repr__(self) -> str:
        return f"<TaskContext {self.task_id} cancelled={self.is_cancelled()}>"
