"""B9: the per-task overhead of process mode with a warm pool, against thread mode.

One ``TaskManager(num_workers=1, isolation="process", max_tasks_per_child=None)``
(the default, 100, would replace the child, an interpreter start of 0.1 to 0.2 s, every
100 tasks: about 1 to 2 ms per task amortised, which is not the warm pool's per-task
cost this measures); its one child is warm
(``get_stats()["process_pool"]["idle"] == 1``) before anything is timed, and a few
tasks of each mode run first as a warm-up (the child imports :mod:`benchmarks.ops`).
Then ``process_overhead_rounds`` rounds alternate (the order rotating) between
``process_overhead_tasks / rounds`` no-op tasks (:func:`benchmarks.ops.noop`) created
with ``isolation="thread"`` and as many with ``isolation="process"``, one after another:
each ``create_task`` + ``wait`` is timed on its own. Same manager, same settings; only
the isolation differs. The extra cost per task is the process mean minus the thread
mean of the same round; the reported figure is the median over rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from actors.testing import wait_until
from benchmarks import ops
from benchmarks.harness import alternate, median, summarize
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_EXTRA_MS", "run"]

TARGET_EXTRA_MS = 2.0
WARMUP_TASKS = 20
SAFETY_SECONDS = 60.0


def _one_by_one(manager: TaskManager, isolation: str, count: int, into: list[float]) -> float:
    """Run ``count`` no-op tasks one after another; appends each one's seconds to
    ``into`` and returns the mean seconds per task."""
    samples: list[float] = []
    for _ in range(count):
        start = time.perf_counter()
        task_id = manager.create_task(ops.noop, isolation=isolation)
        status = manager.wait(task_id, timeout=SAFETY_SECONDS)
        samples.append(time.perf_counter() - start)
        if status["status"] != "completed":
            raise AssertionError(f"{isolation} no-op task did not complete: {status}")
    into.extend(samples)
    return sum(samples) / len(samples)


def run(sizes: Sizes) -> list[Part]:
    rounds = sizes.process_overhead_rounds
    per_round = max(1, sizes.process_overhead_tasks // rounds)
    raw: dict[str, list[float]] = {"thread": [], "process": []}
    with TaskManager(num_workers=1, isolation="process", max_tasks_per_child=None) as manager:
        if not wait_until(
            lambda: manager.get_stats()["process_pool"]["idle"] == 1, timeout=SAFETY_SECONDS
        ):
            raise TimeoutError("the process pool did not warm up")
        for isolation in ("thread", "process"):
            _one_by_one(manager, isolation, WARMUP_TASKS, [])

        def contender(mode: str) -> Callable[[], float]:
            return lambda: _one_by_one(manager, mode, per_round, raw[mode])

        means = alternate({mode: contender(mode) for mode in ("thread", "process")}, rounds)
        pool: dict[str, Any] = manager.get_stats()["process_pool"]
    if pool["replaced_total"] != 0:
        raise AssertionError(f"the warm child was replaced during the run: {pool}")
    extra_ms = [(p - t) * 1e3 for p, t in zip(means["process"], means["thread"], strict=True)]
    extra = median(extra_ms)
    thread_us, process_us = summarize(raw["thread"], 1e6), summarize(raw["process"], 1e6)
    return [
        Part(
            scenario=f"process mode per-task overhead, warm pool: {per_round * rounds:,} no-op "
            "tasks one after another (create + wait) per mode, 1 worker",
            status="measured",
            mode="process",
            measured=f"{median(means['process']) * 1e3:.2f} ms/task (p50 "
            f"{process_us['p50'] / 1000:.2f} ms, p99 {process_us['p99'] / 1000:.2f} ms); "
            f"extra {extra:.2f} ms/task (median of {rounds} rounds)",
            baseline=f"thread mode, same manager: {median(means['thread']) * 1e3:.2f} ms/task "
            f"(p50 {thread_us['p50'] / 1000:.2f} ms, p99 {thread_us['p99'] / 1000:.2f} ms)",
            ratios={"time per task": round(median(means["process"]) / median(means["thread"]), 3)},
            figures={
                "extra_ms_per_task": round(extra, 3),
                "extra_ms_per_round": [round(x, 3) for x in extra_ms],
                "mean_ms_per_round": [round(x * 1e3, 3) for x in means["process"]],
                "latency_us": process_us,
                "pool": pool,
            },
            baseline_figures={
                "mean_ms_per_round": [round(x * 1e3, 3) for x in means["thread"]],
                "latency_us": thread_us,
            },
            config={
                "tasks_per_mode": per_round * rounds,
                "rounds": rounds,
                "workers": 1,
                "max_tasks_per_child": None,
                "warmup_tasks_per_mode": WARMUP_TASKS,
            },
            target=f"≤ {TARGET_EXTRA_MS:g} ms extra per task",
            result=verdict(extra <= TARGET_EXTRA_MS),
        )
    ]
