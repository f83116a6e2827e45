"""Operations for process-mode tests.

A child process imports an operation by its module and name, so every one is a
module-level function here (a lambda or a local function cannot be pickled). None of them
blocks longer than ``RELEASE_TIMEOUT`` unless it is meant to be stopped from outside.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from actors import TaskContext

RELEASE_TIMEOUT = 30.0  # a cooperative op never blocks longer than this


def getpid(params: Mapping[str, Any], task: TaskContext) -> int:
    """Return the pid of the process running the operation."""
    return os.getpid()


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Return the params it was given and where it ran."""
    return {"echo": dict(params), "pid": os.getpid()}


def allocate_mb_and_getpid(params: Mapping[str, Any], task: TaskContext) -> int:
    """Allocate params["mb"] MiB of address space (untouched), then return the pid."""
    block = bytearray(params["mb"] * 1024 * 1024)
    del block
    return os.getpid()


def report_then_wait(params: Mapping[str, Any], task: TaskContext) -> bool:
    """Report progress 0.5 and a partial result, then wait (cooperatively) to be stopped."""
    task.update_progress(0.5)
    task.partial_result = {"step": 1, "pid": os.getpid()}
    return task.wait_cancelled(RELEASE_TIMEOUT)


def partial_then_sleep(params: Mapping[str, Any], task: TaskContext) -> None:
    """Publish its pid as the partial result, then block in C without ever looking at
    is_cancelled()."""
    task.partial_result = {"pid": os.getpid()}
    time.sleep(3600)


def ignore_sigterm_then_sleep(params: Mapping[str, Any], task: TaskContext) -> None:
    """Ignore SIGTERM for the whole process, say so with its pid, then block in C."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the child's main thread: set the disposition through libc
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal(int(signal.SIGTERM), 1)  # SIG_IGN
    task.partial_result = {"pid": os.getpid(), "ignoring": "SIGTERM"}
    time.sleep(3600)


def sleep_then_return(params: Mapping[str, Any], task: TaskContext) -> str:
    """Publish its pid, work for params["seconds"] without looking at is_cancelled(),
    then return."""
    task.partial_result = {"pid": os.getpid()}
    time.sleep(params["seconds"])
    return "finished"


# -- operations that misbehave -----------------------------------------------------------


def segfault(params: Mapping[str, Any], task: TaskContext) -> None:
    """Dereference NULL: the child dies of SIGSEGV."""
    ctypes.string_at(0)


def exit_3(params: Mapping[str, Any], task: TaskContext) -> None:
    """Leave the child at once with exit status 3 (no cleanup, no exception)."""
    os._exit(3)


def kill_self(params: Mapping[str, Any], task: TaskContext) -> None:
    """The child is killed by a signal (as the OOM killer would)."""
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(RELEASE_TIMEOUT)


def raise_system_exit(params: Mapping[str, Any], task: TaskContext) -> None:
    """SystemExit in an operation is an ordinary exception."""
    raise SystemExit(3)


def unpicklable_result(params: Mapping[str, Any], task: TaskContext) -> threading.Lock:
    """Return a value that cannot be pickled back to the host."""
    return threading.Lock()


def allocate_a_gigabyte(params: Mapping[str, Any], task: TaskContext) -> int:
    """One allocation far beyond a small memory limit."""
    return len(bytearray(1024**3))


def grow_a_list(params: Mapping[str, Any], task: TaskContext) -> int:
    """Allocate 1 MiB at a time until memory runs out (bounded at 64 GiB)."""
    chunks: list[bytes] = []
    for _ in range(64 * 1024):
        chunks.append(b"x" * (1024 * 1024))
    return len(chunks)


def spin(params: Mapping[str, Any], task: TaskContext) -> None:
    """Burn CPU in pure Python, never looking at is_cancelled()."""
    while True:
        pass


class OnlyInChild:
    """Unpickling it in the parent fails: its state refuses to be restored there."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["pid"] != os.getpid():
            raise RuntimeError("this value can only be unpickled in the process that made it")
        self.__dict__.update(state)


def partial_unreadable_by_parent(params: Mapping[str, Any], task: TaskContext) -> None:
    """Publish a partial result the parent cannot unpickle, then keep running."""
    task.partial_result = OnlyInChild()
    time.sleep(3600)


def niceness(params: Mapping[str, Any], task: TaskContext) -> int:
    """The scheduling niceness the operation runs at."""
    return os.nice(0)
