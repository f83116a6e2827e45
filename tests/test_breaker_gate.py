"""BreakerGate, tested directly on a manual clock: what an attempt's end tells its
operation's circuit breaker, and when the cool-down of a tripped one ends."""

from __future__ import annotations

from typing import Any

from actors import ManualClock, StopReason
from actors._core.attempts import ActiveAttempt
from actors._core.breaker_gate import BreakerGate
from actors._policies import CircuitBreakers, OperationLimits
from tests.records import make_spec


def _attempt(*, trial: bool = False) -> ActiveAttempt:
    worker: Any = None
    backend: Any = None
    return ActiveAttempt(make_spec("a"), worker, backend, None, trial=trial)


def _gate(clock: ManualClock) -> BreakerGate:
    limits = OperationLimits(max_failures=1, failure_window=60.0, cooldown=30.0)
    return BreakerGate(CircuitBreakers(limits), clock)


def test_the_second_failure_in_the_window_trips_and_the_cooldown_is_exact() -> None:
    """max_failures=1: the second failure trips; the cool-down ends 30 s after the trip,
    and the operation refuses new tasks until then."""
    clock = ManualClock()
    gate = _gate(clock)
    assert gate.record(_attempt(), failed=True) is None
    clock.advance(5.0)
    assert gate.record(_attempt(), failed=True) == "tripped"
    assert (gate.cooldown_left("tests.noop"), gate.is_open("tests.noop")) == (30.0, True)
    clock.advance(12.5)
    assert gate.cooldown_left("tests.noop") == 17.5
    clock.advance(17.5)
    assert (gate.cooldown_left("tests.noop"), gate.is_open("tests.noop")) == (None, False)


def test_a_trial_that_succeeds_recovers_the_operation() -> None:
    """After the cool-down a success of the trial recovers; the attempt is no longer
    the trial."""
    clock = ManualClock()
    breakers = CircuitBreakers(OperationLimits(max_failures=1, failure_window=60.0, cooldown=30.0))
    gate = BreakerGate(breakers, clock)
    gate.record(_attempt(), failed=True)
    gate.record(_attempt(), failed=True)
    clock.advance(30.0)
    assert breakers.may_start("tests.noop", clock.monotonic()) == "trial"
    trial = _attempt(trial=True)
    assert gate.record(trial, failed=False) == "recovered"
    assert trial.trial is False


def test_a_stopped_trial_is_abandoned_unless_it_timed_out() -> None:
    """A cancelled trial says nothing (the next task tries); a timed-out one recorded
    its failure already."""
    gate = _gate(ManualClock())
    cancelled, timed_out, plain = _attempt(trial=True), _attempt(trial=True), _attempt()
    cancelled.stopping = StopReason.CANCEL_REQUESTED
    timed_out.stopping = StopReason.TIMEOUT
    plain.stopping = StopReason.CANCEL_REQUESTED
    assert [gate.abandon_trial(a) for a in (cancelled, timed_out, plain)] == [True, False, False]


def test_without_breakers_every_call_is_a_no_op() -> None:
    """No breakers (or none with limits): nothing recorded, nothing open."""
    clock = ManualClock()
    for gate in (BreakerGate(None, clock), BreakerGate(CircuitBreakers(None), clock)):
        attempt = _attempt(trial=True)
        attempt.stopping = StopReason.CANCEL_REQUESTED
        assert gate.record(attempt, failed=True) is None
        assert attempt.trial is True  # untouched: no breaker saw it
        assert gate.is_open("tests.noop") is False
    assert BreakerGate(None, clock).abandon_trial(attempt) is False
