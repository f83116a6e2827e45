"""Cancellation: pending tasks never run, running ones stop cooperatively, terminal is final."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from actors import TaskContext
from storycore_tasks import TaskManager
from tests.gates import Gate, settle

MakeManager = Callable[..., TaskManager]


def test_cancel_pending_task_never_runs(make_manager: MakeManager) -> None:
    """A task cancelled while pending becomes cancelled at once and its operation never runs."""
    manager = make_manager(num_workers=1)
    for _ in range(50):
        gate = Gate()
        blocker = manager.create_task(gate)
        never = Gate()
        victim = manager.create_task(never)
        assert manager.cancel_task(victim) is True
        status = manager.get_task_status(victim)
        assert status is not None
        assert status["status"] == "cancelled"
        assert status["error"]["code"] == "CANCELLED"
        assert status["error"]["details"]["reason"] == "cancel_requested"
        assert status["started_at"] is None
        gate.release()
        manager.wait(blocker, 10)
        # The slot is free and the queue is empty: had the victim been queued, it would
        # have started by now. settle() makes sure the supervisor has dispatched.
        settle(manager)
        assert never.calls == 0
        assert manager.get_task_status(victim)["status"] == "cancelled"  # type: ignore[index]


def test_cancel_running_task_is_cooperative_and_keeps_the_late_result(
    make_manager: MakeManager,
) -> None:
    """Cancelling a running task: True, status cancelled from then on, is_cancelled() true
    inside the operation, its later return value kept under result, status unchanged."""
    manager = make_manager(num_workers=1)
    seen = threading.Event()

    def cooperative(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
        task.update_progress(0.25)
        seen.set()
        stopped = task.wait_cancelled(30)
        return {"stopped": stopped, "reason": str(task.stop_reason)}

    task_id = manager.create_task(cooperative)
    assert seen.wait(10)
    assert manager.cancel_task(task_id) is True
    right_after = manager.get_task_status(task_id)
    assert right_after is not None
    assert right_after["status"] == "cancelled"
    final = manager.wait(task_id, 10)
    assert final["status"] == "cancelled"
    # The operation returns after the status became terminal; the barrier lets its
    # WorkerFinished reach the registry before we look for the late result.
    assert _wait_for_result(manager, task_id) == {"stopped": True, "reason": "cancel_requested"}
    assert manager.get_task_status(task_id)["status"] == "cancelled"  # type: ignore[index]
    assert manager.cancel_task(task_id) is False


def _wait_for_result(manager: TaskManager, task_id: str) -> Any:
    from actors.testing import wait_until

    assert wait_until(lambda: "result" in (manager.get_task_status(task_id) or {}), timeout=10), (
        "the late result never arrived"
    )
    return manager.get_task_status(task_id)["result"]  # type: ignore[index]


def test_a_cancelled_running_task_keeps_its_slot_until_it_returns(
    make_manager: MakeManager,
) -> None:
    """A stopping worker keeps its slot (shown as stopping in get_stats); the next
    pending task starts only once the cancelled operation has really returned."""
    manager = make_manager(num_workers=1)
    stubborn = Gate()  # never looks at is_cancelled
    first = manager.create_task(stubborn)
    stubborn.wait_entered()
    follower = Gate()
    second = manager.create_task(follower)
    assert manager.cancel_task(first) is True
    settle(manager)
    stats = manager.get_stats()
    assert (stats["running"], stats["stopping"], stats["queue_size"]) == (0, 1, 1)
    assert manager.get_task_status(second)["status"] == "pending"  # type: ignore[index]
    assert follower.calls == 0
    stubborn.release()
    follower.wait_entered()
    assert stubborn.saw_cancel is True
    follower.release()
    assert manager.wait(second, 10)["status"] == "completed"
    stats = manager.get_stats()
    assert (stats["running"], stats["stopping"]) == (0, 0)


def test_cancel_of_a_finished_task_returns_false_and_changes_nothing(
    make_manager: MakeManager,
) -> None:
    """cancel_task on a terminal task is False and the status stays as it was."""
    manager = make_manager(num_workers=1)
    task_id = manager.create_task(lambda params, task: "ok")
    before = manager.wait(task_id, 10)
    assert manager.cancel_task(task_id) is False
    after = manager.get_task_status(task_id)
    assert after == before


@pytest.mark.parametrize("workers", [1, 4])
def test_cancel_racing_completion_never_changes_a_terminal_state(
    make_manager: MakeManager, workers: int
) -> None:
    """200 rounds of cancel racing a finishing operation: the first terminal state read
    is the one kept, cancel's answer agrees with it, and nothing changes it later."""
    manager = make_manager(num_workers=workers)
    go = threading.Barrier(2)

    def quick(params: Mapping[str, Any], task: TaskContext) -> int:
        return int(params["n"])

    for n in range(200):
        task_id = manager.create_task(quick, {"n": n})
        answers: list[bool] = []

        def cancel(task_id: str = task_id, answers: list[bool] = answers) -> None:
            go.wait(5)
            answers.append(manager.cancel_task(task_id))

        canceller = threading.Thread(target=cancel)
        canceller.start()
        go.wait(5)
        first = manager.wait(task_id, 10)
        canceller.join(10)
        assert first["status"] in {"completed", "cancelled"}
        assert answers == [first["status"] == "cancelled"]
        settle(manager)
        again = manager.get_task_status(task_id)
        assert again is not None
        assert again["status"] == first["status"]
        assert again.get("error") == first.get("error")
        assert manager.cancel_task(task_id) is False
        if first["status"] == "completed":
            assert again["result"] == n
    stats = manager.get_stats()
    lifetime = stats["lifetime_stats"]
    assert lifetime["total_completed"] + lifetime["total_cancelled"] == 200
    assert stats["status_counts"]["pending"] + stats["status_counts"]["running"] == 0
