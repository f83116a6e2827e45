"""``Waiters``: the callers blocked until a task ends, and the wake-ups held for a commit.

A caller of ``wait(task_id)`` blocks on a :class:`TerminalWaiter`. The registry sets it
when the task becomes terminal, but with a durable store only after the commit that
covers that end (so a caller never sees an end a crash could undo); a failed commit
wakes it with the error instead. Between the end and the commit the waiter is *held*.
This class keeps both places and wakes each waiter exactly once; it knows nothing of
actors or stores, so it is tested directly.

The registry owns it; a caller adds its own waiter from its thread, with no message
(:meth:`Waiters.watch_unless_ended`), when the task is in the table, published and not
terminal, or not in the table yet but *registering* (its submitter marked it so before
it told the registry ``Register``, and the registry unmarks it once the record is in
the table). The check and the add are one step under the lock that the
registry's :meth:`Waiters.ended` takes after it set the record terminal, so a waiter is
either added before that end (and taken by it) or not added at all (the caller then
reads the end, or asks the registry). Otherwise the caller asks the registry
(``Watch``), which adds the waiter, or answers with one already set. What is held is
the registry's alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from actors._errors import StoreError
from actors._latch import Latch
from actors._records import TaskRecord, TaskSnapshot

__all__ = ["TerminalWaiter", "Waiters"]


class TerminalWaiter(Latch):
    """Handed to a caller of ``wait``: set once its task is terminal (or the registry
    stopped), carrying the terminal snapshot (a :class:`Latch`)."""

    __slots__ = ("error", "snapshot")

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: TaskSnapshot | None = None
        # Set instead when the task's end could not be committed (a durable store).
        self.error: StoreError | None = None

    def set(self, snapshot: TaskSnapshot | None, error: StoreError | None = None) -> None:
        """Called once, by the registry."""
        self.snapshot = snapshot
        self.error = error
        self._open()


class Waiters:
    """The waiters of one registry. Invariant: a waiter is in one place at a time,
    waiting on a task that is not terminal or held for the next release, and is set
    exactly once (by :meth:`release` or :meth:`wake_all`). ``_waiting`` is changed only
    under ``_lock`` (callers add and remove their own waiters); ``held`` only on the
    registry's thread."""

    __slots__ = ("_lock", "_registering", "_stopped", "_waiting", "held")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[TerminalWaiter]] = {}
        self._stopped = False  # the registry stopped (wake_all): nothing is added
        # Ids whose Register is on its way to the registry (see registering).
        self._registering: set[str] = set()
        # Woken by the next release, with the snapshot each will see: after the commit
        # that covers their task's end (at once with the memory store).
        self.held: list[tuple[list[TerminalWaiter], TaskSnapshot | None]] = []

    def __len__(self) -> int:
        """How many waiters wait on a task that is not terminal yet (held ones aside)."""
        with self._lock:
            return sum(len(waiters) for waiters in self._waiting.values())

    def get(self, task_id: str) -> tuple[TerminalWaiter, ...]:
        """The waiters blocked on ``task_id``'s end (held ones aside)."""
        with self._lock:
            return tuple(self._waiting.get(task_id, ()))

    def watch(self, task_id: str) -> TerminalWaiter:
        """A new waiter for the end of ``task_id`` (not terminal yet: the registry's
        thread, which knows)."""
        waiter = TerminalWaiter()
        with self._lock:
            self._waiting.setdefault(task_id, []).append(waiter)
        return waiter

    def watch_unless_ended(
        self, task_id: str, lookup: Callable[[str], TaskRecord | None]
    ) -> TerminalWaiter | None:
        """From a caller's thread: a new waiter for the end of ``task_id`` if ``lookup``
        finds its record published (with a durable store: committed) and not terminal,
        or finds none while it is registering; else None, and the caller asks the
        registry (the task is unknown, between its record and its publication, ended,
        or the registry stopped)."""
        with self._lock:
            if self._stopped:
                return None
            record = lookup(task_id)
            if record is None:
                if task_id not in self._registering:
                    return None
            elif record.published is None or record.status.is_terminal:
                return None
            waiter = TerminalWaiter()
            self._waiting.setdefault(task_id, []).append(waiter)
            return waiter

    def registering(self, task_id: str) -> None:
        """A submitter is about to tell the registry ``Register`` for ``task_id``: until
        :meth:`registered`, a wait on it adds its waiter even though the table does not
        hold it yet (it will, before anything can end it)."""
        self._registering.add(task_id)

    def registered(self, task_id: str) -> None:
        """The registry's thread: ``task_id``'s record is in the table (or its
        ``Register`` never reached the registry)."""
        self._registering.discard(task_id)

    def hold(self, snapshot: TaskSnapshot) -> TerminalWaiter:
        """A new waiter for a task that has ended, woken with ``snapshot`` by the next
        release (its end is not committed yet)."""
        waiter = TerminalWaiter()
        self.held.append(([waiter], snapshot))
        return waiter

    def unwatch(self, task_id: str, waiter: object) -> None:
        """The caller gave up (its wait timed out, from any thread): forget its
        waiter."""
        with self._lock:
            waiters = self._waiting.get(task_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiting.pop(task_id, None)

    def ended(self, record: TaskRecord) -> None:
        """``record`` became terminal (its status is set): its waiters are held for the
        next release."""
        with self._lock:
            waiters = self._waiting.pop(record.task_id, None)
        if waiters:
            self.held.append((waiters, record.snapshot()))

    def settle(self, lookup: Callable[[str], TaskRecord | None]) -> None:
        """After a rebuild: hold the waiters of every task that is terminal or gone now
        (a gone one's waiters are woken with no snapshot; one still registering is not
        gone: its ``Register`` is queued behind the rebuild)."""
        with self._lock:
            for task_id in list(self._waiting):
                waited = lookup(task_id)
                if waited is None and task_id in self._registering:
                    continue
                if waited is None or waited.status.is_terminal:
                    waiters = self._waiting.pop(task_id)
                    snapshot = None if waited is None else waited.snapshot()
                    self.held.append((waiters, snapshot))

    def release(
        self,
        error: StoreError | None = None,
        refused: Mapping[str, StoreError] | None = None,
    ) -> None:
        """Wake every held waiter: with its snapshot, or with ``error`` (the commit
        failed: the end it would see is not durable), or, for a task in ``refused``
        (the store could not encode its record), with that task's error."""
        for waiters, snapshot in self.held:
            failed = error
            if failed is None and refused and snapshot is not None:
                failed = refused.get(snapshot.task_id)
            for waiter in waiters:
                if failed is None:
                    waiter.set(snapshot)
                else:
                    waiter.set(None, failed)
        self.held.clear()

    def wake_all(self, lookup: Callable[[str], TaskRecord | None]) -> None:
        """The registry stops: nobody waits forever on it. Every waiter is woken with
        the latest snapshot it can have (the caller sees the task is not terminal), and
        no caller adds one after."""
        with self._lock:
            self._stopped = True
            waiting, self._waiting = self._waiting, {}
        for task_id, waiters in waiting.items():
            record = lookup(task_id)
            snapshot = None if record is None else record.snapshot()
            for waiter in waiters:
                waiter.set(snapshot)
