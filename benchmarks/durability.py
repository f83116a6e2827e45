"""B8: throughput with the SQLite store against the in-memory store, in the same run.

Both contenders: ``TaskManager(num_workers=W)`` running ``count`` no-op tasks of a named
operation, submitted by ``S`` threads at once (each ``create_task`` returns only once
its task is committed, so concurrent submitters share commits); timed from the first
``create_task`` until every task is terminal. The durable one opens a fresh SQLite file
in a temporary folder each round; creating and shutting down either manager is outside
the timed region. They alternate for several rounds; the ratio of each round is durable
/ in-memory throughput, and the reported ratio is their median.

A second pair does the same with one submitter, where every ``create_task`` waits for a
commit of its own: the cost of durability to a caller who submits one task at a time.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import alternate, median, wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_RATIO", "run"]

TARGET_RATIO = 0.5
OPERATION = "bench.noop"


def _noop(params: Any, task: Any) -> None:
    return None


def _run_once(count: int, workers: int, submitters: int, store: Path | None) -> dict[str, float]:
    """Tasks per second through one manager, and the store's commits per task."""
    with TaskManager(
        num_workers=workers,
        max_pending=max(count, 100_000),
        store=store,
        operations={OPERATION: _noop},
    ) as manager:
        per_thread = count // submitters
        last_ids = [""] * submitters
        ready = threading.Barrier(submitters + 1)

        def submit(index: int) -> None:
            ready.wait()
            for _ in range(per_thread):
                last_ids[index] = manager.create_task(OPERATION, timeout=60.0)

        threads = [
            threading.Thread(target=submit, args=(i,), name=f"bench-submit-{i}")
            for i in range(submitters)
        ]
        for thread in threads:
            thread.start()
        ready.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        total = per_thread * submitters
        for last_id in last_ids[:-1]:
            manager.wait(last_id, timeout=600)
        lifetime = wait_all_done(manager, last_ids[-1], terminal=total)
        elapsed = time.perf_counter() - start
        commits = manager.get_stats()["store"]["commits"]
    if lifetime["total_completed"] != total:
        raise AssertionError(f"expected {total} completed tasks, lifetime stats say {lifetime}")
    return {"rate": total / elapsed, "commits_per_task": commits / total}


def _pair(count: int, workers: int, submitters: int, rounds: int) -> dict[str, Any]:
    commits_per_task: list[float] = []

    def memory() -> float:
        return _run_once(count, workers, submitters, None)["rate"]

    def durable() -> float:
        with tempfile.TemporaryDirectory(prefix="storycore-bench-") as directory:
            figures = _run_once(count, workers, submitters, Path(directory) / "tasks.db")
        commits_per_task.append(figures["commits_per_task"])
        return figures["rate"]

    figures = alternate({"memory": memory, "durable": durable}, rounds)
    ratios = [d / m for d, m in zip(figures["durable"], figures["memory"], strict=True)]
    return {
        "memory": figures["memory"],
        "durable": figures["durable"],
        "ratios": ratios,
        "commits_per_task": commits_per_task,
    }


def run(sizes: Sizes) -> list[Part]:
    count, workers, rounds = (
        sizes.durability_tasks,
        sizes.durability_workers,
        sizes.durability_rounds,
    )
    parts: list[Part] = []
    for submitters in (sizes.durability_submitters, 1):
        pair = _pair(count, workers, submitters, rounds)
        ratio = median(pair["ratios"])
        durable_rate = median(pair["durable"])
        memory_rate = median(pair["memory"])
        target_row = submitters > 1
        who = f"{submitters} submitting threads" if target_row else "1 submitting thread"
        parts.append(
            Part(
                scenario=f"durability, {count:,} no-op named tasks, SQLite store, {who}",
                status="measured",
                mode="thread",
                measured=f"{durable_rate:,.0f} tasks/s, "
                f"{median(pair['commits_per_task']):.3f} commits per task "
                f"(median of {rounds})",
                baseline=f"in-memory store: {memory_rate:,.0f} tasks/s",
                ratios={"throughput": round(ratio, 4)},
                figures={
                    "tasks_per_second_per_round": [round(x) for x in pair["durable"]],
                    "commits_per_task_per_round": [round(x, 4) for x in pair["commits_per_task"]],
                    "ratio_per_round": [round(x, 4) for x in pair["ratios"]],
                    "median_ratio": round(ratio, 4),
                },
                baseline_figures={
                    "tasks_per_second_per_round": [round(x) for x in pair["memory"]],
                },
                config={
                    "tasks": count,
                    "workers": workers,
                    "submitters": submitters,
                    "rounds": rounds,
                    "synchronous": "normal",
                },
                target=f"≥ {TARGET_RATIO} x in-memory" if target_row else "report",
                result=verdict(ratio >= TARGET_RATIO) if target_row else "report",
            )
        )
    return parts
