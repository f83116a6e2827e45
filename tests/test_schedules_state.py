"""``Schedules``, tested directly: fixed-rate ticks, drops, and the statistics the
supervisor reports, on plain numbers (no actor, no timer)."""

from __future__ import annotations

from typing import Any

import pytest

from actors._core.schedules import Schedules
from actors._enums import Isolation
from actors._options import TaskOptions
from actors._records import TaskSpec


def _make_spec() -> TaskSpec:
    def operation(params: Any, task: Any) -> None:
        return None

    return TaskSpec(
        task_id="t",
        operation=operation,
        operation_name="op",
        params={},
        options=TaskOptions(isolation=Isolation.THREAD),
        seq=0,
        created_at=0.0,
    )


def test_ticks_are_fixed_rate_however_late_they_are_handled() -> None:
    """Each tick moves the next one exactly one interval on from when it was due."""
    schedules: Schedules[str] = Schedules()
    schedules.add("s", 10.0, _make_spec, "op", first_due=5.0)
    dues = []
    for _ in range(3):
        schedule = schedules.advance("s")
        assert schedule is not None
        dues.append(schedule.due)
    assert dues == [15.0, 25.0, 35.0]
    assert schedules.statistics(now=30.0)["s"]["next_run_in"] == 5.0
    assert schedules.statistics(now=99.0)["s"]["next_run_in"] == 0.0


def test_a_dropped_schedule_does_not_tick_and_hands_back_its_timer() -> None:
    schedules: Schedules[str] = Schedules()
    added = schedules.add("s", 1.0, _make_spec, "op", first_due=1.0)
    added.timer = "timer-1"
    dropped = schedules.drop("s")
    assert dropped is not None
    assert dropped.timer == "timer-1"
    assert schedules.advance("s") is None
    assert schedules.drop("s") is None
    assert len(schedules) == 0


def test_an_id_is_added_once() -> None:
    schedules: Schedules[str] = Schedules()
    schedules.add("s", 1.0, _make_spec, "op", first_due=1.0)
    with pytest.raises(ValueError, match="schedule s exists already"):
        schedules.add("s", 2.0, _make_spec, "op", first_due=1.0)


def test_statistics_count_runs_and_skips() -> None:
    schedules: Schedules[str] = Schedules()
    schedule = schedules.add("s", 2.0, _make_spec, "op", first_due=2.0)
    schedule.runs, schedule.skipped, schedule.last_task = 3, 1, "t3"
    assert schedules.statistics(now=0.0) == {
        "s": {
            "interval": 2.0,
            "runs": 3,
            "skipped": 1,
            "last_task_id": "t3",
            "next_run_in": 2.0,
        }
    }
