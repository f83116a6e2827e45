"""``DispatchOrder``: which pending task starts next in a slot pool, as a plain object over
the pending queue and the host's resources (tested directly in
tests/test_dispatch_order.py).

Slot pools (``attempts.slot_pool``): thread and process attempts share ``capacity`` (the
operation pool's threads), coroutine attempts on the event loop have ``async_capacity``
of their own, Ray attempts the Ray back-end's ``max_in_flight``. The pending queue has a
lane per pool (:func:`lane_of`), so a full pool never holds up a task of another.

Resources: a task that asks for some of the host's resources (``resources=``, held on
this host for thread, process and coroutine tasks: :func:`holds_on_host`) needs them as
well as a slot. The ledger and the line of tasks waiting for them are
:class:`~actors._core.resource_slots.ResourceSlots`, whose rule keeps the queue's order
across sizes (see its module). The next task of a pool is, of the ready task at the head
of its lane and the first task of the line that may take its resources now, the one ahead
in the queue's order (priority, then seq); a head that cannot take its resources joins
the line. Resources are taken when the worker is spawned and freed with the slot.

Why a separate object: this merge is the supervisor's busiest rule, and its order is an
invariant worth testing on its own; the supervisor only decides how many to start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors._core.attempts import SLOT_POOL_OF
from actors._core.pending import PendingQueue
from actors._core.resource_slots import HOST_ISOLATIONS, ResourceSlots
from actors._errors import ResourcesUnavailableError
from actors._outcome import Interrupted
from actors._records import TaskSpec

__all__ = ["DispatchOrder", "holds_on_host", "lane_of", "resources_refused"]


def lane_of(spec: TaskSpec) -> str:
    """A ready task's lane in the pending queue: its slot pool."""
    return SLOT_POOL_OF[spec.options.isolation]


def holds_on_host(spec: TaskSpec) -> bool:
    """Whether the task's resources are taken from this host's ledger. The hook for
    another isolation (Ray): its resources are checked and held where it runs, so the
    supervisor only gives it a slot."""
    return spec.options.resources is not None and spec.options.isolation in HOST_ISOLATIONS


def resources_refused(spec: TaskSpec, now: float) -> Interrupted:
    """The end of a task (recovered from a store) that asks for resources this runtime
    can never give: ``Interrupted`` (cause ``resources_unavailable``), never run as if it
    held them."""
    return Interrupted(
        was_running=False,
        attempt=spec.prior_attempts,
        last_seen_at=spec.created_at,
        recovered_at=now,
        cause="resources_unavailable",
    )


class DispatchOrder:
    """The next task to start in a pool, taken out of the queue or the resources line.
    ``on_refused`` is told each task whose request can never be met (it is taken out)."""

    __slots__ = ("_on_refused", "_queue", "_slots")

    def __init__(
        self,
        queue: PendingQueue[Any],
        slots: ResourceSlots[TaskSpec],
        on_refused: Callable[[TaskSpec, ResourcesUnavailableError], None],
    ) -> None:
        self._queue = queue
        self._slots = slots
        self._on_refused = on_refused

    def next_ready(self, pool: str) -> TaskSpec | None:
        """The task to start next in ``pool``, taken out; None when none may start."""
        slots = self._slots
        while True:
            if slots.waiters:  # else (the common case) the lane's head is the answer
                admitted = slots.next_admitted(pool)
                if admitted is not None:
                    head = self._queue.peek_ready(pool)
                    if head is None or admitted[0] < head:
                        waiter = admitted[1]
                        slots.withdraw(waiter.task_id)
                        return waiter
            spec = self._queue.pop_ready(pool)
            if spec is None or spec.options.resources is None or not holds_on_host(spec):
                return spec
            request = spec.options.resources
            assert request is not None
            key = (-spec.options.priority, spec.seq)
            if not slots.satisfiable(request):
                try:
                    slots.check(request)
                except ResourcesUnavailableError as exc:
                    self._on_refused(spec, exc)
            elif slots.may_take(request, key):
                return spec
            else:
                slots.wait(spec.task_id, key, request, pool, spec)
