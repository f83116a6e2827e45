"""``Waiters``, tested directly: where a caller waiting for a task's end is kept (waiting
on the task, or held for the next commit's release) and how each is woken exactly once,
without a registry."""

from __future__ import annotations

from actors import StoreWriteError
from actors._core.waiters import Waiters
from actors._enums import TaskStatus
from actors._records import TaskRecord
from tests.records import make_record


def _record(task_id: str, status: TaskStatus = TaskStatus.PENDING) -> TaskRecord:
    record = make_record(task_id)
    record.status = status
    return record


def test_a_waiter_is_held_when_its_task_ends_and_woken_by_the_release() -> None:
    """An end does not wake a waiter by itself: the release after its commit does, with
    the terminal snapshot taken at the end."""
    waiters = Waiters()
    waiter = waiters.watch("t")
    assert len(waiters) == 1
    assert waiters.get("t") == (waiter,)
    record = _record("t", TaskStatus.COMPLETED)
    waiters.ended(record)
    assert len(waiters) == 0
    assert waiters.get("t") == ()
    assert waiter.wait(0.0) is False
    waiters.release()
    assert waiter.wait(0.0) is True
    assert waiter.snapshot == record.snapshot()
    assert waiter.error is None
    assert waiters.held == []


def test_a_failed_commit_wakes_the_held_waiters_with_its_error() -> None:
    waiters = Waiters()
    first = waiters.watch("t")
    second = waiters.hold(_record("u", TaskStatus.FAILED).snapshot())
    waiters.ended(_record("t", TaskStatus.COMPLETED))
    error = StoreWriteError("tasks.db", "disk full")
    waiters.release(error)
    for waiter in (first, second):
        assert waiter.wait(0.0) is True
        assert (waiter.snapshot, waiter.error) == (None, error)


def test_a_refused_record_fails_only_its_own_waiters() -> None:
    waiters = Waiters()
    refused = waiters.hold(_record("bad", TaskStatus.COMPLETED).snapshot())
    good_record = _record("good", TaskStatus.COMPLETED)
    good = waiters.hold(good_record.snapshot())
    error = StoreWriteError("tasks.db", "task bad could not be stored")
    waiters.release(refused={"bad": error})
    assert (refused.snapshot, refused.error) == (None, error)
    assert (good.snapshot, good.error) == (good_record.snapshot(), None)


def test_an_unwatched_waiter_is_never_woken_and_leaves_nothing_behind() -> None:
    waiters = Waiters()
    gone = waiters.watch("t")
    kept = waiters.watch("t")
    waiters.unwatch("t", gone)
    assert waiters.get("t") == (kept,)
    waiters.unwatch("t", kept)
    waiters.unwatch("t", kept)  # twice: ignored
    waiters.ended(_record("t", TaskStatus.COMPLETED))
    waiters.release()
    assert gone.wait(0.0) is False
    assert kept.wait(0.0) is False
    assert len(waiters) == 0


def test_settle_holds_the_waiters_of_tasks_that_ended_or_vanished() -> None:
    """After a rebuild: a terminal task's waiters get its snapshot, a vanished task's get
    none, a still-running task's keep waiting."""
    waiters = Waiters()
    ended = _record("ended", TaskStatus.CANCELLED)
    running = _record("running", TaskStatus.RUNNING)
    records = {"ended": ended, "running": running}
    on_ended, on_gone, on_running = (waiters.watch(t) for t in ("ended", "gone", "running"))
    waiters.settle(records.get)
    waiters.release()
    assert on_ended.snapshot == ended.snapshot()
    assert on_gone.wait(0.0) is True
    assert on_gone.snapshot is None
    assert on_running.wait(0.0) is False
    assert waiters.get("running") == (on_running,)


def test_wake_all_wakes_every_waiter_with_its_latest_snapshot() -> None:
    """A stopping registry leaves nobody blocked: each waiter sees the task as it is (not
    terminal), or nothing for a task that is gone."""
    waiters = Waiters()
    running = _record("running", TaskStatus.RUNNING)
    on_running = waiters.watch("running")
    on_gone = waiters.watch("gone")
    waiters.wake_all({"running": running}.get)
    assert on_running.wait(0.0) is True
    assert on_running.snapshot == running.snapshot()
    assert on_gone.wait(0.0) is True
    assert on_gone.snapshot is None
    assert len(waiters) == 0
