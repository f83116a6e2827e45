"""PoolDispatch, tested directly on a manual clock with a stand-in launcher: each slot
pool starts tasks while it has a free slot, an open breaker holds a task back (or, after
shutdown began, abandons it), and a start takes its resources and arms its heartbeat."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actors import ManualClock, TaskOptions
from actors._core.admission import AdmissionGate
from actors._core.attempt_timers import AttemptTimers
from actors._core.attempts import ASYNC_SLOTS, WORKER_SLOTS, ActiveAttempt, ActiveAttempts
from actors._core.breaker_gate import BreakerGate
from actors._core.dispatch_order import lane_of
from actors._core.messages import CooldownOver, Finish, HeartbeatDue
from actors._core.pending import PendingQueue
from actors._core.pool_dispatch import PoolDispatch
from actors._core.resource_slots import ResourceSlots
from actors._core.timers import TimerHandle, TimerService
from actors._enums import Isolation
from actors._outcome import Interrupted
from actors._policies import CircuitBreakers, OperationLimits
from actors._records import TaskSpec
from actors._resources import Resources
from tests.records import make_spec


class Told:
    """An actor's side (the registry, the supervisor): the messages told, in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def tell(self, message: Any) -> None:
        self.messages.append(message)


class Launcher:
    """Starts nothing: each attempt is recorded, started at once."""

    def __init__(self) -> None:
        self.launched: list[tuple[str, bool]] = []

    def backend_for(self, spec: TaskSpec) -> Any:
        return None

    def launch(self, spec: TaskSpec, backend: Any, *, trial: bool) -> ActiveAttempt:
        self.launched.append((spec.task_id, trial))
        worker: Any = None
        return ActiveAttempt(spec, worker, backend, None, started=True, trial=trial)


class Drain:
    def __init__(self) -> None:
        self.admitting = True
        self.abandoned: list[str] = []

    def abandon(self, spec: TaskSpec) -> None:
        self.abandoned.append(spec.task_id)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(100.0)


@pytest.fixture
def timers(clock: ManualClock) -> Iterator[TimerService]:
    # Ticked by hand, never started; on the clock the object under test reads.
    service = TimerService(clock, name="test-pool-dispatch")
    yield service
    service.stop()


class Setup:
    def __init__(
        self,
        clock: ManualClock,
        timers: TimerService,
        *,
        capacity: int = 2,
        async_capacity: int = 1,
        breakers: CircuitBreakers | None = None,
        resources: dict[str, float] | None = None,
    ) -> None:
        self.clock = clock
        self.timers = timers
        self.queue: PendingQueue[TimerHandle] = PendingQueue(lane_of)
        self.slots: ResourceSlots[TaskSpec] = ResourceSlots(
            None if resources is None else Resources(resources)
        )
        self.active = ActiveAttempts()
        self.launcher = Launcher()
        self.admission = AdmissionGate(100)
        self.registry, self.supervisor, self.drain = Told(), Told(), Drain()
        launcher: Any = self.launcher
        registry: Any = self.registry
        supervisor: Any = self.supervisor
        drain: Any = self.drain
        self.breakers = breakers
        self.pools = PoolDispatch(
            capacities={WORKER_SLOTS: capacity, ASYNC_SLOTS: async_capacity},
            queue=self.queue,
            slots=self.slots,
            active=self.active,
            launcher=launcher,
            attempt_timers=AttemptTimers(
                timers, supervisor, clock=self.clock, attempts=self.active, stop_grace=1.0
            ),
            admission=self.admission,
            breakers=breakers,
            gate=BreakerGate(breakers, self.clock),
            drain=drain,
            registry=registry,
            timers=timers,
            target=supervisor,
            clock=self.clock,
        )

    def submit(self, task_id: str, seq: int, **options: Any) -> None:
        options.setdefault("isolation", Isolation.THREAD)
        assert self.admission.try_enter()
        self.queue.push_ready(make_spec(task_id, seq=seq, options=TaskOptions(**options)))


