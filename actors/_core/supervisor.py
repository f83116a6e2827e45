"""The supervisor actor: admission, the pending queue, slots, deadlines, worker lifecycle,
and the supervision policies (retries, restart intensity, delays, schedules).

It never runs user code and never waits on it: operations run on the operation pool,
driven by one :class:`WorkerActor` each, and everything the supervisor learns arrives
as a message. It never ``ask``s a worker.

A pending task waits in one of the places of its :class:`PendingQueue` (``_queue``):
ready, delayed (a start time or a retry's backoff), held by its operation's open circuit
breaker, blocked by its dependencies (released by the registry, which resolves them), or
awaiting an operation not registered yet (recovered from a durable store). One owner,
one cancel.

Slots: a task holds its slot from the moment its worker is spawned until the worker
reports that the operation has really returned. A task that timed out or was cancelled
while running is terminal at once in the registry, but its worker keeps the slot
("stopping") until then, so a stuck operation can never multiply threads.

The rules live in plain state objects this actor owns, each tested directly:
:class:`PendingQueue` (where a pending task waits), :class:`ActiveAttempts` (the slots
held), :class:`PoolDispatch` (which tasks start in each slot pool, in
:class:`DispatchOrder`'s order, past the breakers and the host's resources),
:class:`AttemptTimers` (deadlines, heartbeats and the stop ladder),
:class:`AttemptOutcomes` (what an attempt's end means: ``retry_plan`` and
:class:`BreakerGate`), :class:`Drain` (admission and the shutdown drain, over
``shutdown_drain``), :class:`ScheduleTicks` and ``supervisor_stats``;
:class:`AttemptLauncher` starts an attempt the dispatch decided to start. This actor
handles a message, asks them in its order, and tells the registry and the workers; the
objects it owns tell the registry what they record (a task's end, a retry), on its
thread, and it alone spawns workers (through its launcher).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, assert_never

import pykka

from actors._clock import Clock
from actors._core.admission import AdmissionGate
from actors._core.attempt_timers import AttemptTimers
from actors._core.attempts import (
    ASYNC_SLOTS,
    RAY_SLOTS,
    WORKER_SLOTS,
    ActiveAttempt,
    ActiveAttempts,
)
from actors._core.breaker_gate import BreakerGate
from actors._core.dispatch_order import lane_of
from actors._core.drain import Drain
from actors._core.launcher import AttemptLauncher
from actors._core.messages import (
    SUPERVISOR_MESSAGES,
    AddSchedule,
    AttemptStarted,
    AwaitOperation,
    Cancel,
    CancelSchedule,
    Cleanup,
    CleanupDue,
    CooldownOver,
    DeadlinePassed,
    DependenciesMet,
    DispatchDue,
    DropBlocked,
    EscalateStop,
    Finish,
    GetSchedules,
    GetSupervisorStats,
    HeartbeatDue,
    InjectFault,
    OperationRegistered,
    Register,
    ResolveDependencies,
    ScheduleTick,
    Shutdown,
    StartDue,
    Stop,
    Submit,
    SubmitBatch,
    SubmitBlocked,
    SupervisorMessage,
    WorkerFinished,
)
from actors._core.outcomes import AttemptOutcomes
from actors._core.pending import PendingQueue
from actors._core.pool_dispatch import PoolDispatch
from actors._core.pooled import Dispatcher
from actors._core.resource_slots import ResourceSlots
from actors._core.schedule_ticks import ScheduleTicks
from actors._core.shutdown_drain import withdraw_pending
from actors._core.supervisor_stats import SupervisorStats, supervisor_stats
from actors._core.timers import TimerHandle, TimerService
from actors._enums import Isolation
from actors._execution.backend import ExecutionBackend
from actors._execution.faults import FaultPlan
from actors._outcome import Cancelled, Outcome, StopReason, TimedOut
from actors._policies import CircuitBreakers
from actors._records import TaskSpec
from actors._storage.recovery import decide, interrupt
from actors.logs import library_logger

__all__ = ["SupervisorActor", "SupervisorStats"]

_log = library_logger("actors.supervisor")


class SupervisorActor(pykka.ThreadingActor):
    # A host that forgets shutdown() must still be able to exit: the interpreter joins
    # non-daemon threads before atexit hooks run, so a non-daemon actor would hang it.
    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        # The C queue: pykka's default queue.Queue wakes its reader through a
        # Python-level Condition, which costs more than the message handling itself.
        return queue.SimpleQueue()

    def __init__(
        self,
        *,
        capacity: int,
        async_capacity: int = 0,
        ray_capacity: int = 0,
        registry: pykka.ActorRef[Any],
        timers: TimerService,
        backends: Mapping[Isolation, ExecutionBackend],
        dispatcher: Dispatcher,
        clock: Clock,
        admission: AdmissionGate,
        max_task_age: float,
        cleanup_interval: float,
        stop_grace: float,
        durable: bool = False,
        start_timeout: float = 30.0,
        breakers: CircuitBreakers | None = None,
        faults: FaultPlan | None = None,
        on_fatal: Callable[[BaseException | None], None] | None = None,
        resources: ResourceSlots[TaskSpec] | None = None,
    ) -> None:
        super().__init__()
        self._on_fatal = on_fatal  # the runtime gives up when this actor fails
        self._capacity = capacity
        self._registry = registry
        self._timers = timers
        self._clock = clock
        self._admission = admission
        self._max_task_age = max_task_age
        self._cleanup_interval = cleanup_interval
        # Every pending task, wherever it waits (a delayed one with its StartDue timer).
        self._queue: PendingQueue[TimerHandle] = PendingQueue(lane_of)
        self._active = ActiveAttempts()
        # The host's resources and the line of tasks waiting for them (the runtime
        # shares it: status reads look up what a task holds or waits for, and process
        # attempts their GPU indices).
        self._slots: ResourceSlots[TaskSpec] = ResourceSlots() if resources is None else resources
        self._attempt_timers = AttemptTimers(
            timers, self.actor_ref, clock=clock, attempts=self._active, stop_grace=stop_grace
        )
        self._launcher = AttemptLauncher(
            supervisor=self.actor_ref,
            registry=registry,
            backends=backends,
            dispatcher=dispatcher,
            clock=clock,
            timers=self._attempt_timers,
            durable=durable,
            start_timeout=start_timeout,
            faults=faults,
        )
        self._breaker_gate = BreakerGate(breakers, clock)
        self._schedules = ScheduleTicks(timers, self.actor_ref, clock)
        # Admission open until shutdown; then what is stopped for, and when it drained.
        self._drain = Drain(
            registry=registry,
            clock=clock,
            admission=admission,
            queue=self._queue,
            slots=self._slots,
            active=self._active,
            timers=timers,
            durable=durable,
        )
        self._pools = PoolDispatch(
            # The slots of each pool, in the order they are dispatched.
            capacities={
                WORKER_SLOTS: capacity,
                ASYNC_SLOTS: async_capacity,
                RAY_SLOTS: ray_capacity,
            },
            queue=self._queue,
            slots=self._slots,
            active=self._active,
            launcher=self._launcher,
            attempt_timers=self._attempt_timers,
            admission=admission,
            breakers=breakers,
            gate=self._breaker_gate,
            drain=self._drain,
            registry=registry,
            timers=timers,
            target=self.actor_ref,
            clock=clock,
        )
        self._outcomes = AttemptOutcomes(
            registry=registry,
            clock=clock,
            admission=admission,
            breakers=breakers,
            gate=self._breaker_gate,
            queue=self._queue,
            pools=self._pools,
            drain=self._drain,
        )
        self._cleanup_timer: TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def on_start(self) -> None:
        self._cleanup_timer = self._timers.schedule_after(
            self._cleanup_interval, self.actor_ref, CleanupDue()
        )
        _log.info(
            "supervisor.started",
            capacity=self._capacity,
            async_capacity=self._pools.capacities[ASYNC_SLOTS],
        )

    def on_stop(self) -> None:
        if self._cleanup_timer is not None:
            self._timers.cancel(self._cleanup_timer)
        self._schedules.drop_all()
        _log.info("supervisor.stopped")

    # -- messages ------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SUPERVISOR_MESSAGES):
            # SUPERVISOR_MESSAGES holds SupervisorMessage's members (see messages.py); no
            # cast(), a call on every message.
            return self._handle(message)  # type: ignore[arg-type]
        return super().on_receive(message)

    def _handle(self, message: SupervisorMessage) -> Any:
        # Exhaustive: mypy fails the assert_never below when a SupervisorMessage has no
        # case. The busiest messages come first (class patterns are tried in order).
        match message:
            case Submit(spec=spec):
                return self._on_submit(spec)
            case WorkerFinished():
                return self._on_worker_finished(message)
            case SubmitBatch(specs=specs):
                return self._on_submit_batch(specs)
            case DeadlinePassed(task_id=task_id):
                return self._on_deadline(task_id)
            case AttemptStarted(task_id=task_id):
                return self._on_attempt_started(task_id)
            case HeartbeatDue(task_id=task_id):
                return self._on_heartbeat_due(task_id)
            case EscalateStop(task_id=task_id):
                return self._on_escalate(task_id)
            case Cancel(task_id=task_id):
                return self._on_cancel(task_id)
            case AwaitOperation(records=records):
                for record in records:
                    self._queue.await_operation(record)
                return None
            case OperationRegistered():
                return self._on_operation_registered(message)
            case SubmitBlocked(spec=spec):
                self._queue.block(spec)
                return None
            case DependenciesMet():
                return self._on_dependencies_met(message)
            case DropBlocked(task_id=task_id):
                if self._queue.unblock(task_id) is not None:
                    self._admission.leave()
                    self._drain.check()
                return None
            case StartDue(task_id=task_id):
                return self._on_start_due(task_id)
            case ScheduleTick(schedule_id=schedule_id):
                return self._on_schedule_tick(schedule_id)
            case AddSchedule():
                return self._on_add_schedule(message)
            case CancelSchedule(schedule_id=schedule_id):
                return self._schedules.drop(schedule_id)
            case GetSchedules():
                return self._schedules.statistics()
            case DispatchDue():
                return self._pools.dispatch()
            case CooldownOver(operation=operation):
                return self._pools.release_held(operation)
            case CleanupDue():
                return self._on_cleanup_due()
            case GetSupervisorStats():
                return self._stats()
            case Shutdown(cancel_pending=cancel_pending):
                return self._on_shutdown(cancel_pending)
            case InjectFault(error=error):
                raise error  # a test's fault: the supervisor fails (see on_failure)
            case _:
                assert_never(message)

    def on_failure(self, *exc_info: Any) -> None:
        """A handler raised: pykka stops this actor. Its state has no other copy to be
        rebuilt from, so the runtime stops (``on_fatal``); the operations still running
        are asked to stop, since no deadline or escalation will reach them any more."""
        for active in self._active:
            if active.gate is not None:
                active.gate.stop(StopReason.SHUTDOWN)  # one that has not started never will
            with contextlib.suppress(pykka.ActorDeadError):
                active.worker.tell(Stop(StopReason.SHUTDOWN))
        if self._on_fatal is not None:
            self._on_fatal(exc_info[1])

    def _on_submit(self, spec: TaskSpec) -> None:
        active = self._active.get(spec.task_id)
        if active is not None:
            # resume_task of a task whose last attempt is still stopping: its next one
            # starts once that operation has really returned (one attempt at a time).
            active.resumed = spec
            return
        if not self._drain.admitting:
            # Defensive: the runtime refuses submissions once closed, and any Submit it
            # told earlier is ahead of Shutdown in this mailbox.
            self._finish(spec.task_id, Cancelled(StopReason.SHUTDOWN))
            self._admission.leave()
            return
        self._enqueue(spec)
        self._pools.dispatch()

    def _on_submit_batch(self, specs: tuple[TaskSpec, ...]) -> None:
        if not self._drain.admitting:
            for spec in specs:
                self._on_submit(spec)
            return
        for spec in specs:
            self._enqueue(spec)
        self._pools.dispatch()

    def _on_cancel(self, task_id: str) -> bool:
        cancelled = Cancelled(StopReason.CANCEL_REQUESTED)
        withdrawn = withdraw_pending(self._queue, self._slots, self._timers, task_id)
        if withdrawn is not None:
            if withdrawn == "admitted":  # one awaiting its operation never was
                self._admission.leave()
            self._finish(task_id, cancelled)
            self._drain.check()
            return True
        active = self._active.get(task_id)
        if active is not None and active.resumed is not None:
            active.resumed = None  # resumed, waiting for its last attempt: not any more
            self._admission.leave()
            self._finish(task_id, cancelled)
            return True
        if active is not None and active.retry_at is not None:
            active.retry_at = None  # timed out, waiting to be retried: not any more
            self._finish(task_id, cancelled)
            return True
        if active is None or active.stopping is not None:
            return False  # unknown, or already terminal
        # Stopping first closes its start gate: a RUNNING its back-end recorded is then
        # in the registry's mailbox ahead of this cancel, or it never starts.
        self._begin_stopping(active, StopReason.CANCEL_REQUESTED)
        self._finish(task_id, cancelled)
        return True

    def _on_operation_registered(self, message: OperationRegistered) -> None:
        """Queue the recovered tasks that waited for this operation (or, after shutdown,
        leave them pending in the store for the next runtime)."""
        records = self._queue.take_awaiting(message.name)
        if not records or not self._drain.admitting:
            return
        now = self._clock.time()
        for record in records:
            if decide(record, message.entry) == "interrupt":
                self._registry.tell(Finish(record.task_id, interrupt(record, now), now))
                continue
            spec = record.to_spec(message.entry.function)
            self._admission.enter()
            if spec.options.depends_on:
                self._registry.tell(ResolveDependencies(spec))  # it forwards the task back
            else:
                self._enqueue(spec)
        self._pools.dispatch()

    def _on_deadline(self, task_id: str) -> None:
        active = self._active.get(task_id)
        if active is None or active.stopping is not None:
            return  # finished or already stopping; the timer raced the outcome
        active.timer = None
        timeout = active.spec.options.timeout
        assert timeout is not None
        # The registry attaches the latest partial result it holds when it records this.
        self._fail_running(active, TimedOut(timeout_seconds=timeout), StopReason.TIMEOUT)

    def _on_attempt_started(self, task_id: str) -> None:
        # The back-end recorded RUNNING itself, under the attempt's start gate; the
        # deadline starts now, so a cold child's start-up is not charged to the timeout.
        active = self._active.get(task_id)
        if active is None or active.started:
            return
        active.started = True
        if active.stopping is None:
            active.timer = self._attempt_timers.arm_deadline(active.spec)
            self._attempt_timers.arm_heartbeat(active)

    def _on_heartbeat_due(self, task_id: str) -> None:
        """Stalled if the operation has been silent for ``heartbeat_timeout`` seconds,
        else looked at again when it would be (see :class:`AttemptTimers`)."""
        active = self._active.get(task_id)
        if active is None or active.stopping is not None or active.watch is None:
            return  # ended or stopping: the timer raced it
        outcome = self._attempt_timers.check_heartbeat(active)
        if outcome is None:
            return
        _log.warning("task.stall_detected", task_id=task_id, silent_seconds=outcome.silent_seconds)
        # The registry attaches the latest progress, partial result and checkpoint.
        self._fail_running(active, outcome, StopReason.STALLED)

    def _fail_running(self, active: ActiveAttempt, outcome: Outcome, reason: StopReason) -> None:
        """A running attempt failed by a timer (deadline, heartbeat): terminal unless it
        is retried (once its operation has really returned), and stopped."""
        self._outcomes.fail_running(active, outcome)
        self._begin_stopping(active, reason)

    def _on_escalate(self, task_id: str) -> None:
        active = self._active.get(task_id)
        if active is None or active.stopping is None:
            return  # the operation returned meanwhile
        # The operation ignored is_cancelled() for stop_grace seconds: the ladder's next
        # rung (interrupt, then kill), until the operation has really returned.
        step = self._attempt_timers.escalate(active)
        with contextlib.suppress(pykka.ActorDeadError):
            active.worker.tell(step)

    def _on_worker_finished(self, message: WorkerFinished) -> None:
        active = self._active.end(message.task_id)
        if active is None:
            return
        if active.spec.options.resources is not None:
            self._slots.release(message.task_id)  # with the slot: the attempt has ended
        if active.timer is not None or active.watch is not None:
            self._attempt_timers.disarm(active)
        after = self._outcomes.ended(active, message)  # the task's next attempt, if any
        if after is not None:
            if self._drain.admitting:
                self._enqueue(after)
            else:
                self._drain.abandon(after)
        self._pools.dispatch()
        if not self._drain.admitting:
            self._drain.check()

    # -- recurring schedules --------------------------------------------------------------

    def _on_add_schedule(self, message: AddSchedule) -> bool:
        if not self._drain.admitting:
            return False
        self._schedules.add(message)
        return True

    def _on_schedule_tick(self, schedule_id: str) -> None:
        if not self._drain.admitting:
            return
        spec = self._schedules.tick(
            schedule_id,
            unfinished=self._unfinished,
            operation_open=self._breaker_gate.is_open,
            try_enter=self._admission.try_enter,
        )
        if spec is not None:
            self._registry.tell(Register(spec))
            self._enqueue(spec)
            self._pools.dispatch()

    def _unfinished(self, task_id: str) -> bool:
        """Still pending, or its operation still running (a stopping one included)."""
        return task_id in self._queue or task_id in self._active

    def _on_dependencies_met(self, message: DependenciesMet) -> None:
        spec = self._queue.unblock(message.task_id)
        if spec is None:
            return  # cancelled meanwhile
        self._enqueue(replace(spec, dependency_results=message.results))
        self._dispatch_soon()

    def _on_start_due(self, task_id: str) -> None:
        spec = self._queue.take_due(task_id)
        if spec is None:
            return  # cancelled meanwhile
        self._queue.push_ready(spec)
        self._dispatch_soon()

    def _dispatch_soon(self) -> None:
        """Dispatch once the messages already queued are handled: tasks released together
        (due at one moment, or unblocked by one dependency) then start by priority, not
        in the order of their messages."""
        if self.actor_inbox.empty():
            self._pools.dispatch()
        else:
            self.actor_ref.tell(DispatchDue())

    def _on_cleanup_due(self) -> None:
        self._registry.tell(Cleanup(self._clock.time() - self._max_task_age))
        self._cleanup_timer = self._timers.schedule_after(
            self._cleanup_interval, self.actor_ref, CleanupDue()
        )

    def _on_shutdown(self, cancel_pending: bool) -> threading.Event:
        self._schedules.drop_all()
        drained = self._drain.begin(cancel_pending=cancel_pending)
        self._drain.check()
        return drained

    # -- internals -----------------------------------------------------------------------

    def _enqueue(self, spec: TaskSpec) -> None:
        """A new (or recovered) pending task: ready now, or at its ``not_before``."""
        if spec.not_before is not None and spec.not_before > self._clock.time():
            delay = max(spec.not_before - self._clock.time(), 0.0)
            timer = self._timers.schedule_after(delay, self.actor_ref, StartDue(spec.task_id))
            self._queue.delay(spec, timer)
        else:
            self._queue.push_ready(spec)

    def _begin_stopping(self, active: ActiveAttempt, reason: StopReason) -> None:
        self._attempt_timers.begin_stopping(active, reason)
        # A dead worker means the operation just returned: its WorkerFinished is queued here.
        with contextlib.suppress(pykka.ActorDeadError):
            active.worker.tell(Stop(reason))

    def _finish(self, task_id: str, outcome: Outcome) -> None:
        self._registry.tell(Finish(task_id, outcome, self._clock.time()))

    def _stats(self) -> SupervisorStats:
        return supervisor_stats(
            capacities=self._pools.capacities,
            queue=self._queue,
            active=self._active,
            slots=self._slots,
            schedules=self._schedules.statistics(),
            admitting=self._drain.admitting,
        )
