"""The worker actor: drives exactly one task's operation, then stops.

The operation runs on a thread of the runtime's operation pool, never on the worker's
mailbox, so the worker answers ``Stop`` at once while the operation runs. When the
operation returns (or raises anything at all), that thread stops the worker and reports
``WorkerFinished`` to the supervisor itself: the worker's mailbox is used only when
someone sends it a message, so a task that is never stopped costs no dispatcher turn.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.messages import ChildStarted, Interrupt, Stop, WorkerFinished
from actors._core.pooled import PooledActor
from actors._enums import Isolation
from actors._errors import UnstorableValueError
from actors._execution.context import TaskContext
from actors._execution.faults import InjectedCrash, InjectedLimit
from actors._execution.interrupt import TaskInterrupted
from actors._execution.processes import ProcessPool, run_in_child
from actors._execution.threadpool import ThreadPool
from actors._outcome import Cancelled, Completed, Outcome, Raised, ResultNotStorable
from actors._records import TaskSpec
from actors._storage.codec import check_value, normalized
from actors._storage.store import CommitTicket
from actors.logs import library_logger

__all__ = ["WorkerActor"]

# The outcome of an operation interrupted again while its outcome was being built. The
# task is already terminal then (it timed out or was cancelled): nothing reads the detail.
_INTERRUPTED = Raised(
    exception_type="actors.TaskInterrupted",
    message="interrupted after its stop grace",
    traceback="",
)

_log = library_logger("actors.worker")


class WorkerActor(PooledActor):
    def __init__(
        self,
        *,
        spec: TaskSpec,
        context: TaskContext,
        op_pool: ThreadPool,
        process_pool: Callable[[], ProcessPool],
        supervisor: pykka.ActorRef[Any],
        clock: Clock,
        start_ticket: CommitTicket | None = None,
        start_timeout: float = 30.0,
        store_results: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._spec = spec
        self._context = context
        self._op_pool = op_pool
        self._process_pool = process_pool
        self._signals_sent = 0
        self._supervisor = supervisor
        self._clock = clock
        self._start_ticket = start_ticket
        self._start_timeout = start_timeout
        self._store_results = store_results  # a durable store keeps results as JSON

    def on_start(self) -> None:
        _log.debug(
            "worker.spawned", task_id=self._spec.task_id, operation=self._spec.operation_name
        )
        run = self._run_operation
        if self._spec.options.isolation is Isolation.PROCESS:
            run = self._drive_child
        try:
            self._op_pool.submit(run)
        except RuntimeError as exc:
            # The pool is shut down (interpreter exit): the operation cannot run, but the
            # supervisor must still hear about it, or the slot would be lost.
            self._report(Raised.from_exception(exc))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Stop):
            self._context.request_stop(message.reason)
            self._context.cancel_child(message.reason)
        elif isinstance(message, Interrupt):
            if self._spec.options.isolation is Isolation.PROCESS:
                self._signal_child(message)
            elif self._context.interrupt():
                _log.warning(
                    "task.interrupted",
                    task_id=self._spec.task_id,
                    attempt=self._context.interrupts,
                    reason=message.reason.value,
                )
        else:
            super().on_receive(message)

    def on_stop(self) -> None:
        _log.debug("worker.stopped", task_id=self._spec.task_id)

    def _signal_child(self, message: Interrupt) -> None:
        # Process isolation escalates with signals: SIGTERM after the first grace, SIGKILL
        # after the second (and after every later one, should the child still live).
        signum = signal.SIGTERM if self._signals_sent == 0 else signal.SIGKILL
        pid = self._context.signal_child(signum)
        if pid is None:
            return  # not attached yet (the next escalation tries again), or given back
        self._signals_sent += 1
        _log.warning(
            "task.child_signalled",
            task_id=self._spec.task_id,
            pid=pid,
            signal=signal.Signals(signum).name,
            reason=message.reason.value,
        )

    def _drive_child(self) -> None:
        """Runs on a pooled thread: drive the operation in a child process."""
        refused = self._await_start()
        if refused is not None:
            self._report(refused)
            return
        outcome: Outcome
        try:
            outcome = run_in_child(
                self._process_pool(), self._spec, self._context, self._child_started
            )
        except Exception as exc:  # the pool could not start a child, or is shut down
            outcome = Raised.from_exception(exc)
        self._report(outcome)

    def _child_started(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._supervisor.tell(ChildStarted(self._spec.task_id))

    def _run_operation(self) -> None:
        """Runs on a pooled thread: call the operation, contain whatever it raises."""
        refused = self._await_start()
        if refused is not None:
            self._report(refused)
            return
        spec = self._spec
        context = self._context
        outcome: Outcome = _INTERRUPTED
        context.enter_operation()
        try:
            try:
                outcome = Completed(spec.operation(spec.params, context))
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
            # leave_operation() has returned, none is pending and none can be set.
            try:
                context.leave_operation()
                break
            except TaskInterrupted:
                continue
        self._report(outcome)

    def _await_start(self) -> Outcome | None:
        """With a durable store, wait until the task's RUNNING state is committed; the
        outcome that ends the task instead when that cannot be had."""
        ticket = self._start_ticket
        if ticket is None:
            return None
        if not ticket.wait(self._start_timeout):
            message = (
                f"the registry did not confirm within {self._start_timeout} s that the "
                "task's start was stored; the operation was not run"
            )
        elif ticket.error is not None:
            message = f"the task's start could not be stored, so it was not run: {ticket.error}"
        else:
            reason = self._context.stop_reason
            # Cancelled (or timed out) while it waited for the commit: it never starts.
            return None if reason is None else Cancelled(reason)
        _log.error("task.start_not_stored", task_id=self._spec.task_id, error=message)
        return Raised(exception_type="actors.StoreError", message=message, traceback="")

    def _report(self, outcome: Outcome) -> None:
        """The operation has returned: stop this worker (its work is done; a Stop still
        queued is handled first) and tell the supervisor, which frees the slot."""
        at = self._clock.time()
        if isinstance(outcome, Completed):
            outcome = self._checked(outcome)
        self.stop_when_idle()
        # A dead supervisor (it failed; the runtime is stopping) hears nothing more.
        with contextlib.suppress(pykka.ActorDeadError):
            self._supervisor.tell(WorkerFinished(self._spec.task_id, outcome, at))

    def _checked(self, outcome: Completed) -> Outcome:
        """The result checked here, on the operation's thread, before it reaches the
        registry: as the store reads it back (with its JSON text), or ResultNotStorable
        when it breaks the rules every store mode keeps (see actors._storage.codec)."""
        result = outcome.result
        try:
            if self._store_results:
                value, text = normalized(result)
                return Completed(value, text)
            check_value(result)
        except UnstorableValueError as exc:
            _log.warning(
                "task.result_not_storable",
                task_id=self._spec.task_id,
                type=exc.type_name,
                error=str(exc),
            )
            return ResultNotStorable(type_name=exc.type_name, message=str(exc))
        return outcome
