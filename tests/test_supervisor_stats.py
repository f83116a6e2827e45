"""supervisor_stats, tested directly: the snapshot's counts read off the supervisor's
state objects (pending in every place, running and stopping per slot pool)."""

from __future__ import annotations

from typing import Any

from actors import StopReason, TaskOptions
from actors._core.attempts import (
    ASYNC_SLOTS,
    RAY_SLOTS,
    WORKER_SLOTS,
    ActiveAttempt,
    ActiveAttempts,
)
from actors._core.dispatch_order import lane_of
from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots
from actors._core.supervisor_stats import SupervisorStats, supervisor_stats
from actors._enums import Isolation
from actors._records import TaskSpec
from tests.records import make_record, make_spec


def _active(task_id: str, isolation: Isolation) -> ActiveAttempt:
    worker: Any = None
    backend: Any = None
    spec = make_spec(task_id, options=TaskOptions(isolation=isolation))
    return ActiveAttempt(spec, worker, backend, None)


def test_the_snapshot_counts_every_place_and_every_pool() -> None:
    """pending = ready + delayed + held + blocked + the resources line (awaiting apart);
    running and stopping per pool."""
    queue: PendingQueue[Any] = PendingQueue(lane_of)
    queue.push_ready(make_spec("r1", seq=1))
    queue.push_ready(make_spec("r2", seq=2))
    queue.delay(make_spec("d", seq=3), object())
    queue.hold(make_spec("h", seq=4))
    queue.block(make_spec("b", seq=5))
    queue.await_operation(make_record("w", seq=6))
    slots: ResourceSlots[TaskSpec] = ResourceSlots({"gpu": 1})
    slots.wait("line", (-2, 7), {"gpu": 1}, WORKER_SLOTS, make_spec("line", seq=7))
    active = ActiveAttempts()
    for task_id, isolation in [
        ("t1", Isolation.THREAD),
        ("t2", Isolation.PROCESS),
        ("a1", Isolation.ASYNC),
        ("a2", Isolation.ASYNC),
        ("y1", Isolation.RAY),
    ]:
        active.add(_active(task_id, isolation))
    for task_id in ("t2", "a2", "y1"):
        attempt = active.get(task_id)
        assert attempt is not None
        active.stop(attempt, StopReason.TIMEOUT)
    stats = supervisor_stats(
        capacities={WORKER_SLOTS: 4, ASYNC_SLOTS: 8, RAY_SLOTS: 2},
        queue=queue,
        active=active,
        slots=slots,
        schedules={"s": {"runs": 1}},
        admitting=False,
    )
    assert stats == SupervisorStats(
        capacity=4,
        pending=6,
        running=2,
        stopping=3,
        admitting=False,
        scheduled=1,
        held=1,
        awaiting=1,
        schedules={"s": {"runs": 1}},
        async_capacity=8,
        async_running=1,
        async_stopping=1,
        resources=slots.statistics(),
        ray_capacity=2,
        ray_running=0,
        ray_stopping=1,
    )


def test_no_declared_resources_report_none() -> None:
    """A runtime without resources: resources is None, not an empty ledger."""
    stats = supervisor_stats(
        capacities={WORKER_SLOTS: 1, ASYNC_SLOTS: 0, RAY_SLOTS: 0},
        queue=PendingQueue(lane_of),
        active=ActiveAttempts(),
        slots=ResourceSlots(),
        schedules={},
        admitting=True,
    )
    assert (stats.resources, stats.pending, stats.running, stats.admitting) == (None, 0, 0, True)
