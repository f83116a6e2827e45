"""Operations the Ray cluster tests run on the nodes (importable there by name: the
nodes' workers inherit the test run's PYTHONPATH)."""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path
from typing import Any

from actors import TaskContext, TaskInterrupted


def where(params: dict[str, Any], task: TaskContext) -> dict[str, Any]:
    """Reports where it ran."""
    return {"pid": os.getpid(), "value": params.get("value")}


def many_updates(params: dict[str, Any], task: TaskContext) -> dict[str, Any]:
    """A million progress updates, then its partial result and the cost of one update."""
    count = int(params["count"])
    started = time.perf_counter()
    for i in range(count):
        task.update_progress(i / count)
    per_call = (time.perf_counter() - started) / count
    task.partial_result = {"done": count}
    return {"per_call_seconds": per_call, "pid": os.getpid()}


def segfault(params: dict[str, Any], task: TaskContext) -> None:
    ctypes.string_at(0)


def exit_hard(params: dict[str, Any], task: TaskContext) -> None:
    os._exit(3)


def sleep_forever(params: dict[str, Any], task: TaskContext) -> None:
    """Publishes a partial result, then sleeps in a C call no flag or interrupt breaks."""
    task.partial_result = {"frames": 12}
    time.sleep(3600)


def mark(path: str, text: str) -> None:
    """Whole or not at all: a test that sees the file reads all of its text (a plain
    write_text is seen, empty, between its open and its write)."""
    partial = Path(f"{path}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def wait_for_cancel(params: dict[str, Any], task: TaskContext) -> str:
    """Cooperative: marks its start, returns once asked to stop (saying why)."""
    mark(params["started"], str(os.getpid()))
    task.wait_cancelled(120)
    task.update_progress(0.5)
    task.partial_result = "late"
    mark(params["ended"], str(task.stop_reason))
    return "stopped"


def ignore_the_flag(params: dict[str, Any], task: TaskContext) -> None:
    """Spins in Python, ignoring is_cancelled(): only an interrupt ends it."""
    mark(params["started"], str(os.getpid()))
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            sum(range(100))
    except TaskInterrupted:
        mark(params["ended"], "interrupted")
        raise


def crash_once_on_a_node(params: dict[str, Any], task: TaskContext) -> dict[str, Any]:
    """The first attempt marks its start and blocks (its node is removed under it); a
    later one returns at once."""
    first = Path(params["first"])
    if not first.exists():
        mark(str(first), str(os.getpid()))
        time.sleep(3600)
    return {"pid": os.getpid()}


def mark_and_sleep(params: dict[str, Any], task: TaskContext) -> None:
    mark(params["marker"], str(os.getpid()))
    time.sleep(3600)


def modules(params: dict[str, Any], task: TaskContext) -> list[str]:
    """The modules the node's worker has imported to run a task."""
    import sys

    return sorted(sys.modules)


def big_answer(params: dict[str, Any], task: TaskContext) -> bytes:
    """Many partial results, then a result too large for the host channel (it comes
    through Ray's object store) or, with ``raise``, an error with a large message."""
    for step in range(params["steps"]):
        task.partial_result = {"step": step}
        task.update_progress((step + 1) / params["steps"])
    payload = bytes(range(256)) * (params["size"] // 256)
    if params.get("raise"):
        raise ValueError("x" * params["size"])
    return payload
