"""Fault injection (``manager.faults``): every kind of fault in thread isolation, the real
ones in process isolation, targeting, counting, precedence, how injected faults are
marked (status, error details, logs, stats, the durable store) and how they meet retries.

Thread tests run on a ManualClock: timeouts and stop escalation move only when the test
advances time. Process tests start real children (~0.3 s each), so they are few.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors._storage.sqlite_rows
import actors._storage.sqlite_schema
from actors import ManualClock, TaskContext
from actors._storage.sqlite_schema import SCHEMA_VERSION
from actors.testing import wait_until
from storycore_tasks import RetryPolicy, TaskManager
from storycore_tasks import testing as kit
from storycore_tasks.testing import LifecycleCapture, advance
from tests import process_ops
from tests.gates import settle

MakeManager = Callable[..., TaskManager]

BOUND = 20.0  # seconds: an upper bound for a loaded machine, never a duration we expect


# -- operations and helpers ----------------------------------------------------------------


class Real:
    """The real operation: counts its calls and returns ``{"real": params["n"]}``."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        return {"real": params.get("n")}


class FailsForReal:
    """An operation that always raises its own error (not an injected one)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> None:
        self.calls += 1
        raise ConnectionError(f"real failure {self.calls}")


class PathError(Exception):
    """An application error whose constructor formats its message, as many do."""

    def __init__(self, path: str) -> None:
        super().__init__(f"cannot read {path}")
        self.path = path


def status_of(manager: TaskManager, task_id: str) -> dict[str, Any]:
    found = manager.get_task_status(task_id)
    assert found is not None, f"task {task_id} is unknown"
    return found


def run(manager: TaskManager, operation: Any, params: Mapping[str, Any] | None = None) -> Any:
    """Create a task and wait for its end; the final status dict."""
    return manager.wait(manager.create_task(operation, params), timeout=BOUND)


def stopping(manager: TaskManager) -> int:
    settle(manager)
    return int(manager.get_stats()["stopping"])


def gone(pid: int) -> bool:
    """The process has exited and been reaped (a zombie still has its /proc entry)."""
    return not os.path.exists(f"/proc/{pid}")


def run_getpid(manager: TaskManager) -> int:
    status = run(manager, process_ops.getpid)
    assert status["status"] == "completed", status
    pid = status["result"]
    assert isinstance(pid, int)
    assert pid != os.getpid()
    return pid


GETPID = f"{process_ops.getpid.__module__}.{process_ops.getpid.__qualname__}"


# -- the plan itself -----------------------------------------------------------------------


def test_the_manager_the_runtime_and_the_kit_share_one_plan(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """manager.faults is the runtime's FaultPlan (the class the testing kit exports), empty
    at first; a rule starts armed for one run and is listed until it is spent."""
    manager = make_manager(num_workers=1, clock=clock)
    assert manager.faults is manager.runtime.faults
    assert isinstance(manager.faults, kit.FaultPlan)
    assert manager.faults.rules() == []
    assert manager.faults.injected_total == 0
    rule = manager.faults.hang(operation="render")
    assert isinstance(rule, kit.FaultRule)
    assert (rule.operation, rule.task_id, rule.remaining, rule.applied) == ("render", None, 1, 0)
    assert manager.faults.rules() == [rule]
    assert manager.get_stats()["injected_faults"] == 0


# -- every kind, in thread isolation -------------------------------------------------------


def test_raise_error_fails_the_run_and_names_the_fault(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """The run raises the exception instead of running the operation; the status names
    the injected fault, in the error details too. The rule is spent: the next run is
    real and carries no injected_faults key."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    rule = manager.faults.raise_error(OSError("disk full"), operation="render")

    failed = run(manager, "render", {"n": 1})
    assert failed["status"] == "failed"
    assert failed["injected_faults"] == [{"attempt": 1, "fault": "raise OSError('disk full')"}]
    error = failed["error"]
    assert error["code"] == "INTERNAL_ERROR"
    assert error["message"] == "Operation raised OSError: disk full"
    assert error["details"]["exception_type"] == "OSError"
    assert error["details"]["injected_fault"] == "raise OSError('disk full')"
    assert real.calls == 0
    assert (rule.remaining, rule.applied) == (0, 1)
    assert manager.faults.rules() == []

    clean = run(manager, "render", {"n": 2})
    assert (clean["status"], clean["result"]) == ("completed", {"real": 2})
    assert "injected_faults" not in clean
    assert real.calls == 1


