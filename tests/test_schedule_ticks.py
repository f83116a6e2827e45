"""ScheduleTicks, tested directly on a manual clock: each schedule's tick timer at exact
virtual times (fixed rate), and the rule that decides whether a tick runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actors import ManualClock
from actors._core.messages import AddSchedule, ScheduleTick
from actors._core.schedule_ticks import ScheduleTicks
from actors._core.timers import TimerService
from actors._records import TaskSpec
from tests.records import make_spec


class Inbox:
    """The supervisor's side of a fired tick."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def timers(clock: ManualClock) -> Iterator[TimerService]:
    service = TimerService(clock, name="test-schedule-ticks")
    yield service
    service.stop()


def _ticks(clock: ManualClock, timers: TimerService) -> tuple[ScheduleTicks, Inbox]:
    inbox = Inbox()
    target: Any = inbox
    return ScheduleTicks(timers, target, clock), inbox


def _add(ticks: ScheduleTicks, *, interval: float = 10.0, first_in: float = 5.0) -> None:
    made = iter(range(1000))

    def make_spec_() -> TaskSpec:
        return make_spec(f"run-{next(made)}")

    ticks.add(AddSchedule("s", interval, first_in, make_spec_, "tests.noop"))


def _tick(
    ticks: ScheduleTicks,
    *,
    unfinished: bool = False,
    open_: bool = False,
    enter: bool = True,
    calls: list[str] | None = None,
) -> TaskSpec | None:
    seen = [] if calls is None else calls

    def is_unfinished(task_id: str) -> bool:
        seen.append(f"unfinished:{task_id}")
        return unfinished

    def is_open(operation: str) -> bool:
        seen.append(f"open:{operation}")
        return open_

    def try_enter() -> bool:
        seen.append("enter")
        return enter

    return ticks.tick("s", unfinished=is_unfinished, operation_open=is_open, try_enter=try_enter)


def test_ticks_are_armed_at_a_fixed_rate_however_late_they_are_handled(
    clock: ManualClock, timers: TimerService
) -> None:
    """The first tick fires first_in after add; each next one is one interval after the
    last was due, even when the tick is handled late."""
    ticks, inbox = _ticks(clock, timers)
    _add(ticks)
    clock.advance(5.0)
    timers.tick()
    assert inbox.told == [ScheduleTick("s")]
    clock.advance(3.0)  # handled 3 s late
    spec = _tick(ticks)
    assert spec is not None
    assert spec.task_id == "run-0"
    assert ticks.statistics()["s"]["next_run_in"] == 7.0  # due at 15.0, now 8.0
    clock.advance(7.0)
    timers.tick()
    assert inbox.told == [ScheduleTick("s"), ScheduleTick("s")]


def test_a_tick_is_skipped_for_the_first_reason_that_holds(
    clock: ManualClock, timers: TimerService
) -> None:
    """Checked in order, each only when the one before passed: last run unfinished,
    operation open, queue full. A skipped tick counts and creates nothing."""
    ticks, _ = _ticks(clock, timers)
    _add(ticks)
    assert _tick(ticks) is not None  # run-0 is now the last run
    calls: list[str] = []
    assert _tick(ticks, unfinished=True, calls=calls) is None
    assert calls == ["unfinished:run-0"]
    calls.clear()
    assert _tick(ticks, open_=True, calls=calls) is None
    assert calls == ["unfinished:run-0", "open:tests.noop"]
    calls.clear()
    assert _tick(ticks, enter=False, calls=calls) is None
    assert calls == ["unfinished:run-0", "open:tests.noop", "enter"]
    stats = ticks.statistics()["s"]
    assert (stats["runs"], stats["skipped"], stats["last_task_id"]) == (1, 3, "run-0")


def test_dropping_a_schedule_cancels_its_next_tick(
    clock: ManualClock, timers: TimerService
) -> None:
    """drop: the armed tick is cancelled, a second drop finds nothing; a tick of a
    dropped schedule creates nothing."""
    ticks, inbox = _ticks(clock, timers)
    _add(ticks)
    assert timers.statistics().armed == 1
    assert ticks.drop("s") is True
    assert (timers.statistics().armed, ticks.drop("s"), len(ticks)) == (0, False, 0)
    assert _tick(ticks) is None
    clock.advance(60.0)
    timers.tick()
    assert inbox.told == []


def test_drop_all_leaves_no_tick_armed(clock: ManualClock, timers: TimerService) -> None:
    """Shutdown's drop_all: every schedule gone, no timer left."""
    ticks, _ = _ticks(clock, timers)
    for n in range(3):
        ticks.add(AddSchedule(f"s{n}", 1.0, 1.0, lambda: make_spec("x"), "tests.noop"))
    ticks.drop_all()
    assert (len(ticks), timers.statistics().armed, ticks.statistics()) == (0, 0, {})
