"""Hardening of the library's argument checks and of the registry (issue 14).

A count past a machine int or a duration past ten years is refused with a ValueError
that names it (1, 12, 18); a read-only query that fails answers its asker and restarts
nothing, so no caller can use up the manager's restart budget (1); a stored moment
beyond what a datetime holds never breaks a status dict (12); no blocking wait raises
OverflowError for a long timeout (18).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pykka
import pytest

from actors import (
    QueryFailedError,
    RetryPolicy,
    SystemClock,
    TaskContext,
    TaskStatus,
)
from actors._core.messages import GetStats, ListTasks
from actors.lowlevel import TimerService
from actors.testing import wait_until
from actors.validation import MAX_SECONDS, check_count, check_seconds
from storycore_tasks import TaskManager
from storycore_tasks.errors import ErrorCodes, error_from_exception, iso_utc
from storycore_tasks.manager import snapshot_to_status
from storycore_tasks.testing import LifecycleCapture
from tests import hardening_ops

WAIT = 15.0  # seconds any wait may take before the test fails (never slept)
MakeManager = Callable[..., TaskManager]


def quick(params: Mapping[str, Any], task: TaskContext) -> Any:
    return dict(params)


# -- 1: counts, and failing queries --------------------------------------------------------


@pytest.mark.parametrize("limit", [2**63, 2**64, 10**100])
def test_list_tasks_refuses_a_limit_past_a_machine_int(
    make_manager: MakeManager, limit: int
) -> None:
    """list_tasks(limit=2**63) is a ValueError naming limit and its bound, raised before
    the registry is asked; the manager carries on with nothing restarted."""
    manager = make_manager(num_workers=1)
    manager.wait(manager.create_task(quick, {"n": 1}), timeout=WAIT)
    with pytest.raises(ValueError, match=rf"limit must be at most {sys.maxsize}"):
        manager.list_tasks(limit=limit)
    assert len(manager.list_tasks(limit=sys.maxsize)) == 1
    assert manager.get_stats()["restarts"]["total"] == 0


def test_check_count_bounds_every_count_to_a_machine_int() -> None:
    """The shared count check refuses past sys.maxsize (or a given maximum) by name."""
    assert check_count("n", sys.maxsize) == sys.maxsize
    with pytest.raises(ValueError, match="n must be at most"):
        check_count("n", sys.maxsize + 1)
    with pytest.raises(ValueError, match="n must be at most 10, got 11"):
        check_count("n", 11, maximum=10)
    for name, kwargs in [
        ("num_workers", {"num_workers": 2**63}),
        ("max_pending", {"max_pending": 2**63}),
        ("max_restarts", {"max_restarts": 2**63}),
    ]:
        with pytest.raises(ValueError, match=name):
            TaskManager(**kwargs)


@pytest.mark.parametrize("megabytes", [2.0**43, 1e300])
def test_a_memory_limit_past_what_the_kernel_holds_is_refused(
    make_manager: MakeManager, megabytes: float
) -> None:
    """memory_limit_mb whose bytes overflow RLIMIT_AS is a ValueError naming it, not a
    child that exits (WORKER_CRASHED) trying to set it."""
    manager = make_manager(num_workers=1)
    with pytest.raises(ValueError, match="memory_limit_mb must be at most"):
        manager.create_task(quick, isolation="process", memory_limit_mb=megabytes)
    with pytest.raises(ValueError, match="memory_limit_mb must be at most"):
        TaskManager(memory_limit_mb=megabytes)
    assert manager.list_tasks() == []


def test_many_failing_queries_in_a_row_restart_nothing(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    """Read-only queries that fail inside the registry (a real out-of-range ListTasks
    sent past the checks, and injected faults on status queries), far more than
    max_restarts of them: each asker gets QueryFailedError naming the query, each is
    logged, the restart count stays 0, and the manager goes on answering and running
    tasks."""
    manager = make_manager(num_workers=1, max_restarts=3)
    done = manager.create_task(quick, {"n": 1})
    manager.wait(done, timeout=WAIT)
    registry = manager.runtime._registry
    for _ in range(10):
        with pytest.raises(QueryFailedError) as raised:
            registry.ask(ListTasks(None, 2**63, None), timeout=WAIT)
        assert raised.value.request == "ListTasks"
        assert isinstance(raised.value.error, ValueError)
    for _ in range(10):
        manager.faults.fail_registry(on="status")
        with pytest.raises(QueryFailedError, match="nothing was restarted"):
            manager.get_task_status(done)
    restarts = manager.get_stats()["restarts"]
    assert (restarts["registry"], restarts["total"], restarts["gave_up"]) == (0, 0, None)
    logged = captured_lifecycle.named("actor.query_failed")
    assert [e["request"] for e in logged] == ["ListTasks"] * 10 + ["GetSnapshot"] * 10
    assert {e["actor"] for e in logged} == {"registry"}
    assert captured_lifecycle.named("actor.restarted") == []
    assert manager.get_task_status(done)["status"] == "completed"  # type: ignore[index]
    assert registry.ask(GetStats(), timeout=WAIT).total_tasks == 1
    after = manager.create_task(quick, {"n": 2})
    assert manager.wait(after, timeout=WAIT)["result"] == {"n": 2}
    assert manager.runtime.closed is False


def test_a_failing_query_is_an_internal_error_that_says_nothing_changed() -> None:
    """Over HTTP and the router a QueryFailedError is INTERNAL_ERROR (500), with the
    query named and a remedy, not SERVICE_UNAVAILABLE (nothing is down)."""
    error = error_from_exception(QueryFailedError("registry", "ListTasks", ValueError("x")))
    assert error.code is ErrorCodes.INTERNAL_ERROR
    assert error.details == {"request": "ListTasks", "exception_type": "ValueError"}
    assert "nothing changed" in error.remediation


def test_a_failing_state_change_still_restarts_and_counts(make_manager: MakeManager) -> None:
    """The mechanism is only for queries: a failing state change (a Register) is still a
    restart, counted toward the intensity."""
    manager = make_manager(num_workers=1)
    manager.faults.fail_registry(on="create")
    casualty = manager.create_task(quick, {"n": 1})
    ended = manager.wait(casualty, timeout=WAIT)
    assert ended["error"]["code"] == "INTERRUPTED"
    assert manager.get_stats()["restarts"]["registry"] == 1


# -- 12: moments that must stay datetimes ----------------------------------------------------


@pytest.mark.parametrize("delay", [1e12, MAX_SECONDS * 1.001, 1e300])
def test_a_delay_past_ten_years_is_refused(make_manager: MakeManager, delay: float) -> None:
    """create_task(delay=1e12) is a ValueError naming delay and the bound; listings of
    the tasks that were accepted keep working."""
    manager = make_manager(num_workers=1)
    ok = manager.create_task(quick, {"n": 1}, delay=MAX_SECONDS)
    with pytest.raises(ValueError, match=r"delay must be at most 3\.1536e\+08 seconds"):
        manager.create_task(quick, {"n": 2}, delay=delay)
    [listed] = manager.list_tasks()
    assert listed["task_id"] == ok
    assert listed["scheduled_for"] is not None
    assert manager.cancel_task(ok) is True


def test_a_run_at_past_ten_years_is_refused(make_manager: MakeManager) -> None:
    """run_at more than ten years from now is refused as a delay that long is."""
    manager = make_manager(num_workers=1)
    with pytest.raises(ValueError, match=r"run_at .* more than"):
        manager.create_task(quick, run_at=datetime.now(UTC) + timedelta(days=365 * 11))
    task_id = manager.create_task(quick, run_at=datetime.now(UTC) + timedelta(days=365 * 9))
    assert manager.get_task_status(task_id)["status"] == "pending"  # type: ignore[index]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda m: m.create_task(quick, timeout=1e12), "timeout"),
        (lambda m: m.schedule_every(1e12, quick), "interval"),
        (lambda m: m.schedule_every(1.0, quick, first_in=1e12), "first_in"),
        (lambda m: m.cleanup_old_tasks(1e12), "max_age_seconds"),
        (lambda m: m.wait("00000000-0000-0000-0000-000000000000", timeout=1e300), "timeout"),
        (lambda m: m.register_operation("op", quick, max_failures=1, cooldown=1e12), "cooldown"),
        (lambda m: RetryPolicy(max_backoff=1e12), "max_backoff"),
        (lambda m: RetryPolicy(backoff=1e300), "backoff"),
        (lambda m: TaskManager(max_task_age=1e12), "max_task_age"),
        (lambda m: TaskManager(default_timeout=1e12), "default_timeout"),
        (lambda m: TaskManager(restart_window=1e12), "restart_window"),
        (lambda m: TaskManager(failure_window=1e12, max_failures=1), "failure_window"),
    ],
)
def test_every_duration_argument_is_bounded_to_ten_years(
    make_manager: MakeManager, call: Callable[[TaskManager], Any], name: str
) -> None:
    """Every argument in seconds (timeouts, intervals, retention, back-off, windows)
    is a ValueError naming it past ten years, never an OverflowError later."""
    manager = make_manager(num_workers=1)
    with pytest.raises(ValueError, match=name):
        call(manager)
    assert manager.list_tasks() == []


def test_check_seconds_names_the_bound_and_keeps_none() -> None:
    """The shared check takes up to MAX_SECONDS, and says how to ask for no limit."""
    assert check_seconds("t", MAX_SECONDS) == MAX_SECONDS
    with pytest.raises(ValueError, match=r"t must be at most .* \(10 years\).*pass None"):
        check_seconds("t", MAX_SECONDS + 1, allow_none=True)
    assert check_seconds("t", None, allow_none=True) is None


@pytest.mark.parametrize(
    "moment", [1e12, -1e12, 1e300, -1e300, math.inf, -math.inf, math.nan, 253402300800.0]
)
def test_a_status_dict_never_raises_for_a_stored_moment(
    make_manager: MakeManager, moment: float
) -> None:
    """A snapshot whose stored times are beyond what a datetime holds (a record from
    before the bound) still converts: the first or last ISO moment, None for NaN."""
    manager = make_manager(num_workers=1)
    task_id = manager.create_task(quick, {"n": 1})
    manager.wait(task_id, timeout=WAIT)
    snapshot = manager.runtime.snapshot(task_id)
    assert snapshot is not None
    odd = replace(
        snapshot, scheduled_for=moment, ended_at=moment, started_at=moment, updated_at=moment
    )
    status = snapshot_to_status(odd)
    shown = iso_utc(moment)
    assert status["scheduled_for"] == status["ended_at"] == shown
    if math.isnan(moment):
        assert shown is None
    else:
        assert shown is not None
        assert datetime.fromisoformat(shown).year in (1, 9999)


# -- 18: long timeouts on blocking waits ------------------------------------------------------


def test_wait_and_shutdown_refuse_an_overlong_timeout_by_name(make_manager: MakeManager) -> None:
    """wait(timeout=1e300) and shutdown(timeout=1e300) are ValueErrors, not OverflowError;
    the longest allowed timeout works."""
    manager = make_manager(num_workers=1)
    task_id = manager.create_task(quick, {"n": 1})
    with pytest.raises(ValueError, match="timeout must be at most"):
        manager.wait(task_id, timeout=1e300)
    assert manager.wait(task_id, timeout=MAX_SECONDS)["status"] == "completed"
    with pytest.raises(ValueError, match="timeout must be at most"):
        manager.shutdown(timeout=1e300)
    manager.shutdown(wait=True, timeout=MAX_SECONDS)


class Sleeper:
    """Waits for its cancel with an enormous timeout and records how the wait ended."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.entered = threading.Event()
        self.outcome: list[object] = []

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> str:
        self.entered.set()
        try:
            self.outcome.append(task.wait_cancelled(self.timeout))
        except BaseException as exc:
            self.outcome.append(exc)
            raise
        return "woke"


