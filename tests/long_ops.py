"""Operations for tests/test_long_work.py, importable by a child process."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from actors import AsyncTaskContext, TaskContext


def members(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """What the context offers for long work, as types, and a checkpoint round trip."""
    task.heartbeat()
    task.checkpoint({"step": 1, "items": (1, 2)})
    refused = ""
    try:
        task.checkpoint({1, 2})
    except TypeError as exc:
        refused = str(exc)
    return {
        "resume_from": task.resume_from,
        "checkpoint": type(task.checkpoint).__name__,
        "heartbeat": type(task.heartbeat).__name__,
        "refused": refused,
    }


# What a run of ``members`` (or ``async_members``) shows, as members_seen reads it.
MEMBERS_SEEN = (
    "completed",
    None,
    "method",
    "method",
    True,
    {"step": 1, "items": [1, 2]},
    True,
    True,
)


def members_seen(status: Mapping[str, Any]) -> tuple[Any, ...]:
    """From a ``members`` task's status: how it ended, its ``resume_from``, the kinds of
    ``task.checkpoint`` and ``task.heartbeat``, whether a set was refused as not JSON
    data, the checkpoint as the status shows it, and whether the status gives the
    checkpoint's time and the last sign of life."""
    result = status.get("result") or {}
    return (
        status["status"],
        result.get("resume_from"),
        result.get("checkpoint"),
        result.get("heartbeat"),
        "a set is not JSON data" in result.get("refused", ""),
        status["checkpoint"],
        status["checkpointed_at"] is not None,
        status["last_heartbeat_at"] is not None,
    )


async def async_members(params: Mapping[str, Any], task: AsyncTaskContext) -> dict[str, Any]:
    task.heartbeat()
    await task.checkpoint({"step": 1, "items": (1, 2)})
    refused = ""
    try:
        await task.checkpoint({1, 2})
    except TypeError as exc:
        refused = str(exc)
    return {
        "resume_from": task.resume_from,
        "checkpoint": type(task.checkpoint).__name__,
        "heartbeat": type(task.heartbeat).__name__,
        "refused": refused,
    }


def count_then_fail_once(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Checkpoints each step; the first attempt raises after ``fail_at`` steps."""
    start = 0 if task.resume_from is None else int(task.resume_from["next"])
    for step in range(start, int(params["steps"])):
        if task.resume_from is None and step == int(params["fail_at"]):
            raise RuntimeError(f"failed at step {step}")
        task.checkpoint({"next": step + 1})
    return {"started_at": start}


def render(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Renders ``frames`` frames, appending each frame's number to ``log`` and
    checkpointing after each; in the process ``kill_pid``, SIGKILLs it after rendering
    frame ``kill_at`` (before that frame's checkpoint)."""
    start = 0 if task.resume_from is None else int(task.resume_from["next"])
    fd = os.open(params["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for frame in range(start, int(params["frames"])):
            os.write(fd, f"{frame}\n".encode())
            if frame == params["kill_at"] and os.getpid() == params["kill_pid"]:
                os.kill(os.getpid(), signal.SIGKILL)
            task.checkpoint({"next": frame + 1})
            task.update_progress((frame + 1) / int(params["frames"]))
    finally:
        os.close(fd)
    return {"resumed_at": start}


def silent_after_checkpoint(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Checkpoints once, then shows no sign of life until it is asked to stop; returns
    its pid and why it stopped."""
    task.checkpoint({"at": "start", "pid": os.getpid()})
    task.wait_cancelled(float(params.get("wait", 60.0)))
    reason = task.stop_reason
    return {"pid": os.getpid(), "stopped": None if reason is None else reason.value}


def beats_until_stopped(params: Mapping[str, Any], task: TaskContext) -> str:
    """Beats every millisecond until it is asked to stop (or ``wait`` seconds pass)."""
    deadline = float(params.get("wait", 60.0))
    waited = 0.0
    while not task.wait_cancelled(0.001) and waited < deadline:
        task.heartbeat()
        waited += 0.001
    return "stopped" if task.is_cancelled() else "done"
