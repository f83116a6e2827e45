"""``AttemptLauncher``: one attempt of a task started, as the supervisor's
:class:`ActiveAttempt`.

What an attempt is given is decided here, once per attempt: its back-end (by the task's
isolation), a test's injected fault (the worker runs the wrapped operation, the attempt
keeps the real spec, so a retry runs the real one), the commit ticket its start waits
for with a durable store, what its operation publishes, and how ``running`` is recorded:
at once for a back-end whose start is its hand-over (a thread), or by the back-end
itself through a :class:`StartGate` when the operation really starts (a child process,
a coroutine, a Ray node). The supervisor decides *whether* a task starts (slots, the
breaker, resources) and keeps the attempt; the launcher only starts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.attempt_timers import AttemptTimers
from actors._core.attempts import ActiveAttempt
from actors._core.messages import MarkRunning
from actors._core.pooled import Dispatcher
from actors._enums import Isolation
from actors._execution.backend import ExecutionBackend
from actors._execution.faults import FaultPlan
from actors._execution.published import Published
from actors._execution.start_gate import StartGate
from actors._execution.worker import WorkerActor
from actors._records import TaskSpec
from actors._storage.store import CommitTicket

__all__ = ["AttemptLauncher"]


class AttemptLauncher:
    """Spawns each attempt's worker actor with everything the attempt needs."""

    def __init__(
        self,
        *,
        supervisor: pykka.ActorRef[Any],
        registry: pykka.ActorRef[Any],
        backends: Mapping[Isolation, ExecutionBackend],
        dispatcher: Dispatcher,
        clock: Clock,
        timers: AttemptTimers,
        durable: bool,
        start_timeout: float,
        faults: FaultPlan | None,
    ) -> None:
        self._supervisor = supervisor
        self._registry = registry
        self._backends = backends
        self._dispatcher = dispatcher
        self._clock = clock
        self._timers = timers
        self._durable = durable
        self._start_timeout = start_timeout
        self._faults = faults

    def backend_for(self, spec: TaskSpec) -> ExecutionBackend:
        isolation = spec.options.isolation
        if isolation is None:  # the runtime resolves it before a spec is made
            raise ValueError(f"task {spec.task_id} has no resolved isolation")
        return self._backends[isolation]

    def launch(self, spec: TaskSpec, backend: ExecutionBackend, *, trial: bool) -> ActiveAttempt:
        """Start ``spec``'s next attempt on ``backend``. An attempt started at once is
        recorded running (told to the registry before any of its progress can be) with
        its deadline armed; the caller arms its heartbeat."""
        run_spec, injected = spec, None
        faults = self._faults
        if faults is not None and faults.armed:
            run_spec, injected = faults.apply(spec)
        durable = self._durable
        # With a durable store the operation waits until RUNNING is committed: a crash can
        # then never make a task that had started read "pending" and run a second time.
        ticket = CommitTicket(spec.task_id) if durable else None
        # What the operation publishes; a durable store's checkpoint waits for its commit.
        # Signs of life are stamped only for a heartbeat deadline (the only reader).
        stamp = None if spec.options.heartbeat_timeout is None else self._clock.monotonic
        published = Published(stamp, self._start_timeout if durable else None)
        gate = None if backend.starts_on_handover else StartGate()
        timer = None
        if gate is None:
            self._registry.tell(MarkRunning(spec.task_id, self._clock.time(), ticket, injected))
            timer = self._timers.arm_deadline(spec)
        worker = WorkerActor.spawn(
            spec=run_spec,
            backend=backend,
            supervisor=self._supervisor,
            registry=self._registry,
            clock=self._clock,
            dispatcher=self._dispatcher,
            start_gate=gate,
            injected_fault=injected,
            start_ticket=ticket,
            start_timeout=self._start_timeout,
            store_results=durable,
            published=published,
        )
        return ActiveAttempt(
            spec,
            worker.actor_ref,
            backend,
            timer,
            started=gate is None,
            gate=gate,
            injected=injected,
            attempt=spec.prior_attempts + 1,
            trial=trial,
            published=published,
        )
