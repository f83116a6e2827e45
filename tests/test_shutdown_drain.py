"""shutdown_drain, tested directly: a pending task is found and taken out wherever it
waits (its delayed timer cancelled), and shutdown takes out what it does not wait for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actors import ManualClock, TaskOptions
from actors._core.dispatch_order import lane_of
from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots
from actors._core.shutdown_drain import drain_for_shutdown, nothing_left_to_run, withdraw_pending
from actors._core.timers import TimerHandle, TimerService
from actors._enums import Isolation
from actors._records import TaskSpec
from tests.records import make_record, make_spec

PLACES = ("ready", "delayed", "held", "blocked", "awaiting", "line")


@pytest.fixture
def timers() -> Iterator[TimerService]:
    service = TimerService(ManualClock(), name="test-shutdown-drain")
    yield service
    service.stop()


def _state(
    timers: TimerService,
) -> tuple[PendingQueue[TimerHandle], ResourceSlots[TaskSpec], TimerHandle]:
    """One task in each place a pending task can wait."""
    queue: PendingQueue[TimerHandle] = PendingQueue(lane_of)
    slots: ResourceSlots[TaskSpec] = ResourceSlots({"gpu": 1})
    target: Any = None  # never fires: the clock is not advanced
    handle = timers.schedule_after(60.0, target, "due")
    queue.push_ready(make_spec("ready", seq=1))
    queue.delay(make_spec("delayed", seq=2), handle)
    queue.hold(make_spec("held", seq=3))
    queue.block(make_spec("blocked", seq=4))
    queue.await_operation(make_record("awaiting", seq=5))
    line = make_spec(
        "line", seq=6, options=TaskOptions(isolation=Isolation.THREAD, resources={"gpu": 1})
    )
    slots.wait("line", (-2, 6), {"gpu": 1}, "workers", line)
    return queue, slots, handle


@pytest.mark.parametrize("place", PLACES)
def test_a_pending_task_is_withdrawn_from_wherever_it_waits(
    timers: TimerService, place: str
) -> None:
    """One cancel for every place; only a task awaiting its operation was never admitted;
    a delayed task's timer is cancelled; the others stay."""
    queue, slots, handle = _state(timers)
    expected = "awaiting" if place == "awaiting" else "admitted"
    assert withdraw_pending(queue, slots, timers, place) == expected
    assert withdraw_pending(queue, slots, timers, place) is None  # gone
    assert handle.armed is (place != "delayed")
    left = {p for p in PLACES if p in queue or p in set(slots.waiting_ids())}
    assert left == set(PLACES) - {place}


@pytest.mark.parametrize("cancel_pending", [True, False])
@pytest.mark.parametrize("durable", [True, False])
def test_shutdown_takes_out_what_it_does_not_wait_for(
    timers: TimerService, cancel_pending: bool, durable: bool
) -> None:
    """Delayed and held: always abandoned; ready, line and awaiting: cancelled only with
    cancel_pending; blocked: abandoned with cancel_pending or a durable store."""
    queue, slots, handle = _state(timers)
    drain = drain_for_shutdown(queue, slots, timers, cancel_pending=cancel_pending, durable=durable)
    cancelled = [s.task_id for s in drain.cancelled]
    awaiting = [r.task_id for r in drain.cancelled_awaiting]
    abandoned = [s.task_id for s in drain.abandoned]
    if cancel_pending:
        assert (cancelled, awaiting) == (["ready", "line", "held"], ["awaiting"])
        assert abandoned == ["delayed", "blocked"]
    else:
        assert (cancelled, awaiting) == ([], [])
        assert abandoned == ["delayed", "held"] + (["blocked"] if durable else [])
    assert handle.armed is False
    # Memory store without cancel_pending: the ready, line and blocked tasks still run.
    assert nothing_left_to_run(queue, slots) is cancel_pending
