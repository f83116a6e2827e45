"""Task dependencies (``depends_on``) and task groups (``create_group``), end to end.

A dependent waits, blocked, until every task it depends on has completed, then runs with
their results in ``task.dependency_results``; if one of them fails or is cancelled, the
dependent is cancelled with ``DEPENDENCY_ERROR`` without running, and so on down the
chain. A group aggregates its members' states and progress and can be cancelled at once.
Covered with the memory store, in process isolation, across a restart of a durable
store, through the router, and by a property test over random dependency graphs.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pykka
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import (
    ManualClock,
    QueueFullError,
    SqliteStore,
    TaskContext,
    UnknownGroupError,
)
from actors._records import TaskRecord
from actors.testing import wait_until
from storycore_tasks import APIRouter, TaskManager, register_task_endpoints
from storycore_tasks.errors import (
    HTTP_STATUS_BY_CODE,
    REMEDIATION_BY_CODE,
    ErrorCodes,
    error_from_exception,
)
from tests.gates import Gate, settle

MakeManager = Callable[..., TaskManager]
Operation = Callable[[Mapping[str, Any], TaskContext], Any]

WAIT = 10.0
"""Upper bound of every wait; a healthy run never gets near it."""


# -- operations and helpers -------------------------------------------------------------


class Recorder:
    """An operation that records the dependency results it was given, and returns
    ``result``."""

    def __init__(self, result: Any = "ok") -> None:
        self.result = result
        self.seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        with self._lock:
            self.seen.append(dict(task.dependency_results))
        return self.result

    @property
    def calls(self) -> int:
        return len(self.seen)


def returning(value: Any) -> Operation:
    def operation(params: Mapping[str, Any], task: TaskContext) -> Any:
        return value

    return operation


def boom(params: Mapping[str, Any], task: TaskContext) -> None:
    raise RuntimeError("render failed")


def raising_after(gate: Gate) -> Operation:
    """Blocks on ``gate`` like it, then raises."""

    def operation(params: Mapping[str, Any], task: TaskContext) -> None:
        gate(params, task)
        raise RuntimeError("render failed")

    return operation


def progress_then(gate: Gate) -> Operation:
    """Reports ``params["progress"]``, then blocks on ``gate`` like it."""

    def operation(params: Mapping[str, Any], task: TaskContext) -> Any:
        task.update_progress(params["progress"])
        return gate(params, task)

    return operation


def read_dependency_results(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Module level: a child process imports it by name (process isolation)."""
    return {"results": dict(task.dependency_results), "pid": os.getpid()}


def status_of(manager: TaskManager, task_id: str) -> dict[str, Any]:
    found = manager.get_task_status(task_id)
    assert found is not None, f"task {task_id} is unknown"
    return found


def group_of(manager: TaskManager, group_id: str) -> dict[str, Any]:
    found = manager.get_group_status(group_id)
    assert found is not None, f"group {group_id} is unknown"
    return found


def lifetime(manager: TaskManager) -> dict[str, int]:
    counters: dict[str, int] = manager.get_stats()["lifetime_stats"]
    return counters


def moment(stamp: str | None) -> datetime:
    assert stamp is not None
    return datetime.fromisoformat(stamp)


def assert_dependency_error(
    status: dict[str, Any], dependency_id: str, dependency_status: str
) -> None:
    """The status of a task cancelled because ``dependency_id`` ended so."""
    assert status["status"] == "cancelled"
    assert status["error"] == {
        "code": "DEPENDENCY_ERROR",
        "message": (
            f"Task was cancelled because its dependency {dependency_id} {dependency_status}"
        ),
        "details": {"dependency_id": dependency_id, "dependency_status": dependency_status},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.DEPENDENCY_ERROR],
    }
    assert "result" not in status


@pytest.fixture
def new_gate(make_manager: MakeManager) -> Iterator[Callable[..., Gate]]:
    """Gates released at the end of the test, before its managers shut down (so a failed
    assertion cannot leave a shutdown waiting on a blocked operation)."""
    made: list[Gate] = []

    def make(result: Any = "done") -> Gate:
        gate = Gate(result)
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.release()


# -- dependencies ---------------------------------------------------------------------


