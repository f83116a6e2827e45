"""``GroupCommit``: the durable store's group commit, as plain state the registry owns.

The registry is the store's only writer. It does not write a record per change: the
records changed since the last commit (each in its latest state), the records retention
deleted, and the tickets callers wait on all collect here, and one :meth:`commit` writes
them in one transaction. This class holds that state and its rules:

* **when a commit is due** (:meth:`due`): a full batch, or a state change (``urgent``) or
  a held ticket once the registry's inbox is empty. Progress alone is not urgent: it
  rides along with the next commit. (The registry adds its own rule: always before a
  query's answer leaves.)
* **what a commit does**: a failed write keeps everything for the next commit and
  releases the held tickets with the error; a record the store cannot encode is left
  out alone (remembered as *refused* until it changes again), its own tickets get the
  error and every other record is committed.
* **what is not durable**: a task whose latest change is uncommitted, or whose record was
  refused; :meth:`answer_after_failure` and :meth:`without_refused` apply that to a
  query's answer.

It knows nothing of actors, waiters or events (the registry releases those after a
commit, from the :class:`Commit` it returns), so it is tested directly against a store.
With the memory store the registry has no ``GroupCommit`` at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from actors._core.messages import TaskPage
from actors._errors import RecordsNotStoredError, StoreError, StoreWriteError
from actors._records import TaskRecord, TaskSnapshot
from actors._storage.store import CommitTicket, Store
from actors.logs import library_logger

__all__ = ["COMMIT_BATCH", "Commit", "GroupCommit", "GroupCommitStats"]

_log = library_logger("actors.registry")

COMMIT_BATCH = 1000
"""Records changed before the registry commits even though messages are still queued."""


@dataclass(frozen=True, slots=True)
class Commit:
    """What one :meth:`GroupCommit.commit` did: the error when nothing could be written,
    the records the store refused (task id -> why), which were left out, and the records
    it wrote (each in the state the store now holds)."""

    error: StoreError | None = None
    refused: Mapping[str, str] = field(default_factory=dict)
    written: Sequence[TaskRecord] = ()


@dataclass(frozen=True, slots=True)
class GroupCommitStats:
    """A snapshot of a group commit's state and counters."""

    changed: int  # records changed since the last commit
    deleted: int  # records deleted since the last commit
    tickets: int  # held until the next commit
    refused: int  # records the store could not encode, left out until they change
    urgent: bool  # a state change (not just progress) waits for a commit
    commits: int  # commits that wrote (or had nothing to write but tickets)
    failed_commits: int  # commits whose write failed (everything was kept)


