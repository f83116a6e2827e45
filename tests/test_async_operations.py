"""Coroutine operations on the event-loop back-end: isolation resolved at submission, slots
of their own, the stop ladder with a real cancel (``asyncio.Task.cancel``), a coroutine
that swallows cancellation, a loop-blocking coroutine, and the rest of the runtime
(store, retries, dependencies, faults, the test kit) with coroutine operations."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from actors import AsyncTaskContext, Isolation, ManualClock, RetryPolicy, TaskContext
from actors._execution.loop_watchdog import LoopWatchdog
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.testing import LifecycleCapture, advance

MakeManager = Callable[..., TaskManager]
DEADLINE = 30.0  # seconds any barrier below waits before the test fails


class CoroutineGate:
    """A coroutine operation that awaits ``asyncio.sleep(3600)`` (never looking at
    ``is_cancelled``), with events a test waits on: entered, and its ``finally`` ran."""

    def __init__(self, partial: Any = None) -> None:
        self.partial = partial
        self.entered = threading.Event()
        self.finally_ran = threading.Event()
        self.cancelled_error = threading.Event()

    async def __call__(self, params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        if self.partial is not None:
            task.partial_result = self.partial
        self.entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled_error.set()
            raise
        finally:
            self.finally_ran.set()
        return "slept an hour"


def loop_coroutines(manager: TaskManager) -> int:
    """Coroutines of the manager's loop that have not returned."""
    return manager.runtime.async_backend.statistics().coroutines


# -- submission ------------------------------------------------------------------------


async def double(params: Mapping[str, Any], task: AsyncTaskContext) -> dict[str, Any]:
    task.update_progress(0.5)
    task.partial_result = {"half": params["n"]}
    await asyncio.sleep(0)
    return {"double": params["n"] * 2, "contexts": _context_kinds(task)}


def _context_kinds(task: object) -> list[str]:
    return [
        name
        for name, protocol in (("TaskContext", TaskContext), ("AsyncTaskContext", AsyncTaskContext))
        if isinstance(task, protocol)
    ]


def test_a_coroutine_function_runs_on_the_event_loop_by_default(
    make_manager: MakeManager,
) -> None:
    """A coroutine function given no isolation gets "async", whatever the manager's
    default; its context has every TaskContext member, wait_cancelled awaitable."""
    manager = make_manager(num_workers=1, isolation="process")
    task_id = manager.create_task(double, {"n": 21})
    done = manager.wait(task_id, timeout=DEADLINE)
    assert done["status"] == "completed"
    assert done["isolation"] == "async"
    assert done["result"] == {"double": 42, "contexts": ["TaskContext", "AsyncTaskContext"]}
    assert done["partial_result"] == {"half": 21}
    assert done["progress"] == 1.0


def test_named_coroutine_operations_run_too(make_manager: MakeManager) -> None:
    """register_operation takes a coroutine function; a task by name runs it on the loop."""
    manager = make_manager(num_workers=1)
    manager.register_operation("double", double)
    done = manager.wait(manager.create_task("double", {"n": 2}), timeout=DEADLINE)
    assert (done["status"], done["isolation"], done["result"]["double"]) == (
        "completed",
        "async",
        4,
    )


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_coroutine_function_with_thread_or_process_isolation_is_refused(
    make_manager: MakeManager, isolation: str
) -> None:
    """A coroutine cannot run in a thread or a child: the error names the fix."""
    manager = make_manager(num_workers=1)
    with pytest.raises(ValueError, match="coroutine function") as refused:
        manager.create_task(double, {"n": 1}, isolation=isolation)
    assert "leave isolation out" in str(refused.value)
    assert manager.get_stats()["total_tasks"] == 0


def test_a_plain_function_with_async_isolation_is_refused(make_manager: MakeManager) -> None:
    """isolation='async' is for coroutine functions; the error says what to do."""
    manager = make_manager(num_workers=1)

    def plain(params: Mapping[str, Any], task: TaskContext) -> int:
        return 1

    with pytest.raises(ValueError, match="make it async def"):
        manager.create_task(plain, isolation="async")
    with pytest.raises(ValueError, match="cannot be limited"):
        manager.create_task(double, {"n": 1}, memory_limit_mb=100)


