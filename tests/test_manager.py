"""TaskManager's public API: ids, status dicts, results, priorities, backpressure, bad input."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pykka
import pytest

from actors import QueueFullError, RuntimeClosedError, TaskContext, UnknownTaskError
from storycore_tasks import ErrorCodes, TaskManager, TaskPriority
from storycore_tasks.errors import error_from_exception
from tests.gates import Gate, settle

MakeManager = Callable[..., TaskManager]


def double(params: Mapping[str, Any], task: TaskContext) -> int:
    return int(params["x"]) * 2


def test_create_task_returns_a_uuid_string_at_once(make_manager: MakeManager) -> None:
    """create_task returns a UUID string before the operation has run."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    task_id = manager.create_task(gate)
    try:
        assert str(uuid.UUID(task_id)) == task_id
    finally:
        gate.release()


def test_a_task_is_visible_as_soon_as_create_task_returns(make_manager: MakeManager) -> None:
    """get_task_status finds a task immediately, from the creating thread and any other."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    blocker = manager.create_task(gate)
    try:
        for _ in range(200):
            task_id = manager.create_task(double, {"x": 1})
            assert manager.get_task_status(task_id) is not None
            seen: list[dict[str, Any] | None] = []

            def read(task_id: str = task_id, seen: list[Any] = seen) -> None:
                seen.append(manager.get_task_status(task_id))

            reader = threading.Thread(target=read)
            reader.start()
            reader.join(10)
            assert seen[0] is not None
            assert seen[0]["task_id"] == task_id
    finally:
        gate.release()
    manager.wait(blocker, timeout=10)


def test_status_dict_shape_through_the_lifecycle(make_manager: MakeManager) -> None:
    """Status dicts carry every documented key; timestamps are ISO-8601; result only when done."""
    manager = make_manager(num_workers=1)
    gate = Gate(result={"video": "intro.mp4"})
    task_id = manager.create_task(gate, {"scene": 1}, user="alice", priority="high")
    gate.wait_entered()
    running = manager.get_task_status(task_id)
    assert running is not None
    assert running["status"] == "running"
    assert running["priority"] == "high"
    assert running["user"] == "alice"
    assert running["progress"] == 0.0
    assert running["started_at"] is not None
    assert running["ended_at"] is None
    assert "result" not in running
    assert "error" not in running
    gate.release()
    done = manager.wait(task_id, timeout=10)
    assert done["status"] == "completed"
    assert done["progress"] == 1.0
    assert done["result"] == {"video": "intro.mp4"}
    assert "error" not in done
    for key in ("created_at", "updated_at", "started_at", "ended_at"):
        datetime.fromisoformat(done[key])
    created = datetime.fromisoformat(done["created_at"])
    started = datetime.fromisoformat(done["started_at"])
    ended = datetime.fromisoformat(done["ended_at"])
    assert created <= started <= ended


def test_get_task_result_only_for_completed_tasks(make_manager: MakeManager) -> None:
    """get_task_result is the result of a completed task and None otherwise."""
    manager = make_manager(num_workers=1)
    gate = Gate(result=7)
    task_id = manager.create_task(gate)
    gate.wait_entered()
    assert manager.get_task_result(task_id) is None
    gate.release()
    manager.wait(task_id, timeout=10)
    assert manager.get_task_result(task_id) == 7
    assert manager.get_task_result(str(uuid.uuid4())) is None
    assert manager.get_task_result("not-an-id") is None


def test_unknown_and_malformed_ids(make_manager: MakeManager) -> None:
    """Unknown or malformed ids: status None, cancel False, wait UnknownTaskError."""
    manager = make_manager(num_workers=1)
    for bad in (str(uuid.uuid4()), "", "abc", 42, None, ["x"]):
        assert manager.get_task_status(bad) is None  # type: ignore[arg-type]
        assert manager.cancel_task(bad) is False  # type: ignore[arg-type]
        with pytest.raises(UnknownTaskError):
            manager.wait(bad, timeout=1)  # type: ignore[arg-type]


def test_wait_raises_timeout_error_and_leaves_the_task_alone(make_manager: MakeManager) -> None:
    """wait(timeout) raises TimeoutError while the task runs; the task still completes."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    task_id = manager.create_task(gate)
    with pytest.raises(TimeoutError):
        manager.wait(task_id, timeout=0.05)
    gate.release()
    assert manager.wait(task_id, timeout=10)["status"] == "completed"


