"""Process isolation: a warm pool of child processes, and the driver that runs one task
in a child on behalf of its worker actor.

Children are started with the ``spawn`` context (never a ``fork`` of the threaded host)
and are reused: a child is replaced after a crash, a kill, a memory error, or
``max_tasks_per_child`` tasks. They are direct children of the host, so a stopped pool
leaves no process behind and every child is reaped (joined).

The driver runs on the operation thread that holds the task's slot. It relays progress
and partial results into the task's :class:`TaskContext` (and so, coalesced, to the
registry) and turns the child's answer, or its death, into an outcome.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from actors._child import child_main
from actors._context import TaskContext
from actors._errors import UnguardedMainError
from actors._main_guard import CHILD_NAME_MARKER, UNGUARDED_MAIN_EXIT_CODE
from actors._outcome import Completed, Crashed, Outcome, Raised, ResourceExhausted
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["ChildProcess", "ProcessPool", "ProcessPoolStats", "run_in_child"]

_log = library_logger("actors.processes")
_EXIT_GRACE_SECONDS = 5.0
_START_TIMEOUT_SECONDS = 60.0


class ChildProcess:
    """One child of the pool and its end of the connection."""

    def __init__(self, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        self.process = context.Process(
            target=child_main,
            args=(child_end,),
            # The marker lets a child that finds an unguarded main module leave at once.
            name=f"{name} {CHILD_NAME_MARKER}",
            daemon=True,
        )
        self.process.start()
        child_end.close()
        self.conn: Connection = parent_end
        self.tasks_run = 0
        self._send_lock = threading.Lock()
        # Wait for the interpreter to be up, so that no task's timeout pays for it.
        ready = wait([self.conn, self.process.sentinel], _START_TIMEOUT_SECONDS)
        failure = None
        if not ready:
            failure = f"a child process did not start within {_START_TIMEOUT_SECONDS} s"
        elif self.conn not in ready:
            failure = "a child process died while starting"
        else:
            try:
                hello = pickle.loads(self.conn.recv_bytes())
            except (EOFError, OSError) as exc:
                failure = f"a child process died while starting: {exc!r}"
        if failure is not None:
            if ready:  # it died (or is dying): reap it for its exit code
                self.process.join(_EXIT_GRACE_SECONDS)
            # The exit code is read before close(): a closed process has none to give.
            exitcode = self.process.exitcode
            self.close()
            if exitcode == UNGUARDED_MAIN_EXIT_CODE:
                main = sys.modules.get("__main__")
                raise UnguardedMainError(str(getattr(main, "__file__", None) or "__main__"))
            raise RuntimeError(f"{failure} (exit code {exitcode})")
        assert hello == ("ready",), hello

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def send(self, message: tuple[Any, ...]) -> bool:
        """Send to the child; False if it is gone."""
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, ValueError):
            return False
        return True

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.process.exitcode is None:
                os.kill(self.pid, signum)

    def close(self) -> None:
        """Ask the child to exit, kill it if it does not, and reap it."""
        self.send(("exit",))
        self.process.join(_EXIT_GRACE_SECONDS)
        if self.process.exitcode is None:
            self.signal(signal.SIGKILL)
            self.process.join()
        self.conn.close()
        self.process.close()


@dataclass(frozen=True, slots=True)
class ProcessPoolStats:
    children: int  # alive now, idle or busy
    idle: int
    started_total: int
    replaced_total: int


class ProcessPool:
    """Warm children, handed out one task at a time."""

    def __init__(self, *, max_tasks_per_child: int | None, name: str) -> None:
        self._max_tasks = max_tasks_per_child
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[ChildProcess] = []
        self._busy: set[ChildProcess] = set()
        self._numbers = itertools.count(1)
        self._started = 0
        self._replaced = 0
        self._starting = 0  # children being started by prewarm_one
        self._closed = False

    def acquire(self) -> ChildProcess:
        """An idle child, or a new one (started here: call it off the actors' threads)."""
        dead: list[ChildProcess] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the process pool is shut down")
            found = None
            while self._idle:
                child = self._idle.pop()
                if child.process.exitcode is None:
                    self._busy.add(child)
                    found = child
                    break
                dead.append(child)  # died while idle (killed from outside)
                self._replaced += 1
            number = next(self._numbers)
        for child in dead:
            child.close()  # reap it
        if found is not None:
            return found
        child = ChildProcess(f"{self._name}-{number}")
        with self._lock:
            self._started += 1
            self._busy.add(child)
        _log.debug("process.started", pid=child.pid)
        return child

    def release(self, child: ChildProcess, *, reusable: bool) -> None:
        """Return a child after its task. One that is not reusable (it crashed, was
        killed, ran out of memory, or ran max_tasks_per_child tasks) is replaced."""
        worn_out = self._max_tasks is not None and child.tasks_run >= self._max_tasks
        keep = reusable and not worn_out and child.process.exitcode is None
        with self._lock:
            self._busy.discard(child)
            if keep and not self._closed:
                self._idle.append(child)
                return
            self._replaced += 1
        _log.debug("process.retired", pid=child.pid, tasks_run=child.tasks_run)
        child.close()

    def prewarm_one(self, count: int) -> bool:
        """Start one child if fewer than ``count`` exist or are starting (blocking);
        returns whether it started one."""
        with self._lock:
            if self._closed or len(self._idle) + len(self._busy) + self._starting >= count:
                return False
            self._starting += 1
        try:
            child = ChildProcess(f"{self._name}-{next(self._numbers)}")
        finally:
            with self._lock:
                self._starting -= 1
        with self._lock:
            self._started += 1
            if not self._closed:
                self._idle.append(child)
                return True
        child.close()
        return False

    def shutdown(self) -> None:
        """Stop every child (busy ones too: call it once no task runs). Idempotent."""
        with self._lock:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
        for child in children:
            child.close()

    def statistics(self) -> ProcessPoolStats:
        with self._lock:
            alive = [c for c in (*self._idle, *self._busy) if c.process.exitcode is None]
            return ProcessPoolStats(
                children=len(alive),
                idle=len(self._idle),
                started_total=self._started,
                replaced_total=self._replaced,
            )


def run_in_child(
    pool: ProcessPool,
    spec: TaskSpec,
    context: TaskContext,
    on_started: Callable[[], None] = lambda: None,
) -> Outcome:
    """Run ``spec`` in a child of ``pool``; blocks the calling (operation) thread.

    ``on_started`` is called once the child has the task (after a cold start, if any).
    """
    try:
        work = pickle.dumps(
            (spec.operation, spec.params, dict(spec.dependency_results or {})),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    except Exception as exc:  # checked at submission; a params value may have changed
        return Raised.from_exception(exc)
    child = pool.acquire()
    child.tasks_run += 1
    context.attach_child(child)

    def give_back(*, reusable: bool) -> None:
        # Detach first: a late signal or cancel for this task must not reach the
        # child's next task.
        context.detach_child()
        pool.release(child, reusable=reusable)

    message = ("run", spec.task_id, work, spec.memory_limit_mb, spec.cpu_time_limit)
    if child.send(message):
        on_started()
        if context.stop_reason is not None:
            # Stopped before the child was attached: the worker could not forward it.
            child.send(("cancel", spec.task_id, context.stop_reason.value))
    while True:
        ready = wait([child.conn, child.process.sentinel])
        if child.conn not in ready:
            break  # the child died with nothing left to read
        try:
            reply = pickle.loads(child.conn.recv_bytes())
        except (EOFError, OSError):
            break
        except Exception as exc:  # a value that cannot be unpickled here
            # Which message it was is unknown, so the child may still be running the
            # operation: it cannot be trusted with another task.
            child.signal(signal.SIGKILL)
            give_back(reusable=False)
            return Raised.from_exception(exc)
        if reply[0] == "progress":
            _, _, progress, has_partial, partial = reply
            if progress is not None:
                context.update_progress(progress)
            if has_partial:
                context.partial_result = partial
            continue
        _, _, kind, payload = reply
        give_back(reusable=kind != "memory")
        if kind == "completed":
            return Completed(payload)
        exception_type, text, trace, mro = payload
        if kind == "memory":
            return ResourceExhausted(
                limit="memory_limit_mb",
                value=float(spec.memory_limit_mb or 0),
                message=f"{exception_type}: {text}" if text else exception_type,
            )
        return Raised(
            exception_type=exception_type, message=text, traceback=trace, exception_mro=mro
        )
    child.process.join()
    exitcode = child.process.exitcode
    give_back(reusable=False)
    return _death_outcome(exitcode, spec)


def _death_outcome(exitcode: int | None, spec: TaskSpec) -> Outcome:
    signum = -exitcode if exitcode is not None and exitcode < 0 else None
    exit_code = exitcode if signum is None else None
    if signum == signal.SIGXCPU and spec.cpu_time_limit is not None:
        return ResourceExhausted(
            limit="cpu_time_limit",
            value=spec.cpu_time_limit,
            message=f"the child used more than {spec.cpu_time_limit} s of CPU time",
        )
    return Crashed(exit_code=exit_code, signal=signum)
