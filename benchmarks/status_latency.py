"""B2: ``get_task_status`` latency, idle and with every worker busy in CPU-bound Python.

One ``TaskManager(num_workers=4)`` holding ``status_finished_tasks`` completed tasks.
Idle: ``status_idle_calls`` calls on ids drawn at random (a fixed seed), each timed on
its own; a few warm-up calls first are not counted. Loaded (thread mode): four tasks
spin a pure-Python loop until an event is set, holding every worker and contending for
the GIL; the same calls are timed while they spin (fewer of them: each takes tens of
ms), then the spinners are released. Loaded (process mode): four tasks created with
``isolation="process"`` (:func:`benchmarks.ops.spin_until_cancelled`) spin in their
children, holding every worker and, on this two-vCPU machine, every CPU; once each has
published its pid, ``status_idle_calls`` calls are timed, then the spinners are
released by cancelling them (they look at ``is_cancelled()`` about every millisecond;
the manager's ``stop_grace`` is short, 0.1 s, in case one does not).

Beside the loaded reads, as many ``wait(task_id, timeout=0)`` calls on one of the
spinners (running), alternating with the reference: what a wait costs before its caller
blocks (no message since 2026-12-07: the caller adds its waiter itself).

A query is a round trip to the registry's thread, so its latency is bounded below by
how fast this machine wakes a thread. The reference beside it is the bare version of
that round trip: a request on a ``queue.Queue`` to a thread that answers through a
``threading.Event``. The two alternate call by call, so the reference shows what the
machine (and the GIL, under load) costs at that moment; the targets stay absolute.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks import ops
from benchmarks.harness import summarize, wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_P99_MS", "run"]

TARGET_P99_MS = 1.0
WORKERS = 4
SEED = 7
STOP_GRACE_SECONDS = 0.1
START_TIMEOUT_SECONDS = 60.0

_Request = tuple[threading.Event, list[int]] | None


def _noop_operation(params: Any, task: Any) -> None:
    return None


@contextmanager
def _bare_round_trip() -> Iterator[Any]:
    """A thread answering requests: yields a function timing one round trip to it."""
    requests: queue.Queue[_Request] = queue.Queue()

    def serve() -> None:
        while (request := requests.get()) is not None:
            done, box = request
            box.append(1)
            done.set()

    server = threading.Thread(target=serve, name="bench-bare-round-trip", daemon=True)
    server.start()

    def round_trip() -> float:
        done, box = threading.Event(), list[int]()
        start = time.perf_counter()
        requests.put((done, box))
        if not done.wait(60):
            raise TimeoutError("the bare round-trip thread did not answer")
        return time.perf_counter() - start

    try:
        yield round_trip
    finally:
        requests.put(None)
        server.join()


def _time_calls(
    manager: TaskManager,
    ids: list[str],
    calls: int,
    rng: random.Random,
    round_trip: Any,
) -> tuple[list[float], list[float]]:
    """(get_task_status seconds, bare round-trip seconds), alternating call by call
    (the order flipping each pair)."""
    status_samples: list[float] = []

    def status_call() -> None:
        task_id = rng.choice(ids)
        start = time.perf_counter()
        status = manager.get_task_status(task_id)
        status_samples.append(time.perf_counter() - start)
        if status is None:
            raise AssertionError(f"task {task_id} is unknown to get_task_status")

    return status_samples, _alternating(status_call, round_trip, calls)


def _alternating(timed: Callable[[], None], round_trip: Any, calls: int) -> list[float]:
    """Call ``timed`` ``calls`` times, each beside one bare round trip (which goes first
    every other call); returns the round trips' seconds."""
    bare_samples: list[float] = []
    for call in range(calls):
        if call % 2 == 0:
            timed()
            bare_samples.append(round_trip())
        else:
            bare_samples.append(round_trip())
            timed()
    return bare_samples