class GroupCommit:
    """The changes, deletions and tickets waiting for the next commit to ``store``.

    Invariants: a record is changed or deleted, never both; after a commit that worked,
    nothing is changed, deleted or held; after one that failed, every change and deletion
    is kept and nothing is held; a refused record is not changed (it is tried again when
    it changes again)."""

    __slots__ = (
        "_batch",
        "_changed",
        "_commits",
        "_deleted",
        "_failed",
        "_reclaim",
        "_refused",
        "_tickets",
        "_urgent",
        "store",
    )

    def __init__(self, store: Store, *, batch: int = COMMIT_BATCH) -> None:
        if not store.durable:
            raise ValueError(f"{store.location} is not a durable store: it needs no commits")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        self.store = store
        self._batch = batch
        self._changed: dict[str, TaskRecord] = {}  # changed since the last commit
        self._deleted: list[TaskRecord] = []
        self._tickets: list[CommitTicket] = []  # released by the next commit
        # Records the store refused to write (their data cannot be encoded), with why:
        # left out of later commits until they change again, and not shown by queries.
        self._refused: dict[str, str] = {}
        self._urgent = False
        self._reclaim = False  # give deleted records' space back after the next commit
        self._commits = 0
        self._failed = 0

    # -- what changed ----------------------------------------------------------------------

    def changed(self, record: TaskRecord, *, urgent: bool = True) -> None:
        """``record`` changed: write its latest state with the next commit. A state
        change is urgent (committed as soon as the inbox is empty); progress is not."""
        self._changed[record.task_id] = record
        if urgent:
            self._urgent = True

    def deleted(self, records: list[TaskRecord]) -> None:
        """Retention removed ``records``: forget them with the next commit (urgently)."""
        for record in records:
            self._changed.pop(record.task_id, None)
        self._deleted.extend(records)
        self._reclaim = True
        self._urgent = True

    def hold(self, ticket: CommitTicket) -> None:
        """Release ``ticket`` with the next commit (with its error, if it fails)."""
        self._tickets.append(ticket)

    # -- questions -------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Anything for a commit to do (changes, deletions or tickets)?"""
        return bool(self._changed or self._deleted or self._tickets)

    @property
    def clean(self) -> bool:
        """No change or deletion waits (the store holds what the registry holds)."""
        return not self._changed and not self._deleted

    def due(self, inbox_empty: bool) -> bool:
        """Whether to commit now, without a query asking: a full batch, or an urgent
        change or a held ticket once the inbox is empty."""
        return len(self._changed) >= self._batch or (
            (self._urgent or bool(self._tickets)) and inbox_empty
        )

    def uncommitted(self, task_id: str) -> bool:
        """Is this task's latest change not committed yet?"""
        return task_id in self._changed

    def unreadable(self) -> Iterator[str]:
        """The tasks whose latest state is in no file: changed since the last commit, or
        refused by the store."""
        yield from self._changed
        yield from self._refused

    @property
    def refusing(self) -> bool:
        """Does the store refuse any record (so answers must leave them out)?"""
        return bool(self._refused)

    def refusal(self, task_id: str) -> str | None:
        """Why the store refused this task's record, if it did."""
        return self._refused.get(task_id)

    def not_stored_error(self, task_id: str, what: str) -> StoreWriteError | None:
        """The error for asking about a refused record's ``what`` ("end", "latest
        state"); None if the store did not refuse it."""
        why = self._refused.get(task_id)
        if why is None:
            return None
        return StoreWriteError(
            self.store.location,
            f"task {task_id} could not be stored ({why}); its {what} is not durable",
        )

    def refused_error(self, task_id: str, why: str) -> StoreWriteError:
        """The error a ticket or a waiter of a record refused by a commit gets."""
        location = self.store.location
        return StoreWriteError(location, f"task {task_id} could not be stored in {location}: {why}")

    def answer_after_failure(self, answer: Any, error: StoreError) -> Any:
        """A query's answer after a failed commit: a StoreWriteError (which the runtime
        raises to the asker) instead of any snapshot whose state is not committed."""
        snapshots = answer
        if isinstance(answer, TaskSnapshot):
            snapshots = [answer]
        elif isinstance(answer, TaskPage):  # a page of a listing: its tasks, the same rule
            snapshots = answer.tasks
        if isinstance(snapshots, list) and any(
            isinstance(s, TaskSnapshot) and s.task_id in self._changed for s in snapshots
        ):
            return StoreWriteError(
                error.location,
                f"the latest state of the task(s) asked about is not durable yet: {error}",
            )
        return answer

    def without_refused(self, answer: Any) -> Any:
        """Records the store refused are not answered (their state is in no file)."""
        if isinstance(answer, TaskSnapshot):
            error = self.not_stored_error(answer.task_id, "latest state")
            return answer if error is None else error
        if isinstance(answer, list):
            return [s for s in answer if s.task_id not in self._refused]
        if isinstance(answer, TaskPage):  # the cursor still names the page's last task
            return replace(answer, tasks=self.without_refused(answer.tasks))
        return answer

    def statistics(self) -> GroupCommitStats:
        return GroupCommitStats(
            changed=len(self._changed),
            deleted=len(self._deleted),
            tickets=len(self._tickets),
            refused=len(self._refused),
            urgent=self._urgent,
            commits=self._commits,
            failed_commits=self._failed,
        )

    # -- the commit ------------------------------------------------------------------------

    def forget_refused(self) -> None:
        """The registry's table was read back from the store: nothing is refused."""
        self._refused.clear()

    def commit(self) -> Commit:
        """Write what changed and release the held tickets. Never raises: an exception
        escaping a told message would stop the registry.

        After a failed write everything is kept for the next commit and the tickets get
        the error. A record the store refuses alone (its data cannot be encoded) is left
        out: only its own tickets get the error, the others are committed."""
        store = self.store
        error: StoreError | None = None
        rejected: dict[str, str] = {}
        written: list[TaskRecord] = []
        if self._changed or self._deleted:
            try:
                try:
                    store.write(self._changed.values(), self._deleted)
                except RecordsNotStoredError as exc:
                    rejected = exc.rejected
            except Exception as exc:
                # Kept: the next commit tries again. The callers waiting on this one
                # learn that their change is not durable.
                error = (
                    exc
                    if isinstance(exc, StoreError)
                    else StoreWriteError(store.location, f"writing the task store failed: {exc!r}")
                )
                self._failed += 1
                _log.error("store.commit_failed", location=store.location, error=str(exc))
            else:
                written = [r for t, r in self._changed.items() if t not in rejected]
                self._written(rejected)
        if error is None:
            self._commits += 1
        for ticket in self._tickets:
            if rejected and ticket.task_id in rejected:
                ticket.done(self.refused_error(ticket.task_id, rejected[ticket.task_id]))
            else:
                ticket.done(error)
        self._tickets.clear()
        return Commit(error, rejected, written)

    def _written(self, rejected: dict[str, str]) -> None:
        store = self.store
        if self._refused:
            for task_id in self._changed:
                self._refused.pop(task_id, None)
        for task_id, why in rejected.items():
            # Not retried with every later commit: tried again only when the record
            # changes (and so is changed again).
            self._refused[task_id] = why
            _log.error(
                "store.record_not_stored", task_id=task_id, location=store.location, error=why
            )
        self._changed.clear()
        self._deleted.clear()
        self._urgent = False
        if self._reclaim:
            self._reclaim = False
            try:
                store.reclaim()
            except Exception as exc:  # the space comes back at the next cleanup
                _log.warning("store.reclaim_failed", location=store.location, error=str(exc))
