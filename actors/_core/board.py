"""``TaskBoard``: the registry's published view of each task, read without a message.

The registry stays the single writer of every record. What a status read needs, it
publishes here per task, the way an Erlang process owns an ETS table that others read
concurrently: :meth:`read` runs in the caller's thread, sends no message and never waits
for the registry's thread, so a status poll costs a dictionary lookup and a snapshot
even while every worker runs Python and the registry waits for the interpreter lock.

What is published is the record's changing fields as one immutable tuple (its
:data:`TaskState`) beside the task's fields that never change: a tuple costs the
registry's hot path a fraction of a :class:`TaskSnapshot`, and the reader, who wants
the snapshot, builds it in its own thread.

What a read may see, and why it is true:

* **Memory store**: the registry publishes a task's snapshot in the handler that changed
  it, before anything about the change leaves the actor (an answer, a waiter's wake-up,
  an event). A new task is published by its submitter, before ``submit`` returns and
  before the registry hears of it, so a read right after ``create_task`` sees it.
* **Durable store**: a change is *held* (readers are sent to the registry, which commits
  before it answers, as before) until the commit that covers it; the commit publishes the
  record's state and lifts the hold. So nothing is read that is not committed, and a
  record the store refused, or whose commit failed, stays held: the registry's answer
  says why.

Each state is immutable and replaced whole, so a reader sees a task before a change or
after it, never half of one. The dictionary and the set are touched by single
operations, which the interpreter makes atomic; the registry's thread is the only one
that changes an existing entry (a submitter only adds a task no one else knows yet).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from enum import Enum
from typing import Final

from actors._records import TaskRecord, TaskSnapshot, TaskSpec, TaskState

__all__ = ["ASK_REGISTRY", "Held", "TaskBoard"]


class Held(Enum):
    """What :meth:`TaskBoard.read` answers for a task whose latest change is held: only
    the registry can answer (it commits first, or says why it cannot)."""

    ASK_REGISTRY = "ask the registry"


ASK_REGISTRY: Final = Held.ASK_REGISTRY


class TaskBoard:
    """The latest readable snapshot of each retained task (see the module docstring)."""

    __slots__ = ("_held", "_snapshots", "_traps", "_traps_lock")

    def __init__(self) -> None:
        # task id -> (its unchanging fields, its latest state)
        self._snapshots: dict[str, tuple[TaskSpec | TaskRecord, TaskState]] = {}
        self._held: set[str] = set()
        # Status-query faults a test armed in the registry (``fail_registry(on=
        # "status")``): while any is armed, every read asks the registry, so the fault
        # meets the read it was armed for.
        self._traps = 0
        self._traps_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._snapshots)

    # -- any thread ------------------------------------------------------------------

    def read(self, task_id: str) -> TaskSnapshot | Held | None:
        """The task's latest published snapshot; None if no task has this id (or it was
        removed); :data:`ASK_REGISTRY` while its latest change awaits a commit."""
        if task_id in self._held or self._traps:
            return ASK_REGISTRY
        found = self._snapshots.get(task_id)
        return None if found is None else TaskSnapshot.from_state(*found)

    def status_trap_armed(self) -> None:
        """A test armed a status-query fault: reads ask the registry until it springs."""
        with self._traps_lock:
            self._traps += 1

    def status_trap_sprung(self) -> None:
        with self._traps_lock:
            self._traps = max(0, self._traps - 1)

    # -- the submitter, for a task nobody else knows yet (memory store) ----------------

    def add(self, spec: TaskSpec) -> None:
        self._snapshots[spec.task_id] = (spec, spec.pending_state())

    # -- the registry's thread ---------------------------------------------------------

    def publish(self, record: TaskRecord) -> None:
        """``record`` changed (and, with a durable store, was committed): show it."""
        self._snapshots[record.task_id] = (record, record.state())
        if self._held:
            self._held.discard(record.task_id)

    def hold(self, task_id: str) -> None:
        """``task_id`` changed and the change is not committed: reads go to the registry
        until :meth:`publish` shows the committed state."""
        self._held.add(task_id)

    def remove(self, task_ids: Iterable[str]) -> None:
        """Retention removed these tasks (or a registry restart lost them)."""
        for task_id in task_ids:
            self._snapshots.pop(task_id, None)
            self._held.discard(task_id)

    def reset(self, records: Iterable[TaskRecord], held: Iterable[str] = ()) -> None:
        """Show exactly ``records`` (the registry's table after a restart or a reload),
        each as it is now, but the ``held`` ones: with a durable store, those whose
        latest state is not committed (or was refused by the store)."""
        self._held.clear()
        self._held.update(held)  # first: no reader may see an uncommitted state
        fresh = {record.task_id: (record, record.state()) for record in records}
        for task_id in [t for t in self._snapshots if t not in fresh]:
            self._snapshots.pop(task_id, None)
        self._snapshots.update(fresh)
