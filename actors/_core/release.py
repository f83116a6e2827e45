"""``ReleaseGate``: nothing leaves the registry before the commit that covers it.

The registry changes records; what callers may see of a change (the board they read
without a message, the waiters woken by a task's end, the events of a subscription, a
submitter's acknowledgement) goes out through this gate. With the memory store the
gate is open: a change is published at once and a ticket is done at once. With a
durable store a change is held until the group commit that writes it, and whatever
waits on it is released after that commit, or told why it failed. One object owns that
rule, so the registry's handlers only say "this record changed".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors._core.board import TaskBoard
from actors._core.group_commit import GroupCommit
from actors._core.outbox import EventOutbox
from actors._core.waiters import TerminalWaiter, Waiters
from actors._errors import StoreError
from actors._records import TaskRecord
from actors._storage.store import CommitTicket, Store, StoredState
from actors.logs import library_logger

__all__ = ["ReleaseGate"]

_log = library_logger("actors.registry")


class ReleaseGate:
    """The board, the waiters and the outbox, released in step with the commits."""

    def __init__(
        self, store: Store | None, board: TaskBoard, waiters: Waiters, outbox: EventOutbox
    ) -> None:
        # None with the memory store: nothing to wait for.
        self.commits = GroupCommit(store) if store is not None and store.durable else None
        self._board = board
        self._waiters = waiters
        self._outbox = outbox

    def changed(self, record: TaskRecord, *, urgent: bool = True) -> None:
        """``record`` changed: published at once, or with a durable store held until
        the commit that covers it (``urgent``: see GroupCommit.changed)."""
        commits = self.commits
        if commits is None:
            self._board.publish(record)
        else:
            self._board.hold(record.task_id)
            commits.changed(record, urgent=urgent)

    def deleted(self, records: list[TaskRecord]) -> None:
        if self.commits is not None:
            self.commits.deleted(records)

    def ticket(self, ticket: CommitTicket) -> None:
        """Done once what the registry changed so far is committed (memory: now)."""
        if self.commits is None:
            ticket.done()
        else:
            self.commits.hold(ticket)

    def after_commit(self, task_id: str, waiter: Callable[[BaseException | None], Any]) -> None:
        """Call ``waiter`` with the commit's error (None: committed) once the commit
        covering ``task_id``'s latest change is done (memory store: at once)."""
        ticket = CommitTicket(task_id)
        ticket.on_done(lambda: waiter(ticket.error))
        self.ticket(ticket)

    def commit(self) -> StoreError | None:
        """Commit (see :meth:`GroupCommit.commit`), then release what waited for it;
        returns the error when nothing could be written. Nothing leaves before its
        commit: after a failed one the waiters get the error, and events wait for the
        next commit that works."""
        commits = self.commits
        assert commits is not None
        done = commits.commit()
        publish = self._board.publish
        for record in done.written:
            publish(record)
        self.release(done.error, done.refused)
        return done.error

    def release(
        self, error: StoreError | None = None, rejected: Mapping[str, str] | None = None
    ) -> None:
        refused = None
        if rejected:
            commits = self.commits
            assert commits is not None
            refused = {t: commits.refused_error(t, why) for t, why in rejected.items()}
        # After a failed commit the ends these waiters would see are not durable: they
        # hear why instead, and events stay in the outbox for the next commit that works.
        self._waiters.release(error, refused)
        if error is not None:
            return
        self._outbox.release(rejected)

    def settle(self, answer: Any, *, query: bool, reads_records: bool, inbox_empty: bool) -> Any:
        """After a message: commit (or wake waiters) when it calls for it, and return
        ``answer`` as it may leave: never a state whose commit failed, nor a record the
        store refused. ``query``: its answer is seen outside the actor, so what it read
        is committed first; ``reads_records``: the answer holds snapshots."""
        commits = self.commits
        if commits is not None and commits.pending:
            if query or commits.due(inbox_empty):
                error = self.commit()
                if error is not None and query:
                    answer = commits.answer_after_failure(answer, error)
        elif self._waiters.held:
            self.release()
        if commits is not None and commits.refusing and reads_records:
            answer = commits.without_refused(answer)
        return answer

    def flush(self) -> None:
        """Commit what is pending and release what that covers (memory: release)."""
        if self.commits is not None:
            self.commit()  # releases what it committed (and holds back what it did not)
        else:
            self.release()

    def reload(self) -> StoredState | None:
        """Commit, then the store's records as a reload reads them; None when the
        records in memory must stay (memory store, a refused write, a failed read)."""
        commits = self.commits
        if commits is None:
            return None
        self.commit()
        if not commits.clean:
            return None
        try:
            state = commits.store.reload()
        except Exception as exc:  # keep the records in memory, which are as new
            _log.error("registry.reload_failed", error=repr(exc))
            return None
        commits.forget_refused()  # the table is the file again
        return state

    def unreadable(self) -> tuple[str, ...]:
        """Ids whose stored state a reader must not see (refused by the store)."""
        return () if self.commits is None else tuple(self.commits.unreadable())

    def terminal_waiter(self, record: TaskRecord) -> TerminalWaiter:
        """A waiter for ``record``, which has ended: set now, or once its end is
        committed (or with why it was not)."""
        commits = self.commits
        if commits is not None and commits.uncommitted(record.task_id):
            # Its end is not committed yet: woken by the commit (or its failure).
            return self._waiters.hold(record.snapshot())
        waiter = TerminalWaiter()
        refused = None if commits is None else commits.not_stored_error(record.task_id, "end")
        if refused is not None:
            waiter.set(None, refused)
        else:
            waiter.set(record.snapshot())
        return waiter
