"""Fault injection and the test kit with coroutine operations: each fault is awaited on
the event loop (never blocking it), named in the task's status, and ended by the stop
ladder where it waits; the ``task_manager`` and ``manual_clock`` fixtures drive a
coroutine's timeout in virtual time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from actors import AsyncTaskContext, ManualClock
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.testing import LifecycleCapture, advance

MakeManager = Callable[..., TaskManager]
DEADLINE = 30.0


class RealCoroutine:
    """The real operation: counts its calls, returns ``{"real": n}``."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, params: Mapping[str, Any], task: AsyncTaskContext) -> Any:
        self.calls += 1  # on the loop thread only
        await asyncio.sleep(0)
        return {"real": params.get("n")}


def loop_coroutines(manager: TaskManager) -> int:
    return manager.runtime.async_backend.statistics().coroutines


def named_manager(make_manager: MakeManager, **options: Any) -> tuple[TaskManager, RealCoroutine]:
    real = RealCoroutine()
    manager = make_manager(num_workers=1, operations={"fetch": real}, **options)
    return manager, real


def test_hang_awaits_the_stop_and_ends_at_the_cooperative_step(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """hang on a coroutine awaits wait_cancelled: a cancel ends it at once, with no
    virtual time passing; the fault is named in the status."""
    manager, real = named_manager(make_manager, clock=clock)
    manager.faults.hang(operation="fetch")
    task_id = manager.create_task("fetch")
    assert wait_until(lambda: loop_coroutines(manager) == 1, timeout=DEADLINE)
    assert manager.cancel_task(task_id)
    assert wait_until(lambda: loop_coroutines(manager) == 0, timeout=DEADLINE)
    status = manager.get_task_status(task_id)
    assert status is not None
    assert status["status"] == "cancelled"
    assert status["injected_faults"] == [{"attempt": 1, "fault": "hang"}]
    assert real.calls == 0
    # The rule was spent: the next task runs the real operation.
    assert manager.wait(manager.create_task("fetch", {"n": 1}), timeout=DEADLINE)["result"] == {
        "real": 1
    }


def test_ignore_cancellation_times_out_and_ends_at_the_interrupt(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """ignore_cancellation never looks at is_cancelled: the timeout is reported at the
    deadline, and asyncio's cancel, stop_grace later, ends the coroutine."""
    manager, _ = named_manager(make_manager, clock=clock, stop_grace=2.0)
    manager.faults.ignore_cancellation(operation="fetch")
    task_id = manager.create_task("fetch", timeout=3.0)
    assert wait_until(lambda: loop_coroutines(manager) == 1, timeout=DEADLINE)
    advance(manager, 3.0)
    failed = manager.wait(task_id, timeout=DEADLINE)
    assert failed["error"]["code"] == "TIMEOUT"
    assert failed["error"]["details"]["injected_fault"] == "ignore_cancellation"
    advance(manager, 1.0)
    assert loop_coroutines(manager) == 1  # still in its grace: only the flag is set
    advance(manager, 1.0)
    assert wait_until(lambda: loop_coroutines(manager) == 0, timeout=DEADLINE)


def test_delay_awaits_then_runs_the_real_coroutine_without_holding_the_loop(
    make_manager: MakeManager,
) -> None:
    """delay(s) awaits asyncio.sleep(s) then runs the real operation; meanwhile other
    coroutines complete (a thread's time.sleep would have held the loop)."""
    manager, real = named_manager(make_manager)
    manager.faults.delay(0.2, operation="fetch")
    delayed = manager.create_task("fetch", {"n": 7})
    assert wait_until(lambda: loop_coroutines(manager) == 1, timeout=DEADLINE)
    quick = manager.create_task("fetch", {"n": 8})
    assert manager.wait(quick, timeout=DEADLINE)["result"] == {"real": 8}
    assert manager.get_task_status(delayed)["status"] == "running"  # type: ignore[index]
    done = manager.wait(delayed, timeout=DEADLINE)
    assert done["result"] == {"real": 7}
    assert done["injected_faults"] == [{"attempt": 1, "fault": "delay (0.2 s)"}]
    assert real.calls == 2


@pytest.mark.parametrize(
    ("arm", "code"),
    [
        (lambda plan: plan.raise_error(OSError("disk full"), operation="fetch"), "INTERNAL_ERROR"),
        (lambda plan: plan.crash(operation="fetch"), "WORKER_CRASHED"),
        (lambda plan: plan.exceed_limit("memory", operation="fetch"), "RESOURCE_EXHAUSTED"),
    ],
)
def test_failing_faults_end_a_coroutine_attempt_as_they_end_a_thread_attempt(
    make_manager: MakeManager, arm: Callable[[Any], Any], code: str
) -> None:
    """raise, crash and exceed_limit on a coroutine: the same failure facts and codes as
    in thread isolation (a loop's task cannot die, nor be limited), the real operation
    not run, and the loop goes on."""
    manager, real = named_manager(make_manager)
    arm(manager.faults)
    failed = manager.wait(manager.create_task("fetch"), timeout=DEADLINE)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == code
    assert failed["error"]["details"]["injected_fault"]
    assert real.calls == 0
    assert manager.wait(manager.create_task("fetch", {"n": 2}), timeout=DEADLINE)["result"] == {
        "real": 2
    }


def test_a_fault_on_a_coroutine_is_logged_as_injected(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    """fault.injected names the fault for a coroutine task as for any other."""
    manager, _ = named_manager(make_manager)
    manager.faults.raise_error(ValueError("bad chapter"), operation="fetch")
    task_id = manager.create_task("fetch")
    manager.wait(task_id, timeout=DEADLINE)
    injected = captured_lifecycle.wait_for("fault.injected", task_id=task_id)
    assert "ValueError" in injected["fault"]


async def _sleeps_an_hour(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
    task.partial_result = {"pages": 2}
    try:
        await asyncio.sleep(3600)
    finally:
        _FINALLY.set()
    return "woke"


_FINALLY = threading.Event()


@pytest.mark.task_manager(num_workers=1, stop_grace=0.5)
def test_the_task_manager_fixture_on_a_manual_clock_times_out_a_coroutine(
    task_manager: TaskManager, manual_clock: ManualClock
) -> None:
    """The plugin's fixtures with a coroutine: advance() moves to the deadline (TIMEOUT
    with the partial result), then past the grace (the coroutine cancelled and gone)."""
    _FINALLY.clear()
    task_id = task_manager.create_task(_sleeps_an_hour, timeout=60.0)
    assert wait_until(lambda: loop_coroutines(task_manager) == 1, timeout=DEADLINE)
    advance(task_manager, 60.0)
    failed = task_manager.wait(task_id, timeout=DEADLINE)
    assert failed["error"]["code"] == "TIMEOUT"
    assert failed["error"]["details"]["partial_result"] == {"pages": 2}
    advance(task_manager, 0.5)
    assert _FINALLY.wait(DEADLINE)
    assert wait_until(lambda: loop_coroutines(task_manager) == 0, timeout=DEADLINE)