def test_many_waiters_are_all_woken(make_manager: MakeManager) -> None:
    """Every thread waiting on a task gets its terminal status."""
    manager = make_manager(num_workers=1)
    gate = Gate(result="x")
    task_id = manager.create_task(gate)
    results: list[str] = []
    waiters = [
        threading.Thread(target=lambda: results.append(manager.wait(task_id, 10)["status"]))
        for _ in range(20)
    ]
    for waiter in waiters:
        waiter.start()
    gate.release()
    for waiter in waiters:
        waiter.join(15)
    assert results == ["completed"] * 20


def test_priority_then_fifo(make_manager: MakeManager) -> None:
    """Pending tasks run CRITICAL > HIGH > NORMAL > LOW, FIFO within a priority."""
    manager = make_manager(num_workers=1)
    order: list[str] = []

    def record(params: Mapping[str, Any], task: TaskContext) -> None:
        order.append(params["name"])

    gate = Gate()
    blocker = manager.create_task(gate)
    gate.wait_entered()
    submitted = [
        ("low-1", TaskPriority.LOW),
        ("normal-1", TaskPriority.NORMAL),
        ("critical-1", TaskPriority.CRITICAL),
        ("high-1", TaskPriority.HIGH),
        ("normal-2", "normal"),
        ("low-2", 1),
        ("critical-2", "CRITICAL"),
        ("high-2", TaskPriority.HIGH),
    ]
    ids = {name: manager.create_task(record, {"name": name}, priority=p) for name, p in submitted}
    expected = [
        "critical-1",
        "critical-2",
        "high-1",
        "high-2",
        "normal-1",
        "normal-2",
        "low-1",
        "low-2",
    ]
    pending = manager.get_pending_tasks()
    assert [p["task_id"] for p in pending] == [ids[name] for name in expected]
    assert [p["task_id"] for p in manager.get_pending_tasks(limit=3)] == [
        ids[name] for name in expected[:3]
    ]
    gate.release()
    manager.wait(blocker, 10)
    for task_id in ids.values():
        manager.wait(task_id, 10)
    assert order == expected


def test_running_tasks_are_listed(make_manager: MakeManager) -> None:
    """get_running_tasks lists exactly the tasks whose operations run."""
    manager = make_manager(num_workers=2)
    gates = [Gate(), Gate(), Gate()]
    ids = [manager.create_task(g) for g in gates]
    gates[0].wait_entered()
    gates[1].wait_entered()
    settle(manager)
    assert sorted(t["task_id"] for t in manager.get_running_tasks()) == sorted(ids[:2])
    assert [t["task_id"] for t in manager.get_pending_tasks()] == [ids[2]]
    for gate in gates:
        gate.release()
    for task_id in ids:
        manager.wait(task_id, 10)
    assert manager.get_running_tasks() == []


def test_get_stats_counts(make_manager: MakeManager) -> None:
    """get_stats reports totals, queue size, workers, per-state and per-priority counts."""
    manager = make_manager(num_workers=1)

    def boom(params: Mapping[str, Any], task: TaskContext) -> None:
        raise RuntimeError("boom")

    ok = [manager.create_task(double, {"x": i}, priority="high") for i in range(3)]
    bad = manager.create_task(boom)
    for task_id in [*ok, bad]:
        manager.wait(task_id, 10)
    gate = Gate()
    running = manager.create_task(gate)
    gate.wait_entered()
    queued = [manager.create_task(double, {"x": 1}, priority="low") for _ in range(2)]
    settle(manager)
    stats = manager.get_stats()
    assert stats["num_workers"] == 1
    assert stats["total_tasks"] == 7
    assert stats["queue_size"] == 2
    assert stats["running"] == 1
    assert stats["stopping"] == 0
    assert stats["accepting_tasks"] is True
    assert stats["status_counts"] == {
        "pending": 2,
        "running": 1,
        "completed": 3,
        "failed": 1,
        "cancelled": 0,
    }
    assert stats["priority_counts"] == {"low": 2, "normal": 2, "high": 3, "critical": 0}
    assert stats["lifetime_stats"] == {
        "total_created": 7,
        "total_completed": 3,
        "total_failed": 1,
        "total_cancelled": 0,
        "total_timed_out": 0,
        "total_stalled": 0,
    }
    gate.release()
    for task_id in (running, *queued):
        manager.wait(task_id, 10)
    final = manager.get_stats()
    assert final["status_counts"] == {
        "pending": 0,
        "running": 0,
        "completed": 6,
        "failed": 1,
        "cancelled": 0,
    }
    assert final["queue_size"] == 0
    assert final["running"] == 0


