"""Retention of finished tasks, manual and automatic, in virtual time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors import ManualClock
from storycore_tasks import TaskManager
from tests.gates import Gate, settle

MakeManager = Callable[..., TaskManager]


def test_cleanup_removes_only_terminal_tasks_older_than_the_age(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """cleanup_old_tasks removes terminal tasks that ended more than max_age ago, and
    never a pending or running one; it returns how many it removed."""
    manager = make_manager(num_workers=1, clock=clock)
    old = [manager.create_task(lambda p, t: 1) for _ in range(3)]
    for task_id in old:
        manager.wait(task_id, timeout=10)
    clock.advance(100.0)
    recent = manager.create_task(lambda p, t: 2)
    manager.wait(recent, timeout=10)
    gate = Gate()
    running = manager.create_task(gate)
    gate.wait_entered()
    pending = manager.create_task(lambda p, t: 3)
    clock.advance(50.0)
    settle(manager)
    assert manager.cleanup_old_tasks(max_age_seconds=120) == 3
    for task_id in old:
        assert manager.get_task_status(task_id) is None
    for task_id in (recent, running, pending):
        assert manager.get_task_status(task_id) is not None
    assert manager.cleanup_old_tasks(max_age_seconds=0) == 1
    assert manager.get_task_status(recent) is None
    stats = manager.get_stats()
    assert stats["total_tasks"] == 2
    assert stats["lifetime_stats"]["total_created"] == 6
    gate.release()
    manager.wait(pending, timeout=10)


def test_automatic_cleanup_runs_every_interval(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """The supervisor's cleanup timer removes tasks older than max_task_age every
    cleanup_interval seconds of (virtual) time."""
    manager = make_manager(num_workers=1, clock=clock, max_task_age=60.0, cleanup_interval=10.0)
    task_id = manager.create_task(lambda p, t: "x")
    manager.wait(task_id, timeout=10)  # ended at t=0
    for _ in range(6):  # cleanups at t=10..60: the task is not older than 60 s yet
        clock.advance(10.0)
        settle(manager)
        assert manager.get_task_status(task_id) is not None
    clock.advance(10.0)  # cleanup at t=70 removes what ended before t=10
    settle(manager)
    assert manager.get_task_status(task_id) is None


@pytest.mark.parametrize(
    ("age", "error"), [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)]
)
def test_cleanup_rejects_bad_ages(
    make_manager: MakeManager, age: object, error: type[Exception]
) -> None:
    """cleanup_old_tasks refuses an age that is not a finite number of seconds >= 0."""
    manager = make_manager(num_workers=1)
    with pytest.raises(error):
        manager.cleanup_old_tasks(age)  # type: ignore[arg-type]
