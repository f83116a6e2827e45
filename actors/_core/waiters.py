"""``Waiters``: the callers blocked until a task ends, and the wake-ups held for a commit.

A caller of ``wait(task_id)`` asks the registry to ``Watch`` the task and blocks on the
:class:`TerminalWaiter` it gets back. The registry sets it when the task becomes
terminal, but with a durable store only after the commit that covers that end (so a
caller never sees an end a crash could undo); a failed commit wakes it with the error
instead. Between the end and the commit the waiter is *held*. This class keeps both
places and wakes each waiter exactly once; it knows nothing of actors or stores, so it
is tested directly. The registry owns it and is its only user.
"""

from __future__ import annotations

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
    exactly once (by :meth:`release` or :meth:`wake_all`)."""

    __slots__ = ("_waiting", "held")

    def __init__(self) -> None:
        self._waiting: dict[str, list[TerminalWaiter]] = {}
        # Woken by the next release, with the snapshot each will see: after the commit
        # that covers their task's end (at once with the memory store).
        self.held: list[tuple[list[TerminalWaiter], TaskSnapshot | None]] = []

    def __len__(self) -> int:
        """How many waiters wait on a task that is not terminal yet (held ones aside)."""
        return sum(len(waiters) for waiters in self._waiting.values())

    def get(self, task_id: str) -> tuple[TerminalWaiter, ...]:
        """The waiters blocked on ``task_id``'s end (held ones aside)."""
        return tuple(self._waiting.get(task_id, ()))

    def watch(self, task_id: str) -> TerminalWaiter:
        """A new waiter for the end of ``task_id`` (not terminal yet)."""
        waiter = TerminalWaiter()
        self._waiting.setdefault(task_id, []).append(waiter)
        return waiter

    def hold(self, snapshot: TaskSnapshot) -> TerminalWaiter:
        """A new waiter for a task that has ended, woken with ``snapshot`` by the next
        release (its end is not committed yet)."""
        waiter = TerminalWaiter()
        self.held.append(([waiter], snapshot))
        return waiter

    def unwatch(self, task_id: str, waiter: object) -> None:
        """The caller gave up (its wait timed out): forget its waiter."""
        waiters = self._waiting.get(task_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiting.pop(task_id, None)

    def ended(self, record: TaskRecord) -> None:
        """``record`` became terminal: its waiters are held for the next release."""
        waiters = self._waiting.pop(record.task_id, None)
        if waiters:
            self.held.append((waiters, record.snapshot()))

    def settle(self, lookup: Callable[[str], TaskRecord | None]) -> None:
        """After a rebuild: hold the waiters of every task that is terminal or gone now
        (a gone one's waiters are woken with no snapshot)."""
        for task_id in list(self._waiting):
            waited = lookup(task_id)
            if waited is None or waited.status.is_terminal:
                waiters = self._waiting.pop(task_id)
                self.held.append((waiters, None if waited is None else waited.snapshot()))

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
        the latest snapshot it can have (the caller sees the task is not terminal)."""
        for task_id, waiters in self._waiting.items():
            record = lookup(task_id)
            snapshot = None if record is None else record.snapshot()
            for waiter in waiters:
                waiter.set(snapshot)
        self._waiting.clear()
