"""Operations the process-mode scenarios run (B2, B4, B5, B9).

A child process imports an operation by its module and name, so every operation that
may run in process mode is a module-level function of this importable module. Each
publishes what the benchmark needs to see (its pid) as its partial result before it
starts to spin or block.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from actors import TaskContext

__all__ = [
    "SPIN_CHECK_EVERY",
    "bare_noop",
    "noop",
    "sleep_forever",
    "spin_forever",
    "spin_until_cancelled",
]

SPIN_CHECK_EVERY = 20_000  # loops between two looks at is_cancelled() (about 1 ms)


def noop(params: Mapping[str, Any], task: TaskContext) -> None:
    """Do nothing (B9's per-task overhead)."""


def bare_noop() -> bool:
    """Do nothing, for a pool that calls a plain function (the peers of B9)."""
    return True


def spin_until_cancelled(params: Mapping[str, Any], task: TaskContext) -> int:
    """Publish the pid, then spin in pure Python (holding its interpreter's GIL),
    looking at ``is_cancelled()`` every :data:`SPIN_CHECK_EVERY` loops; returns the
    loop count."""
    task.partial_result = {"pid": os.getpid()}
    loops = 0
    while True:
        for _ in range(SPIN_CHECK_EVERY):
            loops += 1
        if task.is_cancelled():
            return loops


def spin_forever(params: Mapping[str, Any], task: TaskContext) -> None:
    """Publish the pid, then spin in pure Python without ever looking at
    ``is_cancelled()``: only a hard stop ends it."""
    task.partial_result = {"pid": os.getpid()}
    loops = 0
    while True:
        loops += 1


def sleep_forever(params: Mapping[str, Any], task: TaskContext) -> None:
    """Publish the pid, then block in C (``time.sleep(3600)``) without ever looking at
    ``is_cancelled()``: only a hard stop (a signal, in process mode) ends it."""
    task.partial_result = {"pid": os.getpid()}
    time.sleep(3600)
