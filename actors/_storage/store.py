"""Where task records live beyond the process: the store protocol, the memory store,
and the ticket a caller waits on until its change is durable.

The registry actor keeps every retained record in its :class:`TaskTable` (all queries
answer from memory) and is the store's only writer: it hands the store the records that
changed since the last commit, in one transaction (group commit), before it answers a
query or acknowledges a submission. A record written many times between two commits is
written once, in its latest state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from actors._latch import Latch
from actors._records import TaskRecord

__all__ = ["CommitTicket", "MemoryStore", "Store", "StoreStats", "StoredState"]


@dataclass(frozen=True, slots=True)
class StoredState:
    """What a store holds when a runtime opens it."""

    records: Sequence[TaskRecord]  # in submission order (seq)
    # Tasks retention deleted, by how they ended ("created", "completed", "failed",
    # "cancelled", "timed_out"): the lifetime counters are these plus the records'.
    retired: Mapping[str, int]
    next_seq: int = 0


@dataclass(frozen=True, slots=True)
class StoreStats:
    kind: str
    location: str
    durable: bool
    commits: int = 0
    records_written: int = 0
    records_deleted: int = 0
    failed_writes: int = 0


@runtime_checkable
class Store(Protocol):
    """A task store. The runtime calls :meth:`open` once, then only the registry actor
    calls :meth:`write` and :meth:`reclaim`, then the runtime calls :meth:`close`."""

    @property
    def durable(self) -> bool:
        """True when records survive the process: the runtime then waits for commits."""
        ...

    @property
    def location(self) -> str:
        """Where the records live, for messages (a file path)."""
        ...

    def open(self) -> StoredState:
        """Open (creating if needed) and read every stored record.

        Raises :class:`StoreError` subclasses naming the location on failure.
        """
        ...

    def reload(self) -> StoredState:
        """Read every stored record again, from the open store (the registry rebuilding
        itself after a failure). Raises :class:`StoreError` subclasses."""
        ...

    def write(self, records: Iterable[TaskRecord], deleted: Iterable[TaskRecord]) -> None:
        """Store these records' current state and forget the deleted ones (retention,
        counted into ``retired``), in one transaction. Raises :class:`StoreWriteError`
        (nothing was written), or :class:`RecordsNotStoredError` when only the records
        it names could not be encoded (all the others were written). Counts every
        failed write in ``statistics().failed_writes``."""
        ...

    def reclaim(self) -> None:
        """Give the space of deleted records back (after a retention cleanup)."""
        ...

    def statistics(self) -> StoreStats: ...

    def close(self) -> None: ...


class MemoryStore:
    """Nothing survives the process: the registry's table is the only copy."""

    durable = False
    location = ":memory:"

    def open(self) -> StoredState:
        return StoredState(records=(), retired={})

    def reload(self) -> StoredState:
        return StoredState(records=(), retired={})

    def write(self, records: Iterable[TaskRecord], deleted: Iterable[TaskRecord]) -> None:
        raise RuntimeError("the memory store keeps nothing; the registry never writes to it")

    def reclaim(self) -> None:
        pass

    def statistics(self) -> StoreStats:
        return StoreStats(kind="memory", location=self.location, durable=False)

    def close(self) -> None:
        pass


class CommitTicket(Latch):
    """Done once the registry has committed a change (or the commit failed).

    A submitter waits on one before ``submit`` returns the task id; a worker waits on one
    before it calls the operation, so a crash can never make a started task read
    ``pending`` (and run twice) after recovery (a :class:`Latch`).
    """

    __slots__ = ("error", "task_id")

    def __init__(self, task_id: str | None = None) -> None:
        super().__init__()
        self.error: BaseException | None = None
        # The task whose change this ticket waits for: a record the store refuses fails
        # only its own tickets (see GroupCommit.commit).
        self.task_id = task_id

    def done(self, error: BaseException | None = None) -> None:
        """Called once, by the registry."""
        self.error = error
        self._open()
