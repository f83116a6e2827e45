"""The peers of issue 17, each behind one small adapter: what a user would pick instead
of storycore-tasks, run in its in-process mode on the same no-op work.

An adapter is a context manager yielding a :class:`Pool`: a ``submit()`` of one no-op
task (with the peer's own timeout where it has one), a ``wait(handle)`` until that task
ended, a ``status(handle)`` (one read of its state, for B2) and a ``submit_spin()`` of a
task that spins in pure Python until its :class:`Spin` is released. Creating
and stopping the pool is outside what a scenario times; one task runs through every
pool before it is handed out (a warm-up: imports, the first wake-ups).

The peers (the ``bench`` extra: ``pip install storycore-tasks[bench]``), and their modes:

- **huey** ``MemoryHuey`` with a consumer of 4 thread workers started in this process
  (``consumer.start()``, stopped gracefully after): the same work as ours, a hand-off to
  worker threads and a result the caller waits for. Not immediate mode, which runs the
  task in the caller at enqueue and so hands nothing to a worker. The consumer polls
  its queue (huey's memory queue does not block): from 1 ms backing off to 10 ms at most
  (huey's defaults, 0.1 s to 10 s, would measure how long an idle worker sleeps rather
  than a task's cost). ``result.get(blocking=True)`` polls from 50 ms (huey's own
  back-off). huey's ``timeout=`` is cooperative in thread workers (``check_timeout()``),
  so these tasks have a deadline that nothing enforces: "no timeouts", as issue 17 says.
- **dramatiq** ``StubBroker`` + ``Worker(worker_threads=4)``, actors with
  ``time_limit=60 s`` and the ``Results`` middleware over a ``StubBackend``; the waits are
  ``message.get_result(block=True)`` (dramatiq's back-off polling). dramatiq's
  ``TimeLimit`` starts its watchdog thread at process boot (its CLI does that); here one
  that can be stopped is started with the worker, so the limits are enforced and the
  thread does not outlive the pool.
- **pebble** ``ProcessPool(4)`` with ``schedule(..., timeout=60)`` and
  **ProcessPoolExecutor(4)**, both in multiprocessing's default start method
  (``fork`` on Linux), for process isolation (B9).
- **huey** ``SqliteHuey`` (its defaults: WAL, ``fsync=False``) with the same consumer
  (:func:`huey_consumer`), against our SQLite store (B8, in :mod:`benchmarks.peer_rows`).
"""

from __future__ import annotations

import importlib.util
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmarks import ops
from benchmarks.report import Part
from storycore_tasks import TaskManager

__all__ = [
    "DEFAULT",
    "INSTALL_HINT",
    "PEER_MODULES",
    "TASK_TIMEOUT_SECONDS",
    "Pool",
    "Spin",
    "dramatiq_stub",
    "huey_consumer",
    "huey_memory",
    "missing",
    "pebble_process_pool",
    "process_pool_executor",
    "skipped_part",
    "storycore",
    "storycore_process",
    "temporary_database",
    "thread_pool_executor",
]

INSTALL_HINT = "pip install storycore-tasks[bench]"
PEER_MODULES = ("huey", "dramatiq", "pebble")
TASK_TIMEOUT_SECONDS = 60.0
WAIT_SECONDS = 600.0  # a wait gives up after this (never in a healthy run)
HUEY_POLL_SECONDS = (0.001, 0.01)  # the consumer's initial and largest polling delay
DRAMATIQ_WORKER_TIMEOUT_MS = 100  # how long an idle worker blocks on the queue


