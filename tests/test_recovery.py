"""Named operations and recovery: what a manager does with the records it finds when it
opens a durable store (the rules at the top of ``actors/_storage/recovery.py``).

A crashed database is prepared without a crash: the test writes, through the store
itself, the records a dead process would have left (``pending`` and ``running`` ones
among terminal ones), then opens a manager on the file and checks what became of each.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from actors import (
    Cancelled,
    Completed,
    Isolation,
    ManualClock,
    Raised,
    SqliteStore,
    StopReason,
    TaskContext,
    TaskOptions,
    UnknownOperationError,
)
from actors._records import TaskRecord
from storycore_tasks import NamedOperation, TaskManager, TaskPriority, TaskStatus
from tests.gates import RELEASE_TIMEOUT

MakeManager = Callable[..., TaskManager]

BASE = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the ManualClock's default start
OP = "storycore.test.op"


# -- helpers ---------------------------------------------------------------------------


def double(params: Mapping[str, Any], task: TaskContext) -> int:
    return int(params["x"]) * 2


def triple(params: Mapping[str, Any], task: TaskContext) -> int:
    return int(params["x"]) * 3


class Recorder:
    """An operation that records the ``n`` param of every call, in call order, and
    returns it. With ``hold_first`` its first call blocks until :meth:`release`."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.calls: list[Any] = []
        self._lock = threading.Lock()
        self._hold_first = hold_first
        self.first_entered = threading.Event()
        self._release = threading.Event()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        with self._lock:
            self.calls.append(params["n"])
            first = len(self.calls) == 1
        if first and self._hold_first:
            self.first_entered.set()
            self._release.wait(RELEASE_TIMEOUT)
        return params["n"]

    def release(self) -> None:
        self._release.set()


