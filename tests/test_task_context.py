"""TaskContext: what an operation sees of its task, against a real registry and runtime.

Operations run on real threads; the test waits on events, futures and ``manager.wait``
with timeouts, and advances a ManualClock for the deadlines. Every operation that blocks
is released in a ``finally``.
"""

from __future__ import annotations

import math
import threading
import tracemalloc
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

from actors import ManualClock, StopReason, TaskContext
from actors._core.messages import ProgressReady
from actors._execution.context import LocalTaskContext, StopFlag
from actors._execution.published import Published
from actors.testing import wait_until
from storycore_tasks import TaskManager

WAIT = 10.0  # seconds any wait for a task, an event or a future may take before failing
MILLION = 1_000_000


@pytest.fixture
def manager(make_manager: Callable[..., TaskManager], clock: ManualClock) -> TaskManager:
    return make_manager(num_workers=2, clock=clock)


# -- coalescing -----------------------------------------------------------------------------------


def test_a_million_progress_updates_send_few_messages_and_hold_constant_memory(
    make_manager: Callable[..., TaskManager], clock: ManualClock
) -> None:
    """TaskContext coalescing: 1e6 updates -> few ProgressReady messages, constant memory."""

    # The fractions exist before tracing starts and the loop allocates nothing of its own:
    # what tracemalloc sees is what update_progress allocates, and tracing a million floats
    # of the test's own would only measure the machine's speed against WAIT.
    fractions = [i / MILLION for i in range(MILLION)]

    def tight_loop(params: Mapping[str, Any], task: TaskContext) -> dict[str, int]:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        for fraction in fractions:
            task.update_progress(fraction)
        task.partial_result = {"steps": MILLION}
        _, peak = tracemalloc.get_traced_memory()
        return {"peak_growth_bytes": peak - before}

    tracemalloc.start()
    try:
        # The manager lives inside the capture, so no runtime thread logs while the
        # structlog configuration is swapped in or out.
        with capture_logs() as logs:
            manager = make_manager(num_workers=1, clock=clock)
            task_id = manager.create_task(tight_loop)
            status = manager.wait(task_id, timeout=WAIT)
            manager.shutdown(wait=True, timeout=WAIT)
    finally:
        tracemalloc.stop()
    drained = [e for e in logs if e["event"] == "task.progress" and e["task_id"] == task_id]
    assert (
        status["status"],
        status["progress"],
        status["partial_result"],
    ) == ("completed", 1.0, {"steps": MILLION})
    # One task.progress debug event per ProgressReady the registry drained with progress.
    assert 1 <= len(drained) < 10_000
    # A per-call leak would be >= 8 MB (one reference each); the loop must stay in a few MB.
    assert status["result"]["peak_growth_bytes"] < 4 * 1024 * 1024


