"""Taking pending tasks out of every place they wait, for a cancel or for shutdown, as
plain functions over the pending queue and the resources line (tested directly in
tests/test_shutdown_drain.py).

A pending task waits in one place of the :class:`~actors._core.pending.PendingQueue` or
in the line for its resources (:class:`~actors._core.resource_slots.ResourceSlots`).
These functions find it wherever it is, cancel the timer a delayed one had armed, and
say what the supervisor must record; they never tell anything. Every task they return
except one awaiting its operation was admitted (counted by the admission gate), so the
supervisor lets it leave.

Why a separate module: "a task cancelled while pending never starts, wherever it
waits" and "the drain waits for what can still run" are invariants of the places, not
of the messages; they are checked here on plain state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots
from actors._core.timers import TimerHandle, TimerService
from actors._records import TaskRecord, TaskSpec

__all__ = ["ShutdownDrain", "drain_for_shutdown", "nothing_left_to_run", "withdraw_pending"]


def withdraw_pending(
    queue: PendingQueue[TimerHandle],
    slots: ResourceSlots[TaskSpec],
    timers: TimerService,
    task_id: str,
) -> Literal["admitted", "awaiting"] | None:
    """Take a pending ``task_id`` out of wherever it waits (its delayed timer cancelled):
    ``"awaiting"`` for a recovered task whose operation is not registered yet (never
    admitted), ``"admitted"`` for any other, None when it is not pending here."""
    removed = queue.remove(task_id)
    if removed is not None:
        if removed.handle is not None:
            timers.cancel(removed.handle)
        return "awaiting" if removed.place == "awaiting" else "admitted"
    if slots.withdraw(task_id) is not None:  # in the line for its resources
        return "admitted"
    return None


@dataclass(frozen=True, slots=True)
class ShutdownDrain:
    """What shutdown took out of the pending places, in the order to record it."""

    cancelled: list[TaskSpec]  # admitted: cancelled (shutdown)
    cancelled_awaiting: list[TaskRecord]  # never admitted: cancelled (shutdown)
    abandoned: list[TaskSpec]  # admitted: cancelled, or with a durable store left pending


def drain_for_shutdown(
    queue: PendingQueue[TimerHandle],
    slots: ResourceSlots[TaskSpec],
    timers: TimerService,
    *,
    cancel_pending: bool,
    durable: bool,
) -> ShutdownDrain:
    """Take out what shutdown does not wait for. With ``cancel_pending``: every ready
    task, every one in the line for its resources, every held and awaiting one. Always:
    the tasks that cannot start now (delayed or backing off, held by a breaker), which
    are abandoned (their timers cancelled). Tasks blocked by dependencies are abandoned
    with ``cancel_pending`` or a durable store; otherwise (memory store) they run as
    their dependencies finish, and the drain waits for them. Tasks awaiting their
    operation stay, without ``cancel_pending``: only a durable store has them, for the
    next runtime that opens it."""
    cancelled: list[TaskSpec] = []
    cancelled_awaiting: list[TaskRecord] = []
    if cancel_pending:
        waiting = slots.take_all_waiting()
        cancelled = queue.take_all_ready() + waiting + queue.take_all_held()
        cancelled_awaiting = queue.take_all_awaiting()
    abandoned: list[TaskSpec] = []
    for spec, timer in queue.take_all_delayed():
        timers.cancel(timer)
        abandoned.append(spec)
    abandoned += queue.take_all_held()
    if cancel_pending or durable:
        abandoned += queue.take_all_blocked()
    return ShutdownDrain(cancelled, cancelled_awaiting, abandoned)


def nothing_left_to_run(queue: PendingQueue[TimerHandle], slots: ResourceSlots[TaskSpec]) -> bool:
    """After shutdown: no pending task that the drain waits for (ready, held, blocked,
    or in the line for its resources; delayed ones and those awaiting an operation are
    not waited for)."""
    waiting = queue.statistics()
    return not (waiting.ready or waiting.held or waiting.blocked or slots.waiting)