def missing(*modules: str) -> list[str]:
    """The ``modules`` that cannot be imported here (a peer not installed)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def skipped_part(scenario: str, target: str, absent: list[str]) -> Part:
    """A row for a peer that is not installed: it says how to install it; never fails."""
    return Part(
        scenario=scenario,
        status="not measured",
        target=target,
        result=f"skipped: {INSTALL_HINT}",
        reason=f"{', '.join(absent)} not installed; {INSTALL_HINT}",
    )


@dataclass(frozen=True, slots=True)
class Pool:
    """One contender, started: how to submit a no-op, wait for it, read its status."""

    name: str
    mode: str
    submit: Callable[[], Any]
    wait: Callable[[Any], None]
    status: Callable[[Any], object]
    submit_spin: Callable[[], Any]


def _warm(pool: Pool) -> Pool:
    pool.wait(pool.submit())
    return pool


@dataclass(frozen=True, slots=True)
class Spin:
    """What a spinner task does: say it started, then spin in pure Python (holding the
    GIL as much as the interpreter lets it) until ``release`` is set."""

    release: threading.Event
    started: threading.Semaphore

    @classmethod
    def new(cls) -> Spin:
        return cls(threading.Event(), threading.Semaphore(0))

    def run(self) -> int:
        self.started.release()
        loops = 0
        while not self.release.is_set():
            loops += 1
        return loops


def _noop() -> bool:
    return True


# -- thread isolation ----------------------------------------------------------------------


@contextmanager
def thread_pool_executor(workers: int, spin: Spin) -> Iterator[Pool]:
    """The baseline: ``ThreadPoolExecutor(workers)``; no timeouts."""
    with ThreadPoolExecutor(max_workers=workers) as executor:

        def wait(future: Future[Any]) -> None:
            future.result(timeout=WAIT_SECONDS)

        yield _warm(
            Pool(
                name=f"ThreadPoolExecutor({workers})",
                mode=f"{workers} threads, no timeouts",
                submit=lambda: executor.submit(_noop),
                wait=wait,
                status=lambda future: future.done(),
                submit_spin=lambda: executor.submit(spin.run),
            )
        )
        spin.release.set()  # a spinner still running must not keep the shutdown waiting


@contextmanager
def storycore(workers: int, spin: Spin) -> Iterator[Pool]:
    """``TaskManager(num_workers=workers)``, each task with ``timeout=60``."""

    def noop(params: Any, task: Any) -> None:
        return None

    def spinner(params: Any, task: Any) -> int:
        return spin.run()

    with TaskManager(num_workers=workers, max_pending=1_000_000) as manager:

        def wait(task_id: str) -> None:
            status = manager.wait(task_id, timeout=WAIT_SECONDS)
            if status["status"] != "completed":
                raise AssertionError(f"task {task_id} ended {status['status']}")

        yield _warm(
            Pool(
                name="storycore-tasks",
                mode=f"TaskManager(num_workers={workers}), thread isolation, timeout=60",
                submit=lambda: manager.create_task(noop, timeout=TASK_TIMEOUT_SECONDS),
                wait=wait,
                status=manager.get_task_status,
                submit_spin=lambda: manager.create_task(spinner, timeout=TASK_TIMEOUT_SECONDS),
            )
        )
        spin.release.set()


@contextmanager
def _signals_kept() -> Iterator[None]:
    """huey's ``consumer.start()`` installs its own SIGINT/SIGTERM/SIGHUP handlers in
    the main thread; put ours back afterwards."""
    kept = {
        number: signal.getsignal(number)
        for number in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
        if number is not None
    }
    try:
        yield
    finally:
        for number, handler in kept.items():
            signal.signal(number, handler)


@contextmanager
def huey_consumer(huey: Any, workers: int) -> Iterator[None]:
    initial, largest = HUEY_POLL_SECONDS
    consumer = huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=False,
        initial_delay=initial,
        max_delay=largest,
        check_worker_health=False,
    )
    with _signals_kept():
        consumer.start()
        try:
            yield
        finally:
            consumer.stop(graceful=True)


def _huey_pool(huey: Any, workers: int, spin: Spin, name: str) -> Pool:
    noop = huey.task(timeout=TASK_TIMEOUT_SECONDS)(_noop)
    spinner = huey.task()(spin.run)

    def wait(result: Any) -> None:
        if result.get(blocking=True, timeout=WAIT_SECONDS) is not True:
            raise AssertionError(f"huey task {result.id} gave no result")

    return Pool(
        name=name,
        mode=f"consumer with {workers} thread workers in process, polling "
        f"{HUEY_POLL_SECONDS[0] * 1e3:g} to {HUEY_POLL_SECONDS[1] * 1e3:g} ms; "
        "no timeouts (cooperative only in thread workers)",
        submit=noop,
        wait=wait,
        status=lambda result: result.get(preserve=True),
        submit_spin=spinner,
    )


@contextmanager
def huey_memory(workers: int, spin: Spin) -> Iterator[Pool]:
    """huey's ``MemoryHuey`` with an in-process consumer of ``workers`` threads."""
    from huey import MemoryHuey

    huey = MemoryHuey("bench", utc=False)
    pool = _huey_pool(huey, workers, spin, "huey MemoryHuey")
    with huey_consumer(huey, workers):
        try:
            yield _warm(pool)
        finally:
            spin.release.set()


def _stoppable_time_limit() -> tuple[Any, Callable[[], None]]:
    """dramatiq's ``TimeLimit`` whose watchdog thread can be stopped; and its stop."""
    from dramatiq.middleware.time_limit import TimeLimit, _CtypesTimeoutManager

    stopped = threading.Event()

    class Manager(_CtypesTimeoutManager):  # type: ignore[misc]
        def run(self) -> None:
            while not stopped.wait(self.interval):  # as dramatiq's loop, with an exit
                self._handle_deadlines()

    middleware = TimeLimit()
    middleware.manager = Manager(1000, logger=middleware.logger)
    return middleware, stopped.set


