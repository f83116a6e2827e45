"""``AttemptOutcomes``: what the end of an attempt means for its task and its operation,
as a plain object the supervisor owns (tested directly in tests/test_outcomes.py).

An attempt ends in one of two ways. It was failed by a timer (its deadline, its
heartbeat) while it ran: the task is terminal at once unless it is retried, and either
way its operation keeps its slot until it has really returned (:meth:`fail_running`).
Or its operation returned (:meth:`ended`): an attempt that never began is still told
running (a task that is not running ends only by a cancel); a stopped one was already
decided (its retry, a resume that came while it stopped, or only a late result); any
other failed unless it completed or was cancelled, and is retried if its policy says so.
Every end is recorded in its operation's circuit breaker (a trip arms the cool-down of
its held tasks, a recovery releases them; a stopped trial says nothing), and a retry is
told to the registry (``RetryScheduled``) with its backoff drawn from this object's
random source (``retry_plan``).

Why a separate object: these are the supervision policies' rules about one attempt
(retries, restart intensity), apart from the messages; the supervisor frees the slot,
queues the next attempt this returns and dispatches.
"""

from __future__ import annotations

import random
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.admission import AdmissionGate
from actors._core.attempts import ActiveAttempt
from actors._core.breaker_gate import BreakerGate
from actors._core.drain import Drain
from actors._core.messages import Finish, MarkRunning, RetryScheduled, WorkerFinished
from actors._core.pending import PendingQueue
from actors._core.pool_dispatch import PoolDispatch
from actors._core.retry_plan import next_attempt, retry_due
from actors._core.timers import TimerHandle
from actors._outcome import Cancelled, Completed, Outcome
from actors._policies import CircuitBreakers
from actors._records import TaskSpec

__all__ = ["AttemptOutcomes"]


class AttemptOutcomes:
    """Decides and records the end of each attempt; tells the registry the task's
    ``Finish``, ``RetryScheduled`` or (for one that never began) ``MarkRunning``."""

    __slots__ = (
        "_admission",
        "_breakers",
        "_clock",
        "_drain",
        "_gate",
        "_pools",
        "_queue",
        "_registry",
        "_rng",
    )

    def __init__(
        self,
        *,
        registry: pykka.ActorRef[Any],
        clock: Clock,
        admission: AdmissionGate,
        breakers: CircuitBreakers | None,
        gate: BreakerGate,
        queue: PendingQueue[TimerHandle],
        pools: PoolDispatch,
        drain: Drain,
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._admission = admission
        self._breakers = breakers
        self._gate = gate
        self._queue = queue
        self._pools = pools
        self._drain = drain
        self._rng = random.Random() if rng is None else rng

    def fail_running(self, active: ActiveAttempt, outcome: Outcome) -> None:
        """A running attempt failed by a timer (deadline, heartbeat): recorded, and
        terminal (``Finish`` told) unless it is retried once its operation has really
        returned (``active.retry_at``). The caller stops it."""
        self.record(active, failed=True)
        active.retry_at = self.retry_at(active, outcome)
        if active.retry_at is None:
            self._registry.tell(Finish(active.spec.task_id, outcome, self._clock.time()))

    def ended(self, active: ActiveAttempt, message: WorkerFinished) -> TaskSpec | None:
        """``active``'s operation has really returned (its slot is free): the task's next
        attempt to queue (a retry, which takes a place again, or the resume that came
        while it stopped, which has its place), else None (the registry told the end)."""
        outcome = message.outcome
        # Without a deadline to arm, a start is not told (AttemptStarted): its gate says.
        started = active.started or (active.gate is not None and active.gate.started)
        if not started and active.stopping is None:
            # The attempt failed before its operation began (its child could not start,
            # its start could not be stored): it was an attempt all the same, and a task
            # that is not running ends only by a cancel.
            self._registry.tell(MarkRunning(message.task_id, message.at, None, active.injected))
        if active.stopping is not None:
            if active.trial and self._gate.abandon_trial(active):
                self._pools.release_held(active.spec.operation_name)
            if active.retry_at is not None:
                # Timed out, and its retry waited for this operation to return.
                return self._retry(active, active.retry_at)
            if active.resumed is not None:
                # Resumed while it stopped: its next attempt may start now (the registry
                # has it pending: no Finish, which would end that attempt).
                return active.resumed
            # Already terminal: the registry keeps only a late result.
            self._registry.tell(Finish(message.task_id, outcome, message.at))
            return None
        failed = not isinstance(outcome, Completed | Cancelled)
        self.record(active, failed=failed)
        retry_at = self.retry_at(active, outcome) if failed else None
        if retry_at is not None:
            return self._retry(active, retry_at)
        self._registry.tell(Finish(message.task_id, outcome, message.at))
        return None

    def record(self, active: ActiveAttempt, *, failed: bool) -> None:
        """Tell the operation's circuit breaker how an attempt ended: a trip arms the
        cool-down of its held tasks, a recovery releases them."""
        if self._breakers is None or not self._breakers.enabled:
            return  # the common case, once per task: no call further
        change = self._gate.record(active, failed=failed)
        if change == "tripped":
            if self._queue.has_held(active.spec.operation_name):
                self._pools.arm_cooldown(active.spec.operation_name)
        elif change == "recovered":
            self._pools.release_held(active.spec.operation_name)

    def retry_at(self, active: ActiveAttempt, outcome: Outcome) -> float | None:
        """When the task's next attempt is due after ``outcome``, or None for none (none
        once shutdown has begun). Tells the registry (the task reads pending with its
        next attempt's time)."""
        if not self._drain.admitting:
            return None
        now = self._clock.time()
        next_at = retry_due(active, outcome, now=now, rng=self._rng)
        if next_at is not None:
            self._registry.tell(RetryScheduled(active.spec.task_id, outcome, now, next_at))
        return next_at

    def _retry(self, active: ActiveAttempt, at: float) -> TaskSpec:
        """The next attempt of a task whose attempt failed, due at ``at``: it takes a
        place in the queue again (never refused: it was admitted once)."""
        spec = next_attempt(active, at)
        self._admission.enter()
        return spec
