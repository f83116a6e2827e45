"""``SubmissionPath``: the steps of a submission, shared by the blocking facade
(``TaskRuntime.submit``) and the awaitable one (``AwaitableRuntime.submit``).

1. :meth:`fields`: the arguments checked into a spec's fields (``SpecMaker``), and the
   operation's circuit breaker asked (an open one refuses the task).
2. Under :attr:`lock`: :meth:`admit` takes a place in the queue (``max_pending``) and
   makes the spec (its ``seq`` and creation time), then either :meth:`register_and_submit`
   tells the registry and the supervisor, in that order, or (a task with dependencies)
   the facade asks the registry, which resolves them and forwards the task itself.
   Holding the lock for both keeps every submission in one order in both actors.
3. :meth:`check_verdict` reads the registry's answer for a task with dependencies.

How a facade waits (blocked, or awaited on its loop) is the facade's; these steps
never wait for an actor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.admission import AdmissionGate
from actors._core.messages import Register, Submit
from actors._core.submission import SpecMaker
from actors._core.waiters import Waiters
from actors._errors import OperationUnavailableError, QueueFullError, RuntimeClosedError
from actors._execution.api import AnyOperation
from actors._policies import CircuitBreakers
from actors._records import TaskSpec
from actors._storage.store import CommitTicket

__all__ = ["SubmissionPath"]


class SubmissionPath:
    """A submission's steps over the runtime's parts. ``refusal(consequence)`` is the
    error for a runtime that accepts nothing new (shut down, or given up), else None."""

    def __init__(
        self,
        *,
        specs: SpecMaker,
        breakers: CircuitBreakers,
        clock: Clock,
        admission: AdmissionGate,
        max_pending: int,
        seq: Iterator[int],
        lock: threading.Lock,
        registry: pykka.ActorRef[Any],
        supervisor: pykka.ActorRef[Any],
        waiters: Waiters,
        durable: bool,
        refusal: Callable[[str], RuntimeClosedError | None],
    ) -> None:
        self._specs = specs
        self._breakers = breakers
        self._clock = clock
        self._admission = admission
        self._max_pending = max_pending
        self._seq = seq
        self.lock = lock
        self._registry = registry
        self._supervisor = supervisor
        self._waiters = waiters
        self._durable = durable
        self._refusal = refusal

    def fields(
        self,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None,
        operation_name: str | None,
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        """A submission's arguments checked (the operation's circuit breaker included)."""
        fields = self._specs.fields(operation, params, operation_name=operation_name, **options)
        if self._breakers.enabled:
            name = fields["operation_name"]
            retry_after = self._breakers.refusal(name, self._clock.monotonic())
            if retry_after is not None:
                raise OperationUnavailableError(name, retry_after)
        return fields

    def admit(
        self, task_id: str, fields: Mapping[str, Any]
    ) -> tuple[TaskSpec, CommitTicket | None]:
        """Under :attr:`lock`: a place in the queue and the new task's spec (and, with a
        durable store, the ticket its registration is committed on). ``task_id`` is
        made before the lock is taken: one id in 256 refills the batch with a read of
        ``os.urandom``, which releases the GIL, and other submitters must not wait on
        it."""
        refusal = self._refusal("it accepts no new task; create a new one")
        if refusal is not None:
            raise refusal
        if not self._admission.try_enter():
            raise QueueFullError(self._max_pending)
        spec = TaskSpec(
            task_id=task_id, seq=next(self._seq), created_at=self._clock.time(), **fields
        )
        return spec, CommitTicket(task_id) if self._durable else None

    def register_and_submit(self, spec: TaskSpec, ticket: CommitTicket | None) -> None:
        """Under :attr:`lock`. Registry first: once the caller has the id, a status query
        (queued behind it) finds the task; a wait on it adds its waiter without asking
        (it is registering until the registry holds it)."""
        self._waiters.registering(spec.task_id)
        try:
            self._registry.tell(Register(spec, ticket))
        except pykka.ActorDeadError:
            self._waiters.registered(spec.task_id)  # it never will be
            raise
        self._supervisor.tell(Submit(spec))

    def restarted_verdict(self) -> tuple[str, list[str]]:
        """The registry failed on this very task and ended it (INTERRUPTED, cause
        registry_restarted) without queueing it: its place in the queue is free again,
        and its id tells the caller what happened."""
        self._admission.leave()
        return "failed", []

    def check_verdict(self, verdict: str, unknown: Sequence[str]) -> None:
        """The registry's answer to a task with dependencies: unknown ones are refused."""
        if verdict == "unknown":
            self._admission.leave()
            raise ValueError(
                f"depends_on names unknown task ids {list(unknown)}: a task can depend "
                "only on tasks that exist and, for a task with a user, that the "
                "same user created (create those first; finished ones are "
                "removed max_task_age seconds after they end)"
            )
