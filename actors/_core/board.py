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
* **A pending task is read from the registry**, as before: a read then queues behind
  every message sent before it, so it is never behind what its caller caused. A task
  created just now is found; and an operation that has visibly started (its side
  effect seen by the caller) reads ``running``, because its start was told to the
  registry before the operation was called. Pending is also the state nobody needs to
  poll fast; running and ended tasks, which clients do poll, need no message.
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

from actors._core.table import TaskTable
from actors._enums import TaskStatus
from actors._records import TaskRecord, TaskSnapshot

__all__ = ["ASK_REGISTRY", "Held", "TaskBoard"]


class Held(Enum):
    """What :meth:`TaskBoard.read` answers when only the registry can (it commits
    first, or says why it cannot)."""

    ASK_REGISTRY = "ask the registry"


ASK_REGISTRY: Final = Held.ASK_REGISTRY


class TaskBoard:
    """Status reads over the registry's ``table`` (see the module docstring)."""

    __slots__ = ("_detours", "_detours_lock", "_held", "_table")

    def __init__(self, table: TaskTable) -> None:
        self._table = table
        self._held: set[str] = set()
        # Reasons every read asks the registry: a rebuild under way, each status-query
        # fault a test armed (``fail_registry(on="status")``) and not sprung yet.
        self._detours = 0
        self._detours_lock = threading.Lock()

    # -- any thread ------------------------------------------------------------------

    def read(self, task_id: str) -> TaskSnapshot | Held | None:
        """The task's latest published snapshot if it is running or has ended;
        :data:`ASK_REGISTRY` when only the registry can answer: the task is pending (or
        may be: an id the table does not have yet may be on its way), or its latest
        change awaits a commit."""
        if self._detours or task_id in self._held:
            return ASK_REGISTRY
        record = self._table.get(task_id)
        if record is None:
            return ASK_REGISTRY  # unknown, or registered by a message still queued
        state = record.published
        if state is None or state[0] is TaskStatus.PENDING:
            return ASK_REGISTRY  # never published (not committed yet), or pending
        return TaskSnapshot.from_state(record, state)

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
