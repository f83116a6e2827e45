"""B4: cancel latency: a pending task, a running task that checks ``is_cancelled()``,
and a running process-mode task that never checks (a forced stop).

Pending: ``TaskManager(num_workers=1)`` whose one worker is held by a blocked task,
``cancel_pending_tasks`` no-op tasks queued behind it; each ``cancel_task`` call is
timed (it returns once the task reads ``cancelled``).

Cooperative: ``TaskManager(num_workers=4)``; in waves of four, tasks that poll
``is_cancelled()`` every 1 ms (``time.sleep(0.001)`` between polls) and record
``time.perf_counter()`` when they first see it true. The latency of one sample is that
moment minus the ``perf_counter`` taken just before its ``cancel_task`` call; it
includes up to one polling interval.

Forced: ``TaskManager(num_workers=1, isolation="process", stop_grace=0.2)``, one task
at a time running :func:`benchmarks.ops.sleep_forever` (``time.sleep(3600)``, never
looking at ``is_cancelled()``), which publishes its child's pid as its partial result.
Once the pid is seen, one sample is timed from just before ``cancel_task`` until the
child is gone (``/proc/<pid>`` no longer exists: killed and reaped by the pool) and the
slot is free (``get_stats()["stopping"] == 0``), polled every 0.5 ms. The child is
SIGTERMed after the grace; the next task starts a fresh child (outside the timing).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from benchmarks import ops
from benchmarks.harness import pid_gone, summarize, wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = [
    "FORCED_GRACE_SECONDS",
    "TARGET_COOPERATIVE_P99_MS",
    "TARGET_FORCED_MARGIN_MS",
    "TARGET_PENDING_P99_MS",
    "run",
]

TARGET_PENDING_P99_MS = 1.0
TARGET_COOPERATIVE_P99_MS = 20.0
FORCED_GRACE_SECONDS = 0.2
TARGET_FORCED_MARGIN_MS = 50.0
FORCED_POLL_SECONDS = 0.0005
POLL_SECONDS = 0.001
SAFETY_SECONDS = 60.0  # an operation gives up polling after this (never in a healthy run)


def _noop_operation(params: Any, task: Any) -> None:
    return None


def _pending(count: int) -> tuple[list[float], int]:
    """(seconds per cancel_task call, how many were accepted)."""
    started, release = threading.Event(), threading.Event()

    def blocker(params: Any, task: Any) -> bool:
        started.set()
        return release.wait(SAFETY_SECONDS)

    samples: list[float] = []
    accepted = 0
    with TaskManager(num_workers=1) as manager:
        try:
            blocker_id = manager.create_task(blocker)
            if not started.wait(SAFETY_SECONDS):
                raise TimeoutError("the blocking task did not start")
            ids = [manager.create_task(_noop_operation) for _ in range(count)]
            for task_id in ids:
                start = time.perf_counter()
                ok = manager.cancel_task(task_id)
                samples.append(time.perf_counter() - start)
                accepted += ok
        finally:
            release.set()
        manager.wait(blocker_id, timeout=SAFETY_SECONDS)
        wait_all_done(manager, ids[-1], terminal=count + 1)
    return samples, accepted


def _cooperative(samples_wanted: int, workers: int) -> list[float]:
    """Seconds from just before cancel_task to the operation seeing is_cancelled()."""
    seen: dict[int, float] = {}
    started: dict[int, threading.Event] = {}
    saw: dict[int, threading.Event] = {}

    def polls(params: Any, task: Any) -> None:
        key = params["k"]
        started[key].set()
        give_up = time.perf_counter() + SAFETY_SECONDS
        while time.perf_counter() < give_up:
            if task.is_cancelled():
                seen[key] = time.perf_counter()
                saw[key].set()
                return
            time.sleep(POLL_SECONDS)

    latencies: list[float] = []
    with TaskManager(num_workers=workers) as manager:
        key = 0
        while len(latencies) < samples_wanted:
            wave: list[tuple[int, str]] = []
            for _ in range(min(workers, samples_wanted - len(latencies))):
                started[key], saw[key] = threading.Event(), threading.Event()
                wave.append((key, manager.create_task(polls, {"k": key})))
                key += 1
            for k, _ in wave:
                if not started[k].wait(SAFETY_SECONDS):
                    raise TimeoutError(f"cooperative task {k} did not start")
            before: dict[int, float] = {}
            for k, task_id in wave:
                before[k] = time.perf_counter()
                if not manager.cancel_task(task_id):
                    raise AssertionError(f"cancel of running task {task_id} was refused")
            for k, _ in wave:
                # The status reads cancelled as soon as cancel_task returns; the
                # operation notices on its next poll, which is what is timed here.
                if not saw[k].wait(SAFETY_SECONDS):
                    raise AssertionError(f"task {k} never saw is_cancelled()")
                latencies.append(seen[k] - before[k])
    return latencies


def _wait_pid(manager: TaskManager, task_id: str) -> int:
    """The pid the task's child published as its partial result."""
    give_up = time.perf_counter() + SAFETY_SECONDS
    while time.perf_counter() < give_up:
        status = manager.get_task_status(task_id) or {}
        partial = status.get("partial_result")
        if isinstance(partial, dict) and "pid" in partial:
            return int(partial["pid"])
        if status.get("status") not in {"pending", "running"}:
            raise AssertionError(f"task {task_id} ended before it blocked: {status}")
        time.sleep(0.005)
    raise TimeoutError(f"task {task_id} never published its pid")


