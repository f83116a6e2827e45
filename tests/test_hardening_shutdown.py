"""Hardening finding 19 (issue 14): a shutdown that times out says what really holds it
up. A subscriber callback that blocks is named; operations that are not running are not
blamed; and the shutdown finishes once the callback returns."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from actors import TaskContext, TaskEvent
from storycore_tasks import TaskManager

WAIT = 15.0


def noop(params: Mapping[str, Any], task: TaskContext) -> str:
    return "done"


def test_a_blocking_subscriber_is_named_by_the_shutdown_timeout() -> None:
    """Finding 19: the TimeoutError names the subscription whose callback blocks and says
    every operation has ended; after the callback returns, shutdown completes and leaves
    nothing behind (the autouse leak check)."""
    manager = TaskManager(num_workers=1)
    entered = threading.Event()
    release = threading.Event()

    def blocking(event: TaskEvent) -> None:
        if event.kind == "completed":
            entered.set()
            release.wait(WAIT)

    subscription = manager.subscribe(blocking)
    try:
        task_id = manager.create_task(noop)
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
        assert entered.wait(WAIT)
        with pytest.raises(TimeoutError) as waited:
            manager.shutdown(wait=True, timeout=0.3)
        message = str(waited.value)
        assert subscription in message
        assert "every operation has ended" in message
        assert "running:" not in message
    finally:
        release.set()
    manager.shutdown(wait=True, timeout=WAIT)  # now it finishes


def test_a_running_operation_is_still_named() -> None:
    """The drain step keeps naming the running task (and says how many are pending)."""
    manager = TaskManager(num_workers=1)
    started = threading.Event()
    release = threading.Event()

    def gate(params: Mapping[str, Any], task: TaskContext) -> str:
        started.set()
        release.wait(WAIT)
        return "done"

    try:
        task_id = manager.create_task(gate)
        manager.create_task(noop)
        assert started.wait(WAIT)
        with pytest.raises(TimeoutError, match=task_id) as waited:
            manager.shutdown(wait=True, timeout=0.3)
        assert "pending still to run: 1" in str(waited.value)
    finally:
        release.set()
    manager.shutdown(wait=True, timeout=WAIT)


def test_a_callback_blocking_past_the_ask_timeout_does_not_abort_the_teardown() -> None:
    """A callback that blocks longer than ``ask_timeout`` used to abort the teardown half
    way (timers, threads and the store left open, ``RuntimeError: shutdown failed``): the
    teardown now waits for it and finishes cleanly."""
    manager = TaskManager(num_workers=1, ask_timeout=0.2)
    entered = threading.Event()
    release = threading.Event()

    def blocking(event: TaskEvent) -> None:
        if event.kind == "completed":
            entered.set()
            release.wait(WAIT)

    manager.subscribe(blocking)
    task_id = manager.create_task(noop)
    assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    assert entered.wait(WAIT)
    with pytest.raises(TimeoutError):
        manager.shutdown(wait=True, timeout=0.5)  # more than twice the ask timeout
    release.set()
    manager.shutdown(wait=True, timeout=WAIT)  # no "shutdown failed"
