"""``PendingQueue``: every place a pending task can wait, in one object with one owner.

A task that has not started waits in exactly one of five places:

* **ready**: in the priority heap, to start when a slot is free (highest priority first,
  FIFO within one priority, by ``seq``);
* **delayed**: until its start time (a ``delay``, ``run_at`` or a retry's backoff), with
  the handle of the timer that will say it is due;
* **held**: back from the heap because its operation's circuit breaker is open, until the
  operation is released;
* **blocked**: until its dependencies have completed (the registry resolves them);
* **awaiting**: recovered from a durable store for an operation not registered yet.

The supervisor owns the queue and is its only user; the queue knows nothing of actors or
timers (a delayed entry's handle is opaque to it), so it is tested directly. Invariant:
a task id is in at most one place, and :meth:`remove` (the one cancel) finds it in any.

Ready tasks wait in *lanes*, one priority heap each, chosen by the ``lane_of`` function
the owner gives (the supervisor's lanes are its slot pools: the threads and processes,
and the event loop), so a full pool never holds up a task of another: each lane is
popped on its own, by priority then FIFO. Without ``lane_of`` there is one lane.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, Literal, TypeVar

from actors._records import TaskRecord, TaskSpec

__all__ = ["PendingQueue", "PendingStats", "Place"]

H = TypeVar("H")  # the handle of a delayed task's timer

Place = Literal["ready", "delayed", "held", "blocked", "awaiting"]


@dataclass(frozen=True, slots=True)
class PendingStats:
    """How many tasks wait in each place."""

    ready: int
    delayed: int
    held: int
    blocked: int
    awaiting: int

    @property
    def total(self) -> int:
        return self.ready + self.delayed + self.held + self.blocked + self.awaiting


@dataclass(frozen=True, slots=True)
class Removed(Generic[H]):
    """What :meth:`PendingQueue.remove` took out: where the task waited, and for a
    delayed one the timer handle its owner should cancel."""

    place: Place
    handle: H | None = None


# Stale heap entries (removed ready tasks) are dropped in one pass once they outnumber
# the live ones by this much, so many cancellations cannot grow memory without bound.
_COMPACT_SLACK = 1024


class PendingQueue(Generic[H]):
    """The pending tasks of one supervisor, in the five places they can wait."""

    def __init__(self, lane_of: Callable[[TaskSpec], Hashable] | None = None) -> None:
        # Per lane, (-priority, seq, task_id): highest priority first, FIFO within one.
        # A removed ready task leaves its entry behind; it is skipped when popped
        # (O(log n) cancel).
        self._lane_of = lane_of
        self._heaps: dict[Hashable, list[tuple[int, int, str]]] = {None: []}
        # Read-only and live, for the dispatcher's hot path (a lookup, not a call): lane ->
        # its heap; a non-empty one may have a ready task (see has_ready_in).
        self.ready_lanes: Mapping[Hashable, Sequence[tuple[int, int, str]]] = MappingProxyType(
            self._heaps
        )
        self._ready: dict[str, TaskSpec] = {}
        self._delayed: dict[str, tuple[TaskSpec, H]] = {}
        self._held: dict[str, dict[str, TaskSpec]] = {}  # operation -> id -> spec, in order
        self._held_operation: dict[str, str] = {}  # task id -> operation
        self._blocked: dict[str, TaskSpec] = {}
        self._awaiting: dict[str, dict[str, TaskRecord]] = {}  # operation -> id -> record
        self._awaiting_operation: dict[str, str] = {}  # task id -> operation

    # -- queries ---------------------------------------------------------------------------

    def __contains__(self, task_id: object) -> bool:
        return (
            task_id in self._ready
            or task_id in self._delayed
            or task_id in self._held_operation
            or task_id in self._blocked
            or task_id in self._awaiting_operation
        )

    def __len__(self) -> int:
        return self.statistics().total

    def place_of(self, task_id: str) -> Place | None:
        """Where ``task_id`` waits, or None if it is not pending here."""
        if task_id in self._ready:
            return "ready"
        if task_id in self._delayed:
            return "delayed"
        if task_id in self._held_operation:
            return "held"
        if task_id in self._blocked:
            return "blocked"
        if task_id in self._awaiting_operation:
            return "awaiting"
        return None

    def statistics(self) -> PendingStats:
        return PendingStats(
            ready=len(self._ready),
            delayed=len(self._delayed),
            held=len(self._held_operation),
            blocked=len(self._blocked),
            awaiting=len(self._awaiting_operation),
        )

    @property
    def has_ready(self) -> bool:
        return bool(self._ready)

    def has_ready_in(self, lane: Hashable) -> bool:
        """Whether ``lane`` may have a ready task (an entry a cancel left behind counts:
        :meth:`pop_ready` skips it)."""
        return bool(self._heaps.get(lane))

    def has_held(self, operation: str) -> bool:
        return bool(self._held.get(operation))

    # -- ready -----------------------------------------------------------------------------

    def push_ready(self, spec: TaskSpec) -> None:
        self._check_absent(spec.task_id)
        self._ready[spec.task_id] = spec
        lane = None if self._lane_of is None else self._lane_of(spec)
        heap = self._heaps.get(lane)
        if heap is None:
            heap = self._heaps[lane] = []
        heapq.heappush(heap, (-spec.options.priority, spec.seq, spec.task_id))

    def pop_ready(self, lane: Hashable = None) -> TaskSpec | None:
        """The ready task of ``lane`` to start next, taken out; None when none is ready
        there (without ``lane_of`` every task is in the lane None)."""
        heap = self._heaps.get(lane)
        while heap:
            _, _, task_id = heapq.heappop(heap)
            spec = self._ready.pop(task_id, None)
            if spec is not None:
                return spec
        return None

    def peek_ready(self, lane: Hashable = None) -> tuple[int, int] | None:
        """The order key ``(-priority, seq)`` of the ready task :meth:`pop_ready` would
        take from ``lane``, left in place; None when none is ready there."""
        heap = self._heaps.get(lane)
        while heap:
            negated, seq, task_id = heap[0]
            if task_id in self._ready:
                return negated, seq
            heapq.heappop(heap)  # a removed task's stale entry
        return None

    # -- delayed ---------------------------------------------------------------------------

    def delay(self, spec: TaskSpec, handle: H) -> None:
        self._check_absent(spec.task_id)
        self._delayed[spec.task_id] = (spec, handle)

    def take_due(self, task_id: str) -> TaskSpec | None:
        """A delayed task whose time has come, taken out (None: removed meanwhile)."""
        entry = self._delayed.pop(task_id, None)
        return None if entry is None else entry[0]

    # -- held ------------------------------------------------------------------------------

    def hold(self, spec: TaskSpec) -> bool:
        """Hold ``spec`` back for its operation; True when it is the first one held (the
        caller then arms the operation's cool-down)."""
        self._check_absent(spec.task_id)
        operation = spec.operation_name
        held = self._held.setdefault(operation, {})
        held[spec.task_id] = spec
        self._held_operation[spec.task_id] = operation
        return len(held) == 1

    def release(self, operation: str) -> int:
        """Put every task held for ``operation`` back among the ready ones, in the order
        they were held; returns how many."""
        held = self._held.pop(operation, {})
        for task_id, spec in held.items():
            del self._held_operation[task_id]
            self.push_ready(spec)
        return len(held)

    # -- blocked ---------------------------------------------------------------------------

    def block(self, spec: TaskSpec) -> None:
        self._check_absent(spec.task_id)
        self._blocked[spec.task_id] = spec

    def unblock(self, task_id: str) -> TaskSpec | None:
        """A blocked task taken out (its dependencies are met, or it is dropped)."""
        return self._blocked.pop(task_id, None)

    # -- awaiting an operation -------------------------------------------------------------

    def await_operation(self, record: TaskRecord) -> None:
        self._check_absent(record.task_id)
        operation = record.operation_name
        self._awaiting.setdefault(operation, {})[record.task_id] = record
        self._awaiting_operation[record.task_id] = operation

    def take_awaiting(self, operation: str) -> list[TaskRecord]:
        """The records waiting for ``operation``, in the order they were added, taken out."""
        records = self._awaiting.pop(operation, {})
        for task_id in records:
            del self._awaiting_operation[task_id]
        return list(records.values())

    # -- the one cancel --------------------------------------------------------------------

    def remove(self, task_id: str) -> Removed[H] | None:
        """Take ``task_id`` out of whichever place it waits in; None if it is not here."""
        if self._ready.pop(task_id, None) is not None:
            self._compact()
            return Removed("ready")
        delayed = self._delayed.pop(task_id, None)
        if delayed is not None:
            return Removed("delayed", delayed[1])
        operation = self._held_operation.pop(task_id, None)
        if operation is not None:
            held = self._held[operation]
            del held[task_id]
            if not held:
                del self._held[operation]
            return Removed("held")
        if self._blocked.pop(task_id, None) is not None:
            return Removed("blocked")
        operation = self._awaiting_operation.pop(task_id, None)
        if operation is not None:
            awaiting = self._awaiting[operation]
            del awaiting[task_id]
            if not awaiting:
                del self._awaiting[operation]
            return Removed("awaiting")
        return None

    # -- taking everything out (shutdown) --------------------------------------------------

    def take_all_ready(self) -> list[TaskSpec]:
        """Every ready task, in the order they would have started (one lane after the
        other, merged by priority, then FIFO)."""
        entries = sorted(entry for heap in self._heaps.values() for entry in heap)
        taken = [spec for *_, task_id in entries if (spec := self._ready.pop(task_id, None))]
        for heap in self._heaps.values():
            heap.clear()
        return taken

    def take_all_delayed(self) -> list[tuple[TaskSpec, H]]:
        taken = list(self._delayed.values())
        self._delayed.clear()
        return taken

    def take_all_held(self) -> list[TaskSpec]:
        taken = [spec for held in self._held.values() for spec in held.values()]
        self._held.clear()
        self._held_operation.clear()
        return taken

    def take_all_blocked(self) -> list[TaskSpec]:
        taken = list(self._blocked.values())
        self._blocked.clear()
        return taken

    def take_all_awaiting(self) -> list[TaskRecord]:
        taken = [record for records in self._awaiting.values() for record in records.values()]
        self._awaiting.clear()
        self._awaiting_operation.clear()
        return taken

    def ready_ids(self) -> Iterator[str]:
        """The ready tasks' ids, in no particular order."""
        return iter(list(self._ready))

    # -- internals -------------------------------------------------------------------------

    def _check_absent(self, task_id: str) -> None:
        place = self.place_of(task_id)
        if place is not None:
            raise ValueError(f"task {task_id} is already pending ({place})")

    @property
    def _heap(self) -> list[tuple[int, int, str]]:
        """Every lane's heap entries, stale ones included (for tests of compaction)."""
        return [entry for heap in self._heaps.values() for entry in heap]

    def _compact(self) -> None:
        if sum(map(len, self._heaps.values())) > 2 * len(self._ready) + _COMPACT_SLACK:
            for lane, heap in self._heaps.items():
                kept = [entry for entry in heap if entry[2] in self._ready]
                heapq.heapify(kept)
                self._heaps[lane] = kept