@pytest.mark.parametrize(
    "raise_it",
    [
        pytest.param(lambda: (_ for _ in ()).throw(ValueError("bad value")), id="ValueError"),
        pytest.param(lambda: (_ for _ in ()).throw(SystemExit(3)), id="SystemExit"),
        pytest.param(lambda: (_ for _ in ()).throw(KeyboardInterrupt()), id="KeyboardInterrupt"),
        pytest.param(lambda: (_ for _ in ()).throw(GeneratorExit()), id="GeneratorExit"),
    ],
)
def test_any_exception_fails_only_its_task(
    make_manager: MakeManager, raise_it: Callable[[], None]
) -> None:
    """An operation raising anything (BaseException included) fails with INTERNAL_ERROR;
    the supervisor and registry survive and the next task completes in a fresh worker."""
    manager = make_manager(num_workers=1)

    def op(params: Mapping[str, Any], task: TaskContext) -> None:
        raise_it()

    failed = manager.wait(manager.create_task(op), timeout=10)
    assert failed["status"] == "failed"
    error = failed["error"]
    assert error["code"] == "INTERNAL_ERROR"
    assert error["details"]["exception_type"] in {
        "ValueError",
        "SystemExit",
        "KeyboardInterrupt",
        "GeneratorExit",
    }
    assert error["remediation"]
    after = manager.wait(manager.create_task(double, {"x": 4}), timeout=10)
    assert after["status"] == "completed"
    assert after["result"] == 8
    names = {ref.actor_class.__name__ for ref in pykka.ActorRegistry.get_all()}
    assert {"SupervisorActor", "RegistryActor"} <= names


def test_exception_message_and_type_are_reported(make_manager: MakeManager) -> None:
    """The failure names the exception's qualified type and keeps its message."""
    manager = make_manager(num_workers=1)

    class RenderError(Exception):
        pass

    def op(params: Mapping[str, Any], task: TaskContext) -> None:
        raise RenderError("codec missing")

    error = manager.wait(manager.create_task(op), timeout=10)["error"]
    assert error["details"]["exception_type"].endswith("RenderError")
    assert error["details"]["exception_message"] == "codec missing"
    assert "codec missing" in error["message"]


BAD_INPUTS: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"operation": "not.registered"}, ValueError),  # a name nobody registered
    ({"operation": 42}, TypeError),
    ({"operation": None}, TypeError),
    ({"params": [1, 2]}, TypeError),
    ({"params": "x=1"}, TypeError),
    ({"user": 42}, TypeError),
    ({"timeout": 0}, ValueError),
    ({"timeout": -1.5}, ValueError),
    ({"timeout": float("nan")}, ValueError),
    ({"timeout": float("inf")}, ValueError),
    ({"timeout": "5"}, TypeError),
    ({"timeout": True}, TypeError),
    ({"priority": "urgent"}, ValueError),
    ({"priority": 99}, ValueError),
    ({"priority": None}, ValueError),
]


