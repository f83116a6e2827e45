"""The runtime's exceptions. Each names the mistake and the fix."""

from __future__ import annotations

__all__ = [
    "ActorUnresponsiveError",
    "QueueFullError",
    "RuntimeClosedError",
    "SupervisorError",
    "UnknownTaskError",
]


class SupervisorError(Exception):
    """Base class of every error the supervision runtime raises on purpose."""


class RuntimeClosedError(SupervisorError, RuntimeError):
    """The runtime was shut down; it admits no new task."""


class QueueFullError(SupervisorError, RuntimeError):
    """``max_pending`` tasks are already waiting; the new one was refused, nothing dropped."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        super().__init__(
            f"the pending queue is full ({max_pending} tasks waiting); the task was not "
            "accepted. Retry later, cancel tasks you no longer need, or raise max_pending."
        )


class UnknownTaskError(SupervisorError, LookupError):
    """No task with this id is known (never created, or removed by retention)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"no task with id {task_id!r}: it was never created here, or it ended more "
            "than max_task_age seconds ago and was removed by retention"
        )


class ActorUnresponsiveError(SupervisorError, TimeoutError):
    """An actor of the runtime did not answer within ``ask_timeout`` seconds."""

    def __init__(self, actor: str, request: str, timeout_seconds: float) -> None:
        self.actor = actor
        self.request = request
        self.timeout_seconds = timeout_seconds
        super().__init__(
            f"the {actor} did not answer {request} within {timeout_seconds} s. The runtime "
            "is overloaded or stuck: CPU-bound operations in thread mode starve it of the "
            "GIL (run them in process mode), or raise ask_timeout."
        )