@contextmanager
def dramatiq_stub(workers: int, spin: Spin) -> Iterator[Pool]:
    """dramatiq's ``StubBroker`` + ``Worker(worker_threads=workers)``, time limits on."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.middleware import TimeLimit, default_middleware
    from dramatiq.results import Results
    from dramatiq.results.backends import StubBackend

    time_limit, stop_watchdog = _stoppable_time_limit()
    backend = StubBackend()
    backend.results = {}  # the class keeps one dict for all instances
    middleware = [time_limit if m is TimeLimit else m() for m in default_middleware]
    broker = StubBroker(middleware=[*middleware, Results(backend=backend)])
    limit_ms = int(TASK_TIMEOUT_SECONDS * 1000)
    noop = dramatiq.actor(
        _noop,
        broker=broker,
        actor_name="bench_noop",
        time_limit=limit_ms,
        max_retries=0,
        store_results=True,
    )
    spinner = dramatiq.actor(
        spin.run,
        broker=broker,
        actor_name="bench_spin",
        time_limit=limit_ms,
        max_retries=0,
        store_results=True,
    )

    def wait(message: Any) -> None:
        result = message.get_result(backend=backend, block=True, timeout=int(WAIT_SECONDS * 1000))
        if result is not True:
            raise AssertionError(f"dramatiq message {message.message_id} gave {result!r}")

    time_limit.manager.start()  # what dramatiq's CLI does at process boot
    worker = dramatiq.Worker(
        broker, worker_threads=workers, worker_timeout=DRAMATIQ_WORKER_TIMEOUT_MS
    )
    worker.start()
    try:
        yield _warm(
            Pool(
                name="dramatiq StubBroker",
                mode=f"StubBroker + Worker({workers} threads) in process, time_limit=60 s, "
                "Results(StubBackend)",
                submit=noop.send,
                wait=wait,
                status=lambda message: message.get_result(backend=backend),
                submit_spin=spinner.send,
            )
        )
    finally:
        spin.release.set()
        worker.stop()
        broker.close()
        stop_watchdog()
        time_limit.manager.join(WAIT_SECONDS)


# -- process isolation ---------------------------------------------------------------------


DEFAULT = "default"  # storycore_process: leave max_tasks_per_child at the manager's default


@contextmanager
def storycore_process(
    workers: int, max_tasks_per_child: int | Literal["default"] | None
) -> Iterator[Pool]:
    """``TaskManager(isolation="process")``, its pool warm before it is handed out."""
    from actors.testing import wait_until

    kwargs: dict[str, Any] = {}
    if max_tasks_per_child != DEFAULT:
        kwargs["max_tasks_per_child"] = max_tasks_per_child
    with TaskManager(
        num_workers=workers, isolation="process", max_pending=1_000_000, **kwargs
    ) as manager:
        if not wait_until(
            lambda: manager.get_stats()["process_pool"]["idle"] == workers, timeout=WAIT_SECONDS
        ):
            raise TimeoutError("the process pool did not warm up")

        def wait(task_id: str) -> None:
            status = manager.wait(task_id, timeout=WAIT_SECONDS)
            if status["status"] != "completed":
                raise AssertionError(f"task {task_id} ended {status['status']}")

        yield _warm(
            Pool(
                name="storycore-tasks",
                mode=f"TaskManager(num_workers={workers}, isolation='process', "
                f"max_tasks_per_child={max_tasks_per_child}), timeout=60",
                submit=lambda: manager.create_task(ops.noop, timeout=TASK_TIMEOUT_SECONDS),
                wait=wait,
                status=manager.get_task_status,
                submit_spin=_no_spin,
            )
        )


def _no_spin() -> Any:
    raise NotImplementedError("the process pools run no spinner")


@contextmanager
def pebble_process_pool(workers: int) -> Iterator[Pool]:
    """pebble's ``ProcessPool(workers)``, each task scheduled with ``timeout=60``."""
    from pebble import ProcessPool

    pool = ProcessPool(max_workers=workers)
    try:
        yield _warm(
            Pool(
                name="pebble ProcessPool",
                mode=f"ProcessPool({workers}), schedule(timeout=60), start method "
                f"{_start_method()}",
                submit=lambda: pool.schedule(ops.bare_noop, timeout=TASK_TIMEOUT_SECONDS),
                wait=lambda future: future.result(timeout=WAIT_SECONDS),
                status=lambda future: future.done(),
                submit_spin=_no_spin,
            )
        )
    finally:
        pool.close()
        pool.join(WAIT_SECONDS)


@contextmanager
def process_pool_executor(workers: int) -> Iterator[Pool]:
    """``concurrent.futures.ProcessPoolExecutor(workers)``; no timeouts."""
    with ProcessPoolExecutor(max_workers=workers) as executor:
        yield _warm(
            Pool(
                name=f"ProcessPoolExecutor({workers})",
                mode=f"ProcessPoolExecutor({workers}), no timeouts, start method {_start_method()}",
                submit=lambda: executor.submit(ops.bare_noop),
                wait=lambda future: future.result(timeout=WAIT_SECONDS),
                status=lambda future: future.done(),
                submit_spin=_no_spin,
            )
        )


def _start_method() -> str:
    import multiprocessing

    return str(multiprocessing.get_start_method(allow_none=False))


@contextmanager
def temporary_database(name: str) -> Iterator[Path]:
    """A fresh folder holding nothing yet; yields the path of a database in it."""
    with tempfile.TemporaryDirectory(prefix="storycore-bench-peers-") as directory:
        yield Path(directory) / name
