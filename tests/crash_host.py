"""The process that test_crash_recovery kills: a TaskManager on a SQLite store, under load.

Run as ``python -m tests.crash_host DBPATH SEED KIND N`` from the repository root (KIND
``none``, or a line kind below after whose Nth line the child SIGKILLs itself). It imports
everything, then waits for a line on standard input (the parent's "go": the parent starts
the next child while it still holds the database, so the imports cost nothing), opens
the database (recovering what earlier rounds left), and runs until it is killed:

* submitter threads create tasks of the named operations below, with mixed priorities,
  never more than ``MAX_OUTSTANDING`` unfinished at once;
* a poller thread reads the statuses of the unfinished ones and cancels a few.

Every fact goes to standard output as one line, written with a single ``os.write`` (a
pipe write of under ``PIPE_BUF`` bytes is atomic, so lines from different threads never
mix, and a kill leaves at most a missing line, never a torn one):

* ``ready`` once the manager is open;
* ``ack ID`` once ``create_task`` returned ID;
* ``start ID`` when an operation begins (its RUNNING state is committed by then);
* ``done ID JSON`` when ``get_task_status`` reported ID completed with that result;
* ``end ID STATUS CODE`` when it reported another terminal state and error code;
* ``cancel ID`` when ``cancel_task`` accepted a cancellation;
* ``error TEXT`` when a thread of the child died (the parent fails the round).

The operations are importable, so the parent's TaskManager registers the very same
functions when it reopens the database. The child registers them all up front
(``CHILD_OPERATIONS``, RETRY as a ``NamedOperation`` with ``retry_on_interrupt=True``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from actors import TaskContext
from storycore_tasks import NamedOperation, TaskManager

QUICK = "crash.quick"
SLOW = "crash.slow"
PROGRESS = "crash.progress"
FAIL = "crash.fail"
RETRY = "crash.retry"

NUM_WORKERS = 4
SUBMITTERS = 3
MAX_OUTSTANDING = 100
"""Tasks created but not yet seen terminal: bounds the backlog a kill leaves behind, so
the parent's reopened manager finishes the requeued tasks in a fraction of a second."""
LIFETIME = 60.0
"""Seconds the child lives if nobody kills it (the parent always does, far sooner)."""
PRIORITIES = ("low", "normal", "high", "critical")


def _discard(line: str) -> None:
    pass


sink: Callable[[str], None] = _discard
"""Where operations report ``start ID``: standard output in the child; the parent
replaces it to count the starts of the tasks it runs itself."""


def _wait_ms(params: Mapping[str, Any], task: TaskContext) -> bool:
    """Wait ``params["ms"]`` milliseconds or until cancelled; True if cancelled."""
    return task.wait_cancelled(float(params["ms"]) / 1000.0)


def quick(params: Mapping[str, Any], task: TaskContext) -> Any:
    sink(f"start {task.task_id}")
    n = int(params["n"])
    # A tuple and non-ASCII text: the store keeps JSON, so this reads back as a list.
    return {"n": n, "tag": params["tag"], "pair": (n, n / 7), "text": f"é✓-{n}"}


def slow(params: Mapping[str, Any], task: TaskContext) -> Any:
    sink(f"start {task.task_id}")
    if _wait_ms(params, task):
        return None
    return {"slept_ms": params["ms"], "n": params["n"]}


def progress(params: Mapping[str, Any], task: TaskContext) -> Any:
    sink(f"start {task.task_id}")
    steps = int(params["steps"])
    total = 0
    for step in range(steps):
        total += step * step
        task.update_progress((step + 1) / steps)
        task.partial_result = {"step": step, "total": total}
        if _wait_ms(params, task):
            return None
    return [steps, total, 0.1 * total]


def fail(params: Mapping[str, Any], task: TaskContext) -> Any:
    sink(f"start {task.task_id}")
    raise ValueError(f"planned failure {params['n']}")


def retry(params: Mapping[str, Any], task: TaskContext) -> Any:
    """Safe to run again from the start: registered with ``retry_on_interrupt=True``."""
    sink(f"start {task.task_id}")
    if _wait_ms(params, task):
        return None
    return [params["n"], "retried-safely"]


OPERATIONS: dict[str, Callable[[Mapping[str, Any], TaskContext], Any]] = {
    QUICK: quick,
    SLOW: slow,
    PROGRESS: progress,
    FAIL: fail,
}
"""The operations that must not run twice (no ``retry_on_interrupt``)."""

CHILD_OPERATIONS: dict[str, Any] = {
    **OPERATIONS,
    RETRY: NamedOperation(retry, retry_on_interrupt=True),
}
"""What the child registers up front. The parent registers RETRY late, or not at all,
to see its tasks wait for it."""


