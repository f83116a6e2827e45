"""Timeouts in virtual time: reported at the deadline, with the partial result, while the
operation may still be blocked; counted from the start of running."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors import ManualClock
from storycore_tasks import TaskManager
from tests.gates import Gate, settle

MakeManager = Callable[..., TaskManager]


def status_of(manager: TaskManager, task_id: str) -> str:
    found = manager.get_task_status(task_id)
    assert found is not None
    return str(found["status"])


def test_timeout_is_reported_at_the_deadline_while_the_operation_is_blocked(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """At the deadline the task is failed/TIMEOUT with its partial result, although the
    operation (which never checks is_cancelled) is still blocked."""
    manager = make_manager(num_workers=1, clock=clock)
    gate = Gate(partial={"frames": 12})
    task_id = manager.create_task(gate, timeout=5.0)
    gate.wait_entered()
    settle(manager)
    clock.advance(4.999)
    settle(manager)
    assert status_of(manager, task_id) == "running"
    clock.advance(0.001)
    failed = manager.wait(task_id, timeout=10)
    assert not gate.release_event.is_set()  # the operation is still blocked
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "TIMEOUT",
        "message": "Operation exceeded timeout of 5.0 seconds",
        "details": {"timeout_seconds": 5.0, "partial_result": {"frames": 12}},
        "remediation": failed["error"]["remediation"],
    }
    assert failed["error"]["remediation"]
    # Recorded at the deadline in virtual time: exactly 5 s after the start.
    snapshot = manager.runtime.snapshot(task_id)
    assert snapshot is not None
    assert snapshot.started_at is not None
    assert snapshot.ended_at == pytest.approx(snapshot.started_at + 5.0, abs=1e-9)
    gate.release()


def test_timeout_without_partial_result_has_no_partial_key(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """details.partial_result is present only when the operation set one."""
    manager = make_manager(num_workers=1, clock=clock)
    gate = Gate()
    task_id = manager.create_task(gate, timeout=1.0)
    gate.wait_entered()
    settle(manager)
    clock.advance(1.0)
    error = manager.wait(task_id, timeout=10)["error"]
    assert error["details"] == {"timeout_seconds": 1.0}
    gate.release()


def test_the_operation_sees_is_cancelled_after_a_timeout_and_its_slot_is_held(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """After a timeout is_cancelled() is true inside the operation; the worker holds its
    slot (stopping) until the operation returns, then the next task starts."""
    manager = make_manager(num_workers=1, clock=clock)
    gate = Gate(result="late")
    task_id = manager.create_task(gate, timeout=2.0)
    follower = Gate()
    second = manager.create_task(follower)
    gate.wait_entered()
    settle(manager)
    clock.advance(2.0)
    manager.wait(task_id, timeout=10)
    settle(manager)
    stats = manager.get_stats()
    assert (stats["running"], stats["stopping"], stats["queue_size"]) == (0, 1, 1)
    assert stats["lifetime_stats"]["total_timed_out"] == 1
    assert status_of(manager, second) == "pending"
    gate.release()
    follower.wait_entered()
    assert gate.saw_cancel is True
    follower.release()
    manager.wait(second, timeout=10)
    final = manager.get_task_status(task_id)
    assert final is not None
    assert final["status"] == "failed"
    assert final["error"]["code"] == "TIMEOUT"


def test_timeout_counts_from_the_start_of_running(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Time spent pending does not count against a task's timeout."""
    manager = make_manager(num_workers=1, clock=clock)
    blocker = Gate()
    first = manager.create_task(blocker)
    blocker.wait_entered()
    timed = Gate()
    second = manager.create_task(timed, timeout=3.0)
    settle(manager)
    clock.advance(10.0)
    settle(manager)
    assert status_of(manager, second) == "pending"
    blocker.release()
    manager.wait(first, timeout=10)
    timed.wait_entered()
    settle(manager)
    clock.advance(2.5)
    settle(manager)
    assert status_of(manager, second) == "running"
    clock.advance(0.5)
    assert manager.wait(second, timeout=10)["error"]["code"] == "TIMEOUT"
    timed.release()


def test_default_timeout_applies_and_a_task_timeout_overrides_it(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """default_timeout is used when create_task gives none; an explicit timeout wins."""
    manager = make_manager(num_workers=2, clock=clock, default_timeout=1.0)
    short, long = Gate(), Gate()
    short_id = manager.create_task(short)
    long_id = manager.create_task(long, timeout=10.0)
    short.wait_entered()
    long.wait_entered()
    settle(manager)
    clock.advance(1.0)
    assert manager.wait(short_id, timeout=10)["error"]["details"]["timeout_seconds"] == 1.0
    settle(manager)
    assert status_of(manager, long_id) == "running"
    long.release()
    assert manager.wait(long_id, timeout=10)["status"] == "completed"
    short.release()


def test_completion_disarms_the_deadline(make_manager: MakeManager, clock: ManualClock) -> None:
    """A task that completes before its deadline stays completed when the clock passes it,
    and its timer is disarmed (only the cleanup timer stays armed)."""
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(lambda params, task: "quick", timeout=5.0)
    assert manager.wait(task_id, timeout=10)["status"] == "completed"
    settle(manager)
    assert manager.get_stats()["timers"]["armed"] == 1
    clock.advance(60.0)
    settle(manager)
    status = manager.get_task_status(task_id)
    assert status is not None
    assert status["status"] == "completed"
    assert status["result"] == "quick"
    assert manager.get_stats()["lifetime_stats"]["total_timed_out"] == 0


def test_many_timeouts_fire_in_one_advance(make_manager: MakeManager, clock: ManualClock) -> None:
    """Thirty running tasks with staggered deadlines: each times out exactly when the
    clock reaches its own deadline, and none earlier."""
    manager = make_manager(num_workers=30, clock=clock)
    gates = [Gate(partial=i) for i in range(30)]
    ids = [manager.create_task(g, timeout=float(i + 1)) for i, g in enumerate(gates)]
    for gate in gates:
        gate.wait_entered()
    settle(manager)
    for step in range(30):
        clock.advance(1.0)
        manager.wait(ids[step], timeout=10)
        settle(manager)
        statuses = [status_of(manager, t) for t in ids]
        assert statuses == ["failed"] * (step + 1) + ["running"] * (29 - step)
    for i, task_id in enumerate(ids):
        found = manager.get_task_status(task_id)
        assert found is not None
        assert found["error"]["details"]["partial_result"] == i
    for gate in gates:
        gate.release()


def test_a_real_timeout_fires_while_the_operation_sleeps(make_manager: MakeManager) -> None:
    """With the real clock, a 50 ms timeout fails the task well before the 30 s op returns."""
    manager = make_manager(num_workers=1)
    gate = Gate()
    task_id = manager.create_task(gate, timeout=0.05)
    status = manager.wait(task_id, timeout=10)  # generous bound for a loaded CI machine
    assert status["error"]["code"] == "TIMEOUT"
    assert not gate.release_event.is_set()
    gate.release()
