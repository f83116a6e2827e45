"""The messages the supervisor handles (from the facade, the registry, the workers, its
timers and itself), and their union its dispatch is checked exhaustive against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import get_args

from actors._core.messages.injection import InjectFault
from actors._operations import OperationEntry
from actors._outcome import Outcome
from actors._records import TaskRecord, TaskSpec

__all__ = [
    "SUPERVISOR_MESSAGES",
    "AddSchedule",
    "AttemptStarted",
    "AwaitOperation",
    "Cancel",
    "CancelSchedule",
    "CleanupDue",
    "CooldownOver",
    "DeadlinePassed",
    "DependenciesMet",
    "DispatchDue",
    "DropBlocked",
    "EscalateStop",
    "GetSchedules",
    "GetSupervisorStats",
    "HeartbeatDue",
    "OperationRegistered",
    "ScheduleTick",
    "Shutdown",
    "StartDue",
    "Submit",
    "SubmitBatch",
    "SubmitBlocked",
    "SupervisorMessage",
    "WorkerFinished",
]


@dataclass(frozen=True, slots=True)
class Submit:
    spec: TaskSpec


@dataclass(frozen=True, slots=True)
class SubmitBatch:
    """Tasks recovered from a durable store: all queued before any starts, so the first
    one to run is the first by priority, not the first in the batch."""

    specs: tuple[TaskSpec, ...]


@dataclass(frozen=True, slots=True)
class AwaitOperation:
    """Pending tasks recovered from a durable store whose operation is not registered
    yet: they wait in the supervisor's queue until ``OperationRegistered``."""

    records: tuple[TaskRecord, ...]


@dataclass(frozen=True, slots=True)
class OperationRegistered:
    """``name`` is registered now: the recovered tasks awaiting it are queued (or, for
    an operation not safe to run again, ended ``Interrupted``)."""

    name: str
    entry: OperationEntry


@dataclass(frozen=True, slots=True)
class SubmitBlocked:
    """A task waiting for its dependencies: held until ``DependenciesMet`` or
    ``DropBlocked`` (a dependency failed)."""

    spec: TaskSpec


@dataclass(frozen=True, slots=True)
class DependenciesMet:
    task_id: str
    results: dict[str, object]


@dataclass(frozen=True, slots=True)
class DropBlocked:
    task_id: str


@dataclass(frozen=True, slots=True)
class Cancel:
    task_id: str


@dataclass(frozen=True, slots=True)
class DeadlinePassed:
    task_id: str


@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    """A running task's heartbeat deadline may have passed: the supervisor looks at its
    latest sign of life and stops it as stalled, or re-arms the timer for the rest."""

    task_id: str


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """A back-end whose start is not its hand-over has recorded RUNNING (under its start
    gate): the supervisor arms the deadline now, so a cold child's start-up is not
    charged to the operation's timeout. Told only to a task with a timeout or a
    heartbeat timeout: for another, the supervisor reads the gate when it ends."""

    task_id: str


@dataclass(frozen=True, slots=True)
class EscalateStop:
    task_id: str


@dataclass(frozen=True, slots=True)
class CleanupDue:
    pass


@dataclass(frozen=True, slots=True)
class StartDue:
    """A delayed task (or a retry after its backoff) may start now."""

    task_id: str


@dataclass(frozen=True, slots=True)
class AddSchedule:
    """A recurring schedule (asked): every ``interval`` seconds, the first after
    ``first_in``, ``make_spec()`` builds the next task."""

    schedule_id: str
    interval: float
    first_in: float
    make_spec: Callable[[], TaskSpec]
    operation: str


@dataclass(frozen=True, slots=True)
class ScheduleTick:
    schedule_id: str


@dataclass(frozen=True, slots=True)
class CancelSchedule:
    schedule_id: str


@dataclass(frozen=True, slots=True)
class GetSchedules:
    pass


@dataclass(frozen=True, slots=True)
class DispatchDue:
    """From the supervisor to itself: start what is ready, once the tasks that came due
    together are all queued."""


@dataclass(frozen=True, slots=True)
class CooldownOver:
    """An operation's circuit breaker may let a trial task through."""

    operation: str


@dataclass(frozen=True, slots=True)
class WorkerFinished:
    task_id: str
    outcome: Outcome
    at: float


@dataclass(frozen=True, slots=True)
class GetSupervisorStats:
    pass


@dataclass(frozen=True, slots=True)
class Shutdown:
    cancel_pending: bool


SupervisorMessage = (
    Submit
    | WorkerFinished
    | SubmitBatch
    | DeadlinePassed
    | HeartbeatDue
    | AttemptStarted
    | EscalateStop
    | Cancel
    | AwaitOperation
    | OperationRegistered
    | SubmitBlocked
    | DependenciesMet
    | DropBlocked
    | StartDue
    | ScheduleTick
    | AddSchedule
    | CancelSchedule
    | GetSchedules
    | DispatchDue
    | CooldownOver
    | CleanupDue
    | GetSupervisorStats
    | Shutdown
    | InjectFault
)
"""Every message the supervisor handles; its dispatch is checked exhaustive against this."""

SUPERVISOR_MESSAGES: tuple[type, ...] = get_args(SupervisorMessage)
