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
held), :class:`DispatchOrder` (which task starts next in a slot pool, the host's
resources included), :class:`AttemptTimers` (deadlines, heartbeats and the stop
ladder), :class:`BreakerGate` and ``retry_plan`` (what a failed attempt means),
:class:`ScheduleTicks`, ``shutdown_drain`` (a pending task taken out wherever it waits)
and ``supervisor_stats``; :class:`AttemptLauncher` starts an attempt it decided to
start. This actor is the only one that tells anything or spawns a worker (through its
launcher, on its own thread): it handles a message, asks them, and tells the registry
and the workers.
"""

from __future__ import annotations

import contextlib
import queue
import random
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
from actors._core.dispatch_order import DispatchOrder, holds_on_host, lane_of, resources_refused
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
    MarkRunning,
    OperationRegistered,
    Register,
    ResolveDependencies,
    RetryScheduled,
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
from actors._core.pending import PendingQueue
from actors._core.pooled import Dispatcher
from actors._core.resource_slots import ResourceSlots
from actors._core.retry_plan import next_attempt, retry_due
from actors._core.schedule_ticks import ScheduleTicks
from actors._core.shutdown_drain import (
    drain_for_shutdown,
    nothing_left_to_run,
    withdraw_pending,
)
from actors._core.supervisor_stats import SupervisorStats, supervisor_stats
from actors._core.timers import TimerHandle, TimerService
from actors._enums import Isolation
from actors._errors import ResourcesUnavailableError
from actors._execution.backend import ExecutionBackend
from actors._execution.faults import FaultPlan
from actors._outcome import Cancelled, Completed, Outcome, StopReason, TimedOut
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
        # The slots of each pool, in the order they are dispatched.
        self._capacities = {
            WORKER_SLOTS: capacity,
            ASYNC_SLOTS: async_capacity,
            RAY_SLOTS: ray_capacity,
        }
        self._registry = registry
        self._timers = timers
        self._clock = clock
        self._admission = admission
        self._max_task_age = max_task_age
        self._cleanup_interval = cleanup_interval
        self._durable = durable
        self._breakers = breakers
        self._rng = random.Random()
        # Every pending task, wherever it waits (a delayed one with its StartDue timer).
        self._queue: PendingQueue[TimerHandle] = PendingQueue(lane_of)
        self._active = ActiveAttempts()
        # The host's resources and the line of tasks waiting for them (the runtime
        # shares it: status reads look up what a task holds or waits for, and process
        # attempts their GPU indices).
        self._slots: ResourceSlots[TaskSpec] = ResourceSlots() if resources is None else resources
        self._order = DispatchOrder(self._queue, self._slots, self._refuse_resources)
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
        self._admitting = True
        self._drained = threading.Event()
        self._cleanup_timer: TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def on_start(self) -> None:
        self._cleanup_timer = self._timers.schedule_after(
            self._cleanup_interval, self.actor_ref, CleanupDue()
        )
        _log.info(
            "supervisor.started",
            capacity=self._capacity,
            async_capacity=self._capacities[ASYNC_SLOTS],
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
                    self._check_drained()
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
                return self._dispatch()
            case CooldownOver(operation=operation):
                return self._release_held(operation)
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
        if not self._admitting:
            # Defensive: the runtime refuses submissions once closed, and any Submit it
            # told earlier is ahead of Shutdown in this mailbox.
            self._finish(spec.task_id, Cancelled(StopReason.SHUTDOWN))
            self._admission.leave()
            return
        self._enqueue(spec)
        self._dispatch()

    def _on_submit_batch(self, specs: tuple[TaskSpec, ...]) -> None:
        if not self._admitting:
            for spec in specs:
                self._on_submit(spec)
            return
        for spec in specs:
            self._enqueue(spec)
        self._dispatch()

    def _on_cancel(self, task_id: str) -> bool:
        cancelled = Cancelled(StopReason.CANCEL_REQUESTED)
        withdrawn = withdraw_pending(self._queue, self._slots, self._timers, task_id)
        if withdrawn is not None:
            if withdrawn == "admitted":  # one awaiting its operation never was
                self._admission.leave()
            self._finish(task_id, cancelled)
            self._check_drained()
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
        if not records or not self._admitting:
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
        self._dispatch()

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
        self._record_attempt(active, failed=True)
        active.retry_at = self._retry_at(active, outcome)
        if active.retry_at is None:
            self._finish(active.spec.task_id, outcome)
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
        outcome = message.outcome
        # Without a deadline to arm, a start is not told (AttemptStarted): its gate says.
        started = active.started or (active.gate is not None and active.gate.started)
        if not started and active.stopping is None:
            # The attempt failed before its operation began (its child could not start,
            # its start could not be stored): it was an attempt all the same, and a task
            # that is not running ends only by a cancel.
            self._registry.tell(MarkRunning(message.task_id, message.at, None, active.injected))
        if active.stopping is not None:
            if active.trial and self._breaker_gate.abandon_trial(active):
                self._release_held(active.spec.operation_name)
            if active.retry_at is not None:
                # Timed out, and its retry waited for this operation to return.
                self._requeue(active, active.retry_at)
            elif active.resumed is not None:
                # Resumed while it stopped: its next attempt may start now (the registry
                # has it pending: no Finish, which would end that attempt).
                if self._admitting:
                    self._enqueue(active.resumed)
                else:
                    self._abandon(active.resumed)
            else:
                # Already terminal: the registry keeps only a late result.
                self._registry.tell(Finish(message.task_id, outcome, message.at))
        else:
            failed = not isinstance(outcome, Completed | Cancelled)
            self._record_attempt(active, failed=failed)
            retry_at = self._retry_at(active, outcome) if failed else None
            if retry_at is not None:
                self._requeue(active, retry_at)
            else:
                self._registry.tell(Finish(message.task_id, outcome, message.at))
        self._dispatch()
        if not self._admitting:
            self._check_drained()

    # -- recurring schedules --------------------------------------------------------------

    def _on_add_schedule(self, message: AddSchedule) -> bool:
        if not self._admitting:
            return False
        self._schedules.add(message)
        return True

    def _on_schedule_tick(self, schedule_id: str) -> None:
        if not self._admitting:
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
            self._dispatch()

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
            self._dispatch()
        else:
            self.actor_ref.tell(DispatchDue())

    def _on_cleanup_due(self) -> None:
        self._registry.tell(Cleanup(self._clock.time() - self._max_task_age))
        self._cleanup_timer = self._timers.schedule_after(
            self._cleanup_interval, self.actor_ref, CleanupDue()
        )

    def _on_shutdown(self, cancel_pending: bool) -> threading.Event:
        self._admitting = False
        self._schedules.drop_all()
        drain = drain_for_shutdown(
            self._queue,
            self._slots,
            self._timers,
            cancel_pending=cancel_pending,
            durable=self._durable,
        )
        for spec in drain.cancelled:
            self._admission.leave()
            self._finish(spec.task_id, Cancelled(StopReason.SHUTDOWN))
        for record in drain.cancelled_awaiting:
            self._finish(record.task_id, Cancelled(StopReason.SHUTDOWN))
        for spec in drain.abandoned:
            self._abandon(spec)
        self._check_drained()
        return self._drained

    # -- internals -----------------------------------------------------------------------

    def _enqueue(self, spec: TaskSpec) -> None:
        """A new (or recovered) pending task: ready now, or at its ``not_before``."""
        if spec.not_before is not None and spec.not_before > self._clock.time():
            delay = max(spec.not_before - self._clock.time(), 0.0)
            timer = self._timers.schedule_after(delay, self.actor_ref, StartDue(spec.task_id))
            self._queue.delay(spec, timer)
        else:
            self._queue.push_ready(spec)

    def _dispatch(self) -> None:
        # Only the pools with something that may start: a ready task in their lane, or
        # (any pool) a task waiting in the resources line.
        lanes, line = self._queue.ready_lanes, self._slots.waiters
        for pool, capacity in self._capacities.items():
            if line or lanes.get(pool):  # see PendingQueue.has_ready_in
                self._dispatch_pool(pool, capacity)

    def _dispatch_pool(self, pool: str, capacity: int) -> None:
        breakers = self._breakers
        if breakers is not None and not breakers.enabled:
            breakers = None
        held = self._active.held_in
        while held.get(pool, 0) < capacity:
            spec = self._order.next_ready(pool)
            if spec is None:
                return
            trial = False
            if breakers is not None:
                verdict = breakers.may_start(spec.operation_name, self._clock.monotonic())
                if verdict == "no":
                    if not self._admitting:
                        self._abandon(spec)
                    elif self._queue.hold(spec):
                        self._arm_cooldown(spec.operation_name)
                    continue
                trial = verdict == "trial"
            self._admission.leave()
            self._start_worker(spec, trial=trial)

    def _refuse_resources(self, spec: TaskSpec, error: ResourcesUnavailableError) -> None:
        """A task (recovered from a store) asks for resources this runtime can never
        give: it ends, never run; the refusal create_task would have raised is logged."""
        _log.warning("task.resources_unavailable", task_id=spec.task_id, error=str(error))
        self._admission.leave()
        self._finish(spec.task_id, resources_refused(spec, self._clock.time()))

    def _arm_cooldown(self, operation: str) -> None:
        """Wake the held tasks of ``operation`` when its cool-down ends."""
        left = self._breaker_gate.cooldown_left(operation)
        if left is not None:
            self._timers.schedule_after(left, self.actor_ref, CooldownOver(operation))

    def _release_held(self, operation: str) -> None:
        """Put the tasks held back for ``operation`` in the queue again (the breaker
        decides at dispatch whether they start)."""
        self._queue.release(operation)
        self._dispatch()

    def _abandon(self, spec: TaskSpec) -> None:
        """A pending task the runtime stops for (shutdown): cancelled, or with a durable
        store left pending, for the next runtime."""
        self._admission.leave()
        if not self._durable:
            self._finish(spec.task_id, Cancelled(StopReason.SHUTDOWN))

    def _record_attempt(self, active: ActiveAttempt, *, failed: bool) -> None:
        """Tell the operation's circuit breaker how an attempt ended."""
        if self._breakers is None or not self._breakers.enabled:
            return  # the common case, once per task: no call further
        change = self._breaker_gate.record(active, failed=failed)
        if change == "tripped":
            if self._queue.has_held(active.spec.operation_name):
                self._arm_cooldown(active.spec.operation_name)
        elif change == "recovered":
            self._release_held(active.spec.operation_name)

    def _retry_at(self, active: ActiveAttempt, outcome: Outcome) -> float | None:
        """When the task's next attempt is due after ``outcome``, or None for none. Tells
        the registry (the task reads pending with its next attempt's time)."""
        if not self._admitting:
            return None
        now = self._clock.time()
        next_at = retry_due(active, outcome, now=now, rng=self._rng)
        if next_at is not None:
            self._registry.tell(RetryScheduled(active.spec.task_id, outcome, now, next_at))
        return next_at

    def _requeue(self, active: ActiveAttempt, at: float) -> None:
        """Queue the next attempt of a task whose attempt failed, in a fresh worker."""
        spec = next_attempt(active, at)
        self._admission.enter()
        if self._admitting:
            self._enqueue(spec)
        else:
            self._abandon(spec)

    def _start_worker(self, spec: TaskSpec, *, trial: bool = False) -> None:
        backend = self._launcher.backend_for(spec)
        if spec.options.resources is not None and holds_on_host(spec):
            self._slots.take(spec.task_id, spec.options.resources)
        active = self._launcher.launch(spec, backend, trial=trial)
        self._active.add(active)
        if active.started and spec.options.heartbeat_timeout is not None:
            self._attempt_timers.arm_heartbeat(active)

    def _begin_stopping(self, active: ActiveAttempt, reason: StopReason) -> None:
        self._attempt_timers.begin_stopping(active, reason)
        # A dead worker means the operation just returned: its WorkerFinished is queued here.
        with contextlib.suppress(pykka.ActorDeadError):
            active.worker.tell(Stop(reason))

    def _finish(self, task_id: str, outcome: Outcome) -> None:
        self._registry.tell(Finish(task_id, outcome, self._clock.time()))

    def _check_drained(self) -> None:
        if (
            not self._admitting
            and not self._active
            and nothing_left_to_run(self._queue, self._slots)
        ):
            self._drained.set()

    def _stats(self) -> SupervisorStats:
        return supervisor_stats(
            capacities=self._capacities,
            queue=self._queue,
            active=self._active,
            slots=self._slots,
            schedules=self._schedules.statistics(),
            admitting=self._admitting,
        )