def iso(timestamp: float) -> str:
    """A timestamp as the status dicts show it."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def make_record(
    seq: int,
    *,
    status: TaskStatus = TaskStatus.PENDING,
    operation: str = OP,
    named: bool = True,
    priority: TaskPriority = TaskPriority.NORMAL,
    attempt: int | None = None,
    params: dict[str, Any] | None = None,
) -> TaskRecord:
    """The record a dead process would have left for the task with ``seq``. Running
    and terminal records had started (attempt 1 unless told); stamps derive from seq."""
    params = {"n": seq} if params is None else params
    created = BASE - 1000.0 + seq
    record = TaskRecord(
        task_id=str(uuid.uuid4()),
        operation_name=operation,
        params=params,
        options=TaskOptions(user="alice", priority=priority, isolation=Isolation.THREAD),
        seq=seq,
        created_at=created,
        updated_at=created,
        named=named,
        status=status,
        params_json=json.dumps(params, separators=(",", ":")),
    )
    if attempt is None:
        attempt = 0 if status is TaskStatus.PENDING else 1
    record.attempt = attempt
    if status is not TaskStatus.PENDING:
        record.started_at = created + 0.25
        record.updated_at = created + 0.5
    if status.is_terminal:
        record.ended_at = record.updated_at
    if status is TaskStatus.COMPLETED:
        record.outcome = Completed({"n": seq})
        record.result = {"n": seq}
        record.has_result = True
        record.result_json = json.dumps({"n": seq}, separators=(",", ":"))
        record.progress = 1.0
    elif status is TaskStatus.FAILED:
        record.outcome = Raised("ValueError", f"boom {seq}", "Traceback (most recent call last)")
    elif status is TaskStatus.CANCELLED:
        record.outcome = Cancelled(StopReason.CANCEL_REQUESTED)
    return record


def default_counters(records: Iterable[TaskRecord]) -> dict[str, int]:
    records = list(records)

    def count(status: TaskStatus) -> int:
        return sum(1 for r in records if r.status is status)

    return {
        "created": len(records),
        "completed": count(TaskStatus.COMPLETED),
        "failed": count(TaskStatus.FAILED),
        "cancelled": count(TaskStatus.CANCELLED),
        "timed_out": 0,
    }


def write_db(
    path: Path, records: list[TaskRecord], counters: Mapping[str, int] | None = None
) -> Path:
    """Write the state a dead process would have left in ``path``, with the store itself.

    ``counters``: the lifetime counters the file should imply; the part the records do
    not account for is written as tasks retention deleted earlier (the ``retired`` row).
    """
    store = SqliteStore(path)
    store.open()
    try:
        store.write(records, [])
    finally:
        store.close()
    if counters is not None:
        own = default_counters(records)
        retired = [counters[name] - own[name] for name in own]
        assert min(retired) >= 0, (counters, own)
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute(
                "UPDATE retired SET created = ?, completed = ?, failed = ?, cancelled = ?, "
                "timed_out = ?",
                retired,
            )
    return path


def status_of(manager: TaskManager, task_id: str) -> dict[str, Any]:
    status = manager.get_task_status(task_id)
    assert status is not None, f"task {task_id} is missing"
    return status


def assert_interrupted(
    status: dict[str, Any], *, was_running: bool, attempt: int, last_seen_at: float
) -> dict[str, Any]:
    """The status is failed with INTERRUPTED and these details; returns the details."""
    assert status["status"] == "failed"
    error = status["error"]
    assert error["code"] == "INTERRUPTED"
    details = error["details"]
    assert details["was_running"] is was_running
    assert details["attempt"] == attempt
    assert details["last_seen_at"] == iso(last_seen_at)
    datetime.fromisoformat(details["recovered_at"])
    assert status["attempt"] == attempt
    return dict(details)


# -- named operations ------------------------------------------------------------------


def test_registered_operation_runs_by_name(make_manager: MakeManager) -> None:
    """register_operation(name, fn) returns fn; create_task(name) runs it, and the status
    names the operation by its registered name."""
    manager = make_manager(num_workers=1)
    assert manager.register_operation("storycore.math.double", double) is double
    task_id = manager.create_task("storycore.math.double", {"x": 21})
    done = manager.wait(task_id, timeout=10)
    assert done["status"] == "completed"
    assert done["result"] == 42
    assert done["operation"] == "storycore.math.double"
    assert manager.runtime.operation_names() == ["storycore.math.double"]


def test_decorator_form_registers_and_returns_the_function(make_manager: MakeManager) -> None:
    """@manager.register_operation(name) registers the function and returns it unchanged."""
    manager = make_manager(num_workers=1)

    def render(params: Mapping[str, Any], task: TaskContext) -> str:
        return f"rendered {params['scene']}"

    decorated = manager.register_operation("storycore.video.render")(render)
    assert decorated is render
    done = manager.wait(manager.create_task("storycore.video.render", {"scene": 3}), timeout=10)
    assert done["result"] == "rendered 3"
    assert done["operation"] == "storycore.video.render"


def test_operations_argument_registers_up_front(make_manager: MakeManager) -> None:
    """TaskManager(operations={...}) registers every entry before the first create_task."""
    manager = make_manager(num_workers=1, operations={"m.double": double, "m.triple": triple})
    assert manager.runtime.operation_names() == ["m.double", "m.triple"]
    assert manager.wait(manager.create_task("m.triple", {"x": 5}), timeout=10)["result"] == 15


def test_unknown_operation_is_refused_and_creates_no_task(make_manager: MakeManager) -> None:
    """An unregistered name raises UnknownOperationError (a ValueError) naming it and the
    registered names; no task is created."""
    manager = make_manager(num_workers=1, operations={"known.one": double, "known.two": triple})
    with pytest.raises(UnknownOperationError) as caught:
        manager.create_task("storycore.nope", {"x": 1})
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "'storycore.nope'" in message
    assert "'known.one'" in message
    assert "'known.two'" in message
    stats = manager.get_stats()
    assert stats["total_tasks"] == 0
    assert stats["lifetime_stats"]["total_created"] == 0
    assert manager.list_tasks() == []


def test_unknown_operation_with_none_registered_says_so(make_manager: MakeManager) -> None:
    """With nothing registered the message says so instead of listing nothing."""
    manager = make_manager(num_workers=1)
    with pytest.raises(UnknownOperationError, match="none yet"):
        manager.create_task("a.b")


@pytest.mark.parametrize(
    "name",
    ["", " ", "has space", ".leading.dot", "-leading", ":leading", "x" * 201, "new\nline", "a/b"],
)
def test_invalid_operation_names_are_refused(make_manager: MakeManager, name: str) -> None:
    """Malformed names raise ValueError and register nothing."""
    manager = make_manager(num_workers=1)
    with pytest.raises(ValueError, match="invalid operation name"):
        manager.register_operation(name, double)
    assert manager.runtime.operation_names() == []


@pytest.mark.parametrize("name", [None, 42, b"bytes.name", ("a",)])
def test_non_string_operation_names_are_refused(make_manager: MakeManager, name: Any) -> None:
    """A name that is not a str raises TypeError."""
    manager = make_manager(num_workers=1)
    with pytest.raises(TypeError, match="must be a str"):
        manager.register_operation(name, double)
    assert manager.runtime.operation_names() == []


def test_longest_and_punctuated_names_are_accepted(make_manager: MakeManager) -> None:
    """200 characters is the limit, and '_', '.', ':' and '-' are allowed after the first."""
    manager = make_manager(num_workers=1)
    longest = "x" * 200
    manager.register_operation(longest, double)
    manager.register_operation("_private:op-v2.run", triple)
    assert manager.wait(manager.create_task(longest, {"x": 1}), timeout=10)["result"] == 2
    assert manager.runtime.operation_names() == sorted([longest, "_private:op-v2.run"])


def test_reregistering_a_name(make_manager: MakeManager) -> None:
    """Same function again: a no-op. Another function, or the same one with another
    retry_on_interrupt, under a taken name: ValueError, and the first stays."""
    manager = make_manager(num_workers=1)
    manager.register_operation("m.op", double)
    manager.register_operation("m.op", double)  # no error
    with pytest.raises(ValueError, match="already registered"):
        manager.register_operation("m.op", triple)
    with pytest.raises(ValueError, match="already registered"):
        manager.register_operation("m.op", double, retry_on_interrupt=True)
    assert manager.runtime.operation_names() == ["m.op"]
    assert manager.wait(manager.create_task("m.op", {"x": 4}), timeout=10)["result"] == 8


def test_non_callable_operation_is_refused(make_manager: MakeManager) -> None:
    """A function that is not callable, or a non-bool retry flag, raises TypeError."""
    manager = make_manager(num_workers=1)
    with pytest.raises(TypeError, match="must be a callable"):
        manager.register_operation("m.op", "not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry_on_interrupt must be a bool"):
        manager.register_operation("m.op", double, retry_on_interrupt=1)  # type: ignore[arg-type]
    assert manager.runtime.operation_names() == []


def test_bad_operations_argument_fails_cleanly(tmp_path: Path) -> None:
    """A malformed name in operations={...} fails the constructor before the store is
    opened or any thread started (the autouse fixture checks the threads)."""
    path = tmp_path / "tasks.db"
    with pytest.raises(ValueError, match="invalid operation name"):
        TaskManager(store=path, operations={"bad name": double})
    with pytest.raises(TypeError, match="must map names"):
        TaskManager(operations=[("m.op", double)])  # type: ignore[arg-type]
    assert not path.exists()


def test_plain_callables_are_recorded_by_qualified_name(make_manager: MakeManager) -> None:
    """A function passed itself still runs; its task names it module.qualname."""
    manager = make_manager(num_workers=1)

    def local_op(params: Mapping[str, Any], task: TaskContext) -> str:
        return "local"

    done = manager.wait(manager.create_task(double, {"x": 2}), timeout=10)
    assert done["result"] == 4
    assert done["operation"] == "tests.test_recovery.double"
    local = manager.wait(manager.create_task(local_op), timeout=10)
    assert local["operation"] == (
        "tests.test_recovery.test_plain_callables_are_recorded_by_qualified_name.<locals>.local_op"
    )


def test_the_store_records_which_tasks_are_named(tmp_path: Path) -> None:
    """A task created by name is stored with named=1 and the name; a plain function's
    task with named=0 and its qualified name: what recovery later relies on."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=1, store=path, operations={"m.double": double}) as manager:
        by_name = manager.create_task("m.double", {"x": 1})
        plain = manager.create_task(double, {"x": 1})
        manager.wait(by_name, timeout=10)
        manager.wait(plain, timeout=10)
    connection = sqlite3.connect(path)
    try:
        rows = {
            task_id: (operation, named)
            for task_id, operation, named in connection.execute(
                "SELECT task_id, operation, named FROM tasks"
            )
        }
    finally:
        connection.close()
    assert rows == {
        by_name: ("m.double", 1),
        plain: ("tests.test_recovery.double", 0),
    }