def test_a_pool_starts_tasks_in_queue_order_while_it_has_a_free_slot(
    clock: ManualClock, timers: TimerService
) -> None:
    """Capacity 2, three ready: the first two start (each leaves the admission gate),
    the third once a slot is free."""
    setup = Setup(clock, timers)
    for seq, task_id in enumerate("abc"):
        setup.submit(task_id, seq)
    setup.pools.dispatch()
    assert setup.launcher.launched == [("a", False), ("b", False)]
    assert (setup.admission.waiting, "c" in setup.queue) == (1, True)
    setup.active.end("a")
    setup.pools.dispatch()
    assert [task_id for task_id, _ in setup.launcher.launched] == ["a", "b", "c"]
    assert setup.admission.waiting == 0


def test_a_full_pool_does_not_hold_up_a_task_of_another(
    clock: ManualClock, timers: TimerService
) -> None:
    """The worker pool is full; a coroutine task still starts in the async pool."""
    setup = Setup(clock, timers, capacity=1)
    setup.submit("t1", 1)
    setup.submit("t2", 2)
    setup.submit("co", 3, isolation=Isolation.ASYNC)
    setup.pools.dispatch()
    assert [task_id for task_id, _ in setup.launcher.launched] == ["t1", "co"]
    assert (setup.active.held(WORKER_SLOTS), setup.active.held(ASYNC_SLOTS)) == (1, 1)


def _tripped(setup: Setup) -> None:
    assert setup.breakers is not None
    now = setup.clock.monotonic()
    setup.breakers.record("tests.noop", True, now)
    assert setup.breakers.record("tests.noop", True, now) == "tripped"


LIMITS = OperationLimits(max_failures=1, failure_window=60.0, cooldown=30.0)


def test_an_open_breaker_holds_its_task_with_a_cooldown_timer_then_lets_a_trial(
    clock: ManualClock, timers: TimerService
) -> None:
    """While the cool-down runs the task is held (still admitted) and CooldownOver is
    armed for its end; released after it, the task starts as the trial."""
    setup = Setup(clock, timers, breakers=CircuitBreakers(LIMITS))
    _tripped(setup)
    setup.submit("a", 1)
    setup.pools.dispatch()
    assert (setup.launcher.launched, setup.queue.has_held("tests.noop")) == ([], True)
    assert setup.admission.waiting == 1
    setup.clock.advance(30.0)
    timers.tick()
    assert setup.supervisor.messages == [CooldownOver("tests.noop")]
    setup.pools.release_held("tests.noop")
    assert setup.launcher.launched == [("a", True)]


def test_after_shutdown_began_a_task_its_breaker_refuses_is_abandoned(
    clock: ManualClock, timers: TimerService
) -> None:
    """Not admitting: a refused task is not held for a cool-down that nobody waits for."""
    setup = Setup(clock, timers, breakers=CircuitBreakers(LIMITS))
    _tripped(setup)
    setup.submit("a", 1)
    setup.drain.admitting = False
    setup.pools.dispatch()
    assert (setup.drain.abandoned, setup.queue.has_held("tests.noop")) == (["a"], False)
    assert (setup.supervisor.messages, timers.statistics().armed) == ([], 0)


def test_a_start_takes_its_resources_and_arms_its_heartbeat(
    clock: ManualClock, timers: TimerService
) -> None:
    """A GPU task holds its GPU from its start; its heartbeat deadline runs from then."""
    setup = Setup(clock, timers, resources={"gpu": 1})
    setup.submit("g", 1, resources={"gpu": 1}, heartbeat_timeout=5.0)
    setup.pools.dispatch()
    assert setup.slots.held_by("g") is not None
    setup.clock.advance(5.0)
    timers.tick()
    assert setup.supervisor.messages == [HeartbeatDue("g")]


def test_a_request_the_host_can_never_meet_ends_the_task_never_run(
    clock: ManualClock, timers: TimerService
) -> None:
    """A recovered task asking for two GPUs of one: Finish (Interrupted, cause
    resources_unavailable), its place given back; the task behind it starts."""
    setup = Setup(clock, timers, resources={"gpu": 1})
    setup.submit("huge", 1, resources={"gpu": 2})
    setup.submit("plain", 2)
    setup.pools.dispatch()
    assert setup.launcher.launched == [("plain", False)]
    [finish] = setup.registry.messages
    assert isinstance(finish, Finish)
    assert (finish.task_id, finish.at) == ("huge", 100.0)
    assert isinstance(finish.outcome, Interrupted)
    assert finish.outcome.cause == "resources_unavailable"
    assert setup.admission.waiting == 0
