"""The words of a task's life: its status, its priority, where it runs, why it is asked
to stop. A leaf (``enum`` only): a pool child imports it."""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["TERMINAL_STATUSES", "Isolation", "StopReason", "TaskPriority", "TaskStatus"]


class TaskStatus(StrEnum):
    """The lifecycle: PENDING -> RUNNING -> COMPLETED | FAILED | CANCELLED; PENDING -> CANCELLED."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
"""The statuses a task never leaves; also the kinds of the lifecycle events that end a
task. Members are strings too, so ``"completed" in TERMINAL_STATUSES`` holds."""


class Isolation(StrEnum):
    """Where an operation runs: a thread of the host, a child process, (a coroutine
    function) the runtime's event loop, or a node of a Ray cluster (``RayBackend``)."""

    THREAD = "thread"
    PROCESS = "process"
    ASYNC = "async"
    RAY = "ray"


class TaskPriority(IntEnum):
    """Higher runs first; FIFO within one priority."""

    LOW = 1
    NORMAL = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        # A lookup: Enum.name is itself a property (two calls on every task's creation).
        return _PRIORITY_LABELS[self]


_PRIORITY_LABELS = {priority: priority.name.lower() for priority in TaskPriority}


class StopReason(StrEnum):
    """Why the runtime asked an operation to stop. One typed reason, never a guessed string."""

    CANCEL_REQUESTED = "cancel_requested"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    STALLED = "stalled"  # no sign of life for heartbeat_timeout seconds
