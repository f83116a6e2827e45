"""Operations for process-mode tests.

A child process imports an operation by its module and name, so every one is a
module-level function here (a lambda or a local function cannot be pickled). None of them
blocks longer than ``RELEASE_TIMEOUT`` unless it is meant to be stopped from outside.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

from actors import TaskContext
from actors._execution import wire

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


# -- operations that start processes, or write on the host's channel ---------------------


def _grandchild_sleeps() -> None:
    """In a forked copy of the child: sleep without ever returning into the child's loop."""
    try:
        time.sleep(3600)
    finally:
        os._exit(0)


def fork_then_sleep(params: Mapping[str, Any], task: TaskContext) -> None:
    """Fork (``os.fork``, or libc's fork, which runs no Python fork hooks, if
    params["raw"]), the copy sleeping holding every descriptor the child had; publish
    both pids, then block in C."""
    # PyDLL: the GIL stays held across libc's fork, so the copy can run Python.
    pid = int(ctypes.PyDLL(None).fork()) if params.get("raw") else os.fork()
    if pid == 0:
        _grandchild_sleeps()
    task.partial_result = {"pid": os.getpid(), "forked": pid}
    time.sleep(3600)


def start_sleeps(params: Mapping[str, Any], task: TaskContext) -> Any:
    """Start ``sleep 3600`` (in a new session if params["setsid"]) and a double-forked
    daemon (``sh`` backgrounds a ``setsid sleep`` and exits, so it is orphaned); publish
    the pids; then wait to be stopped cooperatively (params["cooperative"]) or block in C."""
    direct = subprocess.Popen(["sleep", "3600"], start_new_session=bool(params.get("setsid")))
    shell = subprocess.run(
        ["sh", "-c", "setsid sleep 3600 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        check=True,
        text=True,
    )
    task.partial_result = {"pid": os.getpid(), "sleeps": [direct.pid, int(shell.stdout)]}
    if params.get("cooperative"):
        return task.wait_cancelled(RELEASE_TIMEOUT)
    time.sleep(3600)
    return None


def leave_sleeps(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Start ``sleep 3600`` and a double-forked ``setsid sleep 3600``, then return their
    pids at once, leaving both running."""
    direct = subprocess.Popen(["sleep", "3600"])
    shell = subprocess.run(
        ["sh", "-c", "setsid sleep 3600 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        check=True,
        text=True,
    )
    return {"sleeps": [direct.pid, int(shell.stdout)]}


def _channel_fd(task: TaskContext) -> int:
    """The descriptor of the child's channel to the host (an operation has no business
    with it: these operations misuse it on purpose)."""
    return int(getattr(task, "_channel").conn.fileno())  # noqa: B009


def write_on_channel(params: Mapping[str, Any], task: TaskContext) -> None:
    """Write params["junk"] (bytes) on the channel to the host, or send it a well-formed
    but unexpected tuple (params["record"]) or record of the wire (params["wire"]: the
    class name of actors._execution.wire, then its fields; "" as task id stands for this
    task's); then block in C, publishing nothing."""
    channel = getattr(task, "_channel")  # noqa: B009
    if "record" in params:
        channel.send(tuple(params["record"]))
    elif "wire" in params:
        name, *fields = params["wire"]
        if fields and fields[0] == "":
            fields[0] = task.task_id
        channel.send(getattr(wire, name)(*fields))
    else:
        os.write(_channel_fd(task), params["junk"])
    time.sleep(3600)


def map_a_gigabyte(params: Mapping[str, Any], task: TaskContext) -> int:
    """An anonymous mmap far beyond a small memory limit (OSError ENOMEM, not MemoryError);
    with params["wrap"], the OSError is re-raised as the cause of a RuntimeError."""
    try:
        with mmap.mmap(-1, 1024**3) as mapped:
            return len(mapped)
    except OSError as exc:
        if params.get("wrap"):
            raise RuntimeError("could not map the frame buffer") from exc
        raise


def raise_enomem(params: Mapping[str, Any], task: TaskContext) -> None:
    """An OSError ENOMEM raised by the operation itself (no limit involved)."""
    raise OSError(errno.ENOMEM, "Cannot allocate memory")


def spin_ignoring_sigxcpu(params: Mapping[str, Any], task: TaskContext) -> None:
    """Ignore SIGXCPU (the soft CPU limit's signal), then burn CPU for ever."""
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    while True:
        pass


def pid_then_wait(params: Mapping[str, Any], task: TaskContext) -> str:
    """Publish its pid, wait params["seconds"] unless stopped, then return "finished"."""
    task.partial_result = {"pid": os.getpid()}
    task.wait_cancelled(params["seconds"])
    return "finished"


def progress_forever(params: Mapping[str, Any], task: TaskContext) -> None:
    """Start ``sleep 3600``, publish both pids, then report progress every 10 ms for ever."""
    sleeper = subprocess.Popen(["sleep", "3600"])
    task.partial_result = {"pid": os.getpid(), "sleep": sleeper.pid}
    step = 0
    while True:
        step += 1
        task.update_progress((step % 100) / 100)
        time.sleep(0.01)


def touch_and_return(params: Mapping[str, Any], task: TaskContext) -> str:
    """Leave a file behind (proof that the operation ran), then return its path."""
    path = str(params["path"])
    with open(path, "w", encoding="utf-8") as marker:
        marker.write(task.task_id)
    return path


def levers_in_sight(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """What the operation can reach of its context: the protocol's members, and any of
    the runtime's levers that leaked onto it."""
    levers = [
        "request_stop",
        "interrupt",
        "attach_child",
        "detach_child",
        "signal_child",
        "cancel_child",
        "drain",
        "enter_operation",
        "leave_operation",
    ]
    return {
        "is_task_context": isinstance(task, TaskContext),
        "stop_reason_type": type(task.stop_reason).__name__,
        "levers": [name for name in levers if hasattr(task, name)],
    }


def pid_then_wait_for_file(params: Mapping[str, Any], task: TaskContext) -> str:
    """Publish its pid, wait (cooperatively) until params["path"] exists, then return
    "finished"."""
    task.partial_result = {"pid": os.getpid()}
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while not os.path.exists(params["path"]) and time.monotonic() < deadline:
        task.wait_cancelled(0.01)
    return "finished"


def pid_then_sleep(params: Mapping[str, Any], task: TaskContext) -> None:
    """Publish its pid (and no sleep's: None), then block in C for an hour."""
    task.partial_result = {"pid": os.getpid(), "sleep": None}
    time.sleep(3600)


def report_then_list_threads(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Report progress and a partial result (if ``report``), then name the child's
    threads."""
    if params["report"]:
        task.update_progress(0.5)
        task.partial_result = {"n": params["n"]}
        task.update_progress(1.0)
    return {"pid": os.getpid(), "threads": sorted(t.name for t in threading.enumerate())}


def touch_then_wait_cancel(params: Mapping[str, Any], task: TaskContext) -> None:
    """Create the file ``path`` (a side effect the test can see), then wait until the
    task is cancelled (at most ``RELEASE_TIMEOUT``)."""
    with open(params["path"], "w"):
        pass
    task.wait_cancelled(RELEASE_TIMEOUT)
