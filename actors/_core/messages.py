"""The message protocol between the actors. Every message is a small frozen dataclass.

Who sends what:

* facade -> Registry: ``Register``, ``RegisterDependent``, ``ResolveDependencies``,
  ``ConnectSupervisor``, ``Flush``, queries (``GetSnapshot``, ``ListTasks``,
  ``ListPage``, ``GetStats``, ``GetGroup``, ``Watch``/``Unwatch``), ``Cleanup``
* facade -> Supervisor: ``Submit``, ``SubmitBatch`` (recovered tasks), ``AwaitOperation``
  and ``OperationRegistered`` (recovered tasks of an operation not registered yet),
  ``Cancel``, ``AddSchedule``, ``CancelSchedule``, ``GetSchedules``, ``GetSupervisorStats``,
  ``Shutdown``
* Supervisor -> Registry: ``MarkRunning``, ``Finish``, ``RetryScheduled``, ``Cleanup``
* Registry -> Supervisor: ``Submit``, ``SubmitBlocked``, ``DependenciesMet``,
  ``DropBlocked`` (tasks with dependencies, which the registry resolves)
* Supervisor -> Worker: ``Stop``, then ``Interrupt`` after the stop grace, then ``Kill``
* Worker (from its back-end's threads) -> Supervisor: ``AttemptStarted`` (a back-end
  whose start is not its hand-over: process isolation), ``WorkerFinished``
* the operation's context -> Registry: ``ProgressReady`` (coalesced: at most one in
  flight per task)
* facade -> Registry: ``Reopen`` (``resume_task``), which forwards the task to the supervisor
* TimerService -> Supervisor: ``DeadlinePassed``, ``HeartbeatDue``, ``EscalateStop``,
  ``CleanupDue``, ``StartDue``, ``CooldownOver``, ``ScheduleTick``
* a test -> Registry, Supervisor: ``InjectFault`` (the fault-injection kit; see
  actors._core.restarts)
* facade -> Registry: ``AbandonUnfinished`` (the supervisor failed)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from actors._enums import TaskStatus
from actors._execution.published import Published
from actors._operations import OperationEntry
from actors._outcome import Outcome, StopReason
from actors._records import TaskRecord, TaskSnapshot, TaskSpec
from actors._resources import Resources
from actors._storage.store import CommitTicket

__all__ = [
    "REGISTRY_MESSAGES",
    "SUPERVISOR_MESSAGES",
    "WORKER_MESSAGES",
    "AddSchedule",
    "AttemptStarted",
    "AwaitOperation",
    "Cancel",
    "CancelSchedule",
    "Cleanup",
    "CleanupDue",
    "ConnectSupervisor",
    "CooldownOver",
    "DeadlinePassed",
    "DependenciesMet",
    "DispatchDue",
    "DropBlocked",
    "EscalateStop",
    "Finish",
    "Flush",
    "GetGroup",
    "GetSchedules",
    "GetSnapshot",
    "GetStats",
    "GetSupervisorStats",
    "HeartbeatDue",
    "Interrupt",
    "Kill",
    "ListPage",
    "ListTasks",
    "MarkRunning",
    "OperationRegistered",
    "ProgressReady",
    "Register",
    "RegisterDependent",
    "RegistryMessage",
    "Reopen",
    "ResolveDependencies",
    "ResourcesChanged",
    "RetryScheduled",
    "ScheduleTick",
    "Shutdown",
    "StartDue",
    "Stop",
    "Submit",
    "SubmitBatch",
    "SubmitBlocked",
    "SupervisorMessage",
    "TaskPage",
    "Unwatch",
    "Watch",
    "WorkerFinished",
    "WorkerMessage",
]


# -- to the registry -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register:
    spec: TaskSpec
    # Durable store: done once the new record is committed (submit waits on it).
    ticket: CommitTicket | None = None


@dataclass(frozen=True, slots=True)
class RegisterDependent:
    """Register a task with dependencies (asked): the registry answers ``("unknown",
    ids)`` without registering it, or registers it, resolves its dependencies and
    forwards it to the supervisor (``Submit`` or ``SubmitBlocked``)."""

    spec: TaskSpec
    ticket: CommitTicket | None = None


@dataclass(frozen=True, slots=True)
class ResolveDependencies:
    """A recovered pending task with dependencies, already registered: resolve them and
    forward it to the supervisor."""

    spec: TaskSpec


@dataclass(frozen=True, slots=True)
class ConnectSupervisor:
    """Tells the registry where to forward tasks whose dependencies it resolves."""

    supervisor: object


@dataclass(frozen=True, slots=True)
class GetGroup:
    group_id: str


@dataclass(frozen=True, slots=True)
class MarkRunning:
    task_id: str
    at: float
    # Durable store: done once RUNNING is committed (the worker waits on it to start).
    ticket: CommitTicket | None = None
    injected_fault: str | None = None  # this attempt runs an injected fault (a test's)
    placement: Mapping[str, Any] | None = None  # where it runs (a Ray node, a worker pid)


@dataclass(frozen=True, slots=True)
class ResourcesChanged:
    """What a task holds of the host's resources, or waits for, changed in the
    supervisor's ledger: the registry shows it in the task's status."""

    task_id: str
    held: Resources | None  # what it holds now (None: nothing)
    gpu_indices: tuple[int, ...]  # the GPUs among them (empty: none)
    waiting_for: Resources | None  # its request while it waits in the line (None: not)


@dataclass(frozen=True, slots=True)
class ProgressReady:
    task_id: str
    published: Published  # the registry drains it


@dataclass(frozen=True, slots=True)
class Finish:
    task_id: str
    outcome: Outcome
    at: float


@dataclass(frozen=True, slots=True)
class Reopen:
    """``resume_task``: a new attempt of an ended task that has a checkpoint. The registry
    checks it may (answering a :class:`~actors.NotResumableError` when not), makes the
    task pending again and forwards its spec (``operation``: the registered function of
    its name, None when none is) to the supervisor; ``ticket``: its commit."""

    task_id: str
    at: float
    operation: Callable[..., object] | None
    ticket: CommitTicket | None = None


@dataclass(frozen=True, slots=True)
class Flush:
    """Durable store: done once every change the registry received before it is
    committed (a cancellation is acknowledged only then)."""

    ticket: CommitTicket


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """The attempt ended with ``outcome``; the task is pending again until ``next_at``."""

    task_id: str
    outcome: Outcome
    at: float
    next_at: float


@dataclass(frozen=True, slots=True)
class GetSnapshot:
    task_id: str


@dataclass(frozen=True, slots=True)
class ListTasks:
    status: TaskStatus | None
    limit: int | None
    user: str | None = None  # only the tasks this user created


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page in submission order, after the task whose ``seq`` is ``after`` (-1: from
    the first); answered with a :class:`TaskPage` from the table's indexes."""

    status: TaskStatus | None
    after: int
    limit: int
    user: str | None = None  # only the tasks this user created


