"""``SupervisorStats``: the supervisor's frozen snapshot, and the one function that reads
it off the state objects the supervisor owns (tested directly in
tests/test_supervisor_stats.py).

Why a separate module: the snapshot's arithmetic (what counts as pending, running per
slot pool) is a contract the tests and ``get_stats`` rely on; it reads plain state and
needs no actor to be checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors._core.attempts import ASYNC_SLOTS, RAY_SLOTS, WORKER_SLOTS, ActiveAttempts
from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots, ResourceStats
from actors._records import TaskSpec

__all__ = ["SupervisorStats", "supervisor_stats"]


@dataclass(frozen=True, slots=True)
class SupervisorStats:
    """The supervisor's view. ``running`` and ``stopping`` count every attempt holding a
    slot; in each slot pool they never exceed its capacity: ``running + stopping -
    async_running - async_stopping - ray_running - ray_stopping <= capacity`` (threads
    and processes), ``async_running + async_stopping <= async_capacity`` (coroutines)
    and ``ray_running + ray_stopping <= ray_capacity`` (Ray attempts, those waiting in
    Ray's queue for resources included)."""

    capacity: int
    pending: int  # every task waiting: ready, delayed (or backing off), held by a breaker
    running: int
    stopping: int
    admitting: bool
    scheduled: int = 0  # of pending: delayed, or waiting out a retry's backoff
    held: int = 0  # of pending: held back by their operation's open circuit breaker
    # Not in pending: recovered tasks of an operation not registered yet.
    awaiting: int = 0
    # Recurring schedules by id: interval, runs, skipped, last_task_id, next_run_in.
    schedules: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    async_capacity: int = 0  # the event loop's slots (coroutine operations)
    async_running: int = 0  # of running: coroutine attempts
    async_stopping: int = 0  # of stopping: coroutine attempts
    # The host's resources: capacity, in use, holders, waiting (of pending: those in
    # the line for their resources); None when the runtime declares none.
    resources: ResourceStats | None = None
    ray_capacity: int = 0  # the Ray back-end's max_in_flight (0: no Ray back-end)
    ray_running: int = 0  # of running: Ray attempts (submitted, perhaps not started)
    ray_stopping: int = 0  # of stopping: Ray attempts


def supervisor_stats(
    *,
    capacities: Mapping[str, int],
    queue: PendingQueue[Any],
    active: ActiveAttempts,
    slots: ResourceSlots[TaskSpec],
    schedules: Mapping[str, Mapping[str, object]],
    admitting: bool,
) -> SupervisorStats:
    """The snapshot of this state (``capacities`` by slot pool, ``schedules`` their
    statistics by id). The tasks in the line for their resources are pending too."""
    waiting = queue.statistics()
    return SupervisorStats(
        capacity=capacities[WORKER_SLOTS],
        pending=waiting.ready + waiting.delayed + waiting.held + waiting.blocked + slots.waiting,
        running=active.running,
        stopping=active.stopping,
        admitting=admitting,
        scheduled=waiting.delayed,
        held=waiting.held,
        awaiting=waiting.awaiting,
        schedules=schedules,
        async_capacity=capacities[ASYNC_SLOTS],
        async_running=active.held(ASYNC_SLOTS) - active.stopping_in(ASYNC_SLOTS),
        async_stopping=active.stopping_in(ASYNC_SLOTS),
        resources=slots.statistics() if slots.capacity else None,
        ray_capacity=capacities[RAY_SLOTS],
        ray_running=active.held(RAY_SLOTS) - active.stopping_in(RAY_SLOTS),
        ray_stopping=active.stopping_in(RAY_SLOTS),
    )