def _random_task(rng: random.Random, n: int, tag: str) -> tuple[str, dict[str, Any], float | None]:
    """(operation, params, timeout) of one task."""
    kind = rng.choices((QUICK, SLOW, PROGRESS, FAIL, RETRY), weights=(55, 14, 10, 6, 15))[0]
    params: dict[str, Any] = {"n": n, "tag": tag}
    timeout = None
    if kind in (SLOW, RETRY):
        params["ms"] = rng.randint(5, 60)
        if kind == SLOW and rng.random() < 0.2:
            timeout = 0.02  # some time out (TIMEOUT, counted in total_timed_out)
    elif kind == PROGRESS:
        params["ms"] = rng.randint(1, 8)
        params["steps"] = rng.randint(2, 6)
    return kind, params, timeout


class _Host:
    def __init__(self, manager: TaskManager, seed: int) -> None:
        self.manager = manager
        self.seed = seed
        self.lock = threading.Lock()
        self.outstanding: list[str] = []
        self.slots = threading.BoundedSemaphore(MAX_OUTSTANDING)
        self.stop = threading.Event()

    def submit(self, index: int) -> None:
        rng = random.Random(f"{self.seed}-{index}")
        n = 0
        while not self.stop.is_set():
            if not self.slots.acquire(timeout=0.5):
                continue
            n += 1
            kind, params, timeout = _random_task(rng, n, f"{self.seed}-{index}-{n}")
            task_id = self.manager.create_task(
                kind, params, timeout=timeout, priority=rng.choice(PRIORITIES)
            )
            emit(f"ack {task_id}")
            with self.lock:
                self.outstanding.append(task_id)

    def poll(self) -> None:
        rng = random.Random(f"{self.seed}-poll")
        considered: set[str] = set()  # each task is a candidate for cancelling once
        while not self.stop.is_set():
            with self.lock:
                batch, self.outstanding = self.outstanding, []
            unfinished: list[str] = []
            for task_id in batch:
                status = self.manager.get_task_status(task_id)
                if status is None:
                    emit(f"error unknown task {task_id}")
                    continue
                state = status["status"]
                if state == "completed":
                    result = json.dumps(status["result"], sort_keys=True)
                    emit(f"done {task_id} {result}")
                elif state in ("failed", "cancelled"):
                    emit(f"end {task_id} {state} {status['error']['code']}")
                else:
                    if task_id not in considered:
                        considered.add(task_id)
                        if rng.random() < 0.03 and self.manager.cancel_task(task_id):
                            emit(f"cancel {task_id}")
                    unfinished.append(task_id)
                    continue
                self.slots.release()
            with self.lock:
                self.outstanding.extend(unfinished)
            if not batch:
                self.stop.wait(0.002)


_emit_lock = threading.Lock()
SELF_KILL_KINDS = ("ack", "cancel", "done", "start")
_self_kill: list[Any] = [None, 0]  # [kind of line, how many of them before the kill]


def emit(line: str) -> None:
    """One line to standard output in a single write (atomic on a pipe).

    In a self-kill round the child SIGKILLs itself right after writing the chosen line
    the chosen number of times: the worst moment for the fact that line reports.
    """
    data = (line + "\n").encode()
    if len(data) >= 4096:
        raise ValueError(f"a line of {len(data)} bytes would not be written atomically")
    with _emit_lock:
        while data:
            data = data[os.write(1, data) :]
        if line.startswith(f"{_self_kill[0]} "):
            _self_kill[1] -= 1
            if _self_kill[1] == 0:
                os.kill(os.getpid(), signal.SIGKILL)


def _report_thread_death(args: threading.ExceptHookArgs) -> None:
    emit(f"error {args.exc_type.__name__}: {args.exc_value!r}")
    traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback)


def main(argv: list[str]) -> int:
    db_path, seed_text, self_kill_kind, self_kill_after = argv
    seed = int(seed_text)
    if self_kill_kind != "none":
        if self_kill_kind not in SELF_KILL_KINDS:
            raise ValueError(f"unknown self-kill line kind {self_kill_kind!r}")
        _self_kill[:] = [self_kill_kind, int(self_kill_after)]
    # Library log lines must not reach standard output, which carries the protocol.
    structlog.configure(
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    threading.excepthook = _report_thread_death
    if not sys.stdin.readline():
        return 0  # the parent went away before saying go
    global sink
    sink = emit
    manager = TaskManager(num_workers=NUM_WORKERS, store=Path(db_path), operations=CHILD_OPERATIONS)
    emit("ready")
    host = _Host(manager, seed)
    threads = [
        threading.Thread(target=host.submit, args=(i,), name=f"submit-{i}", daemon=True)
        for i in range(SUBMITTERS)
    ]
    threads.append(threading.Thread(target=host.poll, name="poll", daemon=True))
    for thread in threads:
        thread.start()
    host.stop.wait(LIFETIME)
    emit("error the child was not killed")
    os._exit(3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
