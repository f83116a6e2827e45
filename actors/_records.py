"""The submitted spec, the registry's record of a task and its snapshot.

Each carries the task's options as one :class:`TaskOptions`, resolved by the runtime
(its defaults filled in, ``delay``/``run_at`` turned into ``not_before`` and
``scheduled_for``): code reads ``spec.options.timeout``, ``snapshot.options.priority``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors._enums import TaskStatus
from actors._execution.api import AnyOperation
from actors._execution.checkpoints import decode_checkpoint
from actors._options import TaskOptions
from actors._outcome import Outcome
from actors._resources import Resources

__all__ = ["TaskRecord", "TaskSnapshot", "TaskSpec", "TaskState"]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Everything the supervisor needs to run one task; immutable once submitted."""

    task_id: str
    operation: AnyOperation
    operation_name: str
    params: Mapping[str, Any]
    options: TaskOptions  # resolved: see the module's docstring
    seq: int
    created_at: float
    # Created by name from the runtime's operation registry, so a new process can find
    # the operation again; a plain function's task cannot be resumed after a crash.
    named: bool = False
    # The params as the durable store keeps them (JSON); None with the memory store.
    params_json: str | None = None
    # Not to start before this wall-clock time (a delay, or a retry's backoff).
    not_before: float | None = None
    prior_attempts: int = 0  # attempts made before this spec was (re)queued
    # Filled in once every dependency has completed: their results, by task id.
    dependency_results: Mapping[str, Any] | None = None
    # The JSON text of the checkpoint this attempt resumes from (task.resume_from):
    # an earlier attempt's latest; None on a first run.
    resume_json: str | None = None

    @property
    def resume_from(self) -> Any:
        """The state this attempt resumes from (decoded from :attr:`resume_json`)."""
        return decode_checkpoint(self.resume_json)


