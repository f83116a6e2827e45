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
  A new task is put on the board by its submitter (:meth:`add`), before ``submit``
  returns and before the registry hears of it, so a read right after ``create_task``
  sees it; the registry takes it off (:meth:`registered`) once its record is published.
* **Durable store**: a change is *held* (readers are sent to the registry, which commits
  before it answers, as before) until the commit that covers it publishes the record and
  lifts the hold. So nothing is read that is not committed, and a record the store
  refused, or whose commit failed, stays held: the registry's answer says why.
* While the registry rebuilds its table (a restart) or a test armed a status-query fault,
  every read asks the registry.

A state is immutable and replaced whole, so a reader sees a task before a change or after
it, never half of one. Each step of a read is a single operation on a dict, a set or an
attribute, which the interpreter makes atomic, and the steps are ordered against the
registry's (a new task: the submitter's entry is dropped only after the record is
published) so that no interleaving reads an existing task as unknown.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from enum import Enum
from typing import Final

from actors._core.table import TaskTable
from actors._records import TaskRecord, TaskSnapshot, TaskSpec

__all__ = ["ASK_REGISTRY", "Held", "TaskBoard"]


class Held(Enum):
    """What :meth:`TaskBoard.read` answers when only the registry can (it commits
    first, or says why it cannot)."""

    ASK_REGISTRY = "ask the registry"


ASK_REGISTRY: Final = Held.ASK_REGISTRY


class TaskBoard:
    """Status reads over the registry's ``table`` (see the module docstring)."""

    __slots__ = ("_detours", "_detours_lock", "_held", "_new", "_table")

    def __init__(self, table: TaskTable) -> None:
        self._table = table
        self._new: dict[str, TaskSpec] = {}  # submitted, not registered yet (memory store)
        self._held: set[str] = set()
        # Reasons every read asks the registry: a rebuild under way, each status-query
        # fault a test armed (``fail_registry(on="status")``) and not sprung yet.
        self._detours = 0
        self._detours_lock = threading.Lock()

    # -- any thread ------------------------------------------------------------------

    def read(self, task_id: str) -> TaskSnapshot | Held | None:
        """The task's latest published snapshot; None if no task has this id (or it was
        removed); :data:`ASK_REGISTRY` while only the registry can answer."""
        if self._detours or task_id in self._held:
            return ASK_REGISTRY
        spec = self._new.get(task_id)  # first: it is dropped only once the record shows
        if spec is not None:
            return TaskSnapshot.from_state(spec, spec.pending_state())
        record = self._table.get(task_id)
        if record is None:
            return None
        state = record.published
        if state is None:  # registered, never published: its commit is not done
            return ASK_REGISTRY
        return TaskSnapshot.from_state(record, state)

    def detour(self) -> None:
        """Until the matching :meth:`end_detour`, every read asks the registry."""
        with self._detours_lock:
            self._detours += 1

    def end_detour(self) -> None:
        with self._detours_lock:
            self._detours = max(0, self._detours - 1)

    # -- the submitter, for a task nobody else knows yet (memory store) ----------------

    def add(self, spec: TaskSpec) -> None:
        self._new[spec.task_id] = spec

    # -- the registry's thread ---------------------------------------------------------

    def registered(self, task_id: str) -> None:
        """The task's record is in the table and published: its submitter's entry goes."""
        if self._new:
            self._new.pop(task_id, None)

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
