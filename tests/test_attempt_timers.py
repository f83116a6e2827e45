"""AttemptTimers, tested directly on a manual clock: the deadline and heartbeat of a
running attempt, and the stop ladder's rungs at exact virtual times."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import ManualClock, StopReason, TaskOptions
from actors._core.attempt_timers import AttemptTimers
from actors._core.attempts import INTERRUPT_REPEAT_SECONDS, ActiveAttempt, ActiveAttempts
from actors._core.messages import DeadlinePassed, EscalateStop, HeartbeatDue, Interrupt, Kill
from actors._core.timers import TimerService
from actors._enums import Isolation
from actors._execution.published import Published
from actors._execution.start_gate import StartGate
from actors._outcome import Stalled
from tests.records import make_spec


class Inbox:
    """The supervisor's side of a fired timer: the messages told to it, in order."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


@dataclass(frozen=True)
class Backend:
    """The one member of a back-end the ladder reads."""

    kill_ends_attempt: bool


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def timers(clock: ManualClock) -> Iterator[TimerService]:
    service = TimerService(clock, name="test-attempt-timers")  # ticked by hand, not started
    yield service
    service.stop()


def _setup(
    clock: ManualClock, timers: TimerService, *, stop_grace: float = 2.0
) -> tuple[AttemptTimers, ActiveAttempts, Inbox]:
    inbox = Inbox()
    attempts = ActiveAttempts()
    target: Any = inbox
    return (
        AttemptTimers(timers, target, clock=clock, attempts=attempts, stop_grace=stop_grace),
        attempts,
        inbox,
    )


def _attempt(
    attempts: ActiveAttempts,
    *,
    kill_ends_attempt: bool = False,
    published: Published | None = None,
    **options: Any,
) -> ActiveAttempt:
    spec = make_spec("a", options=TaskOptions(isolation=Isolation.THREAD, **options))
    worker: Any = None  # never told anything by the object under test
    backend: Any = Backend(kill_ends_attempt)
    active = ActiveAttempt(spec, worker, backend, None, started=True, published=published)
    attempts.add(active)
    return active


def test_the_deadline_fires_exactly_timeout_seconds_after_it_is_armed(
    clock: ManualClock, timers: TimerService
) -> None:
    """arm_deadline: none without a timeout; else DeadlinePassed at now + timeout."""
    ladder, _attempts, inbox = _setup(clock, timers)
    assert ladder.arm_deadline(make_spec("none")) is None
    clock.advance(3.0)
    handle = ladder.arm_deadline(
        make_spec("a", options=TaskOptions(isolation=Isolation.THREAD, timeout=5.0))
    )
    assert handle is not None
    assert handle.deadline == 8.0
    clock.advance(4.999)
    timers.tick()
    assert inbox.told == []
    clock.advance(0.001)
    timers.tick()
    assert inbox.told == [DeadlinePassed("a")]


def test_a_sign_of_life_moves_the_heartbeat_deadline_with_one_timer(
    clock: ManualClock, timers: TimerService
) -> None:
    """The watch re-arms at the time left after the latest sign; silence for
    heartbeat_timeout seconds is Stalled with the exact silence."""
    ladder, attempts, inbox = _setup(clock, timers)
    published = Published(clock.monotonic)
    active = _attempt(attempts, published=published, heartbeat_timeout=10.0)
    ladder.arm_heartbeat(active)
    assert active.watch is not None
    assert active.watch.deadline == 10.0
    clock.advance(4.0)
    published.heartbeat()
    clock.advance(6.0)
    timers.tick()
    assert inbox.told == [HeartbeatDue("a")]
    assert ladder.check_heartbeat(active) is None  # a sign at 4.0: due again at 14.0
    assert active.watch is not None
    assert active.watch.deadline == 14.0
    assert timers.statistics().armed == 1
    clock.advance(4.0)
    assert ladder.check_heartbeat(active) == Stalled(heartbeat_timeout=10.0, silent_seconds=10.0)
    assert active.watch is None


def test_no_heartbeat_timeout_arms_no_watch(clock: ManualClock, timers: TimerService) -> None:
    """An attempt without heartbeat_timeout has no watch."""
    ladder, attempts, _ = _setup(clock, timers)
    active = _attempt(attempts)
    ladder.arm_heartbeat(active)
    assert active.watch is None
    assert timers.statistics().armed == 0


