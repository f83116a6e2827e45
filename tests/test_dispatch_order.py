"""DispatchOrder, tested directly: the next task of a slot pool is taken in the queue's
order (priority, then seq) within its lane, and the host's resources line keeps that
order across sizes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors import Isolation, TaskOptions
from actors._core.attempts import ASYNC_SLOTS, RAY_SLOTS, WORKER_SLOTS
from actors._core.dispatch_order import DispatchOrder, holds_on_host, lane_of, resources_refused
from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots
from actors._enums import TaskPriority
from actors._errors import ResourcesUnavailableError
from actors._outcome import Interrupted
from actors._records import TaskSpec
from tests.records import make_spec


def _spec(
    task_id: str, seq: int, *, isolation: Isolation = Isolation.THREAD, **options: Any
) -> TaskSpec:
    return make_spec(task_id, seq=seq, options=TaskOptions(isolation=isolation, **options))


def _order(
    capacity: dict[str, float] | None = None,
) -> tuple[DispatchOrder, PendingQueue[Any], ResourceSlots[TaskSpec], list[str]]:
    queue: PendingQueue[Any] = PendingQueue(lane_of)
    slots: ResourceSlots[TaskSpec] = ResourceSlots(capacity)
    refused: list[str] = []

    def on_refused(spec: TaskSpec, error: ResourcesUnavailableError) -> None:
        refused.append(spec.task_id)

    return DispatchOrder(queue, slots, on_refused), queue, slots, refused


def test_each_isolation_has_its_lane_and_only_host_isolations_hold_resources() -> None:
    """Threads and processes share a lane, coroutines and Ray have their own; a Ray
    task's resources are not this host's."""
    assert {i: lane_of(_spec("t", 0, isolation=i)) for i in Isolation} == {
        Isolation.THREAD: WORKER_SLOTS,
        Isolation.PROCESS: WORKER_SLOTS,
        Isolation.ASYNC: ASYNC_SLOTS,
        Isolation.RAY: RAY_SLOTS,
    }
    assert holds_on_host(_spec("t", 0, resources={"gpu": 1}))
    assert not holds_on_host(_spec("t", 0))
    assert not holds_on_host(_spec("r", 0, isolation=Isolation.RAY, resources={"gpu": 1}))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(TaskPriority)),
            st.sampled_from([Isolation.THREAD, Isolation.PROCESS, Isolation.ASYNC]),
        ),
        max_size=30,
    )
)
def test_a_lane_gives_its_tasks_by_priority_then_seq(
    tasks: list[tuple[TaskPriority, Isolation]],
) -> None:
    """Invariant: without resources, each lane yields its tasks highest priority first,
    FIFO within one, and nothing of another lane."""
    order, queue, _, _ = _order()
    specs = [_spec(f"t{i}", i, isolation=iso, priority=p) for i, (p, iso) in enumerate(tasks)]
    for spec in specs:
        queue.push_ready(spec)
    for pool in (WORKER_SLOTS, ASYNC_SLOTS):
        taken = []
        while (spec := order.next_ready(pool)) is not None:
            taken.append(spec.task_id)
        expected = sorted(
            (s for s in specs if lane_of(s) == pool), key=lambda s: (-s.options.priority, s.seq)
        )
        assert taken == [s.task_id for s in expected]


def test_a_task_that_cannot_take_its_resources_waits_in_the_line_in_order() -> None:
    """A head whose GPU is held joins the line; a smaller task behind it that fits
    starts; once the GPU is back, the waiting task comes before a later ready one."""
    order, queue, slots, _ = _order({"gpu": 1, "license": 1})
    slots.take("running", {"gpu": 1})
    queue.push_ready(_spec("big", 1, resources={"gpu": 1}))
    queue.push_ready(_spec("small", 2, resources={"license": 1}))
    queue.push_ready(_spec("later", 3, resources={"gpu": 1}))
    first = order.next_ready(WORKER_SLOTS)
    assert first is not None
    assert first.task_id == "small"
    assert order.next_ready(WORKER_SLOTS) is None
    assert sorted(slots.waiting_ids()) == ["big", "later"]
    slots.release("running")
    taken = order.next_ready(WORKER_SLOTS)
    assert taken is not None
    assert taken.task_id == "big"
    assert slots.waiting == 1  # "later" still waits: "big" has not taken its GPU yet here


def test_a_request_no_capacity_can_meet_is_refused_not_run() -> None:
    """A recovered task asking for more than the host has is taken out and told to
    on_refused; the task behind it starts."""
    order, queue, _, refused = _order({"gpu": 1})
    queue.push_ready(_spec("huge", 1, resources={"gpu": 2}))
    queue.push_ready(_spec("plain", 2))
    taken = order.next_ready(WORKER_SLOTS)
    assert (refused, taken.task_id if taken else None) == (["huge"], "plain")


def test_a_refused_task_ends_interrupted_with_its_cause() -> None:
    """resources_refused: Interrupted, not running, cause resources_unavailable."""
    spec = _spec("huge", 1, resources={"gpu": 2})
    assert resources_refused(spec, 50.0) == Interrupted(
        was_running=False,
        attempt=spec.prior_attempts,
        last_seen_at=spec.created_at,
        recovered_at=50.0,
        cause="resources_unavailable",
    )


def test_a_waiter_whose_resources_are_free_and_the_ready_head_go_in_queue_order() -> None:
    """Of the lane's head and the first waiter that may take its resources, the one
    ahead in the queue's order (priority, then seq) starts first."""
    order, queue, slots, _ = _order({"gpu": 1})
    slots.take("running", {"gpu": 1})
    queue.push_ready(_spec("gpu-task", 1, resources={"gpu": 1}))
    assert order.next_ready(WORKER_SLOTS) is None  # it joins the line
    slots.release("running")
    queue.push_ready(_spec("urgent", 2, priority=TaskPriority.HIGH))
    queue.push_ready(_spec("plain", 3))
    taken = [order.next_ready(WORKER_SLOTS) for _ in range(3)]
    assert [t.task_id if t else None for t in taken] == ["urgent", "gpu-task", "plain"]