def test_an_operation_may_wait_cancelled_with_any_timeout(make_manager: MakeManager) -> None:
    """task.wait_cancelled(1e300) in a thread blocks until the cancel and returns True
    (no OverflowError)."""
    manager = make_manager(num_workers=1, stop_grace=WAIT)
    sleeper = Sleeper(1e300)
    task_id = manager.create_task(sleeper)
    assert sleeper.entered.wait(WAIT)
    assert manager.cancel_task(task_id) is True
    assert manager.wait(task_id, timeout=WAIT)["status"] == "cancelled"
    assert wait_until(lambda: sleeper.outcome == [True], timeout=WAIT), sleeper.outcome


def test_a_child_may_wait_cancelled_with_any_timeout(make_manager: MakeManager) -> None:
    """The same in a child process: the operation is still waiting when asked (it did
    not fail at once), and it returns by itself at the cancel (its child is not
    signalled and replaced)."""
    manager = make_manager(num_workers=1, stop_grace=WAIT, isolation="process")
    task_id = manager.create_task(hardening_ops.progress_then_wait_cancelled, {"timeout": 1e300})

    def progressed() -> bool:
        found = manager.get_task_status(task_id)
        return found is not None and found["progress"] == 0.5

    assert wait_until(progressed, timeout=WAIT)
    with pytest.raises(TimeoutError):  # an OverflowError would have failed it by now
        manager.wait(task_id, timeout=0.3)
    assert manager.cancel_task(task_id) is True
    assert manager.wait(task_id, timeout=WAIT)["status"] == "cancelled"
    assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=WAIT)
    assert manager.get_stats()["process_pool"]["replaced_total"] == 0


