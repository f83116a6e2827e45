"""Thread mode hard stops: after stop_grace, TaskInterrupted is raised in the operation's
thread, again and again, until the thread has left the operation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from actors import ManualClock, TaskContext
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.testing import LifecycleCapture
from tests.gates import settle
from tests.spinner import Spinner

MakeManager = Callable[..., TaskManager]


def stopping(manager: TaskManager) -> int:
    settle(manager)
    return int(manager.get_stats()["stopping"])


def test_a_spinning_operation_is_interrupted_after_the_grace(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A timed-out operation that ignores is_cancelled() keeps its slot for exactly
    stop_grace seconds, then is interrupted and leaves; the slot is freed."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=0.5)
    spinner = Spinner()
    task_id = manager.create_task(spinner, timeout=1.0)
    assert spinner.entered.wait(10)
    settle(manager)
    clock.advance(1.0)
    status = manager.wait(task_id, timeout=10)
    assert status["error"]["code"] == "TIMEOUT"
    assert status["error"]["details"]["partial_result"] == {"spun": True}
    assert stopping(manager) == 1
    clock.advance(0.499)
    assert stopping(manager) == 1
    assert not spinner.left.is_set()
    clock.advance(0.001)
    assert spinner.left.wait(10)
    assert wait_until(lambda: stopping(manager) == 0, timeout=10)
    assert spinner.interrupts_seen == 1
    after = manager.get_task_status(task_id)
    assert after is not None
    assert after["status"] == "failed"  # the interrupt changes nothing recorded
    assert "result" not in after
    follow_up = manager.create_task(lambda params, task: "next")
    assert manager.wait(follow_up, timeout=10)["result"] == "next"


def test_interrupts_repeat_until_the_operation_leaves(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """An operation that swallows TaskInterrupted is interrupted again every
    INTERRUPT_REPEAT_SECONDS until it gives up."""
    from actors._core.attempts import INTERRUPT_REPEAT_SECONDS

    manager = make_manager(num_workers=1, clock=clock, stop_grace=0.2)
    spinner = Spinner(swallow=2)
    task_id = manager.create_task(spinner)
    assert spinner.entered.wait(10)
    assert manager.cancel_task(task_id) is True
    clock.advance(0.2)
    assert wait_until(lambda: spinner.interrupts_seen == 1, timeout=10)
    assert not spinner.left.is_set()
    clock.advance(INTERRUPT_REPEAT_SECONDS)
    assert wait_until(lambda: spinner.interrupts_seen == 2, timeout=10)
    assert not spinner.left.is_set()
    clock.advance(INTERRUPT_REPEAT_SECONDS)
    assert spinner.left.wait(10)
    assert spinner.interrupts_seen == 3
    assert wait_until(lambda: stopping(manager) == 0, timeout=10)
    assert manager.get_task_status(task_id)["status"] == "cancelled"  # type: ignore[index]


def test_except_exception_does_not_swallow_the_interrupt(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """TaskInterrupted is a BaseException: an operation's `except Exception` lets it through."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=0.1)
    entered, left = threading.Event(), threading.Event()

    def stubborn(params: Mapping[str, Any], task: TaskContext) -> None:
        entered.set()
        try:
            while True:
                try:
                    while True:
                        pass
                except Exception:  # what careless operation code does
                    continue
        finally:
            left.set()

    task_id = manager.create_task(stubborn, timeout=0.5)
    assert entered.wait(10)
    settle(manager)
    clock.advance(0.5)
    manager.wait(task_id, timeout=10)
    settle(manager)  # the escalation is armed when the supervisor handles the timeout
    clock.advance(0.1)
    assert left.wait(10)
    assert manager.wait(task_id, timeout=10)["error"]["code"] == "TIMEOUT"


def test_cancelling_a_non_cooperative_task_stops_the_work(make_manager: MakeManager) -> None:
    """Cancel of a running task that never checks is_cancelled(): cancelled at once, and
    the work has stopped within the grace (real clock; 10 s bound for a loaded machine)."""
    manager = make_manager(num_workers=1, stop_grace=0.05)
    spinner = Spinner()
    task_id = manager.create_task(spinner)
    assert spinner.entered.wait(10)
    started = time.monotonic()
    assert manager.cancel_task(task_id) is True
    assert manager.get_task_status(task_id)["status"] == "cancelled"  # type: ignore[index]
    assert spinner.left.wait(10)
    assert time.monotonic() - started >= 0.05  # never before the grace
    assert wait_until(lambda: stopping(manager) == 0, timeout=10)


def test_fifty_spinning_timeouts_are_all_contained(make_manager: MakeManager) -> None:
    """50 operations spinning in pure Python past their timeout: every one ends
    failed/TIMEOUT with its partial result, every thread leaves its operation, and the
    process has no more threads than before they started.

    Five at a time: fifty threads spinning at once starve every other thread of the GIL
    for seconds (the README's reason to put CPU-bound work in process mode).
    """
    manager = make_manager(num_workers=5, stop_grace=0.1)
    threads_before = threading.active_count()
    spinners = [Spinner() for _ in range(50)]
    ids = [manager.create_task(s, timeout=0.3) for s in spinners]
    statuses = [manager.wait(task_id, timeout=60) for task_id in ids]
    assert {s["error"]["code"] for s in statuses} == {"TIMEOUT"}
    assert [s["error"]["details"].get("partial_result") for s in statuses] == [{"spun": True}] * 50
    assert wait_until(lambda: all(s.left.is_set() for s in spinners), timeout=30)
    assert wait_until(lambda: stopping(manager) == 0, timeout=10)
    assert [s.interrupts_seen for s in spinners] == [1] * 50
    assert threading.active_count() == threads_before


