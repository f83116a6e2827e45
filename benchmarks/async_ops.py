"""B13: coroutine operations on the event loop (``isolation="async"``), in one run.

I/O waits: ``async_sleep_tasks`` coroutine tasks that each ``await
asyncio.sleep(async_sleep_seconds)`` on ``TaskManager(async_concurrency=that count)``;
timed from the first ``create_task`` until every task is terminal, with the CPU time the
whole process used meanwhile (on a loaded machine the wall time also counts waiting for a
CPU). The same work in
thread isolation with the default pool (``num_workers=4``, ``time.sleep``) cannot run
10,000 one-second waits in a benchmark (it takes count / 4 seconds), so it runs
``async_thread_tasks`` of them: the ratio is the throughput (tasks per second of wall
time) of the loop against the thread pool, and the row also shows the thread pool's
time for the loop's count (count / 4 x the wait: what the pool does by construction).

Status latency from the awaitable facade: while the loop holds
``async_status_tasks`` coroutine tasks (each awaiting ``task.wait_cancelled(600)``),
``await AsyncTaskManager.get_task_status`` is timed ``async_status_calls`` times from
a caller's own event loop (``asyncio.run`` in the benchmark's thread), against the
blocking ``TaskManager.get_task_status`` on the same tasks in the same run.

Per-task overhead: ``async_overhead_tasks`` no-op coroutine tasks against the same
no-op as a plain function in thread isolation (``num_workers=4``), alternating for
``async_overhead_rounds`` rounds: wall time per task from the first ``create_task``
until all are terminal; the ratio is async / thread per-task time (median of rounds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from benchmarks.harness import alternate, median, summarize, wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import AsyncTaskManager, TaskManager

__all__ = ["TARGET_SLEEP_WALL_SECONDS", "TARGET_STATUS_P99_MS", "run"]

TARGET_SLEEP_WALL_SECONDS = 2.0  # for 10,000 one-second waits (issue 19)
TARGET_STATUS_P99_MS = 5.0
THREAD_POOL = 4  # TaskManager's default num_workers
SAFETY_SECONDS = 600.0


async def _sleep_a_while(params: Mapping[str, Any], task: Any) -> None:
    await asyncio.sleep(params["seconds"])


def _thread_sleep(params: Mapping[str, Any], task: Any) -> None:
    time.sleep(params["seconds"])


async def _until_cancelled(params: Mapping[str, Any], task: Any) -> None:
    await task.wait_cancelled(600)


async def _async_noop(params: Mapping[str, Any], task: Any) -> None:
    return None


def _thread_noop(params: Mapping[str, Any], task: Any) -> None:
    return None


def _wall(manager: TaskManager, operation: Any, count: int, params: dict[str, Any]) -> float:
    """Seconds from the first create_task until all ``count`` tasks are terminal."""
    start = time.perf_counter()
    ids = [manager.create_task(operation, params) for _ in range(count)]
    wait_all_done(manager, ids[-1], terminal=count, timeout=SAFETY_SECONDS)
    return time.perf_counter() - start


def _sleeps(sizes: Sizes) -> Part:
    seconds = sizes.async_sleep_seconds
    count = sizes.async_sleep_tasks
    with TaskManager(async_concurrency=count) as manager:
        cpu_before = time.process_time()
        async_wall = _wall(manager, _sleep_a_while, count, {"seconds": seconds})
        async_cpu = time.process_time() - cpu_before  # every thread of the process
        started = manager.get_stats()["async"]["started_total"]
    with TaskManager(num_workers=THREAD_POOL) as manager:
        thread_wall = _wall(manager, _thread_sleep, sizes.async_thread_tasks, {"seconds": seconds})
    async_rate = count / async_wall
    thread_rate = sizes.async_thread_tasks / thread_wall
    thread_for_count = count / THREAD_POOL * seconds
    target = TARGET_SLEEP_WALL_SECONDS * seconds  # scaled for the quick run's shorter wait
    return Part(
        scenario=f"{count:,} tasks each awaiting {seconds:g} s of I/O (asyncio.sleep): "
        "wall time, async against the thread pool",
        status="measured",
        mode="async",
        measured=f"{async_wall:.2f} s wall ({async_rate:,.0f} tasks/s; the process used "
        f"{async_cpu:.2f} s of CPU)",
        baseline=f"threads ({THREAD_POOL}): {thread_wall:.2f} s for "
        f"{sizes.async_thread_tasks} tasks ({thread_rate:,.1f} tasks/s; "
        f"{thread_for_count:,.0f} s for {count:,})",
        ratios={"throughput": async_rate / thread_rate},
        figures={
            "wall_seconds": async_wall,
            "process_cpu_seconds": async_cpu,
            "tasks": count,
            "coroutines_started": started,
        },
        baseline_figures={
            "wall_seconds": thread_wall,
            "tasks": sizes.async_thread_tasks,
            "seconds_for_async_count": thread_for_count,
        },
        config={"await_seconds": seconds, "async_concurrency": count, "thread_pool": THREAD_POOL},
        target=f"≤ {target:g} s wall",
        result=verdict(async_wall <= target),
    )


async def _facade_latencies(manager: TaskManager, ids: list[str], calls: int) -> list[float]:
    tasks = AsyncTaskManager(manager)
    samples = []
    for index in range(calls):
        start = time.perf_counter()
        status = await tasks.get_task_status(ids[index % len(ids)])
        samples.append(time.perf_counter() - start)
        if status is None or status["status"] != "running":
            raise AssertionError(f"a loaded task is not running: {status}")
    return samples


def _status(sizes: Sizes) -> Part:
    count = sizes.async_status_tasks
    with TaskManager(async_concurrency=count) as manager:
        ids = [manager.create_task(_until_cancelled) for _ in range(count)]
        backend = manager.runtime.async_backend
        deadline = time.perf_counter() + SAFETY_SECONDS
        while backend.statistics().coroutines < count:
            if time.perf_counter() > deadline:
                raise TimeoutError("the coroutine tasks never all ran")
            time.sleep(0.001)
        facade = asyncio.run(_facade_latencies(manager, ids, sizes.async_status_calls))
        blocking = []
        for index in range(sizes.async_status_calls):
            start = time.perf_counter()
            manager.get_task_status(ids[index % len(ids)])
            blocking.append(time.perf_counter() - start)
        for task_id in ids:
            manager.cancel_task(task_id)
    facade_ms = summarize(facade, 1e3, digits=3)
    blocking_ms = summarize(blocking, 1e3, digits=3)
    return Part(
        scenario=f"await get_task_status (AsyncTaskManager) while the loop runs {count:,} "
        "coroutine tasks",
        status="measured",
        mode="async",
        measured=f"p50 {facade_ms['p50']:.3f} ms, p99 {facade_ms['p99']:.3f} ms",
        baseline=f"blocking get_task_status: p50 {blocking_ms['p50']:.3f} ms, "
        f"p99 {blocking_ms['p99']:.3f} ms",
        ratios={"p99": facade_ms["p99"] / blocking_ms["p99"]},
        figures={"latency_ms": facade_ms},
        baseline_figures={"latency_ms": blocking_ms},
        config={"tasks": count, "calls": sizes.async_status_calls},
        target=f"p99 ≤ {TARGET_STATUS_P99_MS:g} ms",
        result=verdict(facade_ms["p99"] <= TARGET_STATUS_P99_MS),
    )


def _overhead(sizes: Sizes) -> Part:
    count = sizes.async_overhead_tasks
    with (
        TaskManager(num_workers=THREAD_POOL, async_concurrency=1000) as async_manager,
        TaskManager(num_workers=THREAD_POOL) as thread_manager,
    ):
        figures = alternate(
            {
                "async": lambda: _wall(async_manager, _async_noop, count, {}) / count,
                "thread": lambda: _wall(thread_manager, _thread_noop, count, {}) / count,
            },
            sizes.async_overhead_rounds,
        )
    async_us = [seconds * 1e6 for seconds in figures["async"]]
    thread_us = [seconds * 1e6 for seconds in figures["thread"]]
    ratio = median([a / t for a, t in zip(async_us, thread_us, strict=True)])
    return Part(
        scenario=f"per-task overhead of a no-op coroutine task ({count:,} a round) against "
        "the same no-op in thread isolation",
        status="measured",
        mode="async",
        measured=f"{median(async_us):.1f} µs a task",
        baseline=f"thread isolation: {median(thread_us):.1f} µs a task",
        ratios={"per_task": ratio},
        figures={"per_task_us": async_us},
        baseline_figures={"per_task_us": thread_us},
        config={"tasks": count, "rounds": sizes.async_overhead_rounds, "workers": THREAD_POOL},
        target="report",
        result="report",
    )


def run(sizes: Sizes) -> list[Part]:
    return [_sleeps(sizes), _status(sizes), _overhead(sizes)]
