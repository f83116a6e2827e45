"""Drain, tested directly: shutdown stops admission, cancels or keeps what it takes out
(a durable store keeps it for the next runtime), and is drained only once no attempt
holds a slot and nothing the drain waits for is pending."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actors import ManualClock
from actors._core.admission import AdmissionGate
from actors._core.attempts import ActiveAttempt, ActiveAttempts
from actors._core.dispatch_order import lane_of
from actors._core.drain import Drain
from actors._core.messages import Finish
from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots
from actors._core.timers import TimerHandle, TimerService
from actors._outcome import Cancelled, StopReason
from actors._records import TaskSpec
from tests.records import make_spec


class Told:
    """The registry's side: the messages told to it, in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def tell(self, message: Any) -> None:
        self.messages.append(message)


@pytest.fixture
def timers() -> Iterator[TimerService]:
    service = TimerService(ManualClock(), name="test-drain")  # never started
    yield service
    service.stop()


def _drain(
    timers: TimerService, *, durable: bool = False, admitted: int = 0
) -> tuple[Drain, PendingQueue[TimerHandle], ActiveAttempts, AdmissionGate, Told]:
    registry = Told()
    admission = AdmissionGate(100)
    for _ in range(admitted):
        assert admission.try_enter()
    queue: PendingQueue[TimerHandle] = PendingQueue(lane_of)
    active = ActiveAttempts()
    slots: ResourceSlots[TaskSpec] = ResourceSlots()
    ref: Any = registry
    drain = Drain(
        registry=ref,
        clock=ManualClock(50.0),
        admission=admission,
        queue=queue,
        slots=slots,
        active=active,
        timers=timers,
        durable=durable,
    )
    return drain, queue, active, admission, registry


SHUTDOWN = Cancelled(StopReason.SHUTDOWN)


def test_before_shutdown_it_admits_and_is_never_drained(timers: TimerService) -> None:
    """Admission is open and check() never sets drained while it is."""
    drain, _, _, _, registry = _drain(timers)
    drain.check()
    assert (drain.admitting, drain.drained.is_set(), registry.messages) == (True, False, [])


def test_cancel_pending_cancels_the_ready_ones_and_gives_back_their_places(
    timers: TimerService,
) -> None:
    """With cancel_pending every ready task ends cancelled (shutdown), in queue order,
    and leaves the admission gate; nothing left: drained at the first check."""
    drain, queue, _, admission, registry = _drain(timers, admitted=2)
    queue.push_ready(make_spec("a", seq=1))
    queue.push_ready(make_spec("b", seq=2))
    drained = drain.begin(cancel_pending=True)
    assert drain.admitting is False
    assert registry.messages == [Finish("a", SHUTDOWN, 50.0), Finish("b", SHUTDOWN, 50.0)]
    assert admission.waiting == 0
    assert not drained.is_set()  # looked at only by check()
    drain.check()
    assert drained.is_set()


@pytest.mark.parametrize(("durable", "finished"), [(False, ["d"]), (True, [])])
def test_a_delayed_task_is_abandoned_cancelled_or_kept_for_a_durable_store(
    timers: TimerService, durable: bool, finished: list[str]
) -> None:
    """A delayed task cannot start now: its timer is cancelled, its place given back;
    cancelled with a memory store, left pending (no Finish) with a durable one."""
    drain, queue, _, admission, registry = _drain(timers, durable=durable, admitted=1)
    target: Any = None
    handle = timers.schedule_after(60.0, target, "due")
    queue.delay(make_spec("d"), handle)
    drain.begin(cancel_pending=False)
    assert [m.task_id for m in registry.messages] == finished
    assert (admission.waiting, "d" in queue, timers.statistics().cancelled_total) == (0, False, 1)


def test_without_cancel_pending_the_drain_waits_for_ready_tasks_and_attempts(
    timers: TimerService,
) -> None:
    """A ready task still runs: not drained until it has left the queue and its
    attempt has ended."""
    drain, queue, active, _, registry = _drain(timers, admitted=1)
    queue.push_ready(make_spec("r"))
    drain.begin(cancel_pending=False)
    drain.check()
    assert (registry.messages, drain.drained.is_set()) == ([], False)
    spec = queue.pop_ready(lane_of(make_spec("r")))
    assert spec is not None
    worker: Any = None
    active.add(ActiveAttempt(spec, worker, worker, None))
    drain.check()
    assert not drain.drained.is_set()
    active.end("r")
    drain.check()
    assert drain.drained.is_set()
