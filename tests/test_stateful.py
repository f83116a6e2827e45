"""Random interleavings of submit / cancel / finish / clock advance keep DESIGN.md's
invariants (hypothesis stateful testing, real actors and threads, virtual time)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from actors import ManualClock, TaskContext
from storycore_tasks import TaskManager, TaskPriority
from tests.gates import RELEASE_TIMEOUT, settle

WORKERS = 2
TERMINAL = {"completed", "failed", "cancelled"}


class SupervisorMachine(RuleBasedStateMachine):
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.manager = TaskManager(num_workers=WORKERS, clock=self.clock)
        self.lock = threading.Lock()
        self.executing = 0
        self.max_executing = 0
        self.release: dict[str, threading.Event] = {}
        self.calls: dict[str, int] = {}
        self.key_of: dict[str, str] = {}
        self.first_terminal: dict[str, dict[str, Any]] = {}
        self.submitted = 0

    def _operation(self, params: Mapping[str, Any], task: TaskContext) -> int:
        key = params["key"]
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            self.executing += 1
            self.max_executing = max(self.max_executing, self.executing)
        try:
            self.release[key].wait(RELEASE_TIMEOUT)
        finally:
            with self.lock:
                self.executing -= 1
        return int(params["n"])

    @rule(
        target=tasks,
        priority=st.sampled_from(list(TaskPriority)),
        timeout=st.sampled_from([None, 1.0, 2.5]),
    )
    def submit(self, priority: TaskPriority, timeout: float | None) -> str:
        key = f"k{self.submitted}"
        self.release[key] = threading.Event()
        task_id = self.manager.create_task(
            self._operation, {"key": key, "n": self.submitted}, priority=priority, timeout=timeout
        )
        self.release[task_id] = self.release[key]
        self.key_of[task_id] = key
        self.calls.setdefault(key, 0)
        self.submitted += 1
        return task_id

    @rule(task_id=tasks)
    def cancel(self, task_id: str) -> None:
        before = self.manager.get_task_status(task_id)
        accepted = self.manager.cancel_task(task_id)
        assert before is not None
        if before["status"] in TERMINAL:
            assert accepted is False  # terminal states are final
        if accepted:
            after = self.manager.get_task_status(task_id)
            assert after is not None
            assert after["status"] == "cancelled"

    @rule(task_id=tasks)
    def finish(self, task_id: str) -> None:
        self.release[task_id].set()

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def invariants_hold(self) -> None:
        settle(self.manager)
        stats = self.manager.get_stats()
        # 5. Running workers never exceed the limit, stopping ones included.
        assert stats["running"] + stats["stopping"] <= WORKERS
        with self.lock:
            assert self.max_executing <= WORKERS
        counts = stats["status_counts"]
        assert sum(counts.values()) == stats["total_tasks"] == self.submitted
        lifetime = stats["lifetime_stats"]
        terminal_total = counts["completed"] + counts["failed"] + counts["cancelled"]
        assert (
            lifetime["total_completed"] + lifetime["total_failed"] + lifetime["total_cancelled"]
            == terminal_total
        )
        for status in self.manager.list_tasks():
            task_id = status["task_id"]
            key = self.key_of[task_id]
            if status["status"] in TERMINAL:
                # 2. The first terminal state seen is kept, error and all.
                first = self.first_terminal.setdefault(task_id, status)
                assert status["status"] == first["status"]
                assert status.get("error") == first.get("error")
            # 3. A task cancelled while pending never starts.
            if status["status"] == "cancelled" and status["started_at"] is None:
                assert self.calls[key] == 0
            assert self.calls[key] <= 1  # an operation runs at most once

    def teardown(self) -> None:
        for event in self.release.values():
            event.set()
        self.manager.shutdown(wait=True, timeout=30)
        for status in self.manager.list_tasks():
            assert status["status"] in TERMINAL
            first = self.first_terminal.get(status["task_id"])
            if first is not None:
                assert status["status"] == first["status"]


SupervisorMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSupervisorInvariants = SupervisorMachine.TestCase
