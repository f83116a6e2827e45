"""The submitted spec, the registry's record of a task and its snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors._enums import Isolation, TaskPriority, TaskStatus
from actors._execution.api import Operation
from actors._outcome import Outcome

if TYPE_CHECKING:
    from actors._policies import RetryPolicy

__all__ = ["TaskRecord", "TaskSnapshot", "TaskSpec"]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Everything the supervisor needs to run one task; immutable once submitted."""

    task_id: str
    operation: Operation
    operation_name: str
    params: Mapping[str, Any]
    user: str | None
    timeout: float | None
    priority: TaskPriority
    seq: int
    created_at: float
    isolation: Isolation = Isolation.THREAD
    memory_limit_mb: float | None = None
    cpu_time_limit: float | None = None
    # Created by name from the runtime's operation registry, so a new process can find
    # the operation again; a plain function's task cannot be resumed after a crash.
    named: bool = False
    # The params as the durable store keeps them (JSON); None with the memory store.
    params_json: str | None = None
    # Not to start before this wall-clock time (a delay, or a retry's backoff).
    not_before: float | None = None
    retry: RetryPolicy | None = None
    prior_attempts: int = 0  # attempts made before this spec was (re)queued
    depends_on: tuple[str, ...] = ()
    group_id: str | None = None
    # Filled in once every dependency has completed: their results, by task id.
    dependency_results: Mapping[str, Any] | None = None


@dataclass(slots=True)
class TaskRecord:
    """The registry's mutable record of one task. Only the registry writes it."""

    task_id: str
    operation_name: str
    params: Mapping[str, Any]
    user: str | None
    timeout: float | None
    priority: TaskPriority
    seq: int
    created_at: float
    updated_at: float
    isolation: Isolation = Isolation.THREAD
    memory_limit_mb: float | None = None
    cpu_time_limit: float | None = None
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
    retry: RetryPolicy | None = None
    attempt_outcomes: tuple[Outcome, ...] = ()  # how each earlier attempt ended
    depends_on: tuple[str, ...] = ()
    group_id: str | None = None
    # Faults a test injected (actors._execution.faults): (attempt, the fault's description).
    injected_faults: tuple[tuple[int, str], ...] = ()
    # The JSON texts a durable store writes, encoded once when the value arrives (None
    # with the memory store, or when there is no such value).
    params_json: str | None = None
    result_json: str | None = None
    partial_json: str | None = None

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> TaskRecord:
        return cls(
            task_id=spec.task_id,
            operation_name=spec.operation_name,
            params=spec.params,
            user=spec.user,
            timeout=spec.timeout,
            priority=spec.priority,
            seq=spec.seq,
            created_at=spec.created_at,
            updated_at=spec.created_at,
            isolation=spec.isolation,
            memory_limit_mb=spec.memory_limit_mb,
            cpu_time_limit=spec.cpu_time_limit,
            named=spec.named,
            params_json=spec.params_json,
            scheduled_for=spec.not_before,
            retry=spec.retry,
            depends_on=spec.depends_on,
            group_id=spec.group_id,
        )

    def to_spec(self, operation: Operation) -> TaskSpec:
        """The spec that runs this record's task again (recovery after a crash)."""
        return TaskSpec(
            task_id=self.task_id,
            operation=operation,
            operation_name=self.operation_name,
            params=self.params,
            user=self.user,
            timeout=self.timeout,
            priority=self.priority,
            seq=self.seq,
            created_at=self.created_at,
            isolation=self.isolation,
            memory_limit_mb=self.memory_limit_mb,
            cpu_time_limit=self.cpu_time_limit,
            named=self.named,
            params_json=self.params_json,
            not_before=self.scheduled_for,
            retry=self.retry,
            prior_attempts=self.attempt,
            depends_on=self.depends_on,
            group_id=self.group_id,
        )

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start (or creation, if it never started) to the end."""
        return _duration(self.created_at, self.started_at, self.ended_at)

    def snapshot(self) -> TaskSnapshot:
        return TaskSnapshot(
            task_id=self.task_id,
            operation_name=self.operation_name,
            params=self.params,
            user=self.user,
            timeout=self.timeout,
            priority=self.priority,
            isolation=self.isolation,
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
            depends_on=self.depends_on,
            group_id=self.group_id,
            injected_faults=self.injected_faults,
            seq=self.seq,
        )


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    """A frozen copy of a record at one moment: what queries return.

    Timestamps are seconds since the epoch (from the runtime's clock); ``outcome`` is
    the fact that ended the task, or None while it is not terminal.
    """

    task_id: str
    operation_name: str
    params: Mapping[str, Any]
    user: str | None
    timeout: float | None
    priority: TaskPriority
    isolation: Isolation
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
    depends_on: tuple[str, ...] = ()
    group_id: str | None = None
    injected_faults: tuple[tuple[int, str], ...] = ()
    seq: int = 0  # submission order: listings sort by it, a page cursor names it

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start (or creation, if it never started) to the end."""
        return _duration(self.created_at, self.started_at, self.ended_at)


def _duration(created_at: float, started_at: float | None, ended_at: float | None) -> float | None:
    if ended_at is None:
        return None
    return ended_at - (started_at if started_at is not None else created_at)