def test_raise_error_with_a_class_raises_a_fresh_instance_each_run(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A class is instantiated ("injected fault"); an instance is copied for each run,
    so the instance the test holds is never raised itself (no traceback piles up)."""
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    manager.faults.raise_error(TimeoutError, operation="render")
    first = run(manager, "render")
    assert first["error"]["message"] == "Operation raised TimeoutError: injected fault"
    assert first["injected_faults"] == [
        {"attempt": 1, "fault": "raise TimeoutError('injected fault')"}
    ]

    held = KeyError("scene 7")
    manager.faults.raise_error(held, operation="render", times=2)
    for _ in range(2):
        status = run(manager, "render")
        assert status["error"]["details"]["exception_type"] == "KeyError"
        assert status["error"]["details"]["exception_message"] == "'scene 7'"
    assert held.__traceback__ is None


def test_raise_error_keeps_the_message_of_an_exception_with_its_own_constructor(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """PathError("scene.mp4") says "cannot read scene.mp4"; the injected run must raise
    the same message (the copy says "cannot read cannot read scene.mp4")."""
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    manager.faults.raise_error(PathError("scene.mp4"), operation="render")
    status = run(manager, "render")
    assert status["error"]["details"]["exception_message"] == "cannot read scene.mp4"


def test_hang_blocks_until_cancelled_and_then_cooperates(
    make_manager: MakeManager, clock: ManualClock, captured_lifecycle: LifecycleCapture
) -> None:
    """A hanging run neither returns nor runs the operation; a cancel ends the task at
    once, and the run leaves its thread on its own (no interrupt: the stop grace never
    passes on the manual clock)."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, stop_grace=30.0, operations={"render": real})
    manager.faults.hang(operation="render")
    task_id = manager.create_task("render")
    captured_lifecycle.wait_for("fault.injected", task_id=task_id, timeout=BOUND)
    assert status_of(manager, task_id)["status"] == "running"
    with pytest.raises(TimeoutError):
        manager.wait(task_id, timeout=0.1)  # it really hangs

    assert manager.cancel_task(task_id) is True
    cancelled = manager.wait(task_id, timeout=BOUND)
    assert cancelled["error"]["code"] == "CANCELLED"
    assert cancelled["error"]["details"]["injected_fault"] == "hang"
    assert wait_until(lambda: stopping(manager) == 0, timeout=BOUND)
    assert real.calls == 0
    assert run(manager, "render", {"n": 5})["result"] == {"real": 5}


def test_hang_ends_with_the_timeout(make_manager: MakeManager, clock: ManualClock) -> None:
    """A hanging run with a 1800 s timeout is still running a moment before it and
    TIMEOUT at it, the error naming the injected hang."""
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    rule = manager.faults.hang(operation="render")
    task_id = manager.create_task("render", timeout=1800)
    assert wait_until(lambda: rule.applied == 1, timeout=BOUND)
    advance(manager, 1799.999)
    assert status_of(manager, task_id)["status"] == "running"
    advance(manager, 0.001)
    timed_out = manager.wait(task_id, timeout=BOUND)
    assert timed_out["error"]["code"] == "TIMEOUT"
    assert timed_out["error"]["details"]["timeout_seconds"] == 1800
    assert timed_out["error"]["details"]["injected_fault"] == "hang"
    assert wait_until(lambda: stopping(manager) == 0, timeout=BOUND)


def test_ignore_cancellation_holds_its_slot_until_the_interrupt(
    make_manager: MakeManager, clock: ManualClock, captured_lifecycle: LifecycleCapture
) -> None:
    """A run that ignores cancellation times out like any other, but keeps its slot for
    exactly stop_grace; then the thread interrupt ends it and the next task runs."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, stop_grace=0.5, operations={"render": real})
    manager.faults.ignore_cancellation(operation="render")
    task_id = manager.create_task("render", timeout=10)
    captured_lifecycle.wait_for("fault.injected", task_id=task_id, timeout=BOUND)
    advance(manager, 10)
    timed_out = manager.wait(task_id, timeout=BOUND)
    assert timed_out["error"]["code"] == "TIMEOUT"
    assert timed_out["error"]["details"]["injected_fault"] == "ignore_cancellation"
    assert stopping(manager) == 1
    advance(manager, 0.499)
    assert stopping(manager) == 1
    advance(manager, 0.001)
    assert wait_until(lambda: stopping(manager) == 0, timeout=BOUND)
    assert real.calls == 0
    assert run(manager, "render", {"n": 1})["result"] == {"real": 1}


def test_ignore_cancellation_for_some_seconds_ends_by_itself(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """With seconds, the run sleeps that long and then leaves without any interrupt (the
    stop grace never passes here); the fault is named with its duration."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=30.0, operations={"r": Real()})
    rule = manager.faults.ignore_cancellation(0.05, operation="r")
    task_id = manager.create_task("r")
    assert wait_until(lambda: rule.applied == 1, timeout=BOUND)
    assert manager.cancel_task(task_id) is True
    assert wait_until(lambda: stopping(manager) == 0, timeout=BOUND)
    status = status_of(manager, task_id)
    assert status["status"] == "cancelled"
    assert status["injected_faults"] == [{"attempt": 1, "fault": "ignore_cancellation (0.05 s)"}]


def test_delay_runs_the_real_operation_late(make_manager: MakeManager, clock: ManualClock) -> None:
    """A delayed run sleeps (real time) and then runs the operation: the real result, no
    error, the delay named in injected_faults."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    manager.faults.delay(0.05, operation="render")
    started = time.monotonic()
    done = run(manager, "render", {"n": 3})
    assert time.monotonic() - started >= 0.05
    assert (done["status"], done["result"]) == ("completed", {"real": 3})
    assert done["injected_faults"] == [{"attempt": 1, "fault": "delay (0.05 s)"}]
    assert "error" not in done
    assert real.calls == 1


@pytest.mark.parametrize(
    ("signum", "name"), [(signal.SIGSEGV, "SIGSEGV"), (signal.SIGKILL, "SIGKILL")]
)
def test_crash_in_thread_isolation_is_recorded_as_the_crash(
    make_manager: MakeManager, clock: ManualClock, signum: int, name: str
) -> None:
    """A thread cannot die alone: the attempt ends with the outcome of a child killed by
    the signal (WORKER_CRASHED), nothing is killed, and the next task runs."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    if signum == signal.SIGKILL:
        manager.faults.crash(operation="render")  # the default signal
    else:
        manager.faults.crash(signum, operation="render")
    crashed = run(manager, "render")
    assert crashed["status"] == "failed"
    error = crashed["error"]
    assert error["code"] == "WORKER_CRASHED"
    assert {k: error["details"][k] for k in ("signal", "signal_name", "exit_code")} == {
        "signal": int(signum),
        "signal_name": name,
        "exit_code": None,
    }
    assert error["details"]["injected_fault"] == f"crash ({name})"
    assert real.calls == 0
    assert run(manager, "render", {"n": 9})["result"] == {"real": 9}


@pytest.mark.parametrize(
    ("limit", "named"), [("memory", "memory_limit_mb"), ("cpu", "cpu_time_limit")]
)
def test_exceed_limit_in_thread_isolation_is_simulated(
    make_manager: MakeManager, clock: ManualClock, limit: str, named: str
) -> None:
    """Threads have no resource limits: the attempt ends as RESOURCE_EXHAUSTED naming the
    limit, and says it was simulated."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    manager.faults.exceed_limit(limit, operation="render")
    status = run(manager, "render")
    error = status["error"]
    assert error["code"] == "RESOURCE_EXHAUSTED"
    assert error["details"]["limit"] == named
    assert "simulated" in error["details"]["reason"]
    assert error["details"]["injected_fault"] == f"exceed_limit ({limit})"
    assert real.calls == 0


# -- process isolation: the real thing -----------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "name"),
    [
        (signal.SIGSEGV, "SIGSEGV"),
        # The default; it once failed with INTERNAL_ERROR (signal.signal(SIGKILL, ...)
        # raises OSError in the child).
        (signal.SIGKILL, "SIGKILL"),
    ],
)
def test_crash_in_process_isolation_kills_the_child(
    make_manager: MakeManager, signum: int, name: str
) -> None:
    """The child really dies by the signal: WORKER_CRASHED with that signal, the child is
    gone, and the next task runs in a new child."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    pid = run_getpid(manager)
    if signum == signal.SIGKILL:
        manager.faults.crash(operation=GETPID)  # the default signal
    else:
        manager.faults.crash(signum, operation=GETPID)
    crashed = run(manager, process_ops.getpid)
    assert crashed["injected_faults"] == [{"attempt": 1, "fault": f"crash ({name})"}]
    error = crashed["error"]
    assert (error["code"], error["details"]["signal"]) == ("WORKER_CRASHED", int(signum)), error
    assert error["details"]["signal_name"] == name
    assert error["details"]["injected_fault"] == f"crash ({name})"
    assert wait_until(lambda: gone(pid), timeout=BOUND)
    assert run_getpid(manager) != pid


def test_hang_in_process_isolation_cooperates_with_a_cancel(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    """A hang in a child waits for the cancel and returns: the task is cancelled, the
    child is never signalled and serves the next task."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=10.0)
    pid = run_getpid(manager)
    manager.faults.hang(operation=GETPID)
    task_id = manager.create_task(process_ops.getpid)
    captured_lifecycle.wait_for("fault.injected", task_id=task_id, timeout=BOUND)
    with pytest.raises(TimeoutError):
        manager.wait(task_id, timeout=0.3)  # getpid would have answered by now
    assert manager.cancel_task(task_id) is True
    cancelled = manager.wait(task_id, timeout=BOUND)
    assert (cancelled["status"], cancelled["error"]["code"]) == ("cancelled", "CANCELLED")
    assert cancelled["error"]["details"]["injected_fault"] == "hang"
    assert run_getpid(manager) == pid  # the same child: it was never stopped
    assert captured_lifecycle.named("task.child_signalled") == []


def test_ignore_cancellation_in_process_isolation_is_ended_by_sigterm(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    """A child that ignores cancellation past its timeout gets SIGTERM after stop_grace
    and dies; the task reads TIMEOUT naming the fault; a new child runs the next task."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    pid = run_getpid(manager)
    manager.faults.ignore_cancellation(operation=GETPID)
    task_id = manager.create_task(process_ops.getpid, timeout=0.3)
    timed_out = manager.wait(task_id, timeout=BOUND)
    assert timed_out["error"]["code"] == "TIMEOUT"
    assert timed_out["error"]["details"]["injected_fault"] == "ignore_cancellation"
    signalled = captured_lifecycle.wait_for("task.child_signalled", task_id=task_id, timeout=BOUND)
    assert (signalled["pid"], signalled["signal"], signalled["reason"]) == (
        pid,
        "SIGTERM",
        "timeout",
    )
    assert wait_until(lambda: gone(pid), timeout=BOUND)
    assert run_getpid(manager) != pid


def test_exceed_memory_limit_in_process_isolation_is_real(make_manager: MakeManager) -> None:
    """With memory_limit_mb set, the child really allocates past it: RESOURCE_EXHAUSTED
    naming the limit and its value, with a MemoryError as the reason (not simulated)."""
    manager = make_manager(num_workers=1, isolation="process")
    manager.faults.exceed_limit("memory", operation=GETPID)
    status = manager.wait(
        manager.create_task(process_ops.getpid, memory_limit_mb=300), timeout=BOUND
    )
    error = status["error"]
    assert error["code"] == "RESOURCE_EXHAUSTED", status
    assert (error["details"]["limit"], error["details"]["value"]) == ("memory_limit_mb", 300)
    assert "simulated" not in error["details"]["reason"]
    assert "MemoryError" in error["details"]["reason"]
    assert error["details"]["injected_fault"] == "exceed_limit (memory)"
    assert run(manager, process_ops.getpid)["status"] == "completed"


# -- targeting, counting, removing ---------------------------------------------------------


def delayed_tasks(manager: TaskManager, operation: str, count: int) -> list[str]:
    """Tasks held pending for 1 s of manual time, so rules can name their ids first."""
    return [manager.create_task(operation, {"n": n}, delay=1.0) for n in range(count)]


def finish_all(manager: TaskManager, task_ids: list[str]) -> list[dict[str, Any]]:
    advance(manager, 1.0)
    return [manager.wait(task_id, timeout=BOUND) for task_id in task_ids]


def faulted(statuses: list[dict[str, Any]]) -> list[bool]:
    return [status["status"] == "failed" for status in statuses]


def test_a_task_id_rule_affects_only_that_task(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    ids = delayed_tasks(manager, "render", 3)
    rule = manager.faults.raise_error(ValueError("only you"), task_id=ids[1])
    assert (rule.task_id, rule.operation) == (ids[1], None)
    statuses = finish_all(manager, ids)
    assert faulted(statuses) == [False, True, False]
    assert statuses[1]["error"]["details"]["exception_message"] == "only you"
    assert real.calls == 2


def test_an_operation_rule_affects_only_that_operation(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    render, encode = Real(), Real()
    manager = make_manager(
        num_workers=1, clock=clock, operations={"render": render, "encode": encode}
    )
    manager.faults.raise_error(ValueError("render only"), operation="render", times=None)
    assert run(manager, "encode")["status"] == "completed"
    assert run(manager, "render")["status"] == "failed"
    assert run(manager, "encode")["status"] == "completed"
    assert (render.calls, encode.calls) == (0, 2)


def test_times_counts_runs_down_then_the_rule_is_gone(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    rule = manager.faults.raise_error(ValueError("x"), operation="render", times=2)
    assert (rule.remaining, rule.applied) == (2, 0)
    assert run(manager, "render")["status"] == "failed"
    assert (rule.remaining, rule.applied) == (1, 1)
    assert manager.faults.rules() == [rule]
    assert run(manager, "render")["status"] == "failed"
    assert (rule.remaining, rule.applied) == (0, 2)
    assert manager.faults.rules() == []
    assert rule.remove() is False  # already spent
    assert run(manager, "render")["status"] == "completed"
    assert real.calls == 1


def test_times_none_applies_to_every_run_until_removed(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    rule = manager.faults.raise_error(ValueError("x"), operation="render", times=None)
    for applied in (1, 2, 3):
        assert run(manager, "render")["status"] == "failed"
        assert (rule.remaining, rule.applied) == (None, applied)
    assert manager.faults.rules() == [rule]
    assert rule.remove() is True
    assert rule.remove() is False
    assert manager.faults.rules() == []
    assert run(manager, "render")["status"] == "completed"
    assert real.calls == 1


def test_clear_disarms_every_rule(make_manager: MakeManager, clock: ManualClock) -> None:
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    rules = [
        manager.faults.raise_error(ValueError("x"), operation="render", times=None),
        manager.faults.crash(operation="render", times=3),
        manager.faults.hang(task_id="00000000-0000-4000-8000-000000000000"),
    ]
    assert manager.faults.rules() == rules
    assert manager.faults.clear() == 3
    assert manager.faults.rules() == []
    assert manager.faults.clear() == 0
    assert run(manager, "render")["status"] == "completed"
    assert all(rule.applied == 0 for rule in rules)
    assert rules[0].remove() is False


# -- precedence ----------------------------------------------------------------------------


def test_a_task_id_rule_wins_over_a_newer_operation_rule(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """The task rule (older) applies to its task; the operation rule (newer) is untouched
    by that run and applies to the next task of the operation."""
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    ids = delayed_tasks(manager, "render", 2)
    by_task = manager.faults.raise_error(ValueError("by task"), task_id=ids[0])
    by_operation = manager.faults.raise_error(ValueError("by operation"), operation="render")
    statuses = finish_all(manager, ids)
    assert [s["error"]["details"]["exception_message"] for s in statuses] == [
        "by task",
        "by operation",
    ]
    assert (by_task.applied, by_operation.applied) == (1, 1)


def test_the_newest_rule_of_a_kind_wins(make_manager: MakeManager, clock: ManualClock) -> None:
    """Among operation rules (and among task rules) the newest applies first; an older
    one applies once the newer is spent."""
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    manager.faults.raise_error(ValueError("old op"), operation="render")
    manager.faults.raise_error(ValueError("new op"), operation="render")
    messages = [run(manager, "render")["error"]["details"]["exception_message"] for _ in "ab"]
    assert messages == ["new op", "old op"]

    (task_id,) = delayed_tasks(manager, "render", 1)
    old = manager.faults.raise_error(ValueError("old task"), task_id=task_id)
    manager.faults.raise_error(ValueError("new task"), task_id=task_id)
    (status,) = finish_all(manager, [task_id])
    assert status["error"]["details"]["exception_message"] == "new task"
    assert (old.remaining, old.applied) == (1, 0)


# -- marking: status, logs, stats ----------------------------------------------------------


def test_injected_faults_are_logged_as_such(
    captured_lifecycle: LifecycleCapture, make_manager: MakeManager, clock: ManualClock
) -> None:
    """fault.injected (a warning naming task, operation, attempt and fault), and
    task.started with injected_fault=; a clean run logs neither."""
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    manager.faults.raise_error(OSError("disk full"), operation="render")
    faulty = run(manager, "render")["task_id"]
    clean = run(manager, "render")["task_id"]
    manager.shutdown(wait=True, timeout=BOUND)

    (injected,) = captured_lifecycle.named("fault.injected")
    assert injected == {
        "event": "fault.injected",
        "log_level": "warning",
        "task_id": faulty,
        "operation": "render",
        "attempt": 1,
        "fault": "raise OSError('disk full')",
    }
    (started,) = captured_lifecycle.named("task.started", task_id=faulty)
    assert started["injected_fault"] == "raise OSError('disk full')"
    assert started["attempt"] == 1
    (clean_start,) = captured_lifecycle.named("task.started", task_id=clean)
    assert "injected_fault" not in clean_start
    assert captured_lifecycle.named("fault.injected", task_id=clean) == []


def test_stats_count_the_injected_runs(make_manager: MakeManager, clock: ManualClock) -> None:
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    manager.faults.raise_error(ValueError("x"), operation="render", times=2)
    manager.faults.delay(0.0, operation="other")  # never matches
    for _ in range(4):
        run(manager, "render")
    assert manager.get_stats()["injected_faults"] == 2
    assert manager.faults.injected_total == 2


# -- retries -------------------------------------------------------------------------------


def no_jitter(**fields: Any) -> RetryPolicy:
    return RetryPolicy(**{"jitter": False, "backoff": 0.0, **fields})


def test_a_fault_for_one_run_affects_only_the_first_attempt(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """times=1 with two attempts: attempt 1 is faulted, attempt 2 runs the real operation
    and completes; the status still names attempt 1's fault."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    manager.faults.raise_error(ConnectionError("flaky"), operation="render")
    done = manager.wait(
        manager.create_task("render", {"n": 4}, retry=no_jitter(max_attempts=2)), timeout=BOUND
    )
    assert (done["status"], done["attempt"], done["result"]) == ("completed", 2, {"real": 4})
    assert done["injected_faults"] == [{"attempt": 1, "fault": "raise ConnectionError('flaky')"}]
    assert real.calls == 1


def test_a_crash_is_retried_and_the_next_attempt_is_real(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    manager.faults.crash(signal.SIGSEGV, operation="render")
    done = manager.wait(
        manager.create_task("render", {"n": 1}, retry=no_jitter(max_attempts=3)), timeout=BOUND
    )
    assert (done["status"], done["attempt"], done["result"]) == ("completed", 2, {"real": 1})
    assert done["injected_faults"] == [{"attempt": 1, "fault": "crash (SIGSEGV)"}]


def test_every_faulted_attempt_is_listed_and_the_last_one_named(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """times=None with three attempts: every attempt is faulted and listed; the final
    error names the fault and gives each attempt's error."""
    real = Real()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    manager.faults.raise_error(ConnectionError("down"), operation="render", times=None)
    failed = manager.wait(
        manager.create_task("render", retry=no_jitter(max_attempts=3)), timeout=BOUND
    )
    fault = "raise ConnectionError('down')"
    assert failed["attempt"] == 3
    assert failed["injected_faults"] == [{"attempt": n, "fault": fault} for n in (1, 2, 3)]
    details = failed["error"]["details"]
    assert details["injected_fault"] == fault
    assert details["attempts"] == 3
    assert [e["message"] for e in details["attempt_errors"]] == [
        "Operation raised ConnectionError: down"
    ] * 3
    assert real.calls == 0


def test_a_real_failure_after_a_faulted_attempt_is_not_called_injected(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Attempt 1 faulted, attempt 2 failed for real: the error is the real one and has no
    injected_fault; injected_faults still records attempt 1."""
    real = FailsForReal()
    manager = make_manager(num_workers=1, clock=clock, operations={"render": real})
    manager.faults.crash(operation="render")
    failed = manager.wait(
        manager.create_task("render", retry=no_jitter(max_attempts=2)), timeout=BOUND
    )
    assert failed["injected_faults"] == [{"attempt": 1, "fault": "crash (SIGKILL)"}]
    error = failed["error"]
    assert error["message"] == "Operation raised ConnectionError: real failure 1"
    assert "injected_fault" not in error["details"]
    assert [e["code"] for e in error["details"]["attempt_errors"]] == [
        "WORKER_CRASHED",
        "INTERNAL_ERROR",
    ]
    assert real.calls == 1


def test_a_cancel_while_waiting_to_retry_is_not_called_injected(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Attempt 1 faulted, then the task is cancelled while it waits for attempt 2: the
    cancel is the final error, not the fault (attempt_errors already leaves the cancel
    out for the same reason); injected_faults still records attempt 1."""
    manager = make_manager(num_workers=1, clock=clock, operations={"render": Real()})
    manager.faults.raise_error(ConnectionError("flaky"), operation="render")
    task_id = manager.create_task("render", retry=no_jitter(max_attempts=3, backoff=10.0))
    assert wait_until(
        lambda: status_of(manager, task_id)["next_attempt_at"] is not None, timeout=BOUND
    )
    assert manager.cancel_task(task_id) is True
    cancelled = manager.wait(task_id, timeout=BOUND)
    assert cancelled["injected_faults"] == [
        {"attempt": 1, "fault": "raise ConnectionError('flaky')"}
    ]
    assert cancelled["error"]["code"] == "CANCELLED"
    assert "injected_fault" not in cancelled["error"]["details"]


# -- the durable store ---------------------------------------------------------------------


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return {"real": params.get("n")}


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


def test_injected_faults_survive_a_restart(tmp_path: Path) -> None:
    """The record of injected faults (two attempts of one task) and the error naming the
    last one are read back the same after reopening; a clean task still has none."""
    path = tmp_path / "t.db"
    with TaskManager(num_workers=1, store=path, operations={"render": echo}) as manager:
        manager.faults.raise_error(ConnectionError("down"), operation="render", times=2)
        faulty = manager.create_task("render", retry=no_jitter(max_attempts=2))
        before = manager.wait(faulty, timeout=BOUND)
        clean = manager.create_task("render", {"n": 1})
        manager.wait(clean, timeout=BOUND)
    assert [f["attempt"] for f in before["injected_faults"]] == [1, 2]

    with TaskManager(store=path, operations={"render": echo}) as manager:
        after = status_of(manager, faulty)
        assert after["injected_faults"] == before["injected_faults"]
        assert after["error"] == before["error"]
        assert after["error"]["details"]["injected_fault"] == "raise ConnectionError('down')"
        assert "injected_faults" not in status_of(manager, clean)
    assert query(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert "injected_faults" in actors._storage.sqlite_schema.MIGRATIONS[2][0]


def _version_1_columns() -> tuple[str, ...]:
    """The store's columns but those later versions added (injected_faults in version 2,
    and whatever each later one added: its ``ADD COLUMN`` statements)."""
    columns = actors._storage.sqlite_rows.COLUMNS
    assert "injected_faults" in columns
    later = {
        statement.split("ADD COLUMN")[1].split()[0]
        for version, statements in actors._storage.sqlite_schema.MIGRATIONS.items()
        if version > 1
        for statement in statements
        if "ADD COLUMN" in statement
    }
    assert "injected_faults" in later
    return tuple(c for c in columns if c not in later)


def version_1_database(path: Path, rows: Sequence[tuple[Any, ...]] = ()) -> None:
    """A file as storycore-tasks wrote it at schema version 1: MIGRATIONS[1] run, the
    version set to 1 (as the migrator does after a step), then ``rows`` inserted."""
    v1_columns = _version_1_columns()
    assert "injected_faults" not in v1_columns
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        for statement in actors._storage.sqlite_schema.MIGRATIONS[1]:
            connection.execute(statement)
        connection.execute("UPDATE schema_version SET version = 1")
        for row in rows:
            connection.execute(
                f"INSERT INTO tasks ({', '.join(v1_columns)}) "
                f"VALUES ({', '.join('?' * len(v1_columns))})",
                row,
            )
    assert query(path, "SELECT version FROM schema_version") == [(1,)]


def test_an_empty_version_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    version_1_database(path)
    with TaskManager(num_workers=1, store=path, operations={"render": echo}) as manager:
        manager.faults.hang(operation="nothing")  # armed, unrelated
        manager.faults.raise_error(ValueError("x"), operation="render")
        task_id = manager.create_task("render")
        manager.wait(task_id, timeout=BOUND)
    assert query(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert "injected_faults" in [row[1] for row in query(path, "PRAGMA table_info(tasks)")]
    with TaskManager(store=path, operations={"render": echo}) as manager:
        assert status_of(manager, task_id)["injected_faults"] == [
            {"attempt": 1, "fault": "raise ValueError('x')"}
        ]


def test_a_version_1_database_with_a_task_is_migrated_and_reads_it_back(
    tmp_path: Path,
) -> None:
    """A row written at version 1 (no injected_faults column) reads back exactly as
    before the migration, without injected_faults; new tasks record theirs."""
    donor = tmp_path / "donor.db"
    with TaskManager(num_workers=1, store=donor, operations={"render": echo}) as manager:
        old_id = manager.create_task("render", {"n": 7}, user="ann")
        expected = manager.wait(old_id, timeout=BOUND)
    columns = ", ".join(_version_1_columns())
    rows = query(donor, f"SELECT {columns} FROM tasks")
    assert len(rows) == 1

    path = tmp_path / "v1.db"
    version_1_database(path, rows)
    with TaskManager(num_workers=1, store=path, operations={"render": echo}) as manager:
        assert status_of(manager, old_id) == expected
        assert "injected_faults" not in expected
        manager.faults.delay(0.0, operation="render")
        new_id = manager.create_task("render", {"n": 8})
        assert manager.wait(new_id, timeout=BOUND)["result"] == {"real": 8}
    assert query(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    with TaskManager(store=path, operations={"render": echo}) as manager:
        assert status_of(manager, old_id) == expected
        assert status_of(manager, new_id)["injected_faults"] == [
            {"attempt": 1, "fault": "delay (0 s)"}
        ]


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("add", "error", "match"),
    [
        (lambda f: f.hang(), ValueError, "exactly one of operation='name' or task_id='id'"),
        (lambda f: f.hang(operation="a", task_id="b"), ValueError, "exactly one"),
        (lambda f: f.hang(operation=""), TypeError, "operation must be a non-empty str"),
        (lambda f: f.hang(task_id=7), TypeError, "task_id must be a non-empty str"),
        (lambda f: f.hang(operation="a", times=0), ValueError, "times must be a positive int"),
        (lambda f: f.hang(operation="a", times=-2), ValueError, "times must be a positive int"),
        (lambda f: f.hang(operation="a", times=True), ValueError, "times must be a positive int"),
        (lambda f: f.hang(operation="a", times=1.5), ValueError, "times must be a positive int"),
        (lambda f: f.exceed_limit("disk", operation="a"), ValueError, "limit must be one of"),
        (lambda f: f.crash(0, operation="a"), ValueError, "signal must be a signal number"),
        (lambda f: f.crash("SIGKILL", operation="a"), ValueError, "signal must be"),
        (lambda f: f.crash(10_000, operation="a"), ValueError, "signal must be"),
        (lambda f: f.delay(-1, operation="a"), ValueError, "seconds must be a finite number"),
        (lambda f: f.delay(math.nan, operation="a"), ValueError, "seconds must be a finite"),
        (lambda f: f.delay(math.inf, operation="a"), ValueError, "seconds must be a finite"),
        (lambda f: f.delay(None, operation="a"), ValueError, "seconds must be a finite"),
        (lambda f: f.delay(True, operation="a"), ValueError, "seconds must be a finite"),
        (lambda f: f.ignore_cancellation(-0.5, operation="a"), ValueError, "seconds must be"),
        (lambda f: f.ignore_cancellation(math.nan, operation="a"), ValueError, "seconds"),
        (lambda f: f.raise_error(42, operation="a"), TypeError, "exception instance or class"),
        (lambda f: f.raise_error(int, operation="a"), TypeError, "exception instance or class"),
        (lambda f: f.raise_error("boom", operation="a"), TypeError, "exception instance"),
    ],
)
def test_bad_arguments_are_refused_with_a_message_naming_the_problem(
    add: Callable[[kit.FaultPlan], Any], error: type[Exception], match: str
) -> None:
    plan = kit.FaultPlan()
    with pytest.raises(error, match=match):
        add(plan)
    assert plan.rules() == []
    assert not plan.armed


def test_a_bool_is_not_a_signal() -> None:
    plan = kit.FaultPlan()
    with pytest.raises(ValueError, match="signal must be"):
        plan.crash(True, operation="a")  # type: ignore[arg-type]


# -- the property: a model of the plan -----------------------------------------------------

OPERATIONS = ("render", "encode", "upload")


@dataclass
class ModelRule:
    number: int
    operation: str | None
    task: int | None
    remaining: int


def model_take(rules: list[ModelRule], task: int, operation: str) -> int | None:
    """The rule the plan should apply to this run: a rule for the task beats any rule
    for its operation; among those, the newest. Spends one run of it."""
    for_task = [r for r in rules if r.task == task]
    for_operation = [r for r in rules if r.task is None and r.operation == operation]
    candidates = for_task or for_operation
    if not candidates:
        return None
    chosen = candidates[-1]
    chosen.remaining -= 1
    if chosen.remaining == 0:
        rules.remove(chosen)
    return chosen.number


rules = st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(1, 3)), max_size=2)
steps = st.lists(
    st.tuples(st.sampled_from(OPERATIONS), rules, st.none() | st.integers(1, 3), rules),
    min_size=1,
    max_size=12,
)


@settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_the_plan_faults_exactly_the_runs_a_model_predicts(
    steps: list[tuple[str, list[tuple[str, int]], int | None, list[tuple[str, int]]]],
) -> None:
    """Serial runs, each preceded by operation rules (times 1..3), a rule for its own
    task id (or none) and more operation rules: each run is faulted by exactly the rule
    the model picks (every rule raises its own message) or runs the real operation; the
    rules left over and the injected count agree with the model too."""
    real = Real()
    manager = TaskManager(
        num_workers=1, clock=ManualClock(), operations=dict.fromkeys(OPERATIONS, real)
    )
    model: list[ModelRule] = []
    armed: list[kit.FaultRule] = []

    def add(times: int, operation: str | None = None, task: tuple[int, str] | None = None) -> None:
        number = len(armed)
        error = ValueError(f"rule {number}")
        if task is None:
            armed.append(manager.faults.raise_error(error, operation=operation, times=times))
        else:
            armed.append(manager.faults.raise_error(error, task_id=task[1], times=times))
        model.append(ModelRule(number, operation, None if task is None else task[0], times))

    expected_calls = 0
    try:
        for index, (operation, before, task_times, after) in enumerate(steps):
            for rule_operation, times in before:
                add(times, operation=rule_operation)
            task_id = manager.create_task(operation, {"n": index}, delay=1.0)
            if task_times is not None:
                add(task_times, task=(index, task_id))
            for rule_operation, times in after:
                add(times, operation=rule_operation)
            expected = model_take(model, index, operation)
            advance(manager, 1.0)
            status = manager.wait(task_id, timeout=BOUND)
            if expected is None:
                expected_calls += 1
                assert (status["status"], status["result"]) == ("completed", {"real": index})
                assert "injected_faults" not in status
            else:
                assert status["status"] == "failed"
                assert status["error"]["details"]["exception_message"] == f"rule {expected}"
                assert status["injected_faults"] == [
                    {"attempt": 1, "fault": f"raise ValueError('rule {expected}')"}
                ]
            assert real.calls == expected_calls
        faulted_runs = len(steps) - expected_calls
        assert manager.faults.injected_total == faulted_runs
        assert manager.get_stats()["injected_faults"] == faulted_runs
        left = [(r.rule_id, r.remaining) for r in manager.faults.rules()]
        assert left == [(armed[m.number].rule_id, m.remaining) for m in model]
    finally:
        manager.shutdown(wait=True, cancel_pending=True, timeout=BOUND)