def test_a_dependent_waits_for_its_dependency_and_gets_its_result(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """B depends on A: while A runs, B reads pending with depends_on [A] and its operation
    is not called although a worker is free; once A completes, B runs with A's result."""
    manager = make_manager(num_workers=2)
    gate = new_gate({"frames": 24})
    a = manager.create_task(gate)
    gate.wait_entered()
    recorder = Recorder(result="rendered")
    b = manager.create_task(recorder, {"scene": 2}, depends_on=[a])
    settle(manager)

    blocked = status_of(manager, b)
    assert blocked["status"] == "pending"
    assert blocked["depends_on"] == [a]
    assert blocked["started_at"] is None
    assert status_of(manager, a)["depends_on"] == []
    stats = manager.get_stats()
    assert stats["running"] == 1  # a second worker is free, yet B does not start
    assert stats["queue_size"] == 1
    assert [t["task_id"] for t in manager.get_pending_tasks()] == [b]
    assert recorder.calls == 0

    gate.release()
    done = manager.wait(b, timeout=WAIT)
    assert done["status"] == "completed"
    assert done["result"] == "rendered"
    assert done["depends_on"] == [a]
    assert recorder.seen == [{a: {"frames": 24}}]
    a_status = status_of(manager, a)
    assert moment(done["started_at"]) >= moment(a_status["ended_at"])


def test_several_dependencies_give_every_result_keyed_by_id(make_manager: MakeManager) -> None:
    """A task depending on several gets all their results, by task id; a repeated id is
    kept once."""
    manager = make_manager(num_workers=3)
    a1 = manager.create_task(returning(1))
    a2 = manager.create_task(returning("two"))
    a3 = manager.create_task(returning([3, {"x": None}]))
    recorder = Recorder()
    c = manager.create_task(recorder, depends_on=[a1, a2, a1, a3])

    done = manager.wait(c, timeout=WAIT)

    assert done["status"] == "completed"
    assert done["depends_on"] == [a1, a2, a3]
    assert recorder.seen == [{a1: 1, a2: "two", a3: [3, {"x": None}]}]


def test_a_dependency_completed_beforehand_releases_the_dependent_at_once(
    make_manager: MakeManager,
) -> None:
    """A dependency that completed before the dependent was created: it runs at once (a
    tuple or a set of ids is accepted as well as a list)."""
    manager = make_manager(num_workers=1)
    a = manager.create_task(returning({"ok": True}))
    assert manager.wait(a, timeout=WAIT)["status"] == "completed"
    first, second = Recorder(1), Recorder(2)

    b = manager.create_task(first, depends_on=(a,))
    c = manager.create_task(second, depends_on={a})  # type: ignore[arg-type]  # accepted

    assert manager.wait(b, timeout=WAIT)["result"] == 1
    assert manager.wait(c, timeout=WAIT)["result"] == 2
    assert first.seen == [{a: {"ok": True}}]
    assert second.seen == [{a: {"ok": True}}]


def _failing_dependency(
    mode: str, manager: TaskManager, clock: ManualClock, new_gate: Callable[..., Gate]
) -> tuple[str, Callable[[], None]]:
    """Start task A, which will end in ``mode``; returns its id and what makes it end."""

    def cancel(task_id: str) -> Callable[[], None]:
        def end() -> None:
            assert manager.cancel_task(task_id) is True

        return end

    if mode == "raised":
        gate = new_gate()
        a = manager.create_task(raising_after(gate))
        gate.wait_entered()
        return a, gate.release
    if mode == "cancelled_running":
        gate = new_gate()
        a = manager.create_task(gate)
        gate.wait_entered()
        return a, cancel(a)
    if mode == "cancelled_pending":
        blocker = new_gate()
        manager.create_task(blocker)  # holds the only worker, so A stays pending
        blocker.wait_entered()
        a = manager.create_task(returning("never"))
        return a, cancel(a)
    assert mode == "timed_out"
    entered = threading.Event()

    def slow(params: Mapping[str, Any], task: TaskContext) -> None:
        entered.set()
        task.wait_cancelled(WAIT)

    a = manager.create_task(slow, timeout=5)
    assert entered.wait(WAIT)  # running: its deadline is armed

    def expire() -> None:
        clock.advance(5)

    return a, expire


@pytest.mark.parametrize(
    ("mode", "dependency_status", "dependency_code"),
    [
        ("raised", "failed", "INTERNAL_ERROR"),
        ("cancelled_running", "cancelled", "CANCELLED"),
        ("cancelled_pending", "cancelled", "CANCELLED"),
        ("timed_out", "failed", "TIMEOUT"),
    ],
)
def test_a_failed_or_cancelled_dependency_cancels_the_dependent(
    make_manager: MakeManager,
    clock: ManualClock,
    new_gate: Callable[..., Gate],
    mode: str,
    dependency_status: str,
    dependency_code: str,
) -> None:
    """A dependency that raises, is cancelled (running or pending) or times out: the
    dependent ends cancelled with DEPENDENCY_ERROR (HTTP 424) naming it, never runs."""
    manager = make_manager(num_workers=1, clock=clock)
    a, end_a = _failing_dependency(mode, manager, clock, new_gate)
    recorder = Recorder()
    b = manager.create_task(recorder, depends_on=[a])
    settle(manager)
    assert status_of(manager, b)["status"] == "pending"

    end_a()
    a_status = manager.wait(a, timeout=WAIT)
    b_status = manager.wait(b, timeout=WAIT)

    assert a_status["status"] == dependency_status
    assert a_status["error"]["code"] == dependency_code
    assert_dependency_error(b_status, a, dependency_status)
    assert HTTP_STATUS_BY_CODE[ErrorCodes(b_status["error"]["code"])] == 424
    assert b_status["started_at"] is None
    assert recorder.calls == 0
    assert manager.get_stats()["queue_size"] == 0  # B's place in the queue was given back


def test_a_failure_cascades_down_a_chain(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """A -> B -> C -> D, A raises: B, C and D are all cancelled with DEPENDENCY_ERROR,
    each naming the task just above it; none of their operations runs."""
    manager = make_manager(num_workers=2)
    gate = new_gate()
    a = manager.create_task(raising_after(gate))
    gate.wait_entered()
    recorder = Recorder()
    b = manager.create_task(recorder, depends_on=[a])
    c = manager.create_task(recorder, depends_on=[b])
    d = manager.create_task(recorder, depends_on=[c])
    settle(manager)
    assert [status_of(manager, t)["status"] for t in (b, c, d)] == ["pending"] * 3

    gate.release()

    assert manager.wait(a, timeout=WAIT)["status"] == "failed"
    assert_dependency_error(manager.wait(b, timeout=WAIT), a, "failed")
    assert_dependency_error(manager.wait(c, timeout=WAIT), b, "cancelled")
    assert_dependency_error(manager.wait(d, timeout=WAIT), c, "cancelled")
    assert recorder.calls == 0
    assert lifetime(manager) == {
        "total_created": 4,
        "total_completed": 0,
        "total_failed": 1,
        "total_cancelled": 3,
        "total_timed_out": 0,
        "total_stalled": 0,
    }


def test_a_dependency_that_failed_beforehand_cancels_the_dependent_at_once(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """A dependency that had already failed (or been cancelled) when the dependent was
    created: the dependent reads cancelled with DEPENDENCY_ERROR as soon as create_task
    returns, and so does one depending on it. Such dependents keep no queue place."""
    manager = make_manager(num_workers=1, max_pending=2)
    a = manager.create_task(boom)
    assert manager.wait(a, timeout=WAIT)["status"] == "failed"
    recorder = Recorder()

    b = manager.create_task(recorder, depends_on=[a])
    assert_dependency_error(status_of(manager, b), a, "failed")
    settle(manager)  # (each holds a place until the supervisor has dropped it)
    c = manager.create_task(recorder, depends_on=[b])
    assert_dependency_error(status_of(manager, c), b, "cancelled")
    settle(manager)
    for _ in range(5):  # more than max_pending
        assert_dependency_error(
            status_of(manager, manager.create_task(recorder, depends_on=[c])), c, "cancelled"
        )
        settle(manager)

    gate = new_gate()
    blocker = manager.create_task(gate)
    gate.wait_entered()
    settle(manager)
    queued = [manager.create_task(returning(i)) for i in range(2)]  # max_pending
    with pytest.raises(QueueFullError):
        manager.create_task(returning(99))
    gate.release()
    for task_id in (blocker, *queued):
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    assert recorder.calls == 0
    assert lifetime(manager)["total_cancelled"] == 7


def test_unknown_dependency_ids_are_refused_and_create_nothing(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """Unknown ids in depends_on: ValueError naming exactly them (VALIDATION_ERROR);
    no task is created, and the refusals do not use up max_pending."""
    manager = make_manager(num_workers=1, max_pending=3)
    gate = new_gate()
    a = manager.create_task(gate)
    gate.wait_entered()
    settle(manager)
    missing = [str(uuid.uuid4()), str(uuid.uuid4())]
    recorder = Recorder()

    for _ in range(5):
        with pytest.raises(ValueError, match="unknown task ids") as refused:
            manager.create_task(recorder, depends_on=[a, *missing])
        assert str(missing) in str(refused.value)
        assert a not in str(refused.value)
        assert error_from_exception(refused.value).code is ErrorCodes.VALIDATION_ERROR
    with pytest.raises(ValueError, match="not-a-task"):
        manager.create_task(recorder, depends_on=["not-a-task"])
    assert lifetime(manager)["total_created"] == 1
    assert [t["task_id"] for t in manager.list_tasks()] == [a]

    queued = [manager.create_task(recorder, depends_on=[a]) for _ in range(3)]
    with pytest.raises(QueueFullError):
        manager.create_task(recorder, depends_on=[a])
    gate.release()
    for task_id in queued:
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    assert recorder.seen == [{a: "done"}] * 3


@pytest.mark.parametrize(
    "depends_on",
    [
        pytest.param("abc", id="a-string"),
        pytest.param(None, id="None"),
        pytest.param(42, id="an-int"),
        pytest.param({"id": "x"}, id="a-dict"),
        pytest.param([1], id="an-int-id"),
        pytest.param([None], id="a-None-id"),
        pytest.param([""], id="an-empty-id"),
        pytest.param(b"ab", id="bytes"),
    ],
)
def test_malformed_depends_on_is_a_type_error(make_manager: MakeManager, depends_on: Any) -> None:
    """depends_on must be a list (tuple, set) of id strings: anything else is a
    TypeError (VALIDATION_ERROR) and creates nothing."""
    manager = make_manager(num_workers=1)
    with pytest.raises(TypeError, match="depends_on") as refused:
        manager.create_task(returning(1), depends_on=depends_on)
    assert error_from_exception(refused.value).code is ErrorCodes.VALIDATION_ERROR
    assert lifetime(manager)["total_created"] == 0


def test_a_single_id_string_is_refused_not_split(make_manager: MakeManager) -> None:
    """A real task id passed as a bare string (not in a list) is a TypeError."""
    manager = make_manager(num_workers=1)
    a = manager.create_task(returning(1))
    manager.wait(a, timeout=WAIT)
    with pytest.raises(TypeError, match="list of task ids"):
        manager.create_task(returning(2), depends_on=a)
    assert lifetime(manager)["total_created"] == 1


def test_cancelling_a_blocked_dependent(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """Cancelling a blocked dependent returns True; it reads cancelled (cancel_requested)
    and never runs, even once its dependency completes; its own dependent is cancelled
    with DEPENDENCY_ERROR naming it."""
    manager = make_manager(num_workers=2)
    gate = new_gate("a-result")
    a = manager.create_task(gate)
    gate.wait_entered()
    recorder = Recorder()
    b = manager.create_task(recorder, depends_on=[a])
    c = manager.create_task(recorder, depends_on=[b])

    assert manager.cancel_task(b) is True
    b_status = status_of(manager, b)
    assert b_status["status"] == "cancelled"
    assert b_status["error"]["code"] == "CANCELLED"
    assert b_status["error"]["details"] == {"reason": "cancel_requested"}
    assert_dependency_error(manager.wait(c, timeout=WAIT), b, "cancelled")
    assert manager.cancel_task(b) is False
    assert manager.cancel_task(c) is False

    gate.release()
    assert manager.wait(a, timeout=WAIT)["status"] == "completed"
    settle(manager)
    assert status_of(manager, b)["status"] == "cancelled"
    assert recorder.calls == 0
    stats = manager.get_stats()
    assert stats["queue_size"] == 0
    assert stats["status_counts"] == {
        "pending": 0,
        "running": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 2,
    }


def test_a_diamond_runs_the_join_once_with_both_results(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """B and C depend on A, D on B and C: D runs once, after both, with both results (and
    not A's, which it does not depend on directly)."""
    manager = make_manager(num_workers=3)
    gate = new_gate("a")
    a = manager.create_task(gate)
    gate.wait_entered()
    left, right, join = Recorder("b"), Recorder("c"), Recorder("d")
    b = manager.create_task(left, depends_on=[a])
    c = manager.create_task(right, depends_on=[a])
    d = manager.create_task(join, depends_on=[b, c])
    settle(manager)
    assert join.calls == 0

    gate.release()
    done = manager.wait(d, timeout=WAIT)

    assert done["result"] == "d"
    assert left.seen == [{a: "a"}]
    assert right.seen == [{a: "a"}]
    assert join.seen == [{b: "b", c: "c"}]
    started = moment(done["started_at"])
    assert started >= moment(status_of(manager, b)["ended_at"])
    assert started >= moment(status_of(manager, c)["ended_at"])


PRIORITIES = ["low", "normal", "critical", "high"]
BY_PRIORITY = ["critical", "high", "normal", "low"]


def test_released_dependents_queue_by_priority_behind_a_busy_worker(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """Dependents released together while the worker is busy run by priority, not in
    the order they were created."""
    manager = make_manager(num_workers=1)
    order: list[str] = []

    def record(params: Mapping[str, Any], task: TaskContext) -> None:
        order.append(params["name"])

    gate_a, busy = new_gate(), new_gate()
    a = manager.create_task(gate_a)
    gate_a.wait_entered()
    manager.create_task(busy, priority="critical")  # takes the worker when A ends
    ids = [manager.create_task(record, {"name": p}, priority=p, depends_on=[a]) for p in PRIORITIES]
    gate_a.release()
    busy.wait_entered()
    settle(manager)
    pending = [t["task_id"] for t in manager.get_pending_tasks()]
    assert pending == [ids[PRIORITIES.index(p)] for p in BY_PRIORITY]
    busy.release()
    for task_id in ids:
        manager.wait(task_id, timeout=WAIT)
    assert order == BY_PRIORITY


def test_released_dependents_start_by_priority_on_a_free_worker(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """Dependents released together by one dependency start by priority even when a
    worker is free at that moment."""
    manager = make_manager(num_workers=1)
    order: list[str] = []

    def record(params: Mapping[str, Any], task: TaskContext) -> None:
        order.append(params["name"])

    gate = new_gate()
    a = manager.create_task(gate)
    gate.wait_entered()
    ids = [manager.create_task(record, {"name": p}, priority=p, depends_on=[a]) for p in PRIORITIES]
    gate.release()
    for task_id in ids:
        manager.wait(task_id, timeout=WAIT)
    assert order == BY_PRIORITY


def test_dependency_results_reach_a_process_isolated_operation(
    make_manager: MakeManager,
) -> None:
    """In process isolation the child's operation reads task.dependency_results."""
    manager = make_manager(num_workers=1)
    a = manager.create_task(returning({"frames": [1, 2]}))
    b = manager.create_task(read_dependency_results, isolation="process", depends_on=[a])

    done = manager.wait(b, timeout=20)

    assert done["status"] == "completed", done.get("error")
    assert done["isolation"] == "process"
    assert done["result"]["results"] == {a: {"frames": [1, 2]}}
    assert done["result"]["pid"] != os.getpid()


def _release_once_closed(manager: TaskManager, gate: Gate) -> threading.Thread:
    """A thread that releases ``gate`` once the manager stops admitting tasks."""

    def release() -> None:
        wait_until(lambda: not manager.get_stats()["accepting_tasks"], timeout=WAIT)
        gate.release()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_shutdown_runs_a_blocked_dependent_during_the_drain(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """Memory store, shutdown(wait=True): a dependent blocked on a running task runs
    once that task completes during the drain, with its result."""
    manager = make_manager(num_workers=1)
    gate = new_gate("a")
    a = manager.create_task(gate)
    gate.wait_entered()
    recorder = Recorder("b")
    b = manager.create_task(recorder, depends_on=[a])
    releaser = _release_once_closed(manager, gate)

    manager.shutdown(wait=True, timeout=WAIT)
    releaser.join(WAIT)

    assert status_of(manager, a)["status"] == "completed"
    assert status_of(manager, b)["status"] == "completed"
    assert status_of(manager, b)["result"] == "b"
    assert recorder.seen == [{a: "a"}]


def test_shutdown_cancel_pending_cancels_a_blocked_dependent(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """shutdown(cancel_pending=True): a blocked dependent is cancelled (reason shutdown)
    and never runs; its running dependency still completes."""
    manager = make_manager(num_workers=1)
    gate = new_gate("a")
    a = manager.create_task(gate)
    gate.wait_entered()
    recorder = Recorder()
    b = manager.create_task(recorder, depends_on=[a])
    releaser = _release_once_closed(manager, gate)

    manager.shutdown(wait=True, cancel_pending=True, timeout=WAIT)
    releaser.join(WAIT)

    assert status_of(manager, a)["status"] == "completed"
    b_status = status_of(manager, b)
    assert b_status["status"] == "cancelled"
    assert b_status["error"]["code"] == "CANCELLED"
    assert b_status["error"]["details"] == {"reason": "shutdown"}
    assert recorder.calls == 0


# -- the property: random dependency graphs -------------------------------------------


@st.composite
def dependency_graphs(draw: st.DrawFn) -> list[tuple[list[int], bool]]:
    """2-12 tasks; each depends on a random subset of the earlier ones, and raises or not."""
    size = draw(st.integers(min_value=2, max_value=12))
    graph: list[tuple[list[int], bool]] = []
    for index in range(size):
        parents = (
            draw(st.lists(st.integers(0, index - 1), unique=True, max_size=4)) if index else []
        )
        graph.append((sorted(parents), draw(st.booleans())))
    return graph


@settings(deadline=None, max_examples=30)
@given(graph=dependency_graphs(), workers=st.integers(min_value=1, max_value=3))
def test_random_dependency_graphs_end_consistently(
    graph: list[tuple[list[int], bool]], workers: int
) -> None:
    """Every task ends; a raising one failed; one with a failed or cancelled dependency
    is cancelled with DEPENDENCY_ERROR naming such a dependency; every other one
    completed with its dependencies' results; no cancelled task ran; counters add up."""
    calls: dict[int, list[dict[str, Any]]] = {}
    lock = threading.Lock()

    def operation(params: Mapping[str, Any], task: TaskContext) -> str:
        with lock:
            calls.setdefault(params["index"], []).append(dict(task.dependency_results))
        if params["raise"]:
            raise ValueError(f"task {params['index']} raises")
        return f"result-{params['index']}"

    manager = TaskManager(num_workers=workers)
    try:
        ids: list[str] = []
        for index, (parents, raises) in enumerate(graph):
            ids.append(
                manager.create_task(
                    operation,
                    {"index": index, "raise": raises},
                    depends_on=[ids[p] for p in parents],
                )
            )
        statuses = [manager.wait(task_id, timeout=WAIT) for task_id in ids]
        counters = lifetime(manager)
    finally:
        manager.shutdown(wait=True, cancel_pending=True, timeout=WAIT)

    expected: list[str] = []
    for index, (parents, raises) in enumerate(graph):
        status = statuses[index]
        assert status["depends_on"] == [ids[p] for p in parents]
        if any(expected[p] != "completed" for p in parents):
            expected.append("cancelled")
            assert status["status"] == "cancelled"
            details = status["error"]["details"]
            assert status["error"]["code"] == "DEPENDENCY_ERROR"
            culprit = ids.index(details["dependency_id"])
            assert culprit in parents
            assert expected[culprit] != "completed"
            assert details["dependency_status"] == expected[culprit]
            assert index not in calls
        elif raises:
            expected.append("failed")
            assert status["status"] == "failed"
            assert status["error"]["code"] == "INTERNAL_ERROR"
            assert calls[index] == [{ids[p]: f"result-{p}" for p in parents}]
        else:
            expected.append("completed")
            assert status["status"] == "completed"
            assert status["result"] == f"result-{index}"
            assert calls[index] == [{ids[p]: f"result-{p}" for p in parents}]
    assert counters == {
        "total_created": len(graph),
        "total_completed": expected.count("completed"),
        "total_failed": expected.count("failed"),
        "total_cancelled": expected.count("cancelled"),
        "total_timed_out": 0,
        "total_stalled": 0,
    }


# -- groups ---------------------------------------------------------------------------


def test_group_status_aggregates_states_and_progress(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """create_group returns a group id every member carries; get_group_status counts the
    members per state, averages their progress and reads running, then completed."""
    manager = make_manager(num_workers=3)
    gates = [new_gate(n) for n in range(3)]
    group_id = manager.create_group(
        [
            {"operation": progress_then(gate), "params": {"progress": p}, "user": "ana"}
            for gate, p in zip(gates, (0.25, 0.5, 0.75), strict=True)
        ]
    )
    assert str(uuid.UUID(group_id)) == group_id
    for gate in gates:
        gate.wait_entered()
    assert wait_until(
        lambda: group_of(manager, group_id)["progress"] == 0.5,
        timeout=WAIT,
    )
    running = manager.get_group_status(group_id)
    assert running is not None
    members = running["tasks"]
    assert len(members) == 3
    for task_id in members:
        member = status_of(manager, task_id)
        assert member["group_id"] == group_id
        assert member["user"] == "ana"
    assert [status_of(manager, t)["progress"] for t in members] == [0.25, 0.5, 0.75]
    assert running == {
        "group_id": group_id,
        "state": "running",
        "total": 3,
        "counts": {"pending": 0, "running": 3, "completed": 0, "failed": 0, "cancelled": 0},
        "progress": 0.5,
        "tasks": members,
    }

    for gate in gates:
        gate.release()
    assert [manager.wait(t, timeout=WAIT)["result"] for t in members] == [0, 1, 2]
    done = manager.get_group_status(group_id)
    assert done is not None
    assert done["state"] == "completed"
    assert done["progress"] == 1.0
    assert done["counts"]["completed"] == 3


def test_a_group_waiting_for_workers_reads_pending(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """A group none of whose members has started reads pending, progress 0."""
    manager = make_manager(num_workers=1)
    blocker = new_gate()
    manager.create_task(blocker)
    blocker.wait_entered()
    group_id = manager.create_group([{"operation": returning(1)}, {"operation": returning(2)}])

    status = manager.get_group_status(group_id)

    assert status is not None
    assert status["state"] == "pending"
    assert status["counts"]["pending"] == 2
    assert status["progress"] == 0.0


def test_group_state_failed_and_cancelled(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """While any member is unfinished the group runs; once all are terminal it reads
    failed if any failed (even with a cancelled one), else cancelled if any was."""
    manager = make_manager(num_workers=4)
    gate_1, gate_2 = new_gate(), new_gate()
    failing = manager.create_group(
        [{"operation": returning(1)}, {"operation": boom}, {"operation": gate_1}]
    )
    cancelling = manager.create_group([{"operation": returning(1)}, {"operation": gate_2}])
    gate_1.wait_entered()
    gate_2.wait_entered()
    ok, failed, running = group_of(manager, failing)["tasks"]
    manager.wait(ok, timeout=WAIT)
    manager.wait(failed, timeout=WAIT)

    midway = manager.get_group_status(failing)
    assert midway is not None
    assert midway["state"] == "running"
    assert midway["counts"] == {
        "pending": 0,
        "running": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert manager.cancel_task(running) is True
    ended = manager.get_group_status(failing)
    assert ended is not None
    assert ended["state"] == "failed"
    assert ended["counts"]["cancelled"] == 1

    ok_2, running_2 = group_of(manager, cancelling)["tasks"]
    manager.wait(ok_2, timeout=WAIT)
    assert manager.cancel_task(running_2) is True
    cancelled = manager.get_group_status(cancelling)
    assert cancelled is not None
    assert cancelled["state"] == "cancelled"
    assert cancelled["counts"]["completed"] == 1
    assert cancelled["counts"]["cancelled"] == 1


def test_cancel_group_cancels_only_unfinished_members(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """cancel_group cancels the running and pending members and returns how many; a
    member that had completed keeps its result; a second call cancels nothing."""
    manager = make_manager(num_workers=2)
    outside = new_gate()
    manager.create_task(outside)  # holds one worker all along
    outside.wait_entered()
    member_gate = new_gate()
    never = Recorder()
    group_id = manager.create_group(
        [
            {"operation": returning("first")},
            {"operation": member_gate},
            {"operation": never},
            {"operation": never, "params": {"second": True}},
        ]
    )
    first, running, *queued = group_of(manager, group_id)["tasks"]
    assert manager.wait(first, timeout=WAIT)["result"] == "first"
    member_gate.wait_entered()

    assert manager.cancel_group(group_id) == 3

    assert status_of(manager, first)["status"] == "completed"
    assert status_of(manager, first)["result"] == "first"
    for task_id in (running, *queued):
        cancelled = status_of(manager, task_id)
        assert cancelled["status"] == "cancelled"
        assert cancelled["error"]["details"] == {"reason": "cancel_requested"}
    status = manager.get_group_status(group_id)
    assert status is not None
    assert status["state"] == "cancelled"
    assert manager.cancel_group(group_id) == 0
    member_gate.release()
    outside.release()
    settle(manager)
    assert never.calls == 0


@pytest.mark.parametrize(
    ("tasks", "error"),
    [
        pytest.param({"operation": "x"}, TypeError, id="a-dict"),
        pytest.param("operation", TypeError, id="a-string"),
        pytest.param(None, TypeError, id="None"),
        pytest.param([], ValueError, id="empty"),
        pytest.param(["x"], TypeError, id="an-item-not-a-dict"),
        pytest.param([{"params": {}}], ValueError, id="no-operation"),
        pytest.param([{"operation": boom, "colour": "red"}], ValueError, id="unknown-key"),
        pytest.param(
            [{"operation": boom}, {"operation": boom, "group_id": "g"}],
            ValueError,
            id="group_id-is-not-an-argument",
        ),
        pytest.param(
            [{"operation": boom}, {"params": {}}], ValueError, id="second-without-operation"
        ),
    ],
)
def test_create_group_refuses_bad_input_before_creating_anything(
    make_manager: MakeManager, tasks: Any, error: type[Exception]
) -> None:
    """Bad create_group input raises (VALIDATION_ERROR) and creates no task at all."""
    manager = make_manager(num_workers=1)
    with pytest.raises(error) as refused:
        manager.create_group(tasks)
    assert error_from_exception(refused.value).code is ErrorCodes.VALIDATION_ERROR
    assert lifetime(manager)["total_created"] == 0
    assert manager.list_tasks() == []


def test_create_group_refuses_a_bad_value_before_creating_anything(
    make_manager: MakeManager,
) -> None:
    """create_group's promise: every item is checked before any task is created."""
    manager = make_manager(num_workers=2)
    recorder = Recorder()
    with pytest.raises(ValueError, match="timeout"):
        manager.create_group([{"operation": recorder}, {"operation": recorder, "timeout": -1}])
    settle(manager)
    assert lifetime(manager)["total_created"] == 0
    assert recorder.calls == 0


def test_unknown_or_malformed_group_ids(make_manager: MakeManager) -> None:
    """An unknown group: status None, cancel_group raises UnknownGroupError (NOT_FOUND);
    a malformed id or a task id is no group either."""
    manager = make_manager(num_workers=1)
    task_id = manager.create_task(returning(1))
    manager.wait(task_id, timeout=WAIT)
    unknown = str(uuid.uuid4())

    assert manager.get_group_status(unknown) is None
    assert manager.get_group_status(task_id) is None
    for malformed in ("", "abc", unknown.upper(), 42, None, [unknown]):
        assert manager.get_group_status(malformed) is None  # type: ignore[arg-type]
    with pytest.raises(UnknownGroupError) as raised:
        manager.cancel_group(unknown)
    assert raised.value.group_id == unknown
    assert error_from_exception(raised.value).code is ErrorCodes.NOT_FOUND
    with pytest.raises(UnknownGroupError):
        manager.cancel_group("abc")


def test_a_group_removed_by_retention_is_unknown(make_manager: MakeManager) -> None:
    """UnknownGroupError's promise: a group every task of which was removed by retention
    is unknown."""
    manager = make_manager(num_workers=1)
    group_id = manager.create_group([{"operation": returning(1)}])
    (member,) = group_of(manager, group_id)["tasks"]
    manager.wait(member, timeout=WAIT)
    assert manager.cleanup_old_tasks(0) == 1

    assert manager.get_group_status(group_id) is None
    with pytest.raises(UnknownGroupError):
        manager.cancel_group(group_id)


def test_group_members_may_depend_on_existing_tasks(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """A group item's depends_on names tasks that exist already (members cannot name
    each other: their ids are not known yet): the member waits for them, the group reads
    running meanwhile, and the member gets their results."""
    manager = make_manager(num_workers=2)
    gate = new_gate("upstream")
    upstream = manager.create_task(gate)
    gate.wait_entered()
    recorder = Recorder("joined")
    group_id = manager.create_group(
        [{"operation": returning(1)}, {"operation": recorder, "depends_on": [upstream]}]
    )
    ready, blocked = group_of(manager, group_id)["tasks"]
    manager.wait(ready, timeout=WAIT)
    assert status_of(manager, blocked)["depends_on"] == [upstream]
    assert status_of(manager, blocked)["group_id"] == group_id
    midway = manager.get_group_status(group_id)
    assert midway is not None
    assert midway["state"] == "running"
    assert midway["counts"]["pending"] == 1

    gate.release()
    assert manager.wait(blocked, timeout=WAIT)["result"] == "joined"
    assert recorder.seen == [{upstream: "upstream"}]
    assert group_of(manager, group_id)["state"] == "completed"


def test_a_group_item_with_unknown_dependencies_cancels_the_created_members(
    make_manager: MakeManager, new_gate: Callable[..., Gate]
) -> None:
    """An unknown id in a later item's depends_on is only found when that item is
    created: create_group raises ValueError and cancels the members created before it."""
    manager = make_manager(num_workers=1)
    blocker = new_gate()
    manager.create_task(blocker)
    blocker.wait_entered()
    recorder = Recorder()
    missing = str(uuid.uuid4())

    with pytest.raises(ValueError, match=missing):
        manager.create_group(
            [{"operation": recorder}, {"operation": recorder, "depends_on": [missing]}]
        )

    created = [t for t in manager.list_tasks() if t["group_id"] is not None]
    assert len(created) == 1
    assert created[0]["status"] == "cancelled"
    assert created[0]["error"]["details"] == {"reason": "cancel_requested"}
    assert lifetime(manager)["total_created"] == 2
    blocker.release()
    settle(manager)
    assert recorder.calls == 0


# -- the router -----------------------------------------------------------------------


def router_for(manager: TaskManager) -> APIRouter:
    router = APIRouter()
    register_task_endpoints(router, manager)
    return router


def test_router_group_status(make_manager: MakeManager) -> None:
    """storycore.group.status answers the aggregate (200); an unknown group is NOT_FOUND
    (404); a missing or malformed group_id is VALIDATION_ERROR (400); so is a POST."""
    manager = make_manager(num_workers=2)
    router = router_for(manager)
    group_id = manager.create_group([{"operation": returning(1)}, {"operation": boom}])
    for task_id in group_of(manager, group_id)["tasks"]:
        manager.wait(task_id, timeout=WAIT)

    found = router.route_request("storycore.group.status", "GET", {"group_id": group_id})
    assert found.http_status == 200
    assert found.data == manager.get_group_status(group_id)
    assert found.data["state"] == "failed"

    unknown = str(uuid.uuid4())
    missing = router.route_request("storycore.group.status", "GET", {"group_id": unknown})
    assert missing.http_status == 404
    assert missing.error is not None
    assert missing.error.code is ErrorCodes.NOT_FOUND
    assert missing.error.details == {"group_id": unknown}

    for params in ({}, {"group_id": ""}, {"group_id": 42}, {"group_id": "abc"}):
        bad = router.route_request("storycore.group.status", "GET", params)
        assert bad.http_status == 400, params
        assert bad.error is not None
        assert bad.error.code is ErrorCodes.VALIDATION_ERROR
        assert bad.error.details["field"] == "group_id"
    wrong = router.route_request("storycore.group.status", "POST", {"group_id": group_id})
    assert wrong.error is not None
    assert wrong.error.code is ErrorCodes.VALIDATION_ERROR
    assert wrong.error.details == {"allowed_methods": ["GET"]}


def test_router_group_cancel(make_manager: MakeManager, new_gate: Callable[..., Gate]) -> None:
    """storycore.group.cancel by POST cancels the unfinished members and says how many;
    by GET it is VALIDATION_ERROR; an unknown group is NOT_FOUND."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    gate = new_gate()
    group_id = manager.create_group([{"operation": gate}, {"operation": returning(2)}])
    gate.wait_entered()

    wrong = router.route_request("storycore.group.cancel", "GET", {"group_id": group_id})
    assert wrong.error is not None
    assert wrong.error.code is ErrorCodes.VALIDATION_ERROR
    assert wrong.error.details == {"allowed_methods": ["POST"]}
    assert group_of(manager, group_id)["counts"]["cancelled"] == 0

    done = router.route_request("storycore.group.cancel", "POST", {"group_id": group_id})
    assert done.http_status == 200
    assert done.data == {"group_id": group_id, "cancelled": 2}
    assert group_of(manager, group_id)["state"] == "cancelled"

    unknown = str(uuid.uuid4())
    missing = router.route_request("storycore.group.cancel", "POST", {"group_id": unknown})
    assert missing.http_status == 404
    assert missing.error is not None
    assert missing.error.code is ErrorCodes.NOT_FOUND
    bad = router.route_request("storycore.group.cancel", "POST", {})
    assert bad.error is not None
    assert bad.error.code is ErrorCodes.VALIDATION_ERROR


def test_router_reports_a_dependency_error_in_the_task_status(
    make_manager: MakeManager,
) -> None:
    """storycore.task.status of a task cancelled by its dependency answers 200 with the
    DEPENDENCY_ERROR dict in its data."""
    manager = make_manager(num_workers=1)
    a = manager.create_task(boom)
    manager.wait(a, timeout=WAIT)
    b = manager.create_task(returning(1), depends_on=[a])

    response = router_for(manager).route_request("storycore.task.status", "GET", {"task_id": b})

    assert response.http_status == 200
    assert_dependency_error(response.data, a, "failed")
    assert response.data["depends_on"] == [a]


# -- the durable store ----------------------------------------------------------------


def source(params: Mapping[str, Any], task: TaskContext) -> Any:
    return params["value"]


def test_depends_on_and_group_id_survive_a_restart(tmp_path: Path) -> None:
    """Reopened, a store gives back each task's depends_on, group_id and
    DEPENDENCY_ERROR, and the group's aggregate."""
    path = tmp_path / "tasks.db"
    operations: dict[str, Operation] = {"source": source, "boom": boom}
    with TaskManager(store=path, operations=operations) as manager:
        a = manager.create_task("source", {"value": 7})
        failed = manager.create_task("boom")
        manager.wait(a, timeout=WAIT)
        manager.wait(failed, timeout=WAIT)
        group_id = manager.create_group(
            [
                {"operation": "source", "params": {"value": 8}, "depends_on": [a]},
                {"operation": "source", "params": {"value": 9}, "depends_on": [failed]},
            ]
        )
        members = group_of(manager, group_id)["tasks"]
        before = [manager.wait(t, timeout=WAIT) for t in members]
        group_before = manager.get_group_status(group_id)

    with TaskManager(store=path, operations=operations) as reopened:
        after = [status_of(reopened, t) for t in members]
        group_after = reopened.get_group_status(group_id)

    assert after == before
    assert [s["depends_on"] for s in after] == [[a], [failed]]
    assert [s["group_id"] for s in after] == [group_id, group_id]
    assert after[0]["result"] == 8
    assert_dependency_error(after[1], failed, "failed")
    assert group_after == group_before
    assert group_after is not None
    assert group_after["state"] == "cancelled"


def test_a_blocked_dependent_stays_pending_in_the_store_and_runs_after_reopening(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Durable store, shutdown(cancel_pending=False): a dependent blocked on a delayed
    task stays pending with it. Reopened with only the dependency's operation, the
    dependency runs and the dependent waits for its own operation; once that is
    registered it runs, once, with the dependency's result."""
    path = tmp_path / "tasks.db"
    recorder = Recorder("sunk")
    with TaskManager(store=path, clock=clock, operations={"source": source}) as manager:
        manager.register_operation("sink", recorder)
        a = manager.create_task("source", {"value": 7}, delay=60)
        b = manager.create_task("sink", depends_on=[a])
        settle(manager)
        manager.shutdown(wait=True, cancel_pending=False)
        assert status_of(manager, a)["status"] == "pending"
        assert status_of(manager, b)["status"] == "pending"
    assert recorder.calls == 0

    later = ManualClock(start_time=clock.time() + 120)
    with TaskManager(store=path, clock=later, operations={"source": source}) as reopened:
        assert reopened.wait(a, timeout=WAIT)["result"] == 7
        settle(reopened)
        waiting = status_of(reopened, b)
        assert waiting["status"] == "pending"
        assert waiting["depends_on"] == [a]
        assert reopened.get_stats()["store"]["awaiting_operation"] == 1
        assert recorder.calls == 0

        reopened.register_operation("sink", recorder)
        done = reopened.wait(b, timeout=WAIT)

    assert done["status"] == "completed"
    assert done["result"] == "sunk"
    assert recorder.seen == [{a: 7}]


class HoldingStore(SqliteStore):
    """A SQLite store whose next write, once armed, blocks until ``go`` is set: it keeps
    the registry busy at a chosen moment."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.armed = False
        self.writing = threading.Event()
        self.go = threading.Event()

    def write(self, records: Iterable[TaskRecord], deleted: Iterable[TaskRecord]) -> None:
        if self.armed:
            self.armed = False
            self.writing.set()
            self.go.wait(WAIT)
        super().write(records, deleted)


def test_a_dependency_completing_at_the_end_of_a_durable_drain_is_kept(
    tmp_path: Path,
) -> None:
    """Durable store, shutdown(cancel_pending=False) while A runs and B waits for it: A
    completes during the drain, and the store keeps that (B, left pending, runs after a
    reopen). The registry is held in a commit until the supervisor has stopped, which is
    the order a loaded machine can produce by itself."""
    path = tmp_path / "tasks.db"
    store = HoldingStore(path)
    release = threading.Event()

    def slow(params: Mapping[str, Any], task: TaskContext) -> str:
        release.wait(WAIT)
        return "a"

    recorder = Recorder("b")
    operations: dict[str, Operation] = {"slow": slow, "sink": recorder}
    manager = TaskManager(num_workers=1, store=store, operations=operations)
    cleaner = threading.Thread(target=manager.cleanup_old_tasks, args=(0,))
    try:
        old = manager.create_task("sink")
        manager.wait(old, timeout=WAIT)  # something for cleanup to delete: a commit
        a = manager.create_task("slow")
        assert wait_until(lambda: status_of(manager, a)["status"] == "running", timeout=WAIT)
        b = manager.create_task("sink", depends_on=[a])
        store.armed = True
        cleaner.start()
        assert store.writing.wait(WAIT)  # the registry is inside that commit
        manager.shutdown(wait=False)
        release.set()  # A returns, the drain ends, the supervisor is stopped
        assert wait_until(
            lambda: not pykka.ActorRegistry.get_by_class_name("SupervisorActor"), timeout=WAIT
        )
    finally:
        release.set()
        store.go.set()
        manager.shutdown(wait=True, timeout=WAIT)
        if cleaner.is_alive():
            cleaner.join(WAIT)

    with TaskManager(store=path, operations=operations) as reopened:
        a_status = status_of(reopened, a)
        b_status = reopened.wait(b, timeout=WAIT)
    assert a_status["status"] == "completed"
    assert b_status["status"] == "completed"
    assert recorder.seen[-1] == {a: "a"}
