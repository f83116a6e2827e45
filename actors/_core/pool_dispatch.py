"""``PoolDispatch``: the supervisor's dispatch, as a plain object over its state (tested
directly in tests/test_pool_dispatch.py): how many attempts each slot pool may start
now, whether the next task's operation lets it start, and the start itself.

Each slot pool (``attempts.slot_pool``) starts tasks while it has a free slot, each the
next one :class:`~actors._core.dispatch_order.DispatchOrder` gives it. A task whose
operation's circuit breaker is open is held back (``PendingQueue.hold``) with a
``CooldownOver`` timer for the end of its cool-down, or abandoned once shutdown has
begun; a half-open breaker lets one trial task through. A task that starts leaves the
admission gate, takes its resources on this host (``holds_on_host``), and its attempt
is launched (:class:`~actors._core.launcher.AttemptLauncher`) and kept with its
heartbeat armed. A task recovered from a store that asks for resources this runtime can
never give ends, never run.

Why a separate object: which tasks start, and in which order, is the busiest rule of the
supervisor and holds its invariants (a pool never exceeds its slots, a held task never
starts before its operation may run); the supervisor says *when* to dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.admission import AdmissionGate
from actors._core.attempt_timers import AttemptTimers
from actors._core.attempts import ActiveAttempts
from actors._core.breaker_gate import BreakerGate
from actors._core.dispatch_order import DispatchOrder, holds_on_host, resources_refused
from actors._core.drain import Drain
from actors._core.launcher import AttemptLauncher
from actors._core.messages import CooldownOver, Finish
from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots
from actors._core.timers import TimerHandle, TimerService
from actors._errors import ResourcesUnavailableError
from actors._policies import CircuitBreakers
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["PoolDispatch"]

_log = library_logger("actors.supervisor")


class PoolDispatch:
    """Starts what may start in every slot pool of ``capacities`` (slots per pool, in
    the order the pools are dispatched)."""

    __slots__ = (
        "_active",
        "_admission",
        "_attempt_timers",
        "_breakers",
        "_clock",
        "_drain",
        "_gate",
        "_launcher",
        "_order",
        "_queue",
        "_registry",
        "_slots",
        "_target",
        "_timers",
        "capacities",
    )

    def __init__(
        self,
        *,
        capacities: Mapping[str, int],
        queue: PendingQueue[TimerHandle],
        slots: ResourceSlots[TaskSpec],
        active: ActiveAttempts,
        launcher: AttemptLauncher,
        attempt_timers: AttemptTimers,
        admission: AdmissionGate,
        breakers: CircuitBreakers | None,
        gate: BreakerGate,
        drain: Drain,
        registry: pykka.ActorRef[Any],
        timers: TimerService,
        target: pykka.ActorRef[Any],
        clock: Clock,
    ) -> None:
        self.capacities = dict(capacities)
        self._queue = queue
        self._slots = slots
        self._active = active
        self._launcher = launcher
        self._attempt_timers = attempt_timers
        self._admission = admission
        self._breakers = breakers
        self._gate = gate
        self._drain = drain
        self._registry = registry
        self._timers = timers
        self._target = target  # where the CooldownOver timers fire (the supervisor)
        self._clock = clock
        self._order = DispatchOrder(queue, slots, self._refuse_resources)

    def dispatch(self) -> None:
        """Start what may start, pool by pool."""
        # Only the pools with something that may start: a ready task in their lane, or
        # (any pool) a task waiting in the resources line.
        lanes, line = self._queue.ready_lanes, self._slots.waiters
        for pool, capacity in self.capacities.items():
            if line or lanes.get(pool):  # see PendingQueue.has_ready_in
                self._dispatch_pool(pool, capacity)

    def arm_cooldown(self, operation: str) -> None:
        """Wake the held tasks of ``operation`` when its cool-down ends."""
        left = self._gate.cooldown_left(operation)
        if left is not None:
            self._timers.schedule_after(left, self._target, CooldownOver(operation))

    def release_held(self, operation: str) -> None:
        """Put the tasks held back for ``operation`` in the queue again (the breaker
        decides at dispatch whether they start), and dispatch."""
        self._queue.release(operation)
        self.dispatch()

    def _dispatch_pool(self, pool: str, capacity: int) -> None:
        breakers = self._breakers
        if breakers is not None and not breakers.enabled:
            breakers = None
        held = self._active.held_in
        while held.get(pool, 0) < capacity:
            spec = self._order.next_ready(pool)
            if spec is None:
                return
            trial = False
            if breakers is not None:
                verdict = breakers.may_start(spec.operation_name, self._clock.monotonic())
                if verdict == "no":
                    if not self._drain.admitting:
                        self._drain.abandon(spec)
                    elif self._queue.hold(spec):
                        self.arm_cooldown(spec.operation_name)
                    continue
                trial = verdict == "trial"
            self._admission.leave()
            self._start(spec, trial=trial)

    def _start(self, spec: TaskSpec, *, trial: bool) -> None:
        backend = self._launcher.backend_for(spec)
        if spec.options.resources is not None and holds_on_host(spec):
            self._slots.take(spec.task_id, spec.options.resources)
        active = self._launcher.launch(spec, backend, trial=trial)
        self._active.add(active)
        if active.started and spec.options.heartbeat_timeout is not None:
            self._attempt_timers.arm_heartbeat(active)

    def _refuse_resources(self, spec: TaskSpec, error: ResourcesUnavailableError) -> None:
        """A task (recovered from a store) asks for resources this runtime can never
        give: it ends, never run; the refusal create_task would have raised is logged."""
        _log.warning("task.resources_unavailable", task_id=spec.task_id, error=str(error))
        self._admission.leave()
        outcome = resources_refused(spec, self._clock.time())
        self._registry.tell(Finish(spec.task_id, outcome, self._clock.time()))
