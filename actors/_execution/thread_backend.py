"""Thread isolation: an operation runs on a thread of the runtime's operation pool.

The pool has a thread for every slot, so a hand-over is the start (the supervisor records
``running`` as it hands over); the operation's ``task.gpu_indices`` are those the task
holds of the host's ledger (``gpus_of``). The stop ladder's forced steps raise
:class:`~actors.TaskInterrupted` in the operation's thread; a thread cannot be killed, so a
kill is another interrupt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors._enums import Isolation
from actors._execution.backend import Attempt, AttemptEvents
from actors._execution.context import attempt_context
from actors._execution.injected import InjectedCrash, InjectedLimit
from actors._execution.interrupt import (
    TaskInterrupted,
    deliver_pending_interrupt,
    raise_in_thread,
)
from actors._execution.threadpool import ThreadPool
from actors._outcome import Completed, Outcome, Raised, StopReason
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["ThreadAttempt", "ThreadBackend"]

_log = library_logger("actors.worker")

# The outcome of an operation interrupted again while its outcome was being built. The
# task is already terminal then (it timed out or was cancelled): nothing reads the detail.
_INTERRUPTED = Raised(
    exception_type="actors.TaskInterrupted",
    message="interrupted after its stop grace",
    traceback="",
)


class ThreadBackend:
    """Operations on the threads of ``op_pool``."""

    isolation = Isolation.THREAD
    starts_on_handover = True
    kill_ends_attempt = False

    def __init__(
        self,
        op_pool: ThreadPool,
        registry: pykka.ActorRef[Any],
        gpus_of: Callable[[str], tuple[int, ...]] | None = None,
    ) -> None:
        self._op_pool = op_pool
        self._registry = registry
        # The GPU indices a task holds (taken by the supervisor before the attempt).
        self._gpus_of = gpus_of

    def start(self, spec: TaskSpec, events: AttemptEvents) -> Attempt:
        gpus = (
            ()
            if self._gpus_of is None or spec.options.resources is None
            else self._gpus_of(spec.task_id)
        )
        attempt = ThreadAttempt(spec, self._registry, events, gpus)
        try:
            self._op_pool.submit(attempt.run)
        except RuntimeError as exc:
            # The pool is shut down (interpreter exit): the operation cannot run, but the
            # supervisor must still hear about it, or the slot would be lost.
            events.ended(Raised.from_exception(exc))
        return attempt

    def shutdown(self) -> None:
        """Nothing of its own to stop: the operation pool is the runtime's."""


class ThreadAttempt:
    """One attempt on a pooled thread, and its levers."""

    __slots__ = ("_events", "_interrupts", "_lock", "_stop", "_thread", "context", "spec")

    def __init__(
        self,
        spec: TaskSpec,
        registry: pykka.ActorRef[Any],
        events: AttemptEvents,
        gpu_indices: tuple[int, ...] = (),
    ) -> None:
        self.spec = spec
        self._events = events
        self._stop, self.context = attempt_context(spec, registry, events.published, gpu_indices)
        self._lock = threading.Lock()
        self._thread: int | None = None  # ident while the operation runs
        self._interrupts = 0

    # -- levers (the worker actor's thread) -------------------------------------------

    def stop(self, reason: StopReason) -> None:
        self._stop.request(reason)

    def interrupt(self, reason: StopReason) -> None:
        with self._lock:
            ident = self._thread
            if ident is None:
                return  # not in the operation (yet, or any more)
            self._interrupts += 1
            count = self._interrupts
            if not raise_in_thread(ident, TaskInterrupted):
                return
        # Repeated every INTERRUPT_REPEAT_SECONDS while a blocking call holds the thread:
        # the escalation is logged once, then only its count, at each power of ten.
        if count == 1:
            _log.warning(
                "task.interrupted", task_id=self.spec.task_id, interrupts=1, reason=reason.value
            )
        elif _is_power_of_ten(count):
            _log.warning(
                "task.still_interrupted",
                task_id=self.spec.task_id,
                interrupts=count,
                reason=reason.value,
            )

    def kill(self, reason: StopReason) -> None:
        self.interrupt(reason)  # a thread cannot be killed: interrupt it again

    # -- the operation's thread ---------------------------------------------------------

    def run(self) -> None:
        """Call the operation, contain whatever it raises, report the end."""
        refused = self._events.confirm_start()
        if refused is not None:
            self._events.ended(refused)
            return
        spec = self.spec
        outcome: Outcome = _INTERRUPTED
        with self._lock:
            self._thread = threading.get_ident()
        try:
            try:
                # A plain function (the submission checked), not a coroutine function;
                # typed here without cast(), a call on every task.
                operation: Any = spec.operation
                outcome = Completed(operation(spec.params, self.context))
            except (InjectedCrash, InjectedLimit) as fault:
                outcome = fault.outcome()  # what the real fault does to a child
            except BaseException as exc:
                # SystemExit, KeyboardInterrupt and TaskInterrupted included: in pykka a
                # BaseException that escapes an actor stops every actor.
                outcome = Raised.from_exception(exc)
        except TaskInterrupted:
            pass  # a repeated interrupt hit while the first one was being recorded
        while True:
            # An interrupt set just as the operation returned may still fire here; once
            # the thread is forgotten none can be set, and one still pending is raised
            # by the call after it.
            try:
                with self._lock:
                    self._thread = None
                deliver_pending_interrupt()
                break
            except TaskInterrupted:
                continue
        if self._interrupts > 1:
            _log.info(
                "task.left_after_interrupts", task_id=self.spec.task_id, interrupts=self._interrupts
            )
        self._events.ended(outcome)


def _is_power_of_ten(count: int) -> bool:
    while count % 10 == 0:
        count //= 10
    return count == 1