# -- recovery: pending tasks of named operations -----------------------------------------

# Mixed priorities over gapped seqs (the next test covers a first seq of low priority).
_PRIORITIES = [
    TaskPriority.CRITICAL,
    TaskPriority.LOW,
    TaskPriority.NORMAL,
    TaskPriority.HIGH,
    TaskPriority.NORMAL,
    TaskPriority.LOW,
    TaskPriority.CRITICAL,
    TaskPriority.HIGH,
    TaskPriority.NORMAL,
    TaskPriority.LOW,
]


def test_recovered_pending_tasks_run_in_priority_then_fifo_order(tmp_path: Path) -> None:
    """Ten pending records of a registered operation run again in (-priority, seq) order,
    with their stored params; a task created after opening runs after the recovered ones
    of its priority and before the lower priorities."""
    records = [make_record(3 * i + 1, priority=p) for i, p in enumerate(_PRIORITIES)]
    path = write_db(tmp_path / "tasks.db", records)
    recorder = Recorder(hold_first=True)
    with TaskManager(num_workers=1, store=path, operations={OP: recorder}) as manager:
        try:
            assert recorder.first_entered.wait(10), "no recovered task started"
            late = manager.create_task(OP, {"n": "late"}, priority="normal")
        finally:
            recorder.release()
        for record in records:
            done = manager.wait(record.task_id, timeout=10)
            assert done["status"] == "completed"
            assert done["result"] == record.seq
            assert done["attempt"] == 1
        assert manager.wait(late, timeout=10)["status"] == "completed"
    ordered = sorted(records, key=lambda r: (-r.options.priority, r.seq))
    expected: list[Any] = [r.seq for r in ordered if r.options.priority >= TaskPriority.NORMAL]
    expected.append("late")
    expected += [r.seq for r in ordered if r.options.priority < TaskPriority.NORMAL]
    assert recorder.calls == expected


