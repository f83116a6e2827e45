"""``ScheduleTicks``: the supervisor's recurring schedules with their tick timers, and the
rule that decides whether a tick runs (tested directly in tests/test_schedule_ticks.py
on a manual clock).

:class:`~actors._core.schedules.Schedules` keeps the plain state (fixed-rate dues, runs,
skipped ticks); this object arms and re-arms each schedule's ``ScheduleTick`` timer at
its due time, cancels it when the schedule is dropped, and turns a tick into the next
run's spec, or into a skipped tick with its reason. The supervisor registers and queues
the spec.

Why a separate object: a tick's rule (never two runs of one schedule at once; none while
the operation's breaker is open; none past the queue's bound) and its timing are tested
here on exact virtual times, without an actor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pykka

from actors._clock import Clock
from actors._core.messages import AddSchedule, ScheduleTick
from actors._core.schedules import Schedule, Schedules
from actors._core.timers import TimerHandle, TimerService
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["ScheduleTicks", "SkipReason"]

SkipReason = Literal["last_run_unfinished", "operation_unavailable", "queue_full"]

_log = library_logger("actors.supervisor")


class ScheduleTicks:
    """Schedules by id, each with its next tick armed; ticks fire at ``target``."""

    __slots__ = ("_clock", "_schedules", "_target", "_timers")

    def __init__(self, timers: TimerService, target: pykka.ActorRef[Any], clock: Clock) -> None:
        self._schedules: Schedules[TimerHandle] = Schedules()
        self._timers = timers
        self._target = target
        self._clock = clock

    def __len__(self) -> int:
        return len(self._schedules)

    def add(self, message: AddSchedule) -> Schedule[TimerHandle]:
        """A new schedule, its first tick ``first_in`` seconds from now."""
        schedule = self._schedules.add(
            message.schedule_id,
            message.interval,
            message.make_spec,
            message.operation,
            first_due=self._clock.monotonic() + message.first_in,
        )
        schedule.timer = self._timers.schedule_at(
            schedule.due, self._target, ScheduleTick(schedule.schedule_id)
        )
        return schedule

    def tick(
        self,
        schedule_id: str,
        *,
        unfinished: Callable[[str], bool],
        operation_open: Callable[[str], bool],
        try_enter: Callable[[], bool],
    ) -> TaskSpec | None:
        """A tick of ``schedule_id`` came: the next one is armed (fixed rate: one interval
        after this one was due), and this one's run is returned, or None when the schedule
        is gone or the tick is skipped (counted and logged). The checks run in order,
        each only when the one before passed: ``unfinished(last_task_id)``,
        ``operation_open(operation)``, then ``try_enter()`` (admits the run)."""
        schedule = self._schedules.advance(schedule_id)
        if schedule is None:
            return None
        schedule.timer = self._timers.schedule_at(
            schedule.due, self._target, ScheduleTick(schedule_id)
        )
        last = schedule.last_task
        why: SkipReason | None = None
        if last is not None and unfinished(last):
            why = "last_run_unfinished"  # never two runs of one schedule at once
        elif operation_open(schedule.operation):
            why = "operation_unavailable"  # its circuit breaker is open
        elif not try_enter():
            why = "queue_full"
        if why is not None:
            schedule.skipped += 1
            _log.info("schedule.tick_skipped", schedule_id=schedule_id, reason=why, last=last)
            return None
        spec = schedule.make_spec()
        schedule.last_task = spec.task_id
        schedule.runs += 1
        return spec

    def drop(self, schedule_id: str) -> bool:
        """Remove a schedule and cancel its next tick; False if there was none."""
        schedule = self._schedules.drop(schedule_id)
        if schedule is None:
            return False
        if schedule.timer is not None:
            self._timers.cancel(schedule.timer)
        return True

    def drop_all(self) -> None:
        for schedule in self._schedules:
            self.drop(schedule.schedule_id)

    def statistics(self) -> dict[str, dict[str, object]]:
        return self._schedules.statistics(self._clock.monotonic())