def test_the_test_kit_waits_for_an_event_with_any_timeout(make_manager: MakeManager) -> None:
    """LifecycleCapture.wait_for(timeout=1e300) blocks until the event comes (no
    OverflowError): the task completes only after the wait has begun."""
    go = threading.Event()

    def held(params: Mapping[str, Any], task: TaskContext) -> str:
        assert go.wait(WAIT)
        return "done"

    with LifecycleCapture() as captured:
        manager = make_manager(num_workers=1)
        task_id = manager.create_task(held)
        captured.wait_for("task.started", task_id=task_id, timeout=WAIT)
        releaser = threading.Timer(0.05, go.set)  # lets the wait below begin first
        releaser.start()
        try:
            found = captured.wait_for("task.completed", task_id=task_id, timeout=1e300)
        finally:
            go.set()
            releaser.join()
    assert found["task_id"] == task_id


class _Recorder(pykka.ThreadingActor):
    def __init__(self, fired: threading.Event) -> None:
        super().__init__()
        self._fired = fired

    def on_receive(self, message: Any) -> None:
        self._fired.set()


class _FarAwareClock(SystemClock):
    """The real clock, saying when the timer thread asks how long to wait for a deadline
    beyond what a blocking wait accepts."""

    def __init__(self) -> None:
        self.asked_far = threading.Event()

    def seconds_until(self, deadline: float) -> float | None:
        seconds = super().seconds_until(deadline)
        if seconds is not None and seconds > threading.TIMEOUT_MAX:
            self.asked_far.set()
        return seconds


