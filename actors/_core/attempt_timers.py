"""``AttemptTimers``: the timers of the attempts holding a slot, and the stop ladder that
walks them, as one plain object the supervisor owns (tested directly in
tests/test_attempt_timers.py on a manual clock).

An attempt has at most two timers armed. ``timer`` is its deadline (``timeout``) while it
runs, then the next step of its stop ladder while it is stopping. ``watch`` is its
heartbeat deadline (``heartbeat_timeout``): one timer that re-arms itself at the time
left after the latest sign of life, not one timer per sign. Both start when the attempt
has really started, so a cold child's start-up is not charged to the operation.

The stop ladder is one walk over the attempt, as Erlang's ``shutdown/1`` is over a
child: close its start gate (an attempt that has not started never will), disarm its
deadline and watch, let the owner tell the cooperative ``Stop``, then every step of
:func:`~actors._core.attempts.next_forced_step` (interrupt, then kill; threads are
interrupted again until the operation has left) until the attempt has really ended.

Why a separate object: the timing rules are the subtle part of a stop and are tested
here on exact virtual times; the supervisor only decides *when* to stop. This object arms
and cancels timers (each fires a message at the supervisor) and never tells a worker
anything: the supervisor tells the steps it returns.
"""

from __future__ import annotations

from typing import Any

import pykka

from actors._clock import Clock
from actors._core.attempts import ActiveAttempt, ActiveAttempts, next_forced_step
from actors._core.messages import DeadlinePassed, EscalateStop, HeartbeatDue, Interrupt, Kill
from actors._core.timers import TimerHandle, TimerService
from actors._outcome import Stalled, StopReason
from actors._records import TaskSpec

__all__ = ["AttemptTimers"]


class AttemptTimers:
    """Arms, re-arms and disarms the deadline, heartbeat and stop-ladder timers of the
    attempts in ``attempts``; every timer fires a message at ``target``."""

    __slots__ = ("_attempts", "_clock", "_stop_grace", "_target", "_timers")

    def __init__(
        self,
        timers: TimerService,
        target: pykka.ActorRef[Any],
        *,
        clock: Clock,
        attempts: ActiveAttempts,
        stop_grace: float,
    ) -> None:
        self._timers = timers
        self._target = target
        self._clock = clock
        self._attempts = attempts
        self._stop_grace = stop_grace

    # -- while it runs ---------------------------------------------------------------------

    def arm_deadline(self, spec: TaskSpec) -> TimerHandle | None:
        """The task's timeout, from now (``DeadlinePassed``); None without a timeout."""
        if spec.options.timeout is None:
            return None
        return self._timers.schedule_after(
            spec.options.timeout, self._target, DeadlinePassed(spec.task_id)
        )

    def arm_heartbeat(self, active: ActiveAttempt) -> None:
        """The attempt started: its heartbeat deadline runs from now (``HeartbeatDue``)."""
        seconds = active.spec.options.heartbeat_timeout
        if seconds is None:
            return
        active.alive_since = self._clock.monotonic()
        active.watch = self._timers.schedule_after(
            seconds, self._target, HeartbeatDue(active.spec.task_id)
        )

    def check_heartbeat(self, active: ActiveAttempt) -> Stalled | None:
        """The heartbeat deadline came (its ``watch`` fired): the :class:`Stalled` fact
        if the operation has been silent for ``heartbeat_timeout`` seconds (the watch is
        then off), else None with the watch re-armed for when it would be."""
        seconds = active.spec.options.heartbeat_timeout
        assert seconds is not None
        last = active.alive_since
        sign = None if active.published is None else active.published.last_sign()
        if sign is not None and sign > last:
            last = sign
        now = self._clock.monotonic()
        left = last + seconds - now
        if left > 0:
            active.watch = self._timers.schedule_after(
                left, self._target, HeartbeatDue(active.spec.task_id)
            )
            return None
        active.watch = None
        return Stalled(heartbeat_timeout=seconds, silent_seconds=round(now - last, 6))

    def disarm(self, active: ActiveAttempt) -> None:
        """The attempt has ended: cancel whatever it still has armed."""
        if active.timer is not None:
            self._timers.cancel(active.timer)
        if active.watch is not None:
            self._timers.cancel(active.watch)

    # -- the stop ladder -------------------------------------------------------------------

    def begin_stopping(self, active: ActiveAttempt, reason: StopReason) -> None:
        """The ladder's first rung: the attempt is stopping (it keeps its slot), its
        start gate is closed, its deadline and watch are off, and its first forced step
        is due ``stop_grace`` from now (``EscalateStop``). The owner tells the worker
        the cooperative ``Stop(reason)``."""
        self._attempts.stop(active, reason)
        if active.gate is not None:
            active.gate.stop(reason)  # one that has not started never will
        if active.timer is not None:
            self._timers.cancel(active.timer)
        if active.watch is not None:
            self._timers.cancel(active.watch)
            active.watch = None
        active.timer = self._timers.schedule_after(
            self._stop_grace, self._target, EscalateStop(active.spec.task_id)
        )

    def escalate(self, active: ActiveAttempt) -> Interrupt | Kill:
        """The next rung of a stopping attempt (it ignored the previous one): the step
        the owner tells its worker now, with the rung after it armed."""
        reason = active.stopping
        assert reason is not None
        step, repeat = next_forced_step(
            active.forced_steps,
            stop_grace=self._stop_grace,
            kill_ends_attempt=active.backend.kill_ends_attempt,
        )
        active.forced_steps += 1
        active.timer = self._timers.schedule_after(
            repeat, self._target, EscalateStop(active.spec.task_id)
        )
        return step(reason)