@dataclass(slots=True)
class TaskRecord:
    """The registry's mutable record of one task. Only the registry writes it."""

    task_id: str
    operation_name: str
    params: Mapping[str, Any]
    options: TaskOptions  # resolved; never changes
    seq: int
    created_at: float
    updated_at: float
    named: bool = False
    status: TaskStatus = TaskStatus.PENDING
    attempt: int = 0  # how many times it was started
    progress: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    result: Any = None
    has_result: bool = False
    partial_result: Any = None
    has_partial_result: bool = False
    outcome: Outcome | None = None
    scheduled_for: float | None = None  # pending until then (a delay or a retry backoff)
    attempt_outcomes: tuple[Outcome, ...] = ()  # how each earlier attempt ended
    # Faults a test injected (actors._execution.faults): (attempt, the fault's description).
    injected_faults: tuple[tuple[int, str], ...] = ()
    # The latest checkpoint (task.checkpoint): its state, its JSON text (kept in every
    # store mode: a later attempt's resume_from is decoded from it) and when it came.
    checkpoint: Any = None
    checkpoint_json: str | None = None
    checkpointed_at: float | None = None
    last_heartbeat_at: float | None = None  # the latest sign of life the registry saw
    # Where the current (or last) attempt runs, as its back-end said (a Ray node and its
    # worker's pid); None where it says nothing. Not kept by the durable store.
    placement: Mapping[str, Any] | None = None
    # Of the host's resources (the supervisor's ledger, told to the registry as they
    # change): what the task holds and its GPU indices, from its start until its attempt
    # has really ended, and its whole request while it waits in the line for them. Not
    # kept by the durable store (a recovered task waits for them again).
    resources_held: Resources | None = None
    gpu_indices: tuple[int, ...] = ()
    waiting_for: Resources | None = None
    # The JSON texts a durable store writes, encoded once when the value arrives (None
    # with the memory store, or when there is no such value).
    params_json: str | None = None
    result_json: str | None = None
    partial_json: str | None = None
    # The options as the durable store's columns hold them (made once: they never change).
    stored_options: tuple[Any, ...] | None = None
    # What status reads see of this record (see actors._core.board): its state() as of
    # the latest change published (with a durable store, the latest committed); None
    # until the first publication. Replaced whole, never changed in place.
    published: TaskState | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> TaskRecord:
        return cls(
            task_id=spec.task_id,
            operation_name=spec.operation_name,
            params=spec.params,
            options=spec.options,
            seq=spec.seq,
            created_at=spec.created_at,
            updated_at=spec.created_at,
            named=spec.named,
            params_json=spec.params_json,
            scheduled_for=spec.not_before,
        )

    def to_spec(self, operation: AnyOperation) -> TaskSpec:
        """The spec that runs this record's task again (recovery after a crash)."""
        return TaskSpec(
            task_id=self.task_id,
            operation=operation,
            operation_name=self.operation_name,
            params=self.params,
            options=self.options,
            seq=self.seq,
            created_at=self.created_at,
            named=self.named,
            params_json=self.params_json,
            not_before=self.scheduled_for,
            prior_attempts=self.attempt,
            resume_json=self.checkpoint_json,
        )

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start (or creation, if it never started) to the end."""
        return _duration(self.created_at, self.started_at, self.ended_at)

    def state(self) -> TaskState:
        """The fields that change, as one immutable tuple (see :data:`TaskState`): what
        the registry publishes for readers, at the cost of a tuple, not a snapshot."""
        return (self.status, self.attempt, self.progress, self.updated_at, self.started_at,
                self.ended_at, self.result, self.has_result, self.partial_result,
                self.has_partial_result, self.outcome, self.scheduled_for,
                self.attempt_outcomes, self.injected_faults, self.checkpoint,
                self.checkpointed_at, self.last_heartbeat_at, self.placement,
                self.resources_held, self.gpu_indices, self.waiting_for)  # fmt: skip

    def snapshot(self) -> TaskSnapshot:
        return TaskSnapshot(
            task_id=self.task_id,
            operation_name=self.operation_name,
            params=self.params,
            options=self.options,
            status=self.status,
            attempt=self.attempt,
            progress=self.progress,
            created_at=self.created_at,
            updated_at=self.updated_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            result=self.result,
            has_result=self.has_result,
            partial_result=self.partial_result,
            has_partial_result=self.has_partial_result,
            outcome=self.outcome,
            scheduled_for=self.scheduled_for,
            attempt_outcomes=self.attempt_outcomes,
            injected_faults=self.injected_faults,
            placement=self.placement,
            seq=self.seq,
            checkpoint=self.checkpoint,
            checkpointed_at=self.checkpointed_at,
            last_heartbeat_at=self.last_heartbeat_at,
            resources_held=self.resources_held,
            gpu_indices=self.gpu_indices,
            waiting_for=self.waiting_for,
        )


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    """A frozen copy of a record at one moment: what queries return.

    Timestamps are seconds since the epoch (from the runtime's clock); ``outcome`` is
    the fact that ended the task, or None while it is not terminal. ``options`` are the
    task's, resolved (the runtime's defaults filled in; ``delay`` and ``run_at`` read
    None, the start time they gave is ``scheduled_for``).
    """

    task_id: str
    operation_name: str
    params: Mapping[str, Any]
    options: TaskOptions
    status: TaskStatus
    attempt: int
    progress: float
    created_at: float
    updated_at: float
    started_at: float | None
    ended_at: float | None
    result: Any
    has_result: bool
    partial_result: Any
    has_partial_result: bool
    outcome: Outcome | None
    scheduled_for: float | None = None
    attempt_outcomes: tuple[Outcome, ...] = ()
    injected_faults: tuple[tuple[int, str], ...] = ()
    placement: Mapping[str, Any] | None = None  # where the attempt runs (a Ray node)
    seq: int = 0  # submission order: listings sort by it, a page cursor names it
    # The latest checkpoint's state and time (None: none yet), the latest sign of life.
    checkpoint: Any = None
    checkpointed_at: float | None = None
    last_heartbeat_at: float | None = None
    # Of the host's resources: what it holds (and its GPU indices), what it waits for.
    resources_held: Resources | None = None
    gpu_indices: tuple[int, ...] = ()
    waiting_for: Resources | None = None

    @property
    def has_checkpoint(self) -> bool:
        """Whether the task has a checkpoint (its state may be None)."""
        return self.checkpointed_at is not None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start (or creation, if it never started) to the end."""
        return _duration(self.created_at, self.started_at, self.ended_at)

    @classmethod
    def from_state(cls, task: TaskRecord, state: TaskState) -> TaskSnapshot:
        """The snapshot of ``task`` (its fields that never change) in ``state``."""
        (status, attempt, progress, updated_at, started_at, ended_at, result, has_result,
         partial_result, has_partial_result, outcome, scheduled_for, attempt_outcomes,
         injected_faults, checkpoint, checkpointed_at, last_heartbeat_at,
         placement, resources_held, gpu_indices, waiting_for) = state  # fmt: skip
        return cls(
            task_id=task.task_id,
            operation_name=task.operation_name,
            params=task.params,
            options=task.options,
            status=status,
            attempt=attempt,
            progress=progress,
            created_at=task.created_at,
            updated_at=updated_at,
            started_at=started_at,
            ended_at=ended_at,
            result=result,
            has_result=has_result,
            partial_result=partial_result,
            has_partial_result=has_partial_result,
            outcome=outcome,
            scheduled_for=scheduled_for,
            attempt_outcomes=attempt_outcomes,
            injected_faults=injected_faults,
            placement=placement,
            seq=task.seq,
            checkpoint=checkpoint,
            checkpointed_at=checkpointed_at,
            last_heartbeat_at=last_heartbeat_at,
            resources_held=resources_held,
            gpu_indices=gpu_indices,
            waiting_for=waiting_for,
        )


TaskState = tuple[
    TaskStatus,  # status
    int,  # attempt
    float,  # progress
    float,  # updated_at
    float | None,  # started_at
    float | None,  # ended_at
    Any,  # result
    bool,  # has_result
    Any,  # partial_result
    bool,  # has_partial_result
    Outcome | None,  # outcome
    float | None,  # scheduled_for
    tuple[Outcome, ...],  # attempt_outcomes
    tuple[tuple[int, str], ...],  # injected_faults
    Any,  # checkpoint
    float | None,  # checkpointed_at
    float | None,  # last_heartbeat_at
    Mapping[str, Any] | None,  # placement
    Resources | None,  # resources_held
    tuple[int, ...],  # gpu_indices
    Resources | None,  # waiting_for
]
"""A record's changing fields, in :meth:`TaskRecord.state`'s order; its other fields
(id, operation, params, options, creation time, seq) never change after submission."""


def _duration(created_at: float, started_at: float | None, ended_at: float | None) -> float | None:
    if ended_at is None:
        return None
    return ended_at - (started_at if started_at is not None else created_at)
