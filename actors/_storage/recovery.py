"""What a runtime does with the records it finds when it opens a durable store.

Nothing is left reading ``running`` or ``pending`` with nothing behind it:

* terminal records stay as they are;
* a record that reads ``running`` was interrupted by the death of the previous process:
  it goes back to ``pending`` (its ``attempt`` remembers it had started) and follows the
  pending rule;
* a pending record of a plain function fails with :class:`Interrupted` (a new process
  cannot find the function again);
* a pending record of a named operation is queued again, in its original priority and
  order, once its operation is registered (at once if it already is). One whose last
  attempt started and has no outcome runs again only if its operation declared
  ``retry_on_interrupt``; otherwise it fails with :class:`Interrupted`. (A task waiting
  out a retry's backoff has an outcome for every attempt: it is queued again, to start
  at its ``scheduled_for``.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from actors._clock import Clock
from actors._core.table import TaskTable
from actors._enums import TaskStatus
from actors._operations import OperationEntry, OperationRegistry
from actors._outcome import Interrupted
from actors._records import TaskRecord
from actors._storage.store import Store
from actors.logs import library_logger

__all__ = [
    "Recovered",
    "RecoveryPlan",
    "decide",
    "interrupt",
    "open_and_recover",
    "plan_recovery",
    "requeue_running",
    "was_interrupted",
]


_log = library_logger("actors.registry")


@dataclass(slots=True)
class RecoveryPlan:
    changed: list[TaskRecord] = field(default_factory=list)  # to write back at once
    to_queue: list[TaskRecord] = field(default_factory=list)  # seq order
    awaiting: list[TaskRecord] = field(default_factory=list)  # seq order
    counts: Counter[str] = field(default_factory=Counter)


def requeue_running(record: TaskRecord) -> None:
    """A record that read ``running`` when its process died goes back to ``pending``."""
    record.status = TaskStatus.PENDING
    record.started_at = None
    record.progress = 0.0
    record.partial_result = None
    record.partial_json = None
    record.has_partial_result = False


def was_interrupted(record: TaskRecord) -> bool:
    """A pending record whose last attempt has no outcome: it was running when its
    process died (a record waiting to be retried has an outcome for every attempt)."""
    return record.attempt > len(record.attempt_outcomes)


def interrupt(record: TaskRecord, now: float) -> Interrupted:
    """The fact that ends a task its process's death left unfinished."""
    return Interrupted(
        was_running=was_interrupted(record),
        attempt=record.attempt,
        last_seen_at=record.updated_at,
        recovered_at=now,
    )


def decide(record: TaskRecord, entry: OperationEntry | None) -> str:
    """For a pending record at recovery: ``"queue"``, ``"await"`` its operation's
    registration, or ``"interrupt"``."""
    if not record.named:
        return "interrupt"
    if entry is None:
        return "await"
    if was_interrupted(record) and not entry.retry_on_interrupt:
        return "interrupt"
    return "queue"


def plan_recovery(
    records: Iterable[TaskRecord], find: Callable[[str], OperationEntry | None], now: float
) -> RecoveryPlan:
    """Decide, for every record read from the store, what happens to it. Mutates the
    records that change (they are the ones in ``changed``)."""
    plan = RecoveryPlan()
    for record in records:
        if record.status.is_terminal:
            plan.counts["terminal"] += 1
            continue
        changed = record.status is TaskStatus.RUNNING
        if changed:
            plan.counts["were_running"] += 1
            requeue_running(record)  # updated_at stays: the last change before the death
        decision = decide(record, find(record.operation_name))
        if decision == "interrupt":
            plan.counts["interrupted"] += 1
            _end(record, interrupt(record, now), now)
            changed = True
        if changed:
            plan.changed.append(record)
        if decision == "interrupt":
            continue
        if decision == "queue":
            plan.counts["requeued"] += 1
            plan.to_queue.append(record)
        else:
            plan.counts["awaiting_operation"] += 1
            plan.awaiting.append(record)
    return plan


def _end(record: TaskRecord, outcome: Interrupted, now: float) -> None:
    record.status = TaskStatus.FAILED
    record.outcome = outcome
    record.ended_at = now
    record.updated_at = now


@dataclass(frozen=True, slots=True)
class Recovered:
    """What :func:`open_and_recover` found: the next free seq, the pending records to queue
    and those awaiting their operation's registration (each in seq order)."""

    next_seq: int
    to_queue: Sequence[TaskRecord]
    awaiting: Sequence[TaskRecord]


def open_and_recover(
    store: Store, table: TaskTable, operations: OperationRegistry, clock: Clock
) -> Recovered:
    """Open ``store`` and load its records into ``table``, each decided by the rules
    above (the changed ones written back); the store is closed again if that fails."""
    state = store.open()
    try:
        now = clock.time()
        plan = plan_recovery(state.records, operations.get, now)
        table.restore(state.records, state.retired)
        if plan.changed:
            store.write(plan.changed, ())
    except BaseException:
        store.close()
        raise
    if state.records:
        _log.info(
            "registry.recovered",
            location=store.location,
            records=len(state.records),
            terminal=plan.counts["terminal"],
            were_running=plan.counts["were_running"],
            requeued=plan.counts["requeued"],
            interrupted=plan.counts["interrupted"],
            awaiting_operation=plan.counts["awaiting_operation"],
        )
    return Recovered(state.next_seq, plan.to_queue, plan.awaiting)