@pytest.mark.parametrize("registered", ["up_front", "after_open"])
def test_recovered_order_holds_for_the_first_task_too(tmp_path: Path, registered: str) -> None:
    """The documented rule, "queued again in its original priority and order", also for
    the first task: a LOW record with the lowest seq must not start before HIGH ones
    (recovered tasks reach the supervisor in one SubmitBatch, queued before any starts)."""
    records = [
        make_record(0, priority=TaskPriority.LOW),
        make_record(1, priority=TaskPriority.HIGH),
        make_record(2, priority=TaskPriority.CRITICAL),
    ]
    path = write_db(tmp_path / "tasks.db", records)
    recorder = Recorder()
    operations = {OP: recorder} if registered == "up_front" else None
    with TaskManager(num_workers=1, store=path, operations=operations) as manager:
        if registered == "after_open":
            manager.register_operation(OP, recorder)
        for record in records:
            manager.wait(record.task_id, timeout=10)
    assert recorder.calls == [2, 1, 0]


def test_pending_task_waits_for_its_operation(tmp_path: Path) -> None:
    """A pending task of an unregistered operation stays pending and is counted as
    awaiting; registering the operation queues it at once, and it completes."""
    waiting = [make_record(0, operation="later.op"), make_record(1, operation="later.op")]
    ready = make_record(2, operation="now.op")
    path = write_db(tmp_path / "tasks.db", [*waiting, ready])
    later = Recorder()
    with TaskManager(num_workers=2, store=path, operations={"now.op": Recorder()}) as manager:
        assert manager.wait(ready.task_id, timeout=10)["status"] == "completed"
        for record in waiting:
            status = status_of(manager, record.task_id)
            assert status["status"] == "pending"
            assert status["started_at"] is None
        stats = manager.get_stats()
        assert stats["store"]["awaiting_operation"] == 2
        assert stats["status_counts"]["pending"] == 2
        assert [t["task_id"] for t in manager.get_pending_tasks()] == [r.task_id for r in waiting]
        assert later.calls == []

        manager.register_operation("later.op", later)
        for record in waiting:
            done = manager.wait(record.task_id, timeout=10)
            assert done["status"] == "completed"
            assert done["result"] == record.seq
        stats = manager.get_stats()
        assert stats["store"]["awaiting_operation"] == 0
        assert stats["status_counts"]["pending"] == 0
    assert sorted(later.calls) == [0, 1]


def test_cancelling_an_awaiting_task(tmp_path: Path) -> None:
    """cancel_task on a task awaiting its operation returns True; it reads cancelled at
    once and never runs, even after registration; a second cancel returns False."""
    cancelled = make_record(0, operation="later.op")
    other = make_record(1, operation="later.op")
    path = write_db(tmp_path / "tasks.db", [cancelled, other])
    later = Recorder()
    with TaskManager(num_workers=1, store=path) as manager:
        assert manager.cancel_task(cancelled.task_id) is True
        status = status_of(manager, cancelled.task_id)
        assert status["status"] == "cancelled"
        assert status["error"]["code"] == "CANCELLED"
        assert status["error"]["details"]["reason"] == "cancel_requested"
        assert manager.get_stats()["store"]["awaiting_operation"] == 1
        assert manager.cancel_task(cancelled.task_id) is False

        manager.register_operation("later.op", later)
        assert manager.wait(other.task_id, timeout=10)["status"] == "completed"
        assert status_of(manager, cancelled.task_id)["status"] == "cancelled"
        assert manager.get_stats()["lifetime_stats"]["total_cancelled"] == 1
    assert later.calls == [1]
    with TaskManager(num_workers=1, store=path) as reopened:  # the cancel was durable
        assert status_of(reopened, cancelled.task_id)["status"] == "cancelled"