def test_only_one_progress_message_is_in_flight_until_the_registry_drains() -> None:
    """TaskContext: at most one ProgressReady in flight; drain() takes the latest and re-arms."""
    inbox: list[Any] = []

    class Registry(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            if message == "count":
                return len(inbox)
            inbox.append(message)
            return None

    registry = Registry.start()
    try:
        published = Published()
        context = LocalTaskContext("task-1", registry, published=published)
        for i in range(1000):
            context.update_progress(i / 1000)
        context.partial_result = "p1"
        assert registry.ask("count", timeout=WAIT) == 1
        assert ProgressReady("task-1", published) == inbox[0]
        assert published.drain() == (0.999, "p1", True)
        context.update_progress(1.0)
        assert registry.ask("count", timeout=WAIT) == 2
    finally:
        registry.stop(block=True, timeout=WAIT)


def test_progress_to_a_stopped_registry_is_dropped_quietly() -> None:
    """TaskContext: reporting after the registry stopped (shutdown without wait) never raises."""
    published = Published()
    context = LocalTaskContext("task-1", _stopped_actor(), published=published)
    context.update_progress(0.5)
    context.partial_result = "kept"
    assert (published.drain()[0], context.partial_result) == (0.5, "kept")


# -- update_progress validation -------------------------------------------------------------------


def test_update_progress_rejects_bad_fractions_inside_the_operation(
    manager: TaskManager,
) -> None:
    """update_progress: NaN, inf or outside [0, 1] -> ValueError; non-number -> TypeError."""
    bad: list[tuple[str, Any]] = [
        ("nan", math.nan),
        ("inf", math.inf),
        ("negative", -0.1),
        ("above one", 1.5),
        ("string", "0.5"),
        ("bool", True),
        ("none", None),
    ]
    published = threading.Event()
    release = threading.Event()

    def operation(params: Mapping[str, Any], task: TaskContext) -> dict[str, str | None]:
        seen: dict[str, str | None] = {}
        for label, value in [("zero", 0), ("quarter", 0.25)]:
            task.update_progress(value)
            seen[label] = None
        for label, value in bad:
            try:
                task.update_progress(value)
                seen[label] = None
            except (ValueError, TypeError) as exc:
                seen[label] = type(exc).__name__
        task.partial_result = "after the bad values"  # flushes progress with it
        published.set()
        release.wait(timeout=WAIT)
        return seen

    try:
        task_id = manager.create_task(operation)
        assert True is published.wait(timeout=WAIT)
        assert True is wait_until(
            lambda: _status(manager, task_id).get("partial_result") == "after the bad values",
            timeout=WAIT,
        )
        assert _status(manager, task_id)["progress"] == 0.25
    finally:
        release.set()
    assert manager.wait(task_id, timeout=WAIT)["result"] == {
        "zero": None,
        "quarter": None,
        "nan": "ValueError",
        "inf": "ValueError",
        "negative": "ValueError",
        "above one": "ValueError",
        "string": "TypeError",
        "bool": "TypeError",
        "none": "TypeError",
    }


# -- partial results ------------------------------------------------------------------------------


def test_partial_result_reads_back_what_the_operation_set(manager: TaskManager) -> None:
    """TaskContext.partial_result: None until set, then the latest value; the record keeps it."""

    def operation(params: Mapping[str, Any], task: TaskContext) -> list[Any]:
        reads = [task.partial_result]
        task.partial_result = {"frames": 3}
        reads.append(task.partial_result)
        task.partial_result = {"frames": 7}
        reads.append(task.partial_result)
        return reads

    task_id = manager.create_task(operation)
    status = manager.wait(task_id, timeout=WAIT)
    assert (
        status["result"],
        status["partial_result"],
    ) == ([None, {"frames": 3}, {"frames": 7}], {"frames": 7})


def test_the_latest_partial_result_appears_in_the_timeout_error(
    manager: TaskManager, clock: ManualClock
) -> None:
    """Timeout: FAILED/TIMEOUT carries the last partial result; the operation sees TIMEOUT."""
    for round_no in range(5):
        published = threading.Event()
        release = threading.Event()
        seen: Future[tuple[bool, StopReason | None]] = Future()

        def operation(
            params: Mapping[str, Any],
            task: TaskContext,
            published: threading.Event = published,
            release: threading.Event = release,
            seen: Future[tuple[bool, StopReason | None]] = seen,
        ) -> str:
            task.partial_result = {"chunks": 6, "round": params["round"]}
            task.partial_result = {"chunks": 7, "round": params["round"]}
            published.set()
            release.wait(timeout=WAIT)
            # The stop request reaches the worker after the registry recorded the timeout.
            seen.set_result((task.wait_cancelled(timeout=WAIT), task.stop_reason))
            return "late"

        try:
            task_id = manager.create_task(operation, {"round": round_no}, timeout=5.0)
            assert True is published.wait(timeout=WAIT)
            assert True is wait_until(
                lambda task_id=task_id: "partial_result" in _status(manager, task_id),
                timeout=WAIT,
            )
            clock.advance(5.0)
            status = manager.wait(task_id, timeout=WAIT)
        finally:
            release.set()
        assert (status["status"], status["error"]["code"]) == ("failed", "TIMEOUT")
        assert {
            "timeout_seconds": 5.0,
            "partial_result": {"chunks": 7, "round": round_no},
        } == status["error"]["details"]
        assert seen.result(timeout=WAIT) == (True, StopReason.TIMEOUT)


# -- cancellation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    before: tuple[bool, StopReason | None, bool]
    woke: bool
    after: tuple[bool, StopReason | None]


def test_cancel_task_is_seen_through_is_cancelled_wait_cancelled_and_stop_reason(
    manager: TaskManager,
) -> None:
    """After cancel_task: is_cancelled() is True, wait_cancelled wakes, reason CANCEL_REQUESTED."""
    started = threading.Event()
    seen: Future[_Seen] = Future()

    def operation(params: Mapping[str, Any], task: TaskContext) -> None:
        before = (task.is_cancelled(), task.stop_reason, task.wait_cancelled(timeout=0.0))
        started.set()
        woke = task.wait_cancelled(timeout=WAIT)
        seen.set_result(_Seen(before, woke, (task.is_cancelled(), task.stop_reason)))

    task_id = manager.create_task(operation)
    assert True is started.wait(timeout=WAIT)
    assert True is manager.cancel_task(task_id)
    assert False is manager.cancel_task(task_id)  # already terminal
    assert manager.wait(task_id, timeout=WAIT)["status"] == "cancelled"
    assert _Seen(
        before=(False, None, False), woke=True, after=(True, StopReason.CANCEL_REQUESTED)
    ) == seen.result(timeout=WAIT)


def test_a_task_cancelled_right_after_creation_never_runs_or_sees_the_cancel(
    make_manager: Callable[..., TaskManager], clock: ManualClock
) -> None:
    """Cancel racing the start: never started -> never runs (inv. 3); started -> sees the cancel."""
    manager = make_manager(num_workers=1, clock=clock)
    seen: dict[str, Future[StopReason | None]] = {}

    def operation(params: Mapping[str, Any], task: TaskContext) -> None:
        task.wait_cancelled(timeout=WAIT)
        seen[params["key"]].set_result(task.stop_reason)

    never_started: list[str] = []
    for round_no in range(60):
        key = f"round-{round_no}"
        seen[key] = Future()
        task_id = manager.create_task(operation, {"key": key})
        assert True is manager.cancel_task(task_id)
        status = manager.wait(task_id, timeout=WAIT)
        assert status["status"] == "cancelled"
        if status["started_at"] is None:
            never_started.append(key)
        else:
            assert seen[key].result(timeout=WAIT) == StopReason.CANCEL_REQUESTED
    manager.shutdown(wait=True, timeout=WAIT)  # every operation has returned after this
    assert [False] * len(never_started) == [seen[key].done() for key in never_started]


def test_the_first_stop_reason_wins() -> None:
    """StopFlag.request: the first reason is kept; later requests do not overwrite it, and
    the context shows the first."""
    flag = StopFlag()
    context = LocalTaskContext("task-1", _stopped_actor(), flag)
    assert (context.is_cancelled(), context.stop_reason) == (False, None)
    assert flag.request(StopReason.TIMEOUT) is True
    assert flag.request(StopReason.CANCEL_REQUESTED) is False
    assert flag.request(StopReason.SHUTDOWN) is False
    assert (
        context.is_cancelled(),
        context.wait_cancelled(timeout=0.0),
        context.stop_reason,
    ) == (True, True, StopReason.TIMEOUT)


# -- helpers --------------------------------------------------------------------------------------


def _status(manager: TaskManager, task_id: str) -> dict[str, Any]:
    status = manager.get_task_status(task_id)
    assert status is not None
    return status


def _stopped_actor() -> pykka.ActorRef[Any]:
    """A ref whose actor has already stopped: a registry that is gone."""
    ref = pykka.ThreadingActor.start()
    ref.stop(block=True, timeout=WAIT)
    return ref