def test_the_timer_thread_survives_a_deadline_beyond_any_blocking_wait() -> None:
    """A deadline further away than threading.TIMEOUT_MAX (a start time stored by an
    older version) makes the timer thread wait (clamped), not die of OverflowError: a
    timer armed afterwards still fires."""
    clock = _FarAwareClock()
    timers = TimerService(clock, name="far-timers")
    fired = threading.Event()
    target = _Recorder.start(fired)
    try:
        timers.start()
        timers.schedule_after(threading.TIMEOUT_MAX * 10, target, "far")
        assert clock.asked_far.wait(WAIT)
        # The thread holds the timer lock from that question to its wait: this arms
        # the next timer only once it waits (or has died).
        timers.schedule_after(0.0, target, "now")
        assert fired.wait(WAIT)
        assert timers.statistics().armed == 1
    finally:
        timers.stop(wait=True)
        target.stop()


def test_a_status_listing_stays_whole_with_a_pending_task_at_the_bound(
    make_manager: MakeManager,
) -> None:
    """The longest delay allowed is listed, counted and cancelled like any other."""
    manager = make_manager(num_workers=1)
    task_id = manager.create_task(quick, delay=MAX_SECONDS)
    assert [t["task_id"] for t in manager.list_tasks(TaskStatus.PENDING)] == [task_id]
    assert manager.get_stats()["scheduled"] == 1
    assert manager.cancel_task(task_id) is True
