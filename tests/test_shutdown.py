"""Shutdown: pending tasks run or are cancelled, nothing is left behind, queries still answer."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import pykka
import pytest

from actors import RuntimeClosedError, TaskContext
from actors.testing import ResourceSnapshot
from storycore_tasks import TaskManager
from tests.gates import Gate

MakeManager = Callable[..., TaskManager]


def add_one(params: Mapping[str, Any], task: TaskContext) -> int:
    return int(params["n"]) + 1


def test_shutdown_leaves_no_actor_and_no_thread() -> None:
    """After shutdown(wait=True) no pykka actor and no thread of the manager is left."""
    before = ResourceSnapshot.take()
    for _ in range(20):
        manager = TaskManager(num_workers=4)
        ids = [manager.create_task(add_one, {"n": n}) for n in range(20)]
        gate = Gate()
        ids.append(manager.create_task(gate, timeout=0.01))  # a timed-out straggler
        assert manager.wait(ids[-1], timeout=10)["error"]["code"] == "TIMEOUT"
        gate.release()
        manager.shutdown(wait=True)
        assert pykka.ActorRegistry.get_all() == []
        threads, actors, children = ResourceSnapshot.take().leaked_since(before)
        assert (threads, actors, children) == ([], [], [])


def test_shutdown_runs_pending_tasks_by_default(make_manager: MakeManager) -> None:
    """shutdown() without cancel_pending lets every pending task run to completion."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    first = manager.create_task(gate)
    rest = [manager.create_task(add_one, {"n": n}) for n in range(10)]
    gate.wait_entered()
    stopper = threading.Thread(target=manager.shutdown)
    stopper.start()
    gate.release()
    stopper.join(30)
    assert not stopper.is_alive()
    assert manager.get_task_status(first)["status"] == "completed"  # type: ignore[index]
    assert [manager.get_task_result(t) for t in rest] == list(range(1, 11))


def test_shutdown_with_cancel_pending_cancels_only_pending(make_manager: MakeManager) -> None:
    """cancel_pending=True cancels queued tasks (reason shutdown); running ones finish."""
    manager = make_manager(num_workers=1)
    gate = Gate(result="finished")
    running = manager.create_task(gate)
    gate.wait_entered()
    queued = [manager.create_task(add_one, {"n": n}) for n in range(5)]
    stopper = threading.Thread(target=lambda: manager.shutdown(wait=True, cancel_pending=True))
    stopper.start()
    statuses = [manager.wait(t, timeout=10) for t in queued]
    assert {s["status"] for s in statuses} == {"cancelled"}
    assert {s["error"]["details"]["reason"] for s in statuses} == {"shutdown"}
    gate.release()
    stopper.join(30)
    assert not stopper.is_alive()
    assert manager.get_task_result(running) == "finished"


def test_queries_answer_after_shutdown(make_manager: MakeManager) -> None:
    """After shutdown, status, result, wait, listings and stats answer from the final records."""
    manager = make_manager(num_workers=2)
    ids = [manager.create_task(add_one, {"n": n}) for n in range(6)]
    for task_id in ids:
        manager.wait(task_id, timeout=10)
    manager.shutdown()
    assert [manager.get_task_result(t) for t in ids] == [1, 2, 3, 4, 5, 6]
    assert manager.wait(ids[0], timeout=1)["status"] == "completed"
    assert len(manager.list_tasks("completed")) == 6
    assert manager.cancel_task(ids[0]) is False
    stats = manager.get_stats()
    assert stats["status_counts"]["completed"] == 6
    assert stats["accepting_tasks"] is False
    assert manager.cleanup_old_tasks(0) == 6
    assert manager.get_task_status(ids[0]) is None


def test_shutdown_is_idempotent_and_wait_false_then_true(make_manager: MakeManager) -> None:
    """shutdown(wait=False) returns at once; a later shutdown(wait=True) joins it."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    task_id = manager.create_task(gate)
    gate.wait_entered()
    manager.shutdown(wait=False)
    with pytest.raises(RuntimeClosedError):
        manager.create_task(add_one, {"n": 1})
    assert manager.get_task_status(task_id)["status"] == "running"  # type: ignore[index]
    gate.release()
    manager.shutdown(wait=True)
    manager.shutdown(wait=True)
    assert manager.get_task_status(task_id)["status"] == "completed"  # type: ignore[index]


def test_shutdown_timeout_raises_and_the_shutdown_carries_on(make_manager: MakeManager) -> None:
    """shutdown(timeout=...) raises TimeoutError naming the running task; releasing the
    operation lets a second shutdown finish."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    task_id = manager.create_task(gate)
    gate.wait_entered()
    with pytest.raises(TimeoutError, match=task_id):
        manager.shutdown(wait=True, timeout=0.05)
    gate.release()
    manager.shutdown(wait=True)
    assert manager.get_task_status(task_id)["status"] == "completed"  # type: ignore[index]


def test_shutdown_waiting_from_inside_an_operation_is_refused(make_manager: MakeManager) -> None:
    """shutdown(wait=True) inside an operation would wait for itself: RuntimeError instead."""
    manager = make_manager(num_workers=1)

    def op(params: Mapping[str, Any], task: TaskContext) -> str:
        try:
            manager.shutdown(wait=True)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    message = manager.wait(manager.create_task(op), timeout=10)["result"]
    assert "wait=False" in message


def test_context_manager_shuts_down() -> None:
    """Leaving the with-block shuts the manager down; no actor is left."""
    with TaskManager(num_workers=2) as manager:
        task_id = manager.create_task(add_one, {"n": 41})
    assert manager.get_task_result(task_id) == 42
    assert pykka.ActorRegistry.get_all() == []


def test_a_host_that_forgets_shutdown_still_exits() -> None:
    """A process that never calls shutdown() exits normally instead of hanging on actors."""
    import subprocess
    import sys

    script = (
        "from storycore_tasks import TaskManager\n"
        "m = TaskManager(num_workers=2)\n"
        "print(m.wait(m.create_task(lambda p, t: 5), 10)['result'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, "5")


def test_concurrent_shutdown_callers_all_wait(make_manager: MakeManager) -> None:
    """Two threads calling shutdown(wait=True) at once both return only after the
    running operation has finished and everything has stopped."""
    manager = make_manager(num_workers=1)
    gate = Gate(result="done")
    task_id = manager.create_task(gate)
    gate.wait_entered()
    seen: list[str] = []

    def stop() -> None:
        manager.shutdown(wait=True)
        seen.append(manager.get_task_status(task_id)["status"])  # type: ignore[index]

    callers = [threading.Thread(target=stop) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(0.2)  # a bounded look: neither may return while the gate is shut
        assert caller.is_alive()
    gate.release()
    for caller in callers:
        caller.join(30)
    assert seen == ["completed", "completed"]
    assert pykka.ActorRegistry.get_all() == []
