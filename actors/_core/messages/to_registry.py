"""The messages the registry handles, and their union its dispatch is checked exhaustive
against."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from actors._core.messages.injection import InjectFault
from actors._enums import TaskStatus
from actors._execution.published import Published
from actors._outcome import Outcome
from actors._records import TaskSnapshot, TaskSpec
from actors._resources import Resources
from actors._storage.store import CommitTicket

__all__ = [
    "COMMIT_BEFORE_ANSWER",
    "READS_RECORDS",
    "READ_ONLY",
    "REGISTRY_MESSAGES",
    "TASK_CHANGES",
    "AbandonUnfinished",
    "Cleanup",
    "ConnectSupervisor",
    "Finish",
    "Flush",
    "GetGroup",
    "GetSnapshot",
    "GetStats",
    "ListPage",
    "ListTasks",
    "MarkRunning",
    "ProgressReady",
    "Register",
    "RegisterDependent",
    "RegistryMessage",
    "Reopen",
    "ResolveDependencies",
    "ResourcesChanged",
    "RetryScheduled",
    "TaskPage",
    "Watch",
]


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
class Cleanup:
    cutoff: float  # wall-clock seconds: records that ended before this go


@dataclass(frozen=True, slots=True)
class AbandonUnfinished:
    """To the registry, when the supervisor has failed: nothing will run or finish any
    more, so every unfinished task ends ``Interrupted`` with ``cause`` (kept pending
    instead with a durable store, for the next runtime to recover)."""

    cause: str


RegistryMessage = (
    ProgressReady
    | Register
    | MarkRunning
    | ResourcesChanged
    | Finish
    | RetryScheduled
    | GetSnapshot
    | Watch
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

# How the registry treats a message, by kind.

COMMIT_BEFORE_ANSWER: tuple[type, ...] = (
    GetSnapshot, ListTasks, ListPage, GetStats, GetGroup, Watch, RegisterDependent,
)  # fmt: skip
"""Messages whose handling is visible outside the registry: the writes pending when one
arrives are committed before its answer leaves."""

READS_RECORDS: tuple[type, ...] = (GetSnapshot, ListTasks, ListPage, GetGroup)
"""Queries whose answer shows records (so a record held for its commit must be in it)."""

READ_ONLY: tuple[type, ...] = (GetSnapshot, ListTasks, ListPage, GetStats, GetGroup, Watch)
"""Queries that change nothing: when one fails, its asker gets QueryFailedError and the
registry is not restarted. (A Watch only adds a waiter, after the snapshot that can
fail.)"""

TASK_CHANGES: tuple[type, ...] = (
    Register, RegisterDependent, ResolveDependencies, MarkRunning, Finish, RetryScheduled,
    ProgressReady, Reopen,
)  # fmt: skip
"""Messages that change one task: when one of them made the registry fail, that task is
the one casualty of the restart (see RegistryActor.on_restart)."""