def test_an_interrupt_never_leaks_into_the_next_task(make_manager: MakeManager) -> None:
    """Interrupts racing an operation's own return (stop_grace=0, 150 rounds) never reach
    the pool thread's next task: every follow-up task completes."""
    manager = make_manager(num_workers=2, stop_grace=0.0)

    def brief(params: Mapping[str, Any], task: TaskContext) -> int:
        deadline = time.monotonic() + params["spin"]
        while time.monotonic() < deadline:
            pass
        return 1

    def follow(params: Mapping[str, Any], task: TaskContext) -> int:
        total = 0
        for i in range(2_000):  # plenty of bytecode boundaries for a stray interrupt
            total += i
        return total

    for round_no in range(150):
        racer = manager.create_task(brief, {"spin": 0.001 * (round_no % 4)}, timeout=0.001)
        after = manager.create_task(follow)
        manager.wait(racer, timeout=10)
        assert manager.wait(after, timeout=10)["result"] == sum(range(2_000))
    assert wait_until(lambda: stopping(manager) == 0, timeout=10)


def test_a_blocking_c_call_is_interrupted_only_when_it_returns(
    make_manager: MakeManager,
) -> None:
    """An interrupt cannot break into time.sleep (a C call): it fires when the call
    returns, before the next line of the operation runs."""
    manager = make_manager(num_workers=1, stop_grace=0.0)
    reached_next_line = threading.Event()
    returned = threading.Event()

    def sleeper(params: Mapping[str, Any], task: TaskContext) -> None:
        try:
            time.sleep(0.3)
            reached_next_line.set()
        finally:
            returned.set()

    task_id = manager.create_task(sleeper, timeout=0.05)
    assert manager.wait(task_id, timeout=10)["error"]["code"] == "TIMEOUT"
    assert returned.wait(10)
    assert not reached_next_line.is_set()


@pytest.mark.parametrize("grace", [-1, float("nan"), "2"])
def test_bad_stop_grace_is_refused(grace: object) -> None:
    """stop_grace must be a finite number of seconds >= 0."""
    with pytest.raises((TypeError, ValueError)):
        TaskManager(stop_grace=grace)  # type: ignore[arg-type]


class SlowToDescribe(Exception):
    """An exception whose message takes a long time to build (ignoring cancellation)."""

    def __str__(self) -> str:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            pass
        return "finally described"


def test_an_interrupt_while_the_outcome_is_built_still_frees_the_slot(
    make_manager: MakeManager,
) -> None:
    """An operation that raised, then is interrupted while the runtime records its
    exception (its __str__ spins past the grace), still gives its slot back, and the
    pool thread survives to run the next task."""
    manager = make_manager(num_workers=1, stop_grace=0.05)

    def raise_slowly(params: Mapping[str, Any], task: TaskContext) -> None:
        raise SlowToDescribe()

    task_id = manager.create_task(raise_slowly, timeout=0.1)
    assert manager.wait(task_id, timeout=10)["error"]["code"] == "TIMEOUT"
    follow_up = manager.create_task(lambda params, task: "next")
    assert manager.wait(follow_up, timeout=4)["result"] == "next"  # well before the 5 s spin
    assert wait_until(lambda: stopping(manager) == 0, timeout=10)


def test_a_thread_stuck_in_a_blocking_call_logs_its_interrupts_once_then_their_count(
    make_manager: MakeManager, clock: ManualClock, captured_lifecycle: LifecycleCapture
) -> None:
    """An interrupt repeats every 0.1 s while a C call holds the thread: the first is
    logged, then only the 10th and 100th (not one line each), and when the call returns
    one line says how many it took."""
    manager = make_manager(num_workers=1, stop_grace=0.0, clock=clock)
    entered = threading.Event()
    gate = threading.Lock()
    gate.acquire()

    def stuck(params: Mapping[str, Any], task: TaskContext) -> None:
        entered.set()
        gate.acquire(timeout=30)  # in C: the interrupt waits for it to return

    task_id = manager.create_task(stuck, timeout=1.0)
    assert entered.wait(10)
    clock.advance(1.0)  # the deadline: the flag, then (no grace) the first interrupt
    for _ in range(150):
        manager.runtime.sync()
        clock.advance(0.1)
    captured_lifecycle.wait_for("task.still_interrupted", task_id=task_id, timeout=10)
    wait_until(
        lambda: any(
            e["interrupts"] == 100 for e in captured_lifecycle.named("task.still_interrupted")
        ),
        timeout=10,
    )
    # Every interrupt told so far is delivered before the operation goes on (the worker
    # actor's turns run on the dispatcher's one thread, at most 64 messages a turn, each
    # re-queued behind what was queued meanwhile): none is still on its way to land in
    # the runtime's own recording of the operation's end.
    manager.runtime.sync()  # the last tick's interrupt is told to the worker
    for _ in range(10):
        delivered = threading.Event()
        manager.runtime._dispatcher.submit(delivered.set)
        assert delivered.wait(10)
    gate.release()
    left = captured_lifecycle.wait_for("task.left_after_interrupts", task_id=task_id, timeout=10)
    assert manager.wait(task_id, timeout=10)["error"]["code"] == "TIMEOUT"
    first = captured_lifecycle.named("task.interrupted", task_id=task_id)
    repeated = captured_lifecycle.named("task.still_interrupted", task_id=task_id)
    assert [e["interrupts"] for e in first] == [1]
    assert [e["interrupts"] for e in repeated] == [10, 100]
    assert left["interrupts"] > 100
