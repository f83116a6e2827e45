"""The code that runs inside a child process of the process pool.

Kept to the standard library: a child imports only this module (and the operations it is
sent). Protocol over one duplex ``multiprocessing`` connection, as tuples:

parent -> child: ``("run", task_id, pickled (operation, params, dependency results),
memory_limit_mb, cpu_time_limit)``,
``("cancel", task_id, reason)``, ``("exit",)``.

child -> parent: ``("ready",)`` once at start,
``("progress", task_id, progress | None, has_partial, partial)``,
``("done", task_id, kind, payload)`` where kind is ``"completed"`` (payload: the result),
``"raised"`` (payload: (exception_type, message, traceback, class names)) or
``"memory"`` (payload: the same, of the MemoryError under a memory limit).

Progress is coalesced in the child: the operation's calls only record the latest values;
a sender thread ships them at most every ``_PROGRESS_INTERVAL`` seconds, and the last
values are flushed before ``done``.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import queue
import resource
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from actors._clock import blocking_timeout
from actors._outcome import Raised
from actors._published import Published

__all__ = ["ChildTaskContext", "child_main"]

_PROGRESS_INTERVAL = 0.01
_CHILD_NICENESS = 10


class _Channel:
    """The child's end of the connection: sends from several threads, one at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self.conn.send_bytes(data)


class ChildTaskContext:
    """The ``task`` argument of an operation running in a child: the same surface as
    :class:`actors.TaskContext`."""

    def __init__(self, task_id: str, channel: _Channel) -> None:
        self.task_id = task_id
        self._channel = channel
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._published = Published()
        self._dirty = threading.Event()
        self._closing = threading.Event()  # not _stop: a cancelled task must stay rate-limited
        self._closed = False
        self.dependency_results: Mapping[str, Any] = {}
        self._sender = threading.Thread(target=self._send_loop, name="progress-sender", daemon=True)
        self._sender.start()

    def is_cancelled(self) -> bool:
        return self._stop.is_set()

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        return self._stop.wait(blocking_timeout(timeout))

    def update_progress(self, fraction: float) -> None:
        self._published.progress(fraction)
        self._dirty.set()

    @property
    def partial_result(self) -> Any:
        return self._published.latest_partial()

    @partial_result.setter
    def partial_result(self, value: Any) -> None:
        self._published.partial(value)
        self._dirty.set()

    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def close(self) -> None:
        """Flush the latest values and stop the sender thread."""
        with self._lock:
            self._closed = True
        self._closing.set()
        self._dirty.set()
        self._sender.join()
        self._flush()

    def _send_loop(self) -> None:
        while True:
            self._dirty.wait()
            with self._lock:
                if self._closed:
                    return
            self._dirty.clear()
            self._flush()
            self._closing.wait(_PROGRESS_INTERVAL)  # at most one message per interval

    def _flush(self) -> None:
        progress, partial, has_partial = self._published.drain()
        if progress is None and not has_partial:
            return
        message = (
            "progress",
            self.task_id,
            progress,
            has_partial,
            partial,
        )
        try:
            self._channel.send(message)
        except Exception:  # an unpicklable partial result: keep the progress
            self._channel.send(("progress", self.task_id, progress, False, None))


def _exception_info(exc: BaseException) -> tuple[str, str, str, tuple[str, ...]]:
    """(qualified type, message, traceback, class names): the host's Raised fact."""
    raised = Raised.from_exception(exc)
    return raised.exception_type, raised.message, raised.traceback, raised.exception_mro


def _apply_limits(memory_limit_mb: float | None, cpu_time_limit: float | None) -> Any:
    saved = (resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CPU))
    if memory_limit_mb is not None:
        _, hard = saved[0]
        soft = int(memory_limit_mb * 1024 * 1024)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if cpu_time_limit is not None:
        # RLIMIT_CPU counts the process's whole life: allow this much more than used so far.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        _, hard = saved[1]
        soft = math.ceil(used + cpu_time_limit)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    return saved


def _restore_limits(saved: Any) -> None:
    resource.setrlimit(resource.RLIMIT_AS, saved[0])
    resource.setrlimit(resource.RLIMIT_CPU, saved[1])


def child_main(conn: Connection) -> None:
    """Entry point of a pool child: run tasks until told to exit or the parent goes."""
    # Below the host's priority: operations in children must not starve the
    # supervisor's own threads of CPU (status queries, timers, stops).
    with contextlib.suppress(OSError):
        os.nice(_CHILD_NICENESS)
    channel = _Channel(conn)
    channel.send(("ready",))  # the interpreter is up: the parent may hand out this child
    tasks: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    current: dict[str, ChildTaskContext] = {}
    early_cancels: dict[str, str] = {}
    lock = threading.Lock()  # current and early_cancels, shared with the receiver

    def receive() -> None:
        # The only reader of the connection: cancels must arrive while an operation runs.
        try:
            while True:
                message = conn.recv()
                if message[0] == "cancel":
                    with lock:
                        context = current.get(message[1])
                        if context is None:
                            # Sent just before or after "run" reached the main loop:
                            # keep it for the task's context, which does not exist yet.
                            early_cancels[message[1]] = message[2]
                    if context is not None:
                        context.request_stop(message[2])
                elif message[0] == "run":
                    tasks.put(message)
                else:
                    break
        except (EOFError, OSError):
            pass  # the parent went away
        tasks.put(None)

    threading.Thread(target=receive, name="receiver", daemon=True).start()
    while True:
        message = tasks.get()
        if message is None:
            return
        _, task_id, work, memory_limit_mb, cpu_time_limit = message
        context = ChildTaskContext(task_id, channel)
        with lock:
            current[task_id] = context
            early = early_cancels.pop(task_id, None)
            early_cancels.clear()  # cancels of earlier tasks that came too late to matter
        if early is not None:
            context.request_stop(early)
        saved = _apply_limits(memory_limit_mb, cpu_time_limit)
        kind: str
        payload: Any
        try:
            try:
                # Unpickled here, not by the receiver: an operation that cannot be
                # imported in the child fails its task instead of the child.
                operation, params, context.dependency_results = pickle.loads(work)
                payload = operation(params, context)
                kind = "completed"
            except MemoryError as exc:
                kind = "memory" if memory_limit_mb is not None else "raised"
                payload = _exception_info(exc)
            except BaseException as exc:  # SystemExit too: the child carries on
                kind, payload = "raised", _exception_info(exc)
        finally:
            _restore_limits(saved)
            context.close()
            with lock:
                del current[task_id]
        try:
            channel.send(("done", task_id, kind, payload))
        except Exception as exc:  # the result cannot be pickled
            _, text, trace, _ = _exception_info(exc)
            info = ("pickle.PicklingError", f"the operation's result cannot be pickled: {text}")
            mro = ("pickle.PicklingError", "Exception", "BaseException")
            channel.send(("done", task_id, "raised", (*info, trace, mro)))
        if kind == "memory":
            return  # a child that ran out of memory may be damaged: the pool replaces it
