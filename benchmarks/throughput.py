"""B1: throughput of no-op tasks with a timeout set, against a ThreadPoolExecutor.

The supervisor: ``TaskManager(num_workers=W)``, ``count`` no-op tasks each created with
``timeout=60``; timed from the first ``create_task`` until every task is terminal
(``wait`` on the last one, then the lifetime counters confirm all completed). The
baseline: ``ThreadPoolExecutor(W)``, submit the same no-op ``count`` times, then
``result()`` each. Creating and shutting down either is outside the timed region.

The message-pattern floor: the runtime's per-task messages between real pykka actors
whose handlers do no work. The caller tells a "registry" actor ``register`` and a
"supervisor" actor ``submit``; the supervisor (``W`` slots, a FIFO of pending ids) tells
the registry ``running`` and hands the task to an ``actors._execution.threadpool.ThreadPool(W)``
(the class of the runtime's operation pool), whose callable tells the supervisor
``finished``; the supervisor frees the slot and tells the registry ``finish``, which
only counts. Timed from the first tell until the registry has counted ``count``
finishes; starting and stopping the actors and the pool is outside the timed region. It
has no target: it shows how much of the gap to the baseline the pattern alone explains.

The baseline, the supervisor with logging off, the supervisor with logging on (JSON
lines to a file) and the floor alternate for several rounds; each round's ratio is
contender / baseline throughput of that round, and the reported ratio is their median.

No row has a target against the thread pool any more: issue 17 replaced the first
round's 0.35x by targets against the peers a user would pick instead (huey, dramatiq),
on the same workload, which ``python -m benchmarks --peers`` adds (``benchmarks.peers``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import pykka

from actors._execution.threadpool import ThreadPool
from benchmarks.harness import (
    alternate,
    logging_json_to_file,
    logging_off,
    median,
    wait_all_done,
)
from benchmarks.report import Part
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["run"]

TASK_TIMEOUT_SECONDS = 60.0
FLOOR_WAIT_SECONDS = 120.0  # the floor's run gives up after this (never in a healthy run)
FLOOR_STOP_SECONDS = 10.0

LOGGING_OFF, LOGGING_ON, FLOOR = "logging off", "logging on", "message-pattern floor"


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


# The floor's messages: one small frozen dataclass per kind, as the runtime's are.


@dataclass(frozen=True, slots=True)
class _Register:
    task_id: int


@dataclass(frozen=True, slots=True)
class _Submit:
    task_id: int


@dataclass(frozen=True, slots=True)
class _Running:
    task_id: int


@dataclass(frozen=True, slots=True)
class _Finished:
    task_id: int


@dataclass(frozen=True, slots=True)
class _Finish:
    task_id: int


@dataclass(frozen=True, slots=True)
class _CountFinishes:
    pass


class _FloorRegistry(pykka.ThreadingActor):
    """Receives ``register``, ``running`` and ``finish``; only counts the finishes, and
    sets ``done`` at the ``count``-th."""

    # As the runtime's actors: a daemon thread, and the C queue as the inbox (pykka's
    # default queue.Queue would make the floor dearer than the runtime's pattern).
    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> SimpleQueue[Any]:
        return SimpleQueue()

    def __init__(self, count: int, done: threading.Event) -> None:
        super().__init__()
        self._count = count
        self._done = done
        self._finished = 0

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Finish):
            self._finished += 1
            if self._finished == self._count:
                self._done.set()
            return None
        if isinstance(message, _CountFinishes):
            return self._finished  # asked only when a run timed out
        return None  # register, running: received, nothing to record


class _FloorSupervisor(pykka.ThreadingActor):
    """``workers`` slots and a FIFO of pending ids; starts a task by telling the registry
    ``running`` and handing the pool a callable that tells this actor ``finished``."""

    use_daemon_thread = True  # see _FloorRegistry

    @staticmethod
    def _create_actor_inbox() -> SimpleQueue[Any]:
        return SimpleQueue()

    def __init__(
        self, registry: pykka.ActorRef[_FloorRegistry], pool: ThreadPool, workers: int
    ) -> None:
        super().__init__()
        self._registry = registry
        self._pool = pool
        self._tell_self = self.actor_ref.tell  # once, not a property read per task
        self._free = workers
        self._pending: deque[int] = deque()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Submit):
            self._pending.append(message.task_id)
        elif isinstance(message, _Finished):
            self._free += 1
            self._registry.tell(_Finish(message.task_id))
        else:
            return super().on_receive(message)
        while self._free and self._pending:
            task_id = self._pending.popleft()
            self._free -= 1
            self._registry.tell(_Running(task_id))
            self._pool.submit(partial(self._tell_self, _Finished(task_id)))
        return None


def _message_floor(count: int, workers: int) -> float:
    """Tasks per second of the runtime's per-task message pattern with empty handlers,
    first tell until the registry has counted every finish."""
    done = threading.Event()
    pool = ThreadPool(workers, name="bench-floor-op")
    registry = _FloorRegistry.start(count, done)
    supervisor = _FloorSupervisor.start(registry, pool, workers)
    try:
        start = time.perf_counter()
        for task_id in range(count):
            # Registry first, then supervisor, as TaskRuntime.submit tells them.
            registry.tell(_Register(task_id))
            supervisor.tell(_Submit(task_id))
        if not done.wait(FLOOR_WAIT_SECONDS):
            reached = registry.ask(_CountFinishes(), timeout=FLOOR_STOP_SECONDS)
            raise AssertionError(
                f"the message-pattern floor counted {reached} of {count} finishes "
                f"within {FLOOR_WAIT_SECONDS} s"
            )
        elapsed = time.perf_counter() - start
    finally:
        supervisor.stop(block=True, timeout=FLOOR_STOP_SECONDS)
        registry.stop(block=True, timeout=FLOOR_STOP_SECONDS)
        pool.shutdown(wait=True)
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
            LOGGING_OFF: supervisor_logging_off,
            LOGGING_ON: supervisor_logging_on,
            FLOOR: lambda: _message_floor(count, workers),
        },
        rounds,
    )
    baseline = figures["baseline"]
    config = {"tasks": count, "workers": workers, "rounds": rounds, "timeout": 60.0}
    floor_config = {"tasks": count, "workers": workers, "rounds": rounds}  # sets no timeout
    baseline_figures = {
        "tasks_per_second_per_round": [round(x) for x in baseline],
        "median_tasks_per_second": round(median(baseline)),
    }
    baseline_cell = f"ThreadPoolExecutor({workers}): {median(baseline):,.0f} tasks/s"
    # name -> (the scenario cell, the target cell).
    described = {
        LOGGING_OFF: (
            f"throughput, {count:,} no-op tasks (timeout set), {LOGGING_OFF}",
            "report (the target is against the peers: --peers)",
        ),
        LOGGING_ON: (
            f"throughput, {count:,} no-op tasks (timeout set), {LOGGING_ON}",
            "report (JSON lines to a file)",
        ),
        FLOOR: (
            f"throughput, {count:,} no-op tasks, {FLOOR} (pykka actors, empty handlers)",
            "report (no target): the runtime's per-task message pattern with empty handlers",
        ),
    }
    parts: list[Part] = []
    for name, (scenario, target) in described.items():
        rates = figures[name]
        ratios = [s / b for s, b in zip(rates, baseline, strict=True)]
        ratio = median(ratios)
        extra: dict[str, Any] = {}
        if name == LOGGING_ON:
            extra["log_lines_per_run"] = log_lines
        parts.append(
            Part(
                scenario=scenario,
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
                config=config if name != FLOOR else floor_config,
                target=target,
                result="report",
            )
        )
    return parts


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as stream:
        return sum(1 for _ in stream)