def _forced(samples_wanted: int) -> tuple[list[float], list[float], list[str]]:
    """(seconds to child gone and slot free, seconds to child gone, final statuses)."""
    both: list[float] = []
    gone: list[float] = []
    statuses: list[str] = []
    with TaskManager(
        num_workers=1, isolation="process", stop_grace=FORCED_GRACE_SECONDS
    ) as manager:
        for _ in range(samples_wanted):
            task_id = manager.create_task(ops.sleep_forever)
            pid = _wait_pid(manager, task_id)
            start = time.perf_counter()
            if not manager.cancel_task(task_id):
                raise AssertionError(f"cancel of running task {task_id} was refused")
            child_gone_at: float | None = None
            give_up = start + SAFETY_SECONDS
            while True:
                now = time.perf_counter()
                if child_gone_at is None and pid_gone(pid):
                    child_gone_at = now
                if child_gone_at is not None and manager.get_stats()["stopping"] == 0:
                    both.append(time.perf_counter() - start)
                    gone.append(child_gone_at - start)
                    break
                if now > give_up:
                    raise TimeoutError(f"the child {pid} of task {task_id} was never stopped")
                time.sleep(FORCED_POLL_SECONDS)
            statuses.append(manager.wait(task_id, timeout=SAFETY_SECONDS)["status"])
    return both, gone, statuses


def run(sizes: Sizes) -> list[Part]:
    pending, accepted = _pending(sizes.cancel_pending_tasks)
    cooperative = _cooperative(sizes.cancel_running_samples, sizes.cancel_running_workers)
    forced, forced_gone, forced_statuses = _forced(sizes.cancel_forced_samples)
    forced_ms = summarize(forced, 1e3, digits=1)
    forced_gone_ms = summarize(forced_gone, 1e3, digits=1)
    forced_target_ms = FORCED_GRACE_SECONDS * 1000.0 + TARGET_FORCED_MARGIN_MS
    pending_us = summarize(pending, 1e6)
    coop_ms = summarize(cooperative, 1e3, digits=2)
    if accepted != len(pending):
        raise AssertionError(f"only {accepted} of {len(pending)} pending cancels were accepted")
    return [
        Part(
            scenario=f"cancel latency, pending ({len(pending):,} queued behind 1 blocked worker)",
            status="measured",
            mode="thread",
            measured=f"p50 {pending_us['p50']:,.0f} µs, p99 {pending_us['p99']:,.0f} µs",
            figures={"cancel_call_us": pending_us, "accepted": accepted},
            config={"workers": 1, "pending_tasks": len(pending)},
            target=f"p99 ≤ {TARGET_PENDING_P99_MS:g} ms",
            result=verdict(pending_us["p99"] <= TARGET_PENDING_P99_MS * 1000.0),
        ),
        Part(
            scenario="cancel latency, running and checking is_cancelled() every 1 ms",
            status="measured",
            mode="thread",
            measured=f"p50 {coop_ms['p50']:.2f} ms, p99 {coop_ms['p99']:.2f} ms "
            f"({coop_ms['n']} samples)",
            figures={"latency_ms": coop_ms},
            config={
                "workers": sizes.cancel_running_workers,
                "samples": len(cooperative),
                "poll_seconds": POLL_SECONDS,
            },
            target=f"p99 ≤ {TARGET_COOPERATIVE_P99_MS:g} ms",
            result=verdict(coop_ms["p99"] <= TARGET_COOPERATIVE_P99_MS),
        ),
        Part(
            scenario="cancel latency, running and never checking (process mode, "
            f"time.sleep(3600), {FORCED_GRACE_SECONDS:g} s grace): until the child is "
            "gone and the slot free",
            status="measured",
            mode="process",
            measured=f"p50 {forced_ms['p50']:.1f} ms, p99 {forced_ms['p99']:.1f} ms, "
            f"max {forced_ms['max']:.1f} ms ({forced_ms['n']} samples)",
            figures={
                "latency_ms": forced_ms,
                "child_gone_ms": forced_gone_ms,
                "final_statuses": sorted(set(forced_statuses)),
            },
            config={
                "workers": 1,
                "samples": len(forced),
                "stop_grace": FORCED_GRACE_SECONDS,
                "poll_seconds": FORCED_POLL_SECONDS,
            },
            target=f"≤ grace + {TARGET_FORCED_MARGIN_MS:g} ms ({forced_target_ms:g} ms)",
            result=verdict(forced_ms["max"] <= forced_target_ms),
        ),
    ]
