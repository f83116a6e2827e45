"""``Waiters``, tested directly: where a caller waiting for a task's end is kept (waiting
on the task, or held for the next commit's release) and how each is woken exactly once,
without a registry."""

from __future__ import annotations

import sys
import threading

from actors import StoreWriteError
from actors._core.waiters import TerminalWaiter, Waiters
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


def _published(task_id: str, status: TaskStatus = TaskStatus.RUNNING) -> TaskRecord:
    record = _record(task_id, status)
    record.published = record.state()
    return record


def test_a_caller_adds_its_own_waiter_only_for_a_published_task_that_has_not_ended() -> None:
    """Unknown, not published yet (its registration is not done), ended, or the registry
    stopped: None, and the caller asks the registry. Otherwise the waiter is kept and
    woken by the task's end like any other."""
    waiters = Waiters()
    running = _published("running")
    unpublished = _record("unpublished", TaskStatus.RUNNING)
    ended = _published("ended", TaskStatus.COMPLETED)
    records = {"running": running, "unpublished": unpublished, "ended": ended}
    for task_id in ("gone", "unpublished", "ended"):
        assert waiters.watch_unless_ended(task_id, records.get) is None
    assert len(waiters) == 0
    waiter = waiters.watch_unless_ended("running", records.get)
    assert waiter is not None
    assert waiters.get("running") == (waiter,)
    running.status = TaskStatus.COMPLETED
    waiters.ended(running)
    waiters.release()
    assert waiter.wait(0.0) is True
    assert waiter.snapshot == running.snapshot()
    waiters.wake_all(records.get)
    again = _published("again")
    assert waiters.watch_unless_ended("again", {"again": again}.get) is None
    assert len(waiters) == 0


def _race_one_end(round_: int) -> None:
    """One caller adding its waiter while the registry ends the task."""
    waiters = Waiters()
    record = _published(f"t-{round_}")
    start = threading.Barrier(2)
    got: list[TerminalWaiter | None] = []

    def call() -> None:
        start.wait(5.0)
        got.append(waiters.watch_unless_ended(record.task_id, {record.task_id: record}.get))

    caller = threading.Thread(target=call)
    caller.start()
    start.wait(5.0)
    for _ in range((round_ % 30) * 100):  # the end lands at another point each round
        pass
    record.status = TaskStatus.COMPLETED  # the table's finish, then the waiters
    waiters.ended(record)
    waiters.release()
    caller.join(5.0)
    assert not caller.is_alive()
    (waiter,) = got
    if waiter is not None:
        assert waiter.wait(5.0), f"round {round_}: a waiter added was never woken"
        assert waiter.snapshot == record.snapshot()
    assert len(waiters) == 0, f"round {round_}: a waiter was left behind"


def test_a_caller_racing_the_end_is_either_woken_by_it_or_sees_it_over_many_rounds() -> None:
    """The caller's check and add against the registry setting the record terminal and
    taking its waiters: a waiter is either taken by the end (and woken) or never added
    (and the record already reads terminal). None is ever left behind. (The worst
    interleaving, forced, is the next test.)"""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        for round_ in range(1500):
            _race_one_end(round_)
    finally:
        sys.setswitchinterval(previous)


class _EndsWhileRead:
    """A record as the caller's lookup finds it: its status reads ``running`` once, and
    that read sets the real record terminal and runs the registry's end on another
    thread, at the worst moment for the caller (after its check, before its add)."""

    def __init__(self, record: TaskRecord, waiters: Waiters) -> None:
        self._record = record
        self._waiters = waiters
        self.published = record.published
        self.registry_done = threading.Event()
        self.registry_held_out: bool | None = None
        self._registry: threading.Thread | None = None

    @property
    def status(self) -> TaskStatus:
        status = self._record.status
        self._record.status = TaskStatus.COMPLETED
        self._registry = threading.Thread(target=self._end)
        self._registry.start()
        # The caller's check and add are one step: the registry cannot take the
        # waiters until the caller is done (this wait runs out).
        self.registry_held_out = not self.registry_done.wait(0.2)
        return status

    def _end(self) -> None:
        self._waiters.ended(self._record)
        self.registry_done.set()

    def join(self) -> None:
        assert self._registry is not None
        self._registry.join(5.0)


def test_an_end_between_the_callers_check_and_its_add_still_takes_its_waiter() -> None:
    waiters = Waiters()
    record = _published("t")
    seen = _EndsWhileRead(record, waiters)
    waiter = waiters.watch_unless_ended("t", lambda task_id: seen)  # type: ignore[arg-type,return-value]
    seen.join()
    assert seen.registry_held_out is True
    assert waiter is not None  # the status it checked read running
    waiters.release()
    assert waiter.wait(5.0), "the waiter was added after the end took the waiters"
    assert len(waiters) == 0


def test_a_registering_task_takes_a_callers_waiter_before_the_table_holds_it() -> None:
    """Between the submitter's mark and the registry's Register, a wait adds its waiter
    (the task will be in the table before anything can end it); once registered, the
    table decides; an id never marked is unknown to the caller (it asks)."""
    waiters = Waiters()
    records: dict[str, TaskRecord] = {}
    assert waiters.watch_unless_ended("t", records.get) is None
    waiters.registering("t")
    early = waiters.watch_unless_ended("t", records.get)
    assert early is not None
    record = _published("t", TaskStatus.PENDING)  # the registry's Register
    records["t"] = record
    waiters.registered("t")
    late = waiters.watch_unless_ended("t", records.get)
    assert late is not None
    assert waiters.get("t") == (early, late)
    record.status = TaskStatus.COMPLETED
    waiters.ended(record)
    waiters.release()
    assert early.snapshot == late.snapshot == record.snapshot()
    del records["t"]  # removed by retention: no longer registering either
    assert waiters.watch_unless_ended("t", records.get) is None


def test_a_rebuild_keeps_the_waiters_of_a_task_still_registering() -> None:
    """Its Register is queued behind the rebuild: it is not gone. A stopping registry
    wakes them all the same."""
    waiters = Waiters()
    waiters.registering("queued")
    queued = waiters.watch_unless_ended("queued", {}.get)
    assert queued is not None
    waiters.settle({}.get)
    waiters.release()
    assert queued.wait(0.0) is False
    assert waiters.get("queued") == (queued,)
    waiters.wake_all({}.get)
    assert queued.wait(0.0) is True
    assert queued.snapshot is None
