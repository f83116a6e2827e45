"""B5: resources after hard stops, in thread mode and in process mode.

Thread mode: ``TaskManager(num_workers=5, stop_grace=0.05)`` and ``hard_stops`` tasks
created at once with ``timeout=0.1`` running :func:`benchmarks.ops.spin_forever` (a
pure-Python loop that never looks at ``is_cancelled()``): each times out and, 50 ms
later, is interrupted by ``TaskInterrupted`` in its thread.

Process mode: ``TaskManager(num_workers=5, isolation="process", stop_grace=0.05)``,
its pool warm (``get_stats()["process_pool"]["idle"] == 5``) before the tasks, and
``hard_stops`` tasks with ``timeout=0.1`` running :func:`benchmarks.ops.sleep_forever`
(``time.sleep(3600)``): each times out, its child is SIGTERMed 50 ms later (SIGKILLed
another 50 ms later if it were still there) and replaced by a fresh one for the next task.

Threads (``threading.active_count()``) and this process's children (``/proc/*/stat``
with ``ppid == os.getpid()``, multiprocessing's once-per-host resource tracker left out)
are counted before the manager exists, once it is up (and warm), once every task is
terminal with ``get_stats()["stopping"] == 0`` and the pool has settled (no child busy,
the counts unchanged for 0.2 s), and after shutdown. Left over: threads beyond those the
manager had before the stops; children beyond the pool's own warm ones
(``get_stats()["process_pool"]["children"]``, at most ``num_workers``); any zombie.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal

from actors.testing import wait_until
from benchmarks import ops
from benchmarks.harness import child_processes, wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["STOP_GRACE_SECONDS", "TASK_TIMEOUT_SECONDS", "run"]

TASK_TIMEOUT_SECONDS = 0.1
STOP_GRACE_SECONDS = 0.05
SETTLE_SECONDS = 0.2
SAFETY_SECONDS = 120.0

Mode = Literal["thread", "process"]
Operation = Callable[[Mapping[str, Any], Any], Any]


def _count() -> dict[str, Any]:
    children = child_processes()
    return {
        "threads": threading.active_count(),
        "processes": len(children),
        "zombies": sum(1 for c in children if c.zombie),
        "pids": [c.pid for c in children],
    }


def _settled(manager: TaskManager) -> dict[str, Any]:
    """Wait until nothing is stopping, no child is busy, and the thread and process
    counts have not changed for SETTLE_SECONDS; returns the last stats and counts."""
    deadline = time.perf_counter() + SAFETY_SECONDS
    last: tuple[int, int, int] | None = None
    since = time.perf_counter()
    while True:
        stats = manager.get_stats()
        pool = stats["process_pool"]
        counts = _count()
        key = (counts["threads"], counts["processes"], pool["children"])
        now = time.perf_counter()
        if stats["stopping"] != 0 or stats["running"] != 0 or pool["children"] != pool["idle"]:
            last = None
        elif key != last:
            last, since = key, now
        elif now - since >= SETTLE_SECONDS:
            return {**counts, "pool_children": pool["children"], "stats": stats}
        if now > deadline:
            raise TimeoutError(f"the manager did not settle within {SAFETY_SECONDS} s: {stats}")
        time.sleep(0.01)


def _one_mode(mode: Mode, stops: int, workers: int) -> dict[str, Any]:
    operation: Operation = ops.spin_forever if mode == "thread" else ops.sleep_forever
    before = _count()
    start = time.perf_counter()
    with TaskManager(num_workers=workers, isolation=mode, stop_grace=STOP_GRACE_SECONDS) as m:
        if mode == "process" and not wait_until(
            lambda: m.get_stats()["process_pool"]["idle"] == workers, timeout=SAFETY_SECONDS
        ):
            raise TimeoutError("the process pool did not warm up")
        up = _count()
        ids = [m.create_task(operation, timeout=TASK_TIMEOUT_SECONDS) for _ in range(stops)]
        wait_all_done(m, ids[-1], terminal=stops, timeout=SAFETY_SECONDS)
        outcomes = Counter(
            f"{s['status']}/{(s.get('error') or {}).get('code')}"
            for s in (m.get_task_status(task_id) or {} for task_id in ids)
        )
        stopped_seconds = time.perf_counter() - start
        settled = _settled(m)
        pool_stats = settled.pop("stats")["process_pool"]
    wait_until(
        lambda: (
            threading.active_count() <= before["threads"]
            and len(child_processes()) <= before["processes"]
        ),
        timeout=10,
    )
    after = _count()
    return {
        "before": before,
        "manager_up": up,
        "settled": settled,
        "after_shutdown": after,
        "pool": pool_stats,
        "outcomes": dict(outcomes),
        "seconds_to_all_stopped": round(stopped_seconds, 2),
        "leftover_threads": settled["threads"] - up["threads"],
        "leftover_processes": settled["processes"] - before["processes"] - settled["pool_children"],
        "leftover_zombies": settled["zombies"],
        "leftover_threads_after_shutdown": after["threads"] - before["threads"],
        "leftover_processes_after_shutdown": after["processes"] - before["processes"],
    }


def run(sizes: Sizes) -> list[Part]:
    stops, workers = sizes.hard_stops, sizes.hard_stop_workers
    parts: list[Part] = []
    for mode in ("thread", "process"):
        figures = _one_mode(mode, stops, workers)
        expected = {"failed/TIMEOUT": stops}
        if figures["outcomes"] != expected:
            raise AssertionError(f"{mode} mode: expected {expected}, got {figures['outcomes']}")
        for key in ("before", "manager_up", "settled", "after_shutdown"):
            figures[key].pop("pids")
        leftover = (
            figures["leftover_threads"],
            figures["leftover_processes"],
            figures["leftover_zombies"],
            figures["leftover_threads_after_shutdown"],
            figures["leftover_processes_after_shutdown"],
        )
        what = "spinning in Python" if mode == "thread" else "in time.sleep(3600)"
        parts.append(
            Part(
                scenario=f"resources after {stops} hard stops ({mode} mode: timeout "
                f"{TASK_TIMEOUT_SECONDS:g} s, {what}, grace {STOP_GRACE_SECONDS:g} s, "
                f"{workers} workers)",
                status="measured",
                mode=mode,
                measured=f"left over: {leftover[0]} threads, {leftover[1]} processes, "
                f"{leftover[2]} zombies (pool: {figures['settled']['pool_children']} warm "
                f"children); after shutdown {leftover[3]} threads, {leftover[4]} processes; "
                f"all stopped in {figures['seconds_to_all_stopped']:.1f} s",
                baseline=f"before: {figures['before']['threads']} threads, "
                f"{figures['before']['processes']} child processes",
                figures=figures,
                config={
                    "hard_stops": stops,
                    "workers": workers,
                    "timeout": TASK_TIMEOUT_SECONDS,
                    "stop_grace": STOP_GRACE_SECONDS,
                    "isolation": mode,
                },
                target="zero threads / processes left over after the grace",
                result=verdict(not any(leftover)),
            )
        )
    return parts
