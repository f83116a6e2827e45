"""The task table: every record, its indexes and counters, and the transition rules.

A plain object with no locking: the registry actor is its only writer, and after the
runtime has shut down it is read-only. Listings and stats use indexes and counters, so
no hot path scans every record.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum, auto
from typing import Any

from actors._core.seq_index import SeqIndex
from actors._enums import TaskPriority, TaskStatus
from actors._outcome import (
    Cancelled,
    Completed,
    DependencyFailed,
    Interrupted,
    Outcome,
    Stalled,
    TimedOut,
)
from actors._records import TaskRecord, TaskSpec
from actors._resources import Resources

__all__ = ["FinishResult", "TablePage", "TableStats", "TaskTable"]


class FinishResult(Enum):
    """What :meth:`TaskTable.finish` did with an outcome."""

    RECORDED = auto()  # the task became terminal
    LATE_RESULT = auto()  # already terminal; the operation's later return value was kept
    IGNORED = auto()  # unknown task, or terminal with nothing new to keep


@dataclass(frozen=True, slots=True)
class TableStats:
    total_tasks: int
    status_counts: dict[TaskStatus, int]
    priority_counts: dict[TaskPriority, int]
    total_created: int
    total_completed: int
    total_failed: int
    total_cancelled: int
    total_timed_out: int
    total_stalled: int = 0  # ended STALLED (no sign of life for heartbeat_timeout)


@dataclass(frozen=True, slots=True)
class TablePage:
    """One page of a listing in submission order: ``records``, and ``next_after`` (the
    ``seq`` of the last of them) when more follow, else None."""

    records: list[TaskRecord]
    next_after: int | None


def _status_of(outcome: Outcome) -> TaskStatus:
    if isinstance(outcome, Completed):
        return TaskStatus.COMPLETED
    if isinstance(outcome, Cancelled | DependencyFailed):
        return TaskStatus.CANCELLED
    return TaskStatus.FAILED


_EVERY_STATUS: tuple[str | None, TaskStatus | None] = (None, None)


class TaskTable:
    def __init__(self) -> None:
        # The seq indexes are built on the first page asked for and kept from then on:
        # a runtime that never pages (an embedded one) pays nothing for them on its
        # per-task path. Kept across a reset, as the askers are.
        self._paged = False
        self._clear()

    def _clear(self) -> None:
        self._records: dict[str, TaskRecord] = {}
        # Pending ids per priority, in submission order: iterating CRITICAL..LOW gives
        # exactly the order in which the supervisor will start them.
        self._pending: dict[TaskPriority, dict[str, None]] = {
            p: {} for p in sorted(TaskPriority, reverse=True)
        }
        self._running: dict[str, None] = {}
        # A heap of (ended_at, task_id), for retention without a scan. A heap, not a list
        # in arrival order: end stamps come from different threads (and the wall clock
        # can step back), so they do not arrive sorted.
        self._ended: list[tuple[float, str]] = []
        # Terminal ids per state, in the order they became terminal, for listings.
        self._terminal: dict[TaskStatus, dict[str, None]] = {
            s: {} for s in TaskStatus if s.is_terminal
        }
        # Seq-ordered indexes for pages: all records, by status, by owner, by both
        # (once a page has been asked for).
        self._by_seq: dict[tuple[str | None, TaskStatus | None], SeqIndex] = {}
        self._status_counts = dict.fromkeys(TaskStatus, 0)
        self._priority_counts = dict.fromkeys(TaskPriority, 0)
        self._created = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._timed_out = 0
        self._stalled = 0

    def __len__(self) -> int:
        return len(self._records)

    def get(self, task_id: str) -> TaskRecord | None:
        return self._records.get(task_id)

    def restore(self, records: Iterable[TaskRecord], retired: Mapping[str, int]) -> None:
        """Load records read from a durable store (in seq order), in whatever state they
        are. The lifetime counters are those of the records plus ``retired`` (the tasks
        retention deleted, by how they ended). Only on an empty table."""
        if self._records:
            raise RuntimeError("restore() loads an empty table only")
        timed_out = stalled = 0
        ended: list[TaskRecord] = []
        for record in records:
            self._records[record.task_id] = record
            self._index(record, record.status)
            status = record.status
            if status is TaskStatus.PENDING:
                self._pending[record.options.priority][record.task_id] = None
            elif status is TaskStatus.RUNNING:
                self._running[record.task_id] = None
            else:
                assert record.ended_at is not None
                self._ended.append((record.ended_at, record.task_id))
                ended.append(record)
                timed_out += isinstance(record.outcome, TimedOut)
                stalled += isinstance(record.outcome, Stalled)
            self._status_counts[status] += 1
            self._priority_counts[record.options.priority] += 1
        # Listings give ended tasks in the order they ended, as before.
        ended.sort(key=lambda r: (r.ended_at, r.seq))
        for record in ended:
            self._terminal[record.status][record.task_id] = None
        heapq.heapify(self._ended)
        counts = self._status_counts
        self._created = retired.get("created", 0) + len(self._records)
        self._completed = retired.get("completed", 0) + counts[TaskStatus.COMPLETED]
        self._failed = retired.get("failed", 0) + counts[TaskStatus.FAILED]
        self._cancelled = retired.get("cancelled", 0) + counts[TaskStatus.CANCELLED]
        self._timed_out = retired.get("timed_out", 0) + timed_out
        self._stalled = retired.get("stalled", 0) + stalled

    def reset(self, records: Iterable[TaskRecord], retired: Mapping[str, int]) -> None:
        """Replace everything with ``records`` (in seq order) and ``retired``: the
        registry, restarted, reloading its durable store. What the store does not keep
        of this runtime's tasks (where each runs, what it holds of the host's resources
        or waits for) is carried over to the reloaded records."""
        live = {
            task_id: (r.placement, r.resources_held, r.gpu_indices, r.waiting_for)
            for task_id, r in self._records.items()
            if r.placement is not None or r.resources_held is not None or r.waiting_for
        }
        self._clear()
        self.restore(records, retired)
        for task_id, kept in live.items():
            record = self._records.get(task_id)
            if record is not None:
                (record.placement, record.resources_held, record.gpu_indices,
                 record.waiting_for) = kept  # fmt: skip

    def rebuild(self) -> None:
        """Recompute every index and counter from the records themselves: the registry,
        restarted, trusts only the records (each transition sets a record's fields after
        the index updates that can fail, so a failure never leaves one half-changed).
        Lifetime counters of tasks retention removed are kept."""
        records = sorted(self._records.values(), key=lambda r: r.seq)
        counts = dict.fromkeys(TaskStatus, 0)
        timed_out = stalled = 0
        for record in records:
            counts[record.status] += 1
            timed_out += isinstance(record.outcome, TimedOut)
            stalled += isinstance(record.outcome, Stalled)
        retired = {
            "created": self._created - len(records),
            "completed": self._completed - counts[TaskStatus.COMPLETED],
            "failed": self._failed - counts[TaskStatus.FAILED],
            "cancelled": self._cancelled - counts[TaskStatus.CANCELLED],
            "timed_out": self._timed_out - timed_out,
            "stalled": self._stalled - stalled,
        }
        self.reset(records, {k: max(v, 0) for k, v in retired.items()})

    # -- transitions -----------------------------------------------------------------

    def add(self, spec: TaskSpec) -> TaskRecord:
        if spec.task_id in self._records:
            raise ValueError(f"task id {spec.task_id!r} is already registered")
        record = TaskRecord.from_spec(spec)
        self._index(record, TaskStatus.PENDING)
        self._records[spec.task_id] = record
        self._pending[spec.options.priority][spec.task_id] = None
        self._status_counts[TaskStatus.PENDING] += 1
        self._priority_counts[spec.options.priority] += 1
        self._created += 1
        return record

    def mark_running(
        self,
        task_id: str,
        at: float,
        injected_fault: str | None = None,
        placement: Mapping[str, Any] | None = None,
    ) -> TaskRecord | None:
        """PENDING -> RUNNING. Returns None (and changes nothing) from any other state."""
        record = self._records.get(task_id)
        if record is None or record.status is not TaskStatus.PENDING:
            return None
        del self._pending[record.options.priority][task_id]
        self._running[task_id] = None
        self._move(record, TaskStatus.RUNNING)
        record.started_at = at
        record.updated_at = at
        record.attempt += 1
        record.scheduled_for = None
        if injected_fault is not None:
            record.injected_faults = (*record.injected_faults, (record.attempt, injected_fault))
        record.placement = placement  # this attempt's (None where the back-end says none)
        return record

    def retry(self, task_id: str, outcome: Outcome, at: float, next_at: float) -> TaskRecord | None:
        """RUNNING -> PENDING until ``next_at``: the attempt ended with ``outcome`` and the
        task's retry policy gives it another. None (nothing changed) from another state."""
        record = self._records.get(task_id)
        if record is None or record.status is not TaskStatus.RUNNING:
            return None
        del self._running[task_id]
        self._pending[record.options.priority][task_id] = None
        self._move(record, TaskStatus.PENDING)
        record.attempt_outcomes = (*record.attempt_outcomes, outcome)
        record.scheduled_for = next_at
        record.started_at = None
        record.progress = 0.0
        record.updated_at = at
        return record

    def apply_progress(
        self,
        task_id: str,
        progress: float | None,
        partial: Any,
        has_partial: bool,
        at: float,
        *,
        alive: bool = False,
        checkpoint: tuple[Any, str] | None = None,
    ) -> TaskRecord | None:
        """Record progress, a partial result, a sign of life (``alive``) and/or a
        checkpoint (its state and JSON text) of a running task; None if not running."""
        record = self._records.get(task_id)
        if record is None or record.status is not TaskStatus.RUNNING:
            return None
        if progress is not None:
            record.progress = progress
        if has_partial:
            record.partial_result = partial
            record.has_partial_result = True
        if checkpoint is not None:
            record.checkpoint, record.checkpoint_json = checkpoint
            record.checkpointed_at = at
        if alive:
            record.last_heartbeat_at = at
        record.updated_at = at
        return record

    def set_resources(
        self,
        task_id: str,
        held: Resources | None,
        gpu_indices: tuple[int, ...],
        waiting_for: Resources | None,
    ) -> TaskRecord | None:
        """Record what the task holds of the host's resources and what it waits for (in
        any state: a stopped operation holds them until it has really left); None if
        there is no such task."""
        record = self._records.get(task_id)
        if record is None:
            return None
        record.resources_held = held
        record.gpu_indices = gpu_indices
        record.waiting_for = waiting_for
        return record

    def reopen(self, task_id: str, at: float) -> TaskRecord | None:
        """FAILED or CANCELLED -> PENDING: a new attempt of an ended task (``resume``);
        its outcome joins ``attempt_outcomes``. None (nothing changed) from another
        state. The one way out of a terminal state, taken only on a caller's request."""
        record = self._records.get(task_id)
        if record is None or record.status not in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return None
        outcome = record.outcome
        assert outcome is not None
        del self._terminal[record.status][task_id]
        # Out of the retention heap too, or retention would remove a task that runs again.
        self._ended = [entry for entry in self._ended if entry[1] != task_id]
        heapq.heapify(self._ended)
        if record.status is TaskStatus.CANCELLED:
            self._cancelled -= 1
        else:
            self._failed -= 1
            self._timed_out -= isinstance(outcome, TimedOut)
            self._stalled -= isinstance(outcome, Stalled)
        self._pending[record.options.priority][task_id] = None
        self._move(record, TaskStatus.PENDING)
        record.attempt_outcomes = (*record.attempt_outcomes, outcome)
        record.outcome = None
        record.ended_at = None
        record.started_at = None
        record.scheduled_for = None
        record.progress = 0.0
        record.updated_at = at
        return record

    def finish(
        self, task_id: str, outcome: Outcome, at: float
    ) -> tuple[FinishResult, TaskRecord | None]:
        """Make a task terminal. Terminal states are final: a later outcome never changes
        the status; only a value the operation returned afterwards is kept as ``result``."""
        record = self._records.get(task_id)
        if record is None:
            return FinishResult.IGNORED, None
        if record.status.is_terminal:
            if isinstance(outcome, Completed) and not record.has_result:
                record.result = outcome.result
                record.has_result = True
                record.updated_at = at
                return FinishResult.LATE_RESULT, record
            return FinishResult.IGNORED, record

        if record.status is TaskStatus.PENDING:
            if not isinstance(outcome, Cancelled | Interrupted | DependencyFailed):
                # Only a cancel (or, after a restart, the verdict that it cannot run
                # again) ends a task that is not running.
                return FinishResult.IGNORED, record
            del self._pending[record.options.priority][task_id]
        else:
            del self._running[task_id]
        if isinstance(outcome, TimedOut | Stalled):
            # What the operation had published by then: its error's details show it.
            outcome = replace(
                outcome,
                partial_result=record.partial_result,
                has_partial_result=record.has_partial_result,
                checkpoint=record.checkpoint,
                has_checkpoint=record.checkpointed_at is not None,
            )
            if isinstance(outcome, Stalled):
                outcome = replace(outcome, progress=record.progress)
        new_status = _status_of(outcome)
        self._move(record, new_status)
        record.outcome = outcome
        record.ended_at = at
        record.updated_at = at
        heapq.heappush(self._ended, (at, task_id))
        self._terminal[new_status][task_id] = None
        if isinstance(outcome, Completed):
            record.result = outcome.result
            record.has_result = True
            record.progress = 1.0
            self._completed += 1
        elif isinstance(outcome, Cancelled | DependencyFailed):
            self._cancelled += 1
        else:
            self._failed += 1
            if isinstance(outcome, TimedOut):
                self._timed_out += 1
            elif isinstance(outcome, Stalled):
                self._stalled += 1
        return FinishResult.RECORDED, record

    def remove_ended_before(self, cutoff: float) -> list[str]:
        """Drop terminal records that ended before ``cutoff``; returns their ids."""
        return [record.task_id for record in self.pop_ended_before(cutoff)]

    def pop_ended_before(self, cutoff: float) -> list[TaskRecord]:
        """Drop terminal records that ended before ``cutoff``; returns them."""
        removed: list[TaskRecord] = []
        ended = self._ended
        while ended and ended[0][0] < cutoff:
            _, task_id = heapq.heappop(ended)
            record = self._records.pop(task_id)
            del self._terminal[record.status][task_id]
            self._unindex(record, record.status)
            self._status_counts[record.status] -= 1
            self._priority_counts[record.options.priority] -= 1
            removed.append(record)
        return removed

    def _move(self, record: TaskRecord, status: TaskStatus) -> None:
        self._unindex(record, record.status, by_status_only=True)
        self._index(record, status, by_status_only=True)
        self._status_counts[record.status] -= 1
        self._status_counts[status] += 1
        record.status = status

    def _seq_index(self, key: tuple[str | None, TaskStatus | None]) -> SeqIndex:
        index = self._by_seq.get(key)
        if index is None:
            index = self._by_seq[key] = SeqIndex()
        return index

    def _index(self, record: TaskRecord, status: TaskStatus, by_status_only: bool = False) -> None:
        """Put ``record`` in the seq indexes it belongs to with ``status`` (created on
        demand); ``by_status_only``: just those a change of status moves it between.
        Written out, not looped over keys: it runs on every transition of every task."""
        if not self._paged:
            return
        seq, task_id, user = record.seq, record.task_id, record.options.user
        self._seq_index((None, status)).add(seq, task_id)
        if not by_status_only:
            self._seq_index(_EVERY_STATUS).add(seq, task_id)
        if user is not None:
            self._seq_index((user, status)).add(seq, task_id)
            if not by_status_only:
                self._seq_index((user, None)).add(seq, task_id)

    def _unindex(
        self, record: TaskRecord, status: TaskStatus, by_status_only: bool = False
    ) -> None:
        """Take ``record`` out of the indexes :meth:`_index` put it in with ``status``."""
        if not self._paged:
            return
        by_seq = self._by_seq
        seq, task_id, user = record.seq, record.task_id, record.options.user
        by_seq[(None, status)].remove(seq, task_id)
        if not by_status_only:
            by_seq[_EVERY_STATUS].remove(seq, task_id)
        if user is not None:
            for key in ((user, status), (user, None)) if not by_status_only else ((user, status),):
                index = by_seq[key]
                index.remove(seq, task_id)
                if not index:
                    del by_seq[key]  # an owner with nothing retained costs nothing

    # -- queries ---------------------------------------------------------------------

    def iter_status(self, status: TaskStatus | None) -> Iterator[TaskRecord]:
        """Records with ``status`` (all if None). Pending ones in the order they will
        run, running ones in start order, terminal ones in the order they were recorded."""
        records = self._records
        if status is TaskStatus.PENDING:
            for ids in self._pending.values():
                yield from (records[i] for i in ids)
        elif status is TaskStatus.RUNNING:
            yield from (records[i] for i in self._running)
        elif status is None:
            yield from records.values()
        else:
            yield from (records[i] for i in self._terminal[status])

    def list(
        self, status: TaskStatus | None, limit: int | None, user: str | None = None
    ) -> list[TaskRecord]:
        """:meth:`iter_status`, at most ``limit`` of them; only ``user``'s when given."""
        records = self.iter_status(status)
        if user is not None:
            records = (r for r in records if r.options.user == user)
        return list(itertools.islice(records, limit))

    def page(
        self, status: TaskStatus | None, after: int, limit: int, user: str | None = None
    ) -> TablePage:
        """Up to ``limit`` records with ``status`` (all if None), only ``user``'s when
        given, in submission order (``seq``), starting after the task whose ``seq`` is
        ``after`` (-1: from the first). Reads only the records it returns."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not self._paged:
            self._paged = True
            for record in sorted(self._records.values(), key=lambda r: r.seq):
                self._index(record, record.status)
        index = self._by_seq.get((user, status))
        if index is None:
            return TablePage([], None)
        ids, more = index.page(after, limit)
        records = [self._records[i] for i in ids]
        return TablePage(records, records[-1].seq if more else None)

    def stats(self) -> TableStats:
        return TableStats(
            total_tasks=len(self._records),
            status_counts=dict(self._status_counts),
            priority_counts=dict(self._priority_counts),
            total_created=self._created,
            total_completed=self._completed,
            total_failed=self._failed,
            total_cancelled=self._cancelled,
            total_timed_out=self._timed_out,
            total_stalled=self._stalled,
        )
