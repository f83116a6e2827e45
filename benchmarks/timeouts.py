"""B3: timeout precision: how late a ``failed/TIMEOUT`` record is after its deadline.

``timeout_tasks`` tasks with ``timeout=0.05`` whose operation blocks cooperatively
(``task.wait_cancelled(5)``) on ``TaskManager(num_workers=50)``, all created at once.
Lateness of each task is its raw snapshot's ``ended_at - started_at - 0.05`` (epoch
seconds from ``manager.runtime.snapshot``): the time from the deadline to the moment
the supervisor recorded the timeout.
"""

from __future__ import annotations

from typing import Any

from actors import TaskStatus, TimedOut
from benchmarks.harness import summarize, wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_P99_MS", "run"]

TIMEOUT_SECONDS = 0.05
TARGET_P99_MS = 10.0


def _blocks(params: Any, task: Any) -> bool:
    return bool(task.wait_cancelled(5))


def run(sizes: Sizes) -> list[Part]:
    count, workers = sizes.timeout_tasks, sizes.timeout_workers
    lateness: list[float] = []
    with TaskManager(num_workers=workers) as manager:
        ids = [manager.create_task(_blocks, timeout=TIMEOUT_SECONDS) for _ in range(count)]
        wait_all_done(manager, ids[-1], terminal=count, timeout=120)
        for task_id in ids:
            snapshot = manager.runtime.snapshot(task_id)
            if (
                snapshot is None
                or snapshot.status is not TaskStatus.FAILED
                or not isinstance(snapshot.outcome, TimedOut)
                or snapshot.started_at is None
                or snapshot.ended_at is None
            ):
                raise AssertionError(f"task {task_id} did not time out: {snapshot}")
            lateness.append(snapshot.ended_at - snapshot.started_at - TIMEOUT_SECONDS)
    late_ms = summarize(lateness, 1e3, digits=2)
    return [
        Part(
            scenario=f"timeout precision, {count} tasks with {TIMEOUT_SECONDS * 1000:g} ms "
            f"timeouts blocking cooperatively ({workers} workers)",
            status="measured",
            mode="thread",
            measured=f"late p50 {late_ms['p50']:.2f} ms, p99 {late_ms['p99']:.2f} ms, "
            f"max {late_ms['max']:.2f} ms",
            figures={"lateness_ms": late_ms, "min_ms": round(min(lateness) * 1e3, 3)},
            config={"tasks": count, "workers": workers, "timeout": TIMEOUT_SECONDS},
            target=f"p99 ≤ {TARGET_P99_MS:g} ms late",
            result=verdict(late_ms["p99"] <= TARGET_P99_MS),
        )
    ]