def test_async_cannot_be_the_managers_default_isolation() -> None:
    """The default isolation is for plain functions; coroutines get async by themselves."""
    with pytest.raises(ValueError, match="cannot be the default"):
        TaskManager(isolation="async")
    with pytest.raises(ValueError, match="async_concurrency"):
        TaskManager(async_concurrency=0)


# -- cancel and timeout ----------------------------------------------------------------------


def test_a_coroutine_cancelled_while_awaiting_stops_at_the_interrupt_and_its_finally_runs(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Cancel: the flag at once (the task reads cancelled), then, stop_grace later in
    virtual time, asyncio's cancel: CancelledError at its await, its finally ran, the
    coroutine is gone and its slot free."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=2.0)
    gate = CoroutineGate()
    task_id = manager.create_task(gate)
    assert gate.entered.wait(DEADLINE)
    assert manager.cancel_task(task_id)
    assert manager.get_task_status(task_id)["status"] == "cancelled"  # type: ignore[index]
    advance(manager, 1.9)  # within the cooperative grace: only the flag is set
    assert not gate.finally_ran.is_set()
    advance(manager, 0.1)
    assert gate.finally_ran.wait(DEADLINE)
    assert gate.cancelled_error.is_set()
    assert wait_until(lambda: loop_coroutines(manager) == 0, timeout=DEADLINE)
    advance(manager, 0)
    stats = manager.get_stats()
    assert (stats["running"], stats["stopping"]) == (0, 0)
    assert manager.get_task_status(task_id)["status"] == "cancelled"  # type: ignore[index]


def test_a_coroutine_awaiting_wait_cancelled_returns_at_once_on_cancel(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """The cooperative step reaches a coroutine awaiting task.wait_cancelled() at once,
    with no virtual time passing."""
    returned: list[bool] = []
    entered = threading.Event()

    async def patient(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        entered.set()
        returned.append(await task.wait_cancelled(3600))
        return "noticed"

    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(patient)
    assert entered.wait(DEADLINE)
    assert manager.cancel_task(task_id)
    assert wait_until(lambda: loop_coroutines(manager) == 0, timeout=DEADLINE)
    assert returned == [True]


def test_wait_cancelled_times_out_as_false_without_holding_the_loop(
    make_manager: MakeManager,
) -> None:
    """await wait_cancelled(seconds) returns False after its timeout when no stop came,
    and other coroutines ran meanwhile."""
    order: list[str] = []

    async def waits(params: Mapping[str, Any], task: AsyncTaskContext) -> bool:
        result = await task.wait_cancelled(0.05)
        order.append("waited")
        return result

    async def quick(params: Mapping[str, Any], task: AsyncTaskContext) -> None:
        order.append("quick")

    manager = make_manager(num_workers=1)
    waiting = manager.create_task(waits)
    manager.wait(manager.create_task(quick), timeout=DEADLINE)
    assert manager.wait(waiting, timeout=DEADLINE)["result"] is False
    assert order == ["quick", "waited"]


def test_a_timeout_of_an_hour_long_await_is_reported_at_the_deadline_with_its_partial(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A coroutine in await asyncio.sleep(3600) with timeout=5: failed/TIMEOUT exactly at
    the deadline (virtual time) with its partial result; stop_grace later its asyncio
    task is cancelled and the coroutine is gone."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=1.0)
    gate = CoroutineGate(partial={"chapters": 3})
    task_id = manager.create_task(gate, timeout=5.0)
    assert gate.entered.wait(DEADLINE)
    advance(manager, 4.999)
    assert manager.get_task_status(task_id)["status"] == "running"  # type: ignore[index]
    advance(manager, 0.001)
    failed = manager.wait(task_id, timeout=DEADLINE)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "TIMEOUT"
    assert failed["error"]["details"]["partial_result"] == {"chapters": 3}
    snapshot = manager.runtime.snapshot(task_id)
    assert snapshot is not None
    assert snapshot.started_at is not None
    assert snapshot.ended_at == pytest.approx(snapshot.started_at + 5.0, abs=1e-9)
    assert not gate.finally_ran.is_set()  # the grace: only the flag so far
    advance(manager, 1.0)
    assert gate.finally_ran.wait(DEADLINE)
    assert wait_until(lambda: loop_coroutines(manager) == 0, timeout=DEADLINE)
    advance(manager, 0)
    assert manager.get_stats()["stopping"] == 0
    # The late end changes nothing: terminal is final.
    assert manager.get_task_status(task_id)["error"]["code"] == "TIMEOUT"  # type: ignore[index]


def test_a_coroutine_swallowing_cancellation_is_reported_and_the_loop_runs_on(
    make_manager: MakeManager, clock: ManualClock, captured_lifecycle: LifecycleCapture
) -> None:
    """A coroutine that swallows CancelledError twice: the first kill step that finds
    it still running logs task.cancellation_ignored (counted); it is cancelled again
    every 0.1 s until it returns; other coroutines run meanwhile; then its slot is free."""
    swallowed = threading.Semaphore(0)

    async def stubborn(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        for _ in range(2):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed.release()
        await asyncio.sleep(3600)  # the third cancel ends it
        return "never"

    manager = make_manager(num_workers=1, clock=clock, stop_grace=1.0)
    task_id = manager.create_task(stubborn)
    assert wait_until(lambda: loop_coroutines(manager) == 1, timeout=DEADLINE)
    assert manager.cancel_task(task_id)
    advance(manager, 1.0)  # the interrupt: the first cancel
    assert swallowed.acquire(timeout=DEADLINE)
    # The loop is not held: another coroutine runs to its end while this one lives.
    other = manager.create_task(double, {"n": 5})
    assert manager.wait(other, timeout=DEADLINE)["result"]["double"] == 10
    advance(manager, 0.1)  # the first kill: cancelled again, and reported
    assert swallowed.acquire(timeout=DEADLINE)
    ignored = captured_lifecycle.wait_for("task.cancellation_ignored", task_id=task_id)
    assert ignored["log_level"] == "warning"
    assert ignored["cancels"] == 2
    assert loop_coroutines(manager) == 1
    advance(manager, 0.1)  # the next kill ends it
    assert wait_until(lambda: loop_coroutines(manager) == 0, timeout=DEADLINE)
    advance(manager, 0)
    stats = manager.get_stats()
    assert stats["stopping"] == 0
    assert stats["async"]["cancellations_ignored_total"] == 1
    assert len(captured_lifecycle.named("task.cancellation_ignored", task_id=task_id)) == 1


# -- a blocked loop ----------------------------------------------------------------------------


def test_a_loop_blocking_coroutine_is_detected_with_its_task_id(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    """time.sleep inside a coroutine (a misuse) blocks the loop: the watchdog logs
    task.loop_blocked naming the task, and get_stats counts it."""

    async def blocks(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        time.sleep(0.5)  # synchronous: holds up every other coroutine (the misuse)
        return "blocked"

    manager = make_manager(num_workers=1)
    task_id = manager.create_task(blocks)
    assert manager.wait(task_id, timeout=DEADLINE)["status"] == "completed"
    blocked = captured_lifecycle.wait_for("task.loop_blocked", task_id=task_id)
    assert blocked["lag_seconds"] >= blocked["threshold_seconds"]  # rounded to 1 ms
    stats = manager.get_stats()["async"]
    assert stats["loop_blocked_total"] >= 1
    assert stats["max_lag_seconds"] > 0.1  # not rounded


def test_the_watchdog_reports_each_stall_once() -> None:
    """LoopWatchdog.tick, called directly with times past the threshold: a stall is
    reported once, with its lag; a beat ends it; the next stall is reported again. In a
    coroutine it is a blocked loop naming the task; outside any, lag no task caused."""
    loop = asyncio.new_event_loop()
    now = [100.0]
    blocked: list[tuple[float, str | None]] = []
    lagged: list[float] = []
    named: list[asyncio.Task[Any] | None] = []

    def task_id_of(task: asyncio.Task[Any] | None) -> str | None:
        named.append(task)
        return "task-1"

    watchdog = LoopWatchdog(
        loop,
        threshold=0.1,
        task_id_of=task_id_of,
        on_blocked=lambda lag: blocked.append((lag, "task-1")),
        on_lagged=lagged.append,
        clock=lambda: now[0],
    )

    async def tick_inside_a_coroutine(at: float) -> float | None:
        return watchdog.tick(at)

    try:
        assert watchdog.tick(100.05) is None
        assert watchdog.tick(100.25) == pytest.approx(0.25)  # no coroutine: lagged
        assert watchdog.tick(100.5) is None  # the same stall
        now[0] = 100.5
        watchdog.beat()
        assert watchdog.tick(100.55) is None
        stall = loop.run_until_complete(tick_inside_a_coroutine(100.7))
        assert stall == pytest.approx(0.2)
        assert loop.run_until_complete(tick_inside_a_coroutine(100.8)) is None  # reported
        now[0] = 100.8
        watchdog.beat()
        assert watchdog.tick(100.85) is None  # the loop beats again: that stall is over
        assert watchdog.tick(100.95) == pytest.approx(0.15)  # lag first, in no coroutine
        # ... then a coroutine found blocking in the same stall: reported as blocked.
        assert loop.run_until_complete(tick_inside_a_coroutine(101.0)) == pytest.approx(0.2)
        assert lagged == [pytest.approx(0.25), pytest.approx(0.15)]
        assert blocked == [(pytest.approx(0.2), "task-1"), (pytest.approx(0.2), "task-1")]
        assert len(named) == 2
        assert named[0] is not None
    finally:
        loop.close()


def test_tasks_an_operation_leaves_running_are_cancelled_when_it_ends(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    """A fire-and-forget asyncio.create_task inside an operation does not outlive its
    task: when the operation returns, the child is cancelled (its finally runs) and
    task.children_cancelled is logged; a child it awaited is left alone."""
    child_finally = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            child_finally.set()

    async def quick_child() -> str:
        await asyncio.sleep(0)
        return "awaited"

    async def spawns(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        asyncio.create_task(forever())  # noqa: RUF006 (left running on purpose)
        return await asyncio.create_task(quick_child())

    manager = make_manager(num_workers=1)
    task_id = manager.create_task(spawns)
    assert manager.wait(task_id, timeout=DEADLINE)["result"] == "awaited"
    assert child_finally.wait(DEADLINE)
    cancelled = captured_lifecycle.wait_for("task.children_cancelled", task_id=task_id)
    assert cancelled["count"] == 1


def test_a_child_task_blocking_the_loop_is_named_by_its_operations_task_id(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    """The watchdog names the task whose operation started the asyncio task that
    blocks the loop."""

    def block() -> None:
        time.sleep(0.5)  # synchronous, in a child task: the misuse

    async def child() -> None:
        block()

    async def parent(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        await asyncio.gather(child())
        return "done"

    manager = make_manager(num_workers=1)
    task_id = manager.create_task(parent)
    assert manager.wait(task_id, timeout=DEADLINE)["status"] == "completed"
    blocked = captured_lifecycle.wait_for("task.loop_blocked", task_id=task_id)
    assert blocked["asyncio_task"] != f"task-{task_id}"  # the child, not the attempt


# -- slots -------------------------------------------------------------------------------------


def test_coroutines_have_slots_of_their_own(make_manager: MakeManager) -> None:
    """async_concurrency bounds the coroutines running at once (stopping ones
    included), apart from num_workers: a thread task holding the only worker does not
    hold up coroutines, and no more than async_concurrency run at once."""
    release = threading.Event()
    thread_entered = threading.Event()

    def hold_the_worker(params: Mapping[str, Any], task: TaskContext) -> None:
        thread_entered.set()
        release.wait(DEADLINE)

    running = 0
    peak = 0
    all_started = threading.Event()

    async def counted(params: Mapping[str, Any], task: AsyncTaskContext) -> None:
        nonlocal running, peak
        running += 1  # on the loop thread only
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if params["i"] == 9:
            all_started.set()

    manager = make_manager(num_workers=1, async_concurrency=3)
    blocker = manager.create_task(hold_the_worker)
    assert thread_entered.wait(DEADLINE)
    ids = [manager.create_task(counted, {"i": i}) for i in range(10)]
    for task_id in ids:
        assert manager.wait(task_id, timeout=DEADLINE)["status"] == "completed"
    assert peak == 3
    stats = manager.get_stats()
    assert stats["async_concurrency"] == 3
    assert manager.get_task_status(blocker)["status"] == "running"  # type: ignore[index]
    release.set()
    assert manager.wait(blocker, timeout=DEADLINE)["status"] == "completed"


class LoopbackServer:
    """An HTTP server on 127.0.0.1, on an event loop of its own thread, that answers no
    request until ``expected`` connections are open at once: proof that they are."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.connected = 0
        self.threads_when_all_in = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._all_in: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        assert self._ready.wait(DEADLINE)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(DEADLINE)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop, self._all_in = asyncio.Event(), asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._all_in is not None
        await reader.readuntil(b"\r\n\r\n")
        self.connected += 1
        if self.connected == self.expected:
            self.threads_when_all_in = threading.active_count()
            self._all_in.set()
        await self._all_in.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


async def fetch(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", params["port"])
    writer.write(b"GET / HTTP/1.1\r\nHost: loopback\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer.split(b"\r\n\r\n", 1)[1].decode()


def test_thousands_of_coroutine_tasks_await_http_at_once_on_a_bounded_set_of_threads(
    make_manager: MakeManager,
) -> None:
    """2,000 coroutine tasks each await an HTTP answer from a loopback server that
    answers none until all 2,000 connections are open: they all wait at once, and the
    process runs the manager's fixed threads only (a thread each would be 2,000)."""
    count = 2000
    with LoopbackServer(count) as server:
        before = threading.active_count()  # the test's threads and the server's
        manager = make_manager(num_workers=2, async_concurrency=count)
        ids = [manager.create_task(fetch, {"port": server.port}) for _ in range(count)]
        results = [manager.wait(task_id, timeout=120) for task_id in ids]
    assert {r["status"] for r in results} == {"completed"}
    assert {r["result"] for r in results} == {"ok"}
    assert server.connected == count
    # supervisor, registry, notifier, timers, dispatcher, 2 operation threads, the
    # event loop and its watchdog: 9, whatever the number of tasks.
    assert server.threads_when_all_in - before <= 9


async def fetch_counting_threads(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", params["port"])
    writer.write(b"GET / HTTP/1.1\r\nHost: loopback\r\n\r\n")
    await writer.drain()
    THREAD_SAMPLES.append(threading.active_count())  # on the loop: no answer came yet
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer.split(b"\r\n\r\n", 1)[1].decode()


THREAD_SAMPLES: list[int] = []


def test_ten_thousand_coroutine_tasks_await_a_server_process_on_the_managers_threads(
    make_manager: MakeManager,
) -> None:
    """10,000 coroutine tasks await HTTP answers from a server in a process of its own
    (one process may not hold both ends of 10,000 connections) that answers none until
    all are open: they wait at once, and the threads alive meanwhile are the manager's
    fixed ones."""
    count = 10_000
    THREAD_SAMPLES.clear()
    before = threading.active_count()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.loopback_server", str(count)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        manager = make_manager(num_workers=2, async_concurrency=count)
        ids = [manager.create_task(fetch_counting_threads, {"port": port}) for _ in range(count)]
        results = [manager.wait(task_id, timeout=300) for task_id in ids]
    finally:
        server.terminate()
        server.wait(DEADLINE)
        assert server.stdout is not None
        server.stdout.close()
    assert {r["status"] for r in results} == {"completed"}
    assert {r["result"] for r in results} == {"ok"}
    assert len(THREAD_SAMPLES) == count
    # The manager's threads (see the test above): 9, whatever the number of tasks.
    assert max(THREAD_SAMPLES) - before <= 9


# -- the rest of the runtime with coroutine operations ----------------------------------------


def test_coroutine_tasks_with_a_durable_store(make_manager: MakeManager, tmp_path: Path) -> None:
    """A SQLite store: a named coroutine operation's start is committed before it runs
    (awaited on the loop, not blocking it), its result is stored and read back by the
    next manager, isolation "async" included."""
    path = tmp_path / "tasks.db"
    first = make_manager(num_workers=1, store=path, operations={"double": double})
    ids = [first.create_task("double", {"n": n}) for n in range(20)]
    assert [first.wait(i, timeout=DEADLINE)["result"]["double"] for i in ids] == [
        2 * n for n in range(20)
    ]
    first.shutdown(wait=True)
    second = make_manager(num_workers=1, store=path, operations={"double": double})
    again = second.get_task_status(ids[7])
    assert again is not None
    assert (again["status"], again["isolation"], again["result"]["double"]) == (
        "completed",
        "async",
        14,
    )


def test_a_failing_coroutine_is_retried(make_manager: MakeManager) -> None:
    """A retry policy runs a coroutine again after it raised; the third attempt completes."""
    attempts: list[int] = []

    async def flaky(params: Mapping[str, Any], task: AsyncTaskContext) -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("the LLM endpoint hung up")
        return len(attempts)

    manager = make_manager(num_workers=1)
    policy = RetryPolicy(max_attempts=3, backoff=0.001, jitter=False)
    done = manager.wait(manager.create_task(flaky, retry=policy), timeout=DEADLINE)
    assert (done["status"], done["attempt"], done["result"]) == ("completed", 3, 3)
    assert [e["code"] for e in done["attempt_errors"]] == ["INTERNAL_ERROR"] * 2


def test_coroutine_tasks_depend_on_other_tasks(make_manager: MakeManager) -> None:
    """A coroutine task waits for its dependencies (a thread task and a coroutine task)
    and reads their results."""

    def plain(params: Mapping[str, Any], task: TaskContext) -> str:
        return "from a thread"

    async def combine(params: Mapping[str, Any], task: AsyncTaskContext) -> list[Any]:
        return sorted(map(str, task.dependency_results.values()))

    manager = make_manager(num_workers=1)
    first = manager.create_task(plain)
    second = manager.create_task(double, {"n": 4})
    last = manager.create_task(combine, depends_on=[first, second])
    done = manager.wait(last, timeout=DEADLINE)
    assert done["status"] == "completed"
    assert "from a thread" in done["result"]
    assert done["isolation"] == "async"


def test_a_timed_out_coroutine_is_retried_once_its_attempt_has_ended(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """retry_on_timeout: the next attempt is queued once the timed-out coroutine was
    cancelled and gone (its slot held until then), and it completes."""
    runs: list[int] = []
    gone = threading.Event()

    async def slow_once(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        runs.append(1)
        if len(runs) == 1:
            try:
                await asyncio.sleep(3600)
            finally:
                gone.set()
        return "second time lucky"

    manager = make_manager(num_workers=1, clock=clock, stop_grace=1.0)
    policy = RetryPolicy(max_attempts=2, backoff=1.0, jitter=False, retry_on_timeout=True)
    task_id = manager.create_task(slow_once, timeout=5.0, retry=policy)
    assert wait_until(lambda: runs == [1], timeout=DEADLINE)
    advance(manager, 5.0)
    advance(manager, 1.0)  # the interrupt
    assert gone.wait(DEADLINE)
    assert wait_until(lambda: loop_coroutines(manager) == 0, timeout=DEADLINE)
    advance(manager, 1.0)  # the backoff
    done = manager.wait(task_id, timeout=DEADLINE)
    assert (done["status"], done["attempt"], done["result"]) == (
        "completed",
        2,
        "second time lucky",
    )


def test_a_group_of_coroutine_tasks(make_manager: MakeManager) -> None:
    """create_group takes coroutine operations (alone or beside plain ones); the group
    completes with each member's result."""

    def plain(params: Mapping[str, Any], task: TaskContext) -> int:
        return 0

    manager = make_manager(num_workers=1)
    group_id = manager.create_group(
        [{"operation": double, "params": {"n": n}} for n in range(1, 4)] + [{"operation": plain}]
    )
    group = manager.get_group_status(group_id)
    assert group is not None
    results = [manager.wait(task_id, timeout=DEADLINE) for task_id in group["tasks"]]
    assert [r["isolation"] for r in results] == ["async", "async", "async", "thread"]
    assert manager.get_group_status(group_id)["state"] == "completed"  # type: ignore[index]


def test_a_schedule_of_a_coroutine_operation(make_manager: MakeManager, clock: ManualClock) -> None:
    """schedule_every with a coroutine operation: one coroutine task per interval of
    virtual time, each on the loop."""
    ran: list[int] = []

    async def tick(params: Mapping[str, Any], task: AsyncTaskContext) -> int:
        ran.append(params["scene"])
        return len(ran)

    manager = make_manager(num_workers=1, clock=clock)
    schedule_id = manager.schedule_every(10, tick, {"scene": 7})
    advance(manager, 10)
    first = manager.runtime.schedules()[schedule_id]["last_task_id"]
    assert manager.wait(first, timeout=DEADLINE)["isolation"] == "async"
    advance(manager, 10)
    second = manager.runtime.schedules()[schedule_id]["last_task_id"]
    assert second != first
    assert manager.wait(second, timeout=DEADLINE)["result"] == 2
    assert ran == [7, 7]
    assert manager.cancel_schedule(schedule_id)


def test_shutdown_waiting_from_inside_a_coroutine_is_refused(make_manager: MakeManager) -> None:
    """shutdown(wait=True) on the loop would wait for itself: a clear RuntimeError."""
    manager = make_manager(num_workers=1)

    async def stops_its_manager(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        try:
            manager.shutdown(wait=True)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    done = manager.wait(manager.create_task(stops_its_manager), timeout=DEADLINE)
    assert "from inside an operation" in done["result"]


def test_a_coroutine_using_to_thread_leaves_no_thread_behind(make_manager: MakeManager) -> None:
    """asyncio.to_thread uses the loop's default executor, which the back-end shuts
    down with the loop (the autouse leak check fails otherwise)."""

    async def offloads(params: Mapping[str, Any], task: AsyncTaskContext) -> int:
        return await asyncio.to_thread(sum, range(10))

    manager = make_manager(num_workers=1)
    assert manager.wait(manager.create_task(offloads), timeout=DEADLINE)["result"] == 45
    manager.shutdown(wait=True)
    assert not manager.runtime.async_backend.statistics().running


def test_the_loop_starts_on_first_use_only(make_manager: MakeManager) -> None:
    """A manager that never runs a coroutine starts no event loop thread."""

    def plain(params: Mapping[str, Any], task: TaskContext) -> int:
        return 1

    manager = make_manager(num_workers=1)
    manager.wait(manager.create_task(plain), timeout=DEADLINE)
    assert not manager.runtime.async_backend.statistics().running
    assert not any(t.name.endswith("-async-loop") for t in threading.enumerate())
    manager.wait(manager.create_task(double, {"n": 1}), timeout=DEADLINE)
    assert manager.runtime.async_backend.statistics().running
    assert Isolation.ASYNC.value == "async"
