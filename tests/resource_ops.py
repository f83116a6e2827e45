"""Operations for the resource-slot tests that run in child processes (module level, so
a child can import them). Each one that holds a GPU reports, from inside, what it saw."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from actors import AsyncTaskContext, TaskContext

HOLD_SECONDS = 0.02
"""How long an exclusive operation keeps its marker: a window for an overlap to show."""


def exclusive(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Create the marker file exclusively (it exists while another holder runs: an
    overlap), keep it a moment, remove it; report the overlap and the devices seen."""
    marker = Path(params["marker"])
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return {"overlap": True, "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    os.close(fd)
    time.sleep(HOLD_SECONDS)  # the window another holder would fall into
    marker.unlink()
    return {"overlap": False, "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def devices(params: Mapping[str, Any], task: TaskContext) -> str | None:
    """The CUDA_VISIBLE_DEVICES the operation sees."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def die(params: Mapping[str, Any], task: TaskContext) -> None:
    """The child dies at once (no answer, no clean-up)."""
    os._exit(3)


def unstoppable(params: Mapping[str, Any], task: TaskContext) -> None:
    """Ignore SIGTERM and the cooperative flag: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(params["started"]).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)


def pid_gone(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Whether the process whose pid is in params["started"] is gone (not even a zombie
    waiting to be reaped), and the devices this operation sees."""
    pid = int(Path(params["started"]).read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        gone = True
    else:
        gone = False
    return {"gone": gone, "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def gpu_view(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """What the operation sees of the GPUs it holds: ``task.gpu_indices`` (and its type),
    whether the context is still a TaskContext, and CUDA_VISIBLE_DEVICES."""
    return {
        "indices": list(task.gpu_indices),
        "type": type(task.gpu_indices).__name__,
        "is_context": isinstance(task, TaskContext),
        "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


async def async_gpu_view(params: Mapping[str, Any], task: AsyncTaskContext) -> dict[str, Any]:
    """:func:`gpu_view` for a coroutine operation."""
    return {
        "indices": list(task.gpu_indices),
        "type": type(task.gpu_indices).__name__,
        "is_context": isinstance(task, AsyncTaskContext),
        "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
