"""AttemptOutcomes, tested directly on a manual clock: what an attempt's end tells the
registry, which next attempt it gives back, and what it tells the operation's breaker."""

from __future__ import annotations

import random
from typing import Any

from actors import ManualClock, RetryPolicy, StopReason, TaskOptions
from actors._core.admission import AdmissionGate
from actors._core.attempts import ActiveAttempt
from actors._core.breaker_gate import BreakerGate
from actors._core.dispatch_order import lane_of
from actors._core.messages import Finish, MarkRunning, RetryScheduled, WorkerFinished
from actors._core.outcomes import AttemptOutcomes
from actors._core.pending import PendingQueue
from actors._core.timers import TimerHandle
from actors._enums import Isolation
from actors._execution.start_gate import StartGate
from actors._outcome import Completed, Outcome, Raised, TimedOut
from actors._policies import CircuitBreakers, OperationLimits
from tests.records import make_spec

NO_JITTER = RetryPolicy(max_attempts=2, backoff=4.0, jitter=False)


class Told:
    """The registry's side: the messages told to it, in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def tell(self, message: Any) -> None:
        self.messages.append(message)


class Pools:
    """The dispatch's side: the operations whose held tasks were released or whose
    cool-down was armed."""

    def __init__(self) -> None:
        self.released: list[str] = []
        self.cooldowns: list[str] = []

    def release_held(self, operation: str) -> None:
        self.released.append(operation)

    def arm_cooldown(self, operation: str) -> None:
        self.cooldowns.append(operation)


class Drain:
    admitting = True


class Setup:
    def __init__(self, *, breakers: CircuitBreakers | None = None) -> None:
        self.clock = ManualClock(100.0)
        self.registry = Told()
        self.pools = Pools()
        self.drain = Drain()
        self.admission = AdmissionGate(10)
        self.queue: PendingQueue[TimerHandle] = PendingQueue(lane_of)
        registry: Any = self.registry
        pools: Any = self.pools
        drain: Any = self.drain
        self.outcomes = AttemptOutcomes(
            registry=registry,
            clock=self.clock,
            admission=self.admission,
            breakers=breakers,
            gate=BreakerGate(breakers, self.clock),
            queue=self.queue,
            pools=pools,
            drain=drain,
            rng=random.Random(7),
        )


def _attempt(*, retry: RetryPolicy | None = None, **fields: Any) -> ActiveAttempt:
    spec = make_spec("a", options=TaskOptions(isolation=Isolation.THREAD, retry=retry))
    worker: Any = None  # never told anything by the object under test
    return ActiveAttempt(spec, worker, worker, None, **{"started": True, **fields})


def _ended(outcome: Outcome, at: float = 100.0) -> WorkerFinished:
    return WorkerFinished("a", outcome, at)


def _raised() -> Raised:
    return Raised.from_exception(ValueError("boom"))


def test_a_completed_attempt_ends_its_task_with_no_next_attempt() -> None:
    """Completed: the registry is told the end, at the worker's time."""
    setup = Setup()
    assert setup.outcomes.ended(_attempt(), _ended(Completed(1), at=99.5)) is None
    assert setup.registry.messages == [Finish("a", Completed(1), 99.5)]


def test_a_failed_attempt_with_a_retry_gives_its_next_attempt_at_the_backoff() -> None:
    """Raised with a policy that retries: RetryScheduled told (now, now + backoff), no
    Finish, and the next attempt (its place taken again) is due at that time."""
    setup = Setup()
    outcome = _raised()
    after = setup.outcomes.ended(_attempt(retry=NO_JITTER), _ended(outcome))
    assert setup.registry.messages == [RetryScheduled("a", outcome, 100.0, 104.0)]
    assert after is not None
    assert (after.task_id, after.prior_attempts, after.not_before) == ("a", 1, 104.0)
    assert setup.admission.waiting == 1


def test_once_shutdown_has_begun_a_failure_is_not_retried() -> None:
    """Not admitting: the retry policy is not asked; the failure is the task's end."""
    setup = Setup()
    setup.drain.admitting = False
    outcome = _raised()
    assert setup.outcomes.ended(_attempt(retry=NO_JITTER), _ended(outcome)) is None
    assert setup.registry.messages == [Finish("a", outcome, 100.0)]