@dataclass(frozen=True, slots=True)
class TaskPage:
    """A page of snapshots; ``next_after`` (the ``seq`` of the last one) is the cursor of
    the next page, None when this is the last."""

    tasks: list[TaskSnapshot]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class GetStats:
    pass


@dataclass(frozen=True, slots=True)
class Watch:
    task_id: str


@dataclass(frozen=True, slots=True)
class Unwatch:
    task_id: str
    waiter: object


@dataclass(frozen=True, slots=True)
class Cleanup:
    cutoff: float  # wall-clock seconds: records that ended before this go


# -- to the supervisor --------------------------------------------------------------------


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
    charged to the operation's timeout."""

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


# -- to a worker ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The first forced step of the stop ladder (the stop grace has passed): the
    attempt's ``interrupt`` (TaskInterrupted in a thread, SIGTERM to a child)."""

    reason: StopReason


@dataclass(frozen=True, slots=True)
class Kill:
    """Every later step: the attempt's ``kill`` (SIGKILL of a child and its processes;
    a thread is interrupted again)."""

    reason: StopReason


@dataclass(frozen=True, slots=True)
class InjectFault:
    """Make the registry fail (raise ``error``) while handling the next message of type
    ``message_type`` (one of several, given a tuple; about task ``task_id``, when
    given), or at once when ``message_type`` is None. Several can be armed at once. For
    testing the registry's restart."""

    error: Exception
    message_type: type | tuple[type, ...] | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class AbandonUnfinished:
    """To the registry, when the supervisor has failed: nothing will run or finish any
    more, so every unfinished task ends ``Interrupted`` with ``cause`` (kept pending
    instead with a durable store, for the next runtime to recover)."""

    cause: str


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

RegistryMessage = (
    ProgressReady
    | Register
    | MarkRunning
    | ResourcesChanged
    | Finish
    | RetryScheduled
    | GetSnapshot
    | Watch
    | Unwatch
    | ListTasks
    | ListPage
    | GetStats
    | RegisterDependent
    | ResolveDependencies
    | GetGroup
    | ConnectSupervisor
    | InjectFault
    | AbandonUnfinished
    | Flush
    | Reopen
    | Cleanup
)
"""Every message the registry handles; its dispatch is checked exhaustive against this."""

REGISTRY_MESSAGES: tuple[type, ...] = get_args(RegistryMessage)

WorkerMessage = Stop | Interrupt | Kill
"""The supervisor's stop-ladder steps to a worker, in the order they come."""

WORKER_MESSAGES: tuple[type, ...] = get_args(WorkerMessage)
