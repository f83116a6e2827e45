"""The worker actor: one attempt of one task, on the execution back-end it runs on.

The worker starts the attempt on its back-end, carries the supervisor's stop-ladder steps
to it (``Stop``, ``Interrupt``, ``Kill``) and is the attempt's :class:`AttemptEvents`:
``started`` goes to the supervisor, which records ``running`` and arms the deadline; the
end is reported by the back-end's thread itself, which stops the worker and tells the
supervisor ``WorkerFinished``. The operation never runs on the worker's mailbox, so it
answers a stop at once, and a task that is never stopped costs it no dispatcher turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, assert_never, cast

import pykka

from actors._clock import Clock
from actors._core.messages import (
    WORKER_MESSAGES,
    AttemptStarted,
    Interrupt,
    Kill,
    MarkRunning,
    Stop,
    WorkerFinished,
    WorkerMessage,
)
from actors._core.pooled import PooledActor
from actors._errors import UnstorableValueError
from actors._execution.backend import Attempt, ExecutionBackend
from actors._execution.published import Published
from actors._execution.start_gate import StartGate
from actors._outcome import Cancelled, Completed, Outcome, Raised, ResultNotStorable, StopReason
from actors._records import TaskSpec
from actors._storage.codec import check_value, normalized
from actors._storage.store import CommitTicket
from actors.logs import library_logger

__all__ = ["WorkerActor"]

_log = library_logger("actors.worker")


class WorkerActor(PooledActor):
    # One per running attempt, thousands at once with coroutine operations: kept out of
    # pykka's registry, whose list makes each stop scan every live actor.
    listed_in_pykka = False

    def __init__(
        self,
        *,
        spec: TaskSpec,
        backend: ExecutionBackend,
        supervisor: pykka.ActorRef[Any],
        registry: pykka.ActorRef[Any],
        clock: Clock,
        start_gate: StartGate | None = None,
        injected_fault: str | None = None,
        start_ticket: CommitTicket | None = None,
        start_timeout: float = 30.0,
        store_results: bool = False,
        published: Published | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._spec = spec
        self._backend = backend
        self._attempt: Attempt | None = None
        self._supervisor = supervisor
        self._registry = registry
        self._clock = clock
        # A back-end that starts later passes this gate (a stop may close it first).
        self._start_gate = start_gate
        self._stopped_before_start: StopReason | None = None
        self._injected_fault = injected_fault  # described in the RUNNING it records
        # With a durable store: done once RUNNING is committed (None: nothing to wait for).
        self._start_ticket = start_ticket
        self._start_timeout = start_timeout
        self._store_results = store_results  # a durable store keeps results as JSON
        self._stop_reason: StopReason | None = None
        # What the operation publishes, shared with the supervisor (see AttemptEvents).
        self.published = published

    def on_start(self) -> None:
        _log.debug(
            "worker.spawned", task_id=self._spec.task_id, operation=self._spec.operation_name
        )
        self._attempt = self._backend.start(self._spec, self)

    def on_receive(self, message: Any) -> Any:
        if self._attempt is None or not isinstance(message, WORKER_MESSAGES):
            return super().on_receive(message)
        step = cast(WorkerMessage, message)
        match step:
            case Stop(reason=reason):
                self._stop_reason = reason
                self._attempt.stop(reason)
            case Interrupt(reason=reason):
                self._attempt.interrupt(reason)
            case Kill(reason=reason):
                self._attempt.kill(reason)
            case _:
                assert_never(step)
        return None

    def on_stop(self) -> None:
        _log.debug("worker.stopped", task_id=self._spec.task_id)

    # -- AttemptEvents (called on the back-end's threads) -------------------------------

    def started(self, placement: Mapping[str, Any] | None = None) -> None:
        gate = self._start_gate
        if gate is None:
            return  # the supervisor recorded the start at the hand-over
        task_id, at = self._spec.task_id, self._clock.time()

        def record_running() -> None:  # under the gate: before any stop's outcome
            with contextlib.suppress(pykka.ActorDeadError):
                message = MarkRunning(
                    task_id, at, self._start_ticket, self._injected_fault, placement
                )
                self._registry.tell(message)

        self._stopped_before_start = gate.open(record_running)
        options = self._spec.options
        if self._stopped_before_start is None and (
            options.timeout is not None or options.heartbeat_timeout is not None
        ):  # a deadline to arm from now (else the supervisor reads the gate at the end)
            with contextlib.suppress(pykka.ActorDeadError):
                self._supervisor.tell(AttemptStarted(task_id))

    def confirm_start_soon(self, answer: Callable[[], None]) -> bool:
        ticket = self._start_ticket
        if self._stopped_before_start is not None or ticket is None:
            return True
        ticket.on_done(answer)
        return False

    def confirm_start(self, *, wait: bool = True) -> Outcome | None:
        if self._stopped_before_start is not None:
            return Cancelled(self._stopped_before_start)  # it never starts
        ticket = self._start_ticket
        if ticket is None:
            return None
        if not ticket.wait(self._start_timeout if wait else 0.0):
            message = (
                f"the registry did not confirm within {self._start_timeout} s that the "
                "task's start was stored; the operation was not run"
            )
        elif ticket.error is not None:
            message = f"the task's start could not be stored, so it was not run: {ticket.error}"
        else:
            reason = self._stop_reason
            # Cancelled (or timed out) while it waited for the commit: it never starts.
            return None if reason is None else Cancelled(reason)
        _log.error("task.start_not_stored", task_id=self._spec.task_id, error=message)
        return Raised(exception_type="actors.StoreError", message=message, traceback="")

    def ended(self, outcome: Outcome) -> None:
        """The operation has returned: stop this worker (its work is done; a Stop still
        queued is handled first) and tell the supervisor, which frees the slot."""
        at = self._clock.time()
        if isinstance(outcome, Completed):
            outcome = self._checked(outcome)
        self.stop_when_idle()
        # A dead supervisor (it failed; the runtime is stopping) hears nothing more.
        # try/except, not contextlib.suppress: three calls fewer on every task.
        try:  # noqa: SIM105
            self._supervisor.tell(WorkerFinished(self._spec.task_id, outcome, at))
        except pykka.ActorDeadError:
            pass

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