@pytest.mark.parametrize(("override", "error"), BAD_INPUTS)
def test_bad_input_is_refused_and_disturbs_nothing(
    make_manager: MakeManager, override: dict[str, Any], error: type[Exception]
) -> None:
    """Bad create_task input raises a typed error naming the problem; no task is created
    and tasks already queued complete with their own results."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    before = [manager.create_task(gate)] + [manager.create_task(double, {"x": i}) for i in range(3)]
    kwargs: dict[str, Any] = {"operation": double, "params": {"x": 1}, **override}
    with pytest.raises(error) as raised:
        manager.create_task(**kwargs)
    assert str(raised.value)
    mapped = error_from_exception(raised.value)
    assert mapped.code is ErrorCodes.VALIDATION_ERROR
    assert manager.get_stats()["lifetime_stats"]["total_created"] == 4
    gate.release()
    results = [manager.wait(task_id, 10).get("result") for task_id in before]
    assert results == ["done", 0, 2, 4]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"num_workers": 0}, ValueError),
        ({"num_workers": 2.5}, TypeError),
        ({"default_timeout": -1}, ValueError),
        ({"max_task_age": float("nan")}, ValueError),
        ({"cleanup_interval": 0}, ValueError),
        ({"max_pending": 0}, ValueError),
        ({"clock": object()}, TypeError),
    ],
)
def test_bad_manager_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    """TaskManager(...) rejects bad configuration with a typed error before starting anything."""
    with pytest.raises(error):
        TaskManager(**kwargs)


def test_max_pending_backpressure_drops_nothing(make_manager: MakeManager) -> None:
    """Past max_pending, create_task raises QueueFullError (SERVICE_UNAVAILABLE); every
    accepted task still runs, and admission reopens as the queue drains."""
    manager = make_manager(num_workers=1, max_pending=5)
    gate = Gate()
    blocker = manager.create_task(gate)
    gate.wait_entered()
    settle(manager)  # the blocker has left the queue
    queued = [manager.create_task(double, {"x": i}) for i in range(5)]
    with pytest.raises(QueueFullError) as full:
        manager.create_task(double, {"x": 99})
    assert full.value.max_pending == 5
    assert "max_pending" in str(full.value)
    assert error_from_exception(full.value).code is ErrorCodes.SERVICE_UNAVAILABLE
    assert manager.cancel_task(queued[0]) is True  # frees one place at once
    queued.append(manager.create_task(double, {"x": 5}))
    with pytest.raises(QueueFullError):
        manager.create_task(double, {"x": 100})
    gate.release()
    statuses = [manager.wait(task_id, 10) for task_id in [blocker, *queued]]
    assert [s["status"] for s in statuses] == ["completed", "cancelled"] + ["completed"] * 5
    assert [s.get("result") for s in statuses[2:]] == [2, 4, 6, 8, 10]
    assert manager.get_stats()["lifetime_stats"]["total_created"] == 7


def test_create_task_after_shutdown_is_refused(make_manager: MakeManager) -> None:
    """After shutdown, create_task raises RuntimeClosedError (SERVICE_UNAVAILABLE)."""
    manager = make_manager(num_workers=1)
    manager.shutdown()
    with pytest.raises(RuntimeClosedError) as closed:
        manager.create_task(double, {"x": 1})
    assert error_from_exception(closed.value).code is ErrorCodes.SERVICE_UNAVAILABLE


def test_params_are_copied_at_submission(make_manager: MakeManager) -> None:
    """Changing the caller's params dict after create_task does not reach the task."""
    manager = make_manager(num_workers=1)
    params = {"x": 1}
    gate = Gate()
    blocker = manager.create_task(gate)
    task_id = manager.create_task(double, params)
    params["x"] = 100
    gate.release()
    manager.wait(blocker, 10)
    assert manager.wait(task_id, 10)["result"] == 2


def test_concurrent_submitters_lose_nothing(make_manager: MakeManager) -> None:
    """Eight threads submitting 250 tasks each: every task completes with its own result."""
    manager = make_manager(num_workers=4)
    ids: list[list[tuple[str, int]]] = [[] for _ in range(8)]

    def submit(slot: int) -> None:
        for i in range(250):
            value = slot * 1000 + i
            ids[slot].append((manager.create_task(double, {"x": value}), value))

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    everything = [pair for chunk in ids for pair in chunk]
    assert len(everything) == 2000
    assert len({task_id for task_id, _ in everything}) == 2000
    for task_id, value in everything:
        assert manager.wait(task_id, 30)["result"] == value * 2
    stats = manager.get_stats()
    assert stats["lifetime_stats"]["total_completed"] == 2000
