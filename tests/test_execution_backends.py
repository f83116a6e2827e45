"""The execution seam: thread and process isolation are two back-ends of one protocol.
``running`` is recorded when the back-end says the operation really started (a process
task waiting for its child reads ``pending``, and its deadline is not armed yet); the
operation sees only the TaskContext protocol; a stop before the start means it never
starts."""

from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors import ManualClock
from actors._execution.backend import ExecutionBackend
from actors._execution.process_backend import ProcessBackend
from actors._execution.thread_backend import ThreadBackend
from storycore_tasks import TaskManager
from storycore_tasks.testing import advance, settle
from tests import process_ops

MakeManager = Callable[..., TaskManager]
BOUND = 60.0


class ChildGate:
    """Children start through a wrapper interpreter that waits until the gate opens."""

    def __init__(self, directory: Path) -> None:
        self._gate = directory / "open"
        self.script = directory / "gated-python"
        self.script.write_text(
            "#!/bin/sh\n"
            f'while [ ! -e "{self._gate}" ]; do sleep 0.01; done\n'
            f'exec "{sys.executable}" "$@"\n',
            encoding="utf-8",
        )
        self.script.chmod(0o755)

    def open(self) -> None:
        self._gate.touch()


@pytest.fixture
def child_gate(tmp_path: Path) -> Iterator[ChildGate]:
    gate = ChildGate(tmp_path)
    saved = multiprocessing.spawn.get_executable()
    multiprocessing.get_context("spawn").set_executable(str(gate.script))
    try:
        yield gate
    finally:
        gate.open()  # no child is left waiting behind a closed gate
        multiprocessing.get_context("spawn").set_executable(saved)


def _status(manager: TaskManager, task_id: str) -> str:
    found = manager.get_task_status(task_id)
    assert found is not None
    return str(found["status"])


def test_both_back_ends_satisfy_the_protocol() -> None:
    """Thread and process isolation are implementations of ExecutionBackend; only the
    thread back-end starts on its hand-over, only the process one can kill."""
    backends: list[ExecutionBackend] = [ThreadBackend, ProcessBackend]  # type: ignore[list-item]
    facts = [(b.isolation.value, b.starts_on_handover, b.kill_ends_attempt) for b in backends]
    assert facts == [("thread", True, False), ("process", False, True)]


def test_a_process_task_reads_pending_until_its_child_has_it(
    make_manager: MakeManager, child_gate: ChildGate, tmp_path: Path
) -> None:
    """While its child is still starting the task reads pending, and its deadline is not
    running: 60 virtual seconds past its 5 s timeout it has not timed out. Once the child
    is up it runs, and its start is recorded at the moment the child had it."""
    clock = ManualClock()
    manager = make_manager(num_workers=1, isolation="process", clock=clock)
    marker = tmp_path / "ran"
    task_id = manager.create_task(process_ops.touch_and_return, {"path": str(marker)}, timeout=5.0)
    settle(manager)
    assert _status(manager, task_id) == "pending"
    advance(manager, 60.0)
    assert _status(manager, task_id) == "pending"
    child_gate.open()
    status = manager.wait(task_id, timeout=BOUND)
    assert (status["status"], status["result"]) == ("completed", str(marker))
    snapshot = manager.runtime.snapshot(task_id)
    assert snapshot is not None
    assert snapshot.started_at == pytest.approx(snapshot.created_at + 60.0)


def test_a_process_task_cancelled_while_its_child_starts_never_runs(
    make_manager: MakeManager, child_gate: ChildGate, tmp_path: Path
) -> None:
    """A cancel while the child is starting ends the task cancelled; when the child is up,
    the operation is not run (no marker), and that child serves the next task."""
    manager = make_manager(num_workers=1, isolation="process")
    never = tmp_path / "never"
    first = manager.create_task(process_ops.touch_and_return, {"path": str(never)})
    settle(manager)
    assert manager.cancel_task(first) is True
    assert _status(manager, first) == "cancelled"
    child_gate.open()
    second = manager.create_task(process_ops.getpid)
    status = manager.wait(second, timeout=BOUND)
    assert status["status"] == "completed"
    snapshot = manager.runtime.snapshot(first)
    assert snapshot is not None
    assert (snapshot.status.value, snapshot.started_at, never.exists()) == (
        "cancelled",
        None,
        False,
    )
    assert manager.get_stats()["process_pool"]["started_total"] == 1


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_the_operation_sees_the_protocol_and_no_lever(
    make_manager: MakeManager, isolation: str
) -> None:
    """In every back-end the operation's context is a TaskContext whose stop_reason is a
    StopReason or None, with none of the runtime's levers on it."""
    manager = make_manager(num_workers=1, isolation=isolation)
    status = manager.wait(manager.create_task(process_ops.levers_in_sight), timeout=BOUND)
    seen: dict[str, Any] = status["result"]
    assert seen == {"is_task_context": True, "stop_reason_type": "NoneType", "levers": []}