def test_shutdown_cancel_pending_cancels_awaiting_tasks(tmp_path: Path) -> None:
    """shutdown(cancel_pending=True) cancels tasks awaiting their operation (reason
    shutdown), durably."""
    record = make_record(0, operation="later.op")
    path = write_db(tmp_path / "tasks.db", [record])
    manager = TaskManager(num_workers=1, store=path)
    assert status_of(manager, record.task_id)["status"] == "pending"
    manager.shutdown(cancel_pending=True)
    status = status_of(manager, record.task_id)
    assert status["status"] == "cancelled"
    assert status["error"]["details"]["reason"] == "shutdown"
    assert manager.get_stats()["store"]["awaiting_operation"] == 0
    with TaskManager(num_workers=1, store=path) as reopened:
        assert status_of(reopened, record.task_id)["status"] == "cancelled"
        assert reopened.get_stats()["store"]["awaiting_operation"] == 0


def test_shutdown_leaves_awaiting_tasks_pending_for_the_next_open(tmp_path: Path) -> None:
    """A plain shutdown leaves awaiting tasks pending in the file; registering their
    operation after the shutdown queues nothing; the next manager that has the operation
    runs them."""
    records = [make_record(0, operation="later.op"), make_record(1, operation="later.op")]
    path = write_db(tmp_path / "tasks.db", records)
    late = Recorder()
    manager = TaskManager(num_workers=1, store=path)
    manager.shutdown()
    assert status_of(manager, records[0].task_id)["status"] == "pending"
    manager.register_operation("later.op", late)  # closed: nothing is queued
    assert late.calls == []
    again = Recorder()
    with TaskManager(num_workers=1, store=path, operations={"later.op": again}) as reopened:
        for record in records:
            assert reopened.wait(record.task_id, timeout=10)["result"] == record.seq
    assert again.calls == [0, 1]
    assert late.calls == []


# -- recovery: interrupted tasks ---------------------------------------------------------


def test_running_record_is_interrupted(tmp_path: Path, clock: ManualClock) -> None:
    """A record that read running, of an operation registered without retry, fails with
    INTERRUPTED: was_running, its attempt, its last change and the recovery time; the
    verdict is written back to the file and the operation is not called."""
    first = make_record(0, status=TaskStatus.RUNNING)
    third = make_record(1, status=TaskStatus.RUNNING, attempt=3)
    path = write_db(tmp_path / "tasks.db", [first, third])
    recorder = Recorder()
    clock.advance(42.0)
    opened_at = clock.time()
    with TaskManager(num_workers=1, store=path, clock=clock, operations={OP: recorder}) as m:
        for record in (first, third):
            status = status_of(m, record.task_id)
            details = assert_interrupted(
                status, was_running=True, attempt=record.attempt, last_seen_at=record.updated_at
            )
            assert details["recovered_at"] == iso(opened_at)
            assert status["ended_at"] == iso(opened_at)
            assert status["started_at"] is None
            assert "The task manager's process stopped while attempt" in status["error"]["message"]
        assert m.get_stats()["status_counts"]["running"] == 0
    assert recorder.calls == []
    clock.advance(100.0)
    with TaskManager(num_workers=1, store=path, clock=clock, operations={OP: recorder}) as again:
        status = status_of(again, first.task_id)
        details = assert_interrupted(
            status, was_running=True, attempt=1, last_seen_at=first.updated_at
        )
        assert details["recovered_at"] == iso(opened_at)  # not recovered a second time
    assert recorder.calls == []


def test_running_record_registered_later_with_retry_runs_again(tmp_path: Path) -> None:
    """A running record whose operation is registered after opening with
    retry_on_interrupt=True waits pending, then runs: attempt 2."""
    record = make_record(0, status=TaskStatus.RUNNING)
    path = write_db(tmp_path / "tasks.db", [record])
    recorder = Recorder()
    with TaskManager(num_workers=1, store=path) as manager:
        waiting = status_of(manager, record.task_id)
        assert waiting["status"] == "pending"
        assert waiting["attempt"] == 1
        assert waiting["started_at"] is None
        assert manager.get_stats()["store"]["awaiting_operation"] == 1
        manager.register_operation(OP, recorder, retry_on_interrupt=True)
        done = manager.wait(record.task_id, timeout=10)
        assert done["status"] == "completed"
        assert done["attempt"] == 2
        assert done["result"] == 0
    assert recorder.calls == [0]