def _time_waits(
    manager: TaskManager, task_id: str, calls: int, round_trip: Any
) -> tuple[list[float], list[float]]:
    """(seconds of ``wait(task_id, timeout=0)`` on a running task, bare round-trip
    seconds), alternating as :func:`_time_calls` does: what a wait costs before its
    caller blocks (its waiter added and, at the timeout, removed)."""
    wait_samples: list[float] = []

    def wait_call() -> None:
        start = time.perf_counter()
        try:
            manager.wait(task_id, timeout=0)
        except TimeoutError:
            wait_samples.append(time.perf_counter() - start)
        else:
            raise AssertionError(f"task {task_id} ended while its waits were timed")

    return wait_samples, _alternating(wait_call, round_trip, calls)


def _wait_spinning(manager: TaskManager, ids: list[str]) -> list[int]:
    """Wait until every process-mode spinner has published its pid; returns the pids."""
    deadline = time.perf_counter() + START_TIMEOUT_SECONDS
    pids: dict[str, int] = {}
    while len(pids) < len(ids):
        for task_id in ids:
            status = manager.get_task_status(task_id)
            partial = (status or {}).get("partial_result")
            if isinstance(partial, dict) and "pid" in partial:
                pids[task_id] = int(partial["pid"])
            elif status is not None and status["status"] not in {"pending", "running"}:
                raise AssertionError(f"spinner {task_id} ended before it spun: {status}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {len(pids)} of {len(ids)} process-mode spinners started")
        time.sleep(0.01)
    return [pids[task_id] for task_id in ids]