def test_an_attempt_that_never_began_is_told_running_before_its_end() -> None:
    """Its gate never opened and it was not stopped: MarkRunning (with its injected
    fault), then its Finish."""
    setup = Setup()
    active = _attempt(started=False, gate=StartGate(), injected="crash")
    outcome = _raised()
    setup.outcomes.ended(active, _ended(outcome, at=101.0))
    assert setup.registry.messages == [
        MarkRunning("a", 101.0, None, "crash"),
        Finish("a", outcome, 101.0),
    ]


def test_a_stopped_attempt_gives_its_retry_its_resume_or_only_a_late_result() -> None:
    """Stopping: its retry (decided when it timed out), else the resume that came while
    it stopped (no Finish, no place taken), else a Finish for a late result only."""
    setup = Setup()
    timed_out = _attempt(stopping=StopReason.TIMEOUT, retry_at=110.0)
    retried = setup.outcomes.ended(timed_out, _ended(TimedOut(timeout_seconds=1.0)))
    assert retried is not None
    assert retried.not_before == 110.0
    resumed_spec = make_spec("a", seq=5)
    resumed = _attempt(stopping=StopReason.CANCEL_REQUESTED, resumed=resumed_spec)
    assert setup.outcomes.ended(resumed, _ended(Completed(None))) is resumed_spec
    assert setup.registry.messages == []
    assert setup.admission.waiting == 1  # the retry's place only
    late = _attempt(stopping=StopReason.CANCEL_REQUESTED)
    assert setup.outcomes.ended(late, _ended(Completed(2))) is None
    assert setup.registry.messages == [Finish("a", Completed(2), 100.0)]


def test_a_timer_failure_is_terminal_at_once_unless_retried() -> None:
    """fail_running without a retry: Finish now; with one: RetryScheduled, and the
    retry waits in the attempt (retry_at) for its operation to return."""
    setup = Setup()
    outcome = TimedOut(timeout_seconds=2.0)
    plain = _attempt()
    setup.outcomes.fail_running(plain, outcome)
    assert (plain.retry_at, setup.registry.messages) == (None, [Finish("a", outcome, 100.0)])
    setup.registry.messages.clear()
    retried = _attempt(
        retry=RetryPolicy(max_attempts=2, backoff=1.0, jitter=False, retry_on_timeout=True)
    )
    setup.outcomes.fail_running(retried, outcome)
    assert retried.retry_at == 101.0
    assert setup.registry.messages == [RetryScheduled("a", outcome, 100.0, 101.0)]


def _tripped(setup: Setup, breakers: CircuitBreakers) -> None:
    """Two failures trip max_failures=1; 30 s later the operation lets a trial in."""
    setup.outcomes.record(_attempt(), failed=True)
    setup.outcomes.record(_attempt(), failed=True)
    setup.clock.advance(30.0)
    assert breakers.may_start("tests.noop", setup.clock.monotonic()) == "trial"


LIMITS = OperationLimits(max_failures=1, failure_window=60.0, cooldown=30.0)


def test_a_trip_arms_the_cooldown_of_held_tasks_and_a_recovery_releases_them() -> None:
    """The failure that trips arms the cool-down when the operation has a held task;
    the trial's success then releases the held tasks."""
    breakers = CircuitBreakers(LIMITS)
    setup = Setup(breakers=breakers)
    setup.queue.hold(make_spec("held", seq=9))
    _tripped(setup, breakers)
    assert (setup.pools.cooldowns, setup.pools.released) == (["tests.noop"], [])
    setup.outcomes.record(_attempt(trial=True), failed=False)
    assert setup.pools.released == ["tests.noop"]


def test_a_stopped_trial_that_did_not_time_out_releases_the_held_tasks() -> None:
    """A cancelled trial says nothing of its operation: the held tasks are released, so
    the next one may try; the registry keeps only its late result."""
    breakers = CircuitBreakers(LIMITS)
    setup = Setup(breakers=breakers)
    _tripped(setup, breakers)
    assert setup.pools.cooldowns == []  # no held task when it tripped
    trial = _attempt(trial=True, stopping=StopReason.CANCEL_REQUESTED)
    assert setup.outcomes.ended(trial, _ended(Completed(None))) is None
    assert setup.pools.released == ["tests.noop"]
    assert setup.registry.messages == [Finish("a", Completed(None), 100.0)]