def test_running_record_of_an_operation_declared_retryable_up_front_runs_again(
    tmp_path: Path,
) -> None:
    """operations={name: NamedOperation(fn, retry_on_interrupt=True)} declares the
    operation retry-safe before recovery: the interrupted task is queued at once and runs
    again (attempt 2); the same function registered bare would have been interrupted."""
    record = make_record(0, status=TaskStatus.RUNNING)
    path = write_db(tmp_path / "tasks.db", [record])
    recorder = Recorder()
    operations = {OP: NamedOperation(recorder, retry_on_interrupt=True)}
    with TaskManager(num_workers=1, store=path, operations=operations) as manager:
        done = manager.wait(record.task_id, timeout=10)
        assert done["status"] == "completed"
        assert done["attempt"] == 2
        assert manager.get_stats()["store"]["awaiting_operation"] == 0
    assert recorder.calls == [0]


def test_running_record_registered_later_without_retry_is_interrupted(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Registered after opening without retry_on_interrupt: INTERRUPTED at registration
    (recovered_at is the registration time); the operation is never called."""
    record = make_record(0, status=TaskStatus.RUNNING, attempt=2)
    path = write_db(tmp_path / "tasks.db", [record])
    recorder = Recorder()
    with TaskManager(num_workers=1, store=path, clock=clock) as manager:
        assert status_of(manager, record.task_id)["status"] == "pending"
        clock.advance(5.0)
        registered_at = clock.time()
        manager.register_operation(OP, recorder)
        status = manager.wait(record.task_id, timeout=10)
        details = assert_interrupted(
            status, was_running=True, attempt=2, last_seen_at=record.updated_at
        )
        assert details["recovered_at"] == iso(registered_at)
        stats = manager.get_stats()
        assert stats["store"]["awaiting_operation"] == 0
        assert stats["lifetime_stats"]["total_failed"] == 1
    assert recorder.calls == []


@pytest.mark.parametrize("registered", [True, False])
def test_plain_callable_records_are_interrupted(
    tmp_path: Path, clock: ManualClock, registered: bool
) -> None:
    """A pending plain-function task fails with INTERRUPTED, was_running False, attempt
    0; a running one with was_running True. Even when a registered operation happens to
    carry its name (a plain function is never looked up)."""
    pending = make_record(0, named=False, operation=OP)
    running = make_record(1, status=TaskStatus.RUNNING, named=False, operation=OP)
    path = write_db(tmp_path / "tasks.db", [pending, running])
    recorder = Recorder()
    operations = {OP: recorder} if registered else None
    with TaskManager(num_workers=1, store=path, clock=clock, operations=operations) as manager:
        status = status_of(manager, pending.task_id)
        assert_interrupted(status, was_running=False, attempt=0, last_seen_at=pending.updated_at)
        assert "before it ran" in status["error"]["message"]
        assert_interrupted(
            status_of(manager, running.task_id),
            was_running=True,
            attempt=1,
            last_seen_at=running.updated_at,
        )
        assert manager.get_stats()["store"]["awaiting_operation"] == 0
        if not registered:
            manager.register_operation(OP, recorder)
            assert status_of(manager, pending.task_id)["status"] == "failed"
    assert recorder.calls == []


def test_terminal_records_are_left_untouched(tmp_path: Path) -> None:
    """Completed, failed and cancelled records read back exactly as stored, and opening
    writes nothing back for them."""
    records = [
        make_record(0, status=TaskStatus.COMPLETED),
        make_record(1, status=TaskStatus.FAILED),
        make_record(2, status=TaskStatus.CANCELLED, attempt=0),
        make_record(3, status=TaskStatus.FAILED, named=False),
    ]
    path = write_db(tmp_path / "tasks.db", records)
    recorder = Recorder()
    with TaskManager(num_workers=1, store=path, operations={OP: recorder}) as manager:
        completed, failed, cancelled, plain_failed = (
            status_of(manager, r.task_id) for r in records
        )
        assert completed["status"] == "completed"
        assert completed["result"] == {"n": 0}
        assert "error" not in completed
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "INTERNAL_ERROR"
        assert failed["error"]["details"]["exception_message"] == "boom 1"
        assert cancelled["status"] == "cancelled"
        assert cancelled["error"]["details"]["reason"] == "cancel_requested"
        assert plain_failed["error"]["details"]["exception_message"] == "boom 3"
        for status, record in zip(
            (completed, failed, cancelled, plain_failed), records, strict=True
        ):
            assert status["attempt"] == record.attempt
            assert status["updated_at"] == iso(record.updated_at)
            assert status["ended_at"] == iso(record.ended_at or 0.0)
        stats = manager.get_stats()
        assert stats["store"]["records_written"] == 0
        assert stats["store"]["commits"] == 0
        assert stats["lifetime_stats"]["total_failed"] == 2
    assert recorder.calls == []


def test_recovery_is_logged_and_leaves_nothing_dangling(tmp_path: Path) -> None:
    """registry.recovered counts every kind of record; once the queued ones have run, the
    only pending tasks are the awaiting ones and nothing reads running."""
    records = [
        make_record(0, status=TaskStatus.COMPLETED),
        make_record(1, status=TaskStatus.CANCELLED),
        make_record(2, status=TaskStatus.RUNNING),  # registered, no retry: interrupted
        make_record(3, status=TaskStatus.RUNNING, operation="later.op"),  # awaiting
        make_record(4),  # requeued
        make_record(5, priority=TaskPriority.HIGH),  # requeued
        make_record(6, named=False),  # plain: interrupted
        make_record(7, operation="later.op"),  # awaiting
    ]
    path = write_db(tmp_path / "tasks.db", records)
    operations = {OP: Recorder()}
    with (
        capture_logs() as logs,
        TaskManager(num_workers=2, store=path, operations=operations) as manager,
    ):
        for record in records[4:6]:
            assert manager.wait(record.task_id, timeout=10)["status"] == "completed"
        stats = manager.get_stats()
        counts = stats["status_counts"]
        assert counts["running"] == 0
        assert counts["pending"] == stats["store"]["awaiting_operation"] == 2
        assert counts == {
            "pending": 2,
            "running": 0,
            "completed": 3,
            "failed": 2,
            "cancelled": 1,
        }
        assert sum(counts.values()) == stats["total_tasks"] == len(records)
        assert {t["task_id"] for t in manager.get_pending_tasks()} == {
            records[3].task_id,
            records[7].task_id,
        }
    recovered = [e for e in logs if e["event"] == "registry.recovered"]
    assert len(recovered) == 1
    event = recovered[0]
    assert {key: event[key] for key in event if key not in ("event", "log_level")} == {
        "location": str(path),
        "records": 8,
        "terminal": 2,
        "were_running": 2,
        "requeued": 2,
        "interrupted": 2,
        "awaiting_operation": 2,
    }


def test_an_empty_database_logs_no_recovery(tmp_path: Path) -> None:
    """A new file has nothing to recover and logs no registry.recovered."""
    with capture_logs() as logs, TaskManager(num_workers=1, store=tmp_path / "new.db"):
        pass
    assert [e for e in logs if e["event"] == "registry.recovered"] == []


def test_lifetime_counters_include_recovered_failures(tmp_path: Path) -> None:
    """total_failed is the stored counter plus the interruptions found at open and those
    decided at registration; it survives the next open."""
    records = [
        make_record(0, status=TaskStatus.RUNNING),  # interrupted at open
        make_record(1, named=False),  # interrupted at open
        make_record(2, status=TaskStatus.RUNNING, operation="later.op"),  # at registration
        make_record(3),  # requeued: completes
    ]
    counters = {"created": 20, "completed": 10, "failed": 3, "cancelled": 2, "timed_out": 1}
    path = write_db(tmp_path / "tasks.db", records, counters)
    with TaskManager(num_workers=1, store=path, operations={OP: Recorder()}) as manager:
        manager.wait(records[3].task_id, timeout=10)
        lifetime = manager.get_stats()["lifetime_stats"]
        assert lifetime == {
            "total_created": 20,
            "total_completed": 11,
            "total_failed": 5,
            "total_cancelled": 2,
            "total_timed_out": 1,
            "total_stalled": 0,
        }
        manager.register_operation("later.op", Recorder())
        manager.wait(records[2].task_id, timeout=10)
        assert manager.get_stats()["lifetime_stats"]["total_failed"] == 6
    with TaskManager(num_workers=1, store=path) as reopened:
        lifetime = reopened.get_stats()["lifetime_stats"]
        assert lifetime["total_failed"] == 6
        assert lifetime["total_completed"] == 11


# -- the rules, over random databases ----------------------------------------------------

_OP_NAMES = ("op.a", "op.b", "op.c")
# How each operation is registered: in operations={...} (never with retry: the argument
# has no flag), after opening with or without retry_on_interrupt, or not at all.
_MODES = ("up_front", "later_retry", "later_plain", "never")
# Record states: pending never started, pending that had started before an earlier
# recovery requeued it (attempt 1), running (attempt 1 or 2), terminal.
_STATES = ("pending", "pending_restarted", "running", "running_twice", "completed", "failed")

_record_specs = st.lists(
    st.tuples(
        st.sampled_from(_STATES),
        st.booleans(),  # named
        st.sampled_from(_OP_NAMES),
        st.sampled_from(list(TaskPriority)),
    ),
    max_size=10,
)
_modes = st.fixed_dictionaries({name: st.sampled_from(_MODES) for name in _OP_NAMES})


def _build(state: str, seq: int, named: bool, operation: str, priority: TaskPriority) -> TaskRecord:
    status, attempt = {
        "pending": (TaskStatus.PENDING, 0),
        "pending_restarted": (TaskStatus.PENDING, 1),
        "running": (TaskStatus.RUNNING, 1),
        "running_twice": (TaskStatus.RUNNING, 2),
        "completed": (TaskStatus.COMPLETED, 1),
        "failed": (TaskStatus.FAILED, 1),
    }[state]
    return make_record(
        seq, status=status, named=named, operation=operation, priority=priority, attempt=attempt
    )


def _expected_fate(record: TaskRecord, mode: str) -> str:
    """The rule of actors/_storage/recovery.py, restated: "terminal", "interrupted", "completed"
    (queued at open or at registration) or "awaiting"."""
    if record.status.is_terminal:
        return "terminal"
    if not record.named:
        return "interrupted"
    if mode == "never":
        return "awaiting"
    had_started = record.attempt > 0
    if had_started and mode in ("up_front", "later_plain"):
        return "interrupted"
    return "completed"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=_record_specs, modes=_modes)
def test_recovery_rules_hold_for_any_database(
    specs: list[tuple[str, bool, str, TaskPriority]], modes: dict[str, str]
) -> None:
    """Over random mixes of records and registrations: every record is still there,
    counts add up, nothing reads running, every pending record either ran or awaits its
    unregistered operation, and interruptions follow the rule."""
    records = [_build(state, 2 * i, *rest) for i, (state, *rest) in enumerate(specs)]
    counters = default_counters(records)
    counters["created"] += 5
    counters["failed"] += 1
    fates = {r.task_id: _expected_fate(r, modes[r.operation_name]) for r in records}
    original = {r.task_id: (r.attempt, r.updated_at) for r in records}
    recorders = {name: Recorder() for name in _OP_NAMES}
    up_front = {n: recorders[n] for n in _OP_NAMES if modes[n] == "up_front"}
    with tempfile.TemporaryDirectory() as folder:
        path = write_db(Path(folder) / "tasks.db", records, counters)
        with TaskManager(num_workers=3, store=path, operations=up_front) as manager:
            for name in _OP_NAMES:
                if modes[name].startswith("later"):
                    retry = modes[name] == "later_retry"
                    manager.register_operation(name, recorders[name], retry_on_interrupt=retry)
            for record in records:
                task_id = record.task_id
                fate = fates[task_id]
                attempt, last_seen = original[task_id]
                if fate == "awaiting":
                    status = status_of(manager, task_id)
                    assert status["status"] == "pending"
                    assert status["attempt"] == attempt
                    continue
                status = manager.wait(task_id, timeout=10)
                if fate == "terminal":
                    assert status["status"] == record.status.value
                    assert status["updated_at"] == iso(record.updated_at)
                elif fate == "interrupted":
                    assert_interrupted(
                        status, was_running=attempt > 0, attempt=attempt, last_seen_at=last_seen
                    )
                else:
                    assert status["status"] == "completed"
                    assert status["result"] == record.seq
                    assert status["attempt"] == attempt + 1
            stats = manager.get_stats()
            counts = stats["status_counts"]
            awaiting = sum(1 for f in fates.values() if f == "awaiting")
            interrupted = sum(1 for f in fates.values() if f == "interrupted")
            assert stats["total_tasks"] == len(records)
            assert sum(counts.values()) == len(records)
            assert counts["running"] == 0
            assert counts["pending"] == awaiting
            assert stats["store"]["awaiting_operation"] == awaiting
            assert stats["lifetime_stats"]["total_failed"] == counters["failed"] + interrupted
            assert stats["lifetime_stats"]["total_created"] == counters["created"]
            assert {t["task_id"] for t in manager.list_tasks()} == set(fates)
    ran = sorted(n for recorder in recorders.values() for n in recorder.calls)
    assert ran == sorted(r.seq for r in records if fates[r.task_id] == "completed")