def test_stopping_closes_the_gate_disarms_and_arms_the_first_rung(
    clock: ManualClock, timers: TimerService
) -> None:
    """begin_stopping: stopping (slot kept), gate closed, deadline and watch off, the
    first forced step due stop_grace from now."""
    ladder, attempts, inbox = _setup(clock, timers, stop_grace=2.0)
    active = _attempt(attempts, timeout=5.0, heartbeat_timeout=1.0)
    active.gate = StartGate()
    active.timer = ladder.arm_deadline(active.spec)
    ladder.arm_heartbeat(active)
    deadline, watch = active.timer, active.watch
    assert deadline is not None
    assert watch is not None
    clock.advance(0.5)
    ladder.begin_stopping(active, StopReason.CANCEL_REQUESTED)
    assert (attempts.running, attempts.stopping, active.stopping) == (
        0,
        1,
        StopReason.CANCEL_REQUESTED,
    )
    assert active.gate.open(lambda: None) is StopReason.CANCEL_REQUESTED  # never starts
    assert (deadline.armed, watch.armed, active.watch) == (False, False, None)
    assert active.timer is not None
    assert active.timer.deadline == 2.5
    assert timers.statistics().armed == 1
    clock.advance(2.0)
    timers.tick()
    assert inbox.told == [EscalateStop("a")]


@pytest.mark.parametrize(
    ("kill_ends_attempt", "gap"), [(True, 2.0), (False, INTERRUPT_REPEAT_SECONDS)]
)
def test_the_ladder_interrupts_then_kills_at_exact_times(
    clock: ManualClock, timers: TimerService, kill_ends_attempt: bool, gap: float
) -> None:
    """escalate: Interrupt first, Kill after; the next rung stop_grace later for a
    back-end that kills, every INTERRUPT_REPEAT_SECONDS for threads."""
    ladder, attempts, _ = _setup(clock, timers, stop_grace=2.0)
    active = _attempt(attempts, kill_ends_attempt=kill_ends_attempt)
    ladder.begin_stopping(active, StopReason.TIMEOUT)
    clock.advance(2.0)
    assert ladder.escalate(active) == Interrupt(StopReason.TIMEOUT)
    assert active.timer is not None
    assert active.timer.deadline == pytest.approx(2.0 + gap)
    clock.advance(gap)
    assert ladder.escalate(active) == Kill(StopReason.TIMEOUT)
    assert active.timer is not None
    assert active.timer.deadline == pytest.approx(2.0 + 2 * gap)
    assert active.forced_steps == 2


def test_disarm_cancels_what_the_attempt_has_armed(
    clock: ManualClock, timers: TimerService
) -> None:
    """An ended attempt leaves no timer armed."""
    ladder, attempts, _ = _setup(clock, timers)
    active = _attempt(attempts, timeout=5.0, heartbeat_timeout=1.0)
    active.timer = ladder.arm_deadline(active.spec)
    ladder.arm_heartbeat(active)
    ladder.disarm(active)
    assert timers.statistics().armed == 0


@settings(max_examples=50, deadline=None)
@given(
    steps=st.integers(min_value=0, max_value=8),
    stop_grace=st.floats(min_value=0.0, max_value=30.0),
    kill_ends_attempt=st.booleans(),
)
def test_a_stopping_attempt_has_exactly_one_timer_armed(
    steps: int, stop_grace: float, kill_ends_attempt: bool
) -> None:
    """Invariant: however many rungs (each escalation comes when the last one fired), a
    stopping attempt has one timer (its next rung) and no watch; the steps are one
    Interrupt, then Kills."""
    clock = ManualClock()
    timers = TimerService(clock, name="test-attempt-ladder")
    try:
        ladder, attempts, inbox = _setup(clock, timers, stop_grace=stop_grace)
        active = _attempt(attempts, kill_ends_attempt=kill_ends_attempt, heartbeat_timeout=1.0)
        ladder.arm_heartbeat(active)
        ladder.begin_stopping(active, StopReason.STALLED)
        told = []
        for _ in range(steps):
            assert active.timer is not None
            clock.advance(active.timer.deadline - clock.monotonic() + 1e-9)  # float sums
            timers.tick()
            assert inbox.told[-1] == EscalateStop("a")  # the rung due now has fired
            inbox.told.clear()
            told.append(ladder.escalate(active))
        assert (
            told
            == [Interrupt(StopReason.STALLED), *[Kill(StopReason.STALLED)] * (steps - 1)][:steps]
        )
        assert (timers.statistics().armed, active.watch) == (1, None)
    finally:
        timers.stop()
