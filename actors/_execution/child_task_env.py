"""What a pool child does to its own process around each task, and undoes after it: the
task's resource limits (``RLIMIT_AS`` for ``memory_limit_mb``, ``RLIMIT_CPU`` for
``cpu_time_limit``), its visible GPUs, and the processes its operation left behind; and
how an exception is recognised as running out of memory under the limit.

Standard library only: the child imports it (see :mod:`actors._execution.child`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import resource
import time
from typing import Any

from actors._execution.proctree import kill_descendants

__all__ = [
    "DEVICES_UNCHANGED",
    "apply_limits",
    "end_leftover_processes",
    "has_child_processes",
    "is_out_of_memory",
    "restore_devices",
    "restore_limits",
    "show_devices",
]

_CPU_HARD_MARGIN_SECONDS = 1
_LEFTOVER_GRACE_SECONDS = 2.0


def is_out_of_memory(exc: BaseException) -> bool:
    """A MemoryError, or an OSError with errno ENOMEM (mmap, fork, a thread's stack under
    RLIMIT_AS), or an exception raised while handling or because of one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return True
        if isinstance(current, OSError) and current.errno == errno.ENOMEM:
            return True
        current = current.__cause__ or current.__context__
    return False


_CUDA = "CUDA_VISIBLE_DEVICES"
DEVICES_UNCHANGED: Any = object()  # no task-specific devices: the environment was left alone


def show_devices(devices: str | None) -> Any:
    """Make the task's GPU indices the only ones visible; returns what to restore (the
    previous value, None when it was unset, or ``DEVICES_UNCHANGED`` when nothing was changed)."""
    if devices is None:
        return DEVICES_UNCHANGED
    previous = os.environ.get(_CUDA)
    os.environ[_CUDA] = devices
    return previous


def restore_devices(previous: Any) -> None:
    if previous is DEVICES_UNCHANGED:
        return
    if previous is None:
        os.environ.pop(_CUDA, None)
    else:
        os.environ[_CUDA] = previous


def apply_limits(memory_limit_mb: float | None, cpu_time_limit: float | None) -> Any:
    saved = (resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CPU))
    if memory_limit_mb is not None:
        _, hard = saved[0]
        soft = int(memory_limit_mb * 1024 * 1024)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    if cpu_time_limit is not None:
        # RLIMIT_CPU counts the process's whole life: allow this much more than used so far.
        # The hard limit is set too, a margin above: SIGKILL even if SIGXCPU is ignored.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        _, hard = saved[1]
        soft = math.ceil(used + cpu_time_limit)
        new_hard = soft + _CPU_HARD_MARGIN_SECONDS
        if hard != resource.RLIM_INFINITY:
            new_hard = min(new_hard, hard)
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, new_hard))
    return saved


def restore_limits(saved: Any) -> bool:
    """Put the limits back; False when the CPU hard limit cannot be raised again (only a
    privileged process may), so the child must not run another task."""
    resource.setrlimit(resource.RLIMIT_AS, saved[0])
    try:
        resource.setrlimit(resource.RLIMIT_CPU, saved[1])
    except (ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        return False
    return True


def has_child_processes() -> bool:
    """One system call: whether this process has a child, live or a zombie (reaping at
    most one zombie). The common case, none, costs nothing more."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def end_leftover_processes() -> bool:
    """End and reap every process the operation left behind (the child is their
    subreaper, so orphans are its children). False if some could not be ended in time."""
    deadline = time.monotonic() + _LEFTOVER_GRACE_SECONDS
    me = os.getpid()
    while True:
        kill_descendants(me)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                break  # children remain, not dead yet (or not ours to kill)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
