"""B1: throughput of no-op tasks with a timeout set, against a ThreadPoolExecutor.

The supervisor: ``TaskManager(num_workers=W)``, ``count`` no-op tasks each created with
``timeout=60``; timed from the first ``create_task`` until every task is terminal
(``wait`` on the last one, then the lifetime counters confirm all completed). The
baseline: ``ThreadPoolExecutor(W)``, submit the same no-op ``count`` times, then
``result()`` each. Creating and shutting down either is outside the timed region.

The baseline, the supervisor with logging off and the supervisor with logging on (JSON
lines to a file) alternate for several rounds; each round's ratio is supervisor /
baseline throughput of that round, and the reported ratio is their median.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    alternate,
    logging_json_to_file,
    logging_off,
    median,
    wait_all_done,
)
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_RATIO", "run"]

TARGET_RATIO = 0.35
TASK_TIMEOUT_SECONDS = 60.0


def _noop_operation(params: Any, task: Any) -> None:
    return None


def _noop() -> None:
    return None


def _baseline(count: int, workers: int) -> float:
    """Tasks per second through a ThreadPoolExecutor: submit all, then result() each."""
    with ThreadPoolExecutor(max_workers=workers) as executor:
        start = time.perf_counter()
        futures = [executor.submit(_noop) for _ in range(count)]
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
    return count / elapsed


def _supervisor(count: int, workers: int) -> float:
    """Tasks per second through a TaskManager, first create_task to last terminal."""
    with TaskManager(num_workers=workers, max_pending=max(count, 100_000)) as manager:
        start = time.perf_counter()
        last_id = ""
        for _ in range(count):
            last_id = manager.create_task(_noop_operation, timeout=TASK_TIMEOUT_SECONDS)
        lifetime = wait_all_done(manager, last_id, terminal=count)
        elapsed = time.perf_counter() - start
    if lifetime["total_completed"] != count:
        raise AssertionError(f"expected {count} completed tasks, lifetime stats say {lifetime}")
    return count / elapsed


def run(sizes: Sizes) -> list[Part]:
    count, workers, rounds = (
        sizes.throughput_tasks,
        sizes.throughput_workers,
        sizes.throughput_rounds,
    )
    log_lines: list[int] = []

    def supervisor_logging_off() -> float:
        with logging_off():
            return _supervisor(count, workers)

    def supervisor_logging_on() -> float:
        with logging_json_to_file() as path:
            rate = _supervisor(count, workers)
            log_lines.append(_count_lines(path))
        return rate

    figures = alternate(
        {
            "baseline": lambda: _baseline(count, workers),
            "logging off": supervisor_logging_off,
            "logging on": supervisor_logging_on,
        },
        rounds,
    )
    baseline = figures["baseline"]
    config = {"tasks": count, "workers": workers, "rounds": rounds, "timeout": 60.0}
    baseline_figures = {
        "tasks_per_second_per_round": [round(x) for x in baseline],
        "median_tasks_per_second": round(median(baseline)),
    }
    baseline_cell = f"ThreadPoolExecutor({workers}): {median(baseline):,.0f} tasks/s"
    parts: list[Part] = []
    for name in ("logging off", "logging on"):
        rates = figures[name]
        ratios = [s / b for s, b in zip(rates, baseline, strict=True)]
        ratio = median(ratios)
        extra: dict[str, Any] = {}
        if name == "logging on":
            extra["log_lines_per_run"] = log_lines
        parts.append(
            Part(
                scenario=f"throughput, {count:,} no-op tasks (timeout set), {name}",
                status="measured",
                mode="thread",
                measured=f"{median(rates):,.0f} tasks/s "
                f"({1e6 / median(rates):.0f} µs/task; median of {rounds})",
                baseline=baseline_cell,
                ratios={"throughput": round(ratio, 4)},
                figures={
                    "tasks_per_second_per_round": [round(x) for x in rates],
                    "median_tasks_per_second": round(median(rates)),
                    "ratio_per_round": [round(x, 4) for x in ratios],
                    "median_ratio": round(ratio, 4),
                    **extra,
                },
                baseline_figures=baseline_figures,
                config=config,
                target=f"≥ {TARGET_RATIO} x baseline"
                if name == "logging off"
                else "report (JSON lines to a file)",
                result=verdict(ratio >= TARGET_RATIO) if name == "logging off" else "report",
            )
        )
    return parts


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as stream:
        return sum(1 for _ in stream)