def _process_load(
    manager: TaskManager, ids: list[str], calls: int, rng: random.Random, round_trip: Any
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Time the calls while every worker spins in a child process; release them."""
    spinners: list[str] = []
    try:
        spinners = [
            manager.create_task(ops.spin_until_cancelled, isolation="process")
            for _ in range(WORKERS)
        ]
        pids = _wait_spinning(manager, spinners)
        _time_calls(manager, ids, max(1, calls // 50), rng, round_trip)  # warm-up
        start = time.perf_counter()
        busy, bare = _time_calls(manager, ids, calls, rng, round_trip)
        seconds = time.perf_counter() - start
        running = sum(
            1 for t in spinners if (manager.get_task_status(t) or {}).get("status") == "running"
        )
    finally:
        for task_id in spinners:
            manager.cancel_task(task_id)
    statuses = [manager.wait(task_id, timeout=60)["status"] for task_id in spinners]
    return (
        busy,
        bare,
        {
            "seconds": round(seconds, 2),
            "child_pids": pids,
            "spinners_running_at_end": running,
            "spinner_final_statuses": statuses,
        },
    )


def _microsecond_cells(us: dict[str, Any], bare_us: dict[str, Any]) -> dict[str, Any]:
    """A row's measured, baseline and ratio cells, in µs, against the bare round trip."""
    return {
        "measured": f"p50 {us['p50']:,.0f} µs, p99 {us['p99']:,.0f} µs ({us['n']:,} calls)",
        "baseline": f"bare thread round trip: p50 {bare_us['p50']:,.0f} µs, "
        f"p99 {bare_us['p99']:,.0f} µs",
        "ratios": {"p50": round(us["p50"] / bare_us["p50"], 3)},
    }


def run(sizes: Sizes) -> list[Part]:
    rng = random.Random(SEED)
    finished = sizes.status_finished_tasks
    config: dict[str, Any] = {"workers": WORKERS, "finished_tasks": finished}
    with (
        TaskManager(num_workers=WORKERS, stop_grace=STOP_GRACE_SECONDS) as manager,
        _bare_round_trip() as round_trip,
    ):
        ids = [manager.create_task(_noop_operation) for _ in range(finished)]
        wait_all_done(manager, ids[-1], terminal=finished)
        _time_calls(manager, ids, sizes.status_warmup_calls, rng, round_trip)
        idle, idle_bare = _time_calls(manager, ids, sizes.status_idle_calls, rng, round_trip)

        release = threading.Event()
        started = threading.Semaphore(0)
        spins: list[int] = []

        def spin(params: Any, task: Any) -> int:
            started.release()
            loops = 0
            while not release.is_set() and not task.is_cancelled():
                loops += 1
            spins.append(loops)
            return loops

        try:
            spinners = [manager.create_task(spin) for _ in range(WORKERS)]
            for _ in range(WORKERS):
                if not started.acquire(timeout=60):
                    raise TimeoutError("the CPU-bound spinners did not all start")
            busy_start = time.perf_counter()
            busy, busy_bare = _time_calls(manager, ids, sizes.status_busy_calls, rng, round_trip)
            busy_seconds = time.perf_counter() - busy_start
            waits, waits_bare = _time_waits(
                manager, spinners[0], sizes.status_busy_calls, round_trip
            )
        finally:
            release.set()
        for task_id in spinners:
            manager.wait(task_id, timeout=60)

        proc, proc_bare, proc_extra = _process_load(
            manager, ids, sizes.status_idle_calls, rng, round_trip
        )
        if proc_extra["spinners_running_at_end"] != WORKERS:
            raise AssertionError(f"not every spinner ran throughout: {proc_extra}")

    proc_us, proc_bare_us = summarize(proc, 1e6), summarize(proc_bare, 1e6)
    idle_us, idle_bare_us = summarize(idle, 1e6), summarize(idle_bare, 1e6)
    busy_us, busy_bare_us = summarize(busy, 1e6), summarize(busy_bare, 1e6)
    wait_us, wait_bare_us = summarize(waits, 1e6), summarize(waits_bare, 1e6)
    return [
        Part(
            scenario=f"get_task_status, idle ({finished:,} finished tasks held)",
            status="measured",
            mode="thread",
            **_microsecond_cells(idle_us, idle_bare_us),
            figures={"latency_us": idle_us},
            baseline_figures={"bare_round_trip_us": idle_bare_us},
            config={**config, "calls": len(idle), "warmup_calls": sizes.status_warmup_calls},
            target=f"p99 ≤ {TARGET_P99_MS:g} ms",
            result=verdict(idle_us["p99"] <= TARGET_P99_MS * 1000.0),
        ),
        Part(
            scenario=f"get_task_status, {WORKERS} workers busy in CPU-bound Python (thread mode)",
            status="measured",
            mode="thread",
            measured=f"p50 {busy_us['p50'] / 1000:,.1f} ms, p99 {busy_us['p99'] / 1000:,.1f} ms "
            f"({busy_us['n']:,} calls)",
            baseline=f"bare thread round trip: p50 {busy_bare_us['p50'] / 1000:,.1f} ms, "
            f"p99 {busy_bare_us['p99'] / 1000:,.1f} ms",
            ratios={"p50": round(busy_us["p50"] / busy_bare_us["p50"], 3)},
            figures={
                "latency_us": busy_us,
                "seconds": round(busy_seconds, 2),
                "spinner_loops": spins,
            },
            baseline_figures={"bare_round_trip_us": busy_bare_us},
            config={**config, "calls": len(busy), "spinners": WORKERS},
            target="report",
            result="report",
        ),
        Part(
            scenario=f"wait(timeout=0) on a running task, {WORKERS} workers busy in CPU-bound "
            "Python (thread mode): the waiter added and removed",
            status="measured",
            mode="thread",
            **_microsecond_cells(wait_us, wait_bare_us),
            figures={"latency_us": wait_us},
            baseline_figures={"bare_round_trip_us": wait_bare_us},
            config={**config, "calls": len(waits), "spinners": WORKERS},
            target="report",
            result="report",
        ),
        Part(
            scenario=f"get_task_status, every worker ({WORKERS}) busy in CPU-bound Python "
            "(process mode)",
            status="measured",
            mode="process",
            **_microsecond_cells(proc_us, proc_bare_us),
            figures={"latency_us": proc_us, **proc_extra},
            baseline_figures={"bare_round_trip_us": proc_bare_us},
            config={
                **config,
                "calls": len(proc),
                "spinners": WORKERS,
                "isolation": "process",
                "stop_grace": STOP_GRACE_SECONDS,
            },
            target=f"p99 ≤ {TARGET_P99_MS:g} ms",
            result=verdict(proc_us["p99"] <= TARGET_P99_MS * 1000.0),
        ),
    ]
