"""``TaskBoard``: what status reads see of each task, read without a message.

The registry stays the single writer of every record. What a status read needs, it
publishes on the record itself, the way an Erlang process owns an ETS table that others
read concurrently: the record's changing fields as one immutable tuple (its
:data:`TaskState`, in ``TaskRecord.published``) beside its fields that never change.
:meth:`TaskBoard.read` runs in the caller's thread, sends no message and never waits for
the registry's thread: a dictionary lookup in the registry's table, an attribute read,
and the snapshot built from them. A tuple costs the registry's hot path a fraction of a
:class:`TaskSnapshot`, and the reader, who wants the snapshot, builds it.

What a read may see, and why it is true:

* **Memory store**: the registry publishes a change in the handler that made it, before
  anything about the change leaves the actor (an answer, a waiter's wake-up, an event).
* **Never behind the mailbox.** The registry's mailbox counts the messages put in it
  and those handled (:class:`~actors._core.restarts.CountingInbox`). A read that finds
  messages sent before it still unhandled asks the registry instead, and so queues
  behind them, as every read did before the board: it is never behind what anyone
  caused before it began. A task created just now is found (its ``Register`` was
  sent); an operation seen to have started reads ``running`` (its start was told to the
  registry before the operation was called); a retry the supervisor has decided reads
  ``pending``. A registry with nothing queued, the usual state of one whose workers
  are busy, answers every read from the board.
* **Durable store**: a change is *held* (readers are sent to the registry, which commits
  before it answers, as before) until the commit that covers it publishes the record and
  lifts the hold. So nothing is read that is not committed, and a record the store
  refused, or whose commit failed, stays held: the registry's answer says why.
* While the registry rebuilds its table (a restart) or a test armed a status-query fault,
  every read asks the registry.

A state is immutable and replaced whole, so a reader sees a task before a change or after
it, never half of one. Each step of a read is a single operation on a dict, a set or an
attribute, which the interpreter makes atomic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from enum import Enum
from typing import Final

from actors._core.restarts import CountingInbox
from actors._core.table import TaskTable
from actors._records import TaskRecord, TaskSnapshot

__all__ = ["ASK_REGISTRY", "Held", "TaskBoard"]


class Held(Enum):
    """What :meth:`TaskBoard.read` answers when only the registry can (it commits
    first, or says why it cannot)."""

    ASK_REGISTRY = "ask the registry"


ASK_REGISTRY: Final = Held.ASK_REGISTRY


class TaskBoard:
    """Status reads over the registry's ``table`` (see the module docstring)."""

    __slots__ = ("_detours", "_detours_lock", "_held", "_inbox", "_table")

    def __init__(self, table: TaskTable) -> None:
        self._table = table
        self._inbox: CountingInbox | None = None  # the registry's (see follow)
        self._held: set[str] = set()
        # Reasons every read asks the registry: a rebuild under way, each status-query
        # fault a test armed (``fail_registry(on="status")``) and not sprung yet.
        self._detours = 0
        self._detours_lock = threading.Lock()

    # -- any thread ------------------------------------------------------------------

    def read(self, task_id: str) -> TaskSnapshot | Held | None:
        """The task's latest published snapshot; None if no task has this id (or it was
        removed); :data:`ASK_REGISTRY` when only the registry can answer: messages sent
        to it before this read are still queued, or the task's latest change awaits a
        commit, or a detour is on."""
        inbox = self._inbox
        sent = 0 if inbox is None else inbox.sent  # first: what this read must not miss
        if self._detours or task_id in self._held:
            return ASK_REGISTRY
        if inbox is not None and inbox.handled < sent:
            return ASK_REGISTRY  # behind its mailbox: queue behind what is in it
        record = self._table.get(task_id)
        if record is None:
            return None
        state = record.published
        if state is None:  # registered, never published: its commit is not done
            return ASK_REGISTRY
        return TaskSnapshot.from_state(record, state)

    def ended(self, task_id: str) -> TaskSnapshot | None:
        """The task's published end, if it has ended (and, durable, it is committed),
        whatever is queued for the registry: an end is final, so nothing sent before
        this read can change it (a late result kept with it aside). Else None."""
        if self._detours or task_id in self._held:
            return None
        record = self._table.get(task_id)
        state = None if record is None else record.published
        if state is None or not state[0].is_terminal:
            return None
        assert record is not None
        return TaskSnapshot.from_state(record, state)

    def follow(self, inbox: CountingInbox) -> None:
        """Answer only when the registry has handled what was put in ``inbox`` (its
        mailbox) before the read."""
        self._inbox = inbox

    def detour(self) -> None:
        """Until the matching :meth:`end_detour`, every read asks the registry."""
        with self._detours_lock:
            self._detours += 1

    def end_detour(self) -> None:
        with self._detours_lock:
            self._detours = max(0, self._detours - 1)

    # -- the registry's thread ---------------------------------------------------------

    def publish(self, record: TaskRecord) -> None:
        """``record`` changed (and, with a durable store, was committed): show it."""
        record.published = record.state()
        if self._held:
            self._held.discard(record.task_id)

    def is_held(self, task_id: str) -> bool:
        """Whether ``task_id``'s latest change awaits its commit (reads go to the
        registry): a change that is not durable is then published with that commit."""
        return task_id in self._held

    def hold(self, task_id: str) -> None:
        """``task_id`` changed and the change is not committed: reads go to the registry
        until :meth:`publish` shows the committed state."""
        self._held.add(task_id)

    def reset(self, records: Iterable[TaskRecord], held: Iterable[str] = ()) -> None:
        """Show ``records`` (the registry's table after a rebuild) as they are now, but
        the ``held`` ones: with a durable store, those whose latest state is not
        committed (or was refused by the store). Called inside a :meth:`detour`."""
        self._held.clear()
        self._held.update(held)
        for record in records:
            record.published = record.state()
