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
("stopping") until then, so a stuck operation can never multiply threads. There are two
slot pools (``attempts.slot_pool``): thread and process attempts share ``capacity``
(the operation pool's threads), coroutine attempts on the event loop have
``async_capacity`` of their own; the pending queue has a lane per pool, so a full pool
never holds up a task of the other.

Resources: a task that asks for some of the host's resources (``resources=``, held on
this host for thread, process and coroutine tasks) needs them as well as a slot. The
ledger and the line of tasks waiting for them are :class:`ResourceSlots` (``_slots``),
whose rule keeps the queue's order across sizes (see its module). A dispatch of a pool
takes, of the ready task at the head of its lane and the first task of the line that
may take its resources, the one ahead in the queue's order; a ready task that cannot
take its resources joins the line. Resources are taken when the worker is spawned and
freed with the slot, when the attempt has really ended.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, assert_never, cast

import pykka

from actors._clock import Clock
from actors._core.admission import AdmissionGate
from actors._core.attempts import (
    ASYNC_SLOTS,
    RAY_SLOTS,
    WORKER_SLOTS,
    ActiveAttempt,
    ActiveAttempts,
    next_forced_step,
    slot_pool,
)
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
from actors._core.resource_slots import HOST_ISOLATIONS, ResourceSlots, ResourceStats
from actors._core.schedules import Schedules
from actors._core.timers import TimerHandle, TimerService
from actors._enums import Isolation
from actors._errors import ResourcesUnavailableError
from actors._execution.backend import ExecutionBackend
from actors._execution.faults import FaultPlan
from actors._execution.published import Published
from actors._execution.start_gate import StartGate
from actors._execution.worker import WorkerActor
from actors._outcome import (
    Cancelled,
    Completed,
    Interrupted,
    Outcome,
    Stalled,
    StopReason,
    TimedOut,
)
from actors._policies import CircuitBreakers
from actors._records import TaskSpec
from actors._resources import Resources
from actors._storage.recovery import decide, interrupt
from actors._storage.store import CommitTicket
from actors.logs import library_logger

__all__ = ["SupervisorActor", "SupervisorStats"]

"""After the first interrupt, how often a stopping operation's thread is interrupted again
(an operation may catch TaskInterrupted, or be inside a C call when it is raised). In
process isolation the second step (SIGKILL) comes ``stop_grace`` after the first (SIGTERM)."""

_log = library_logger("actors.supervisor")


@dataclass(frozen=True, slots=True)
class SupervisorStats:
    """The supervisor's view. ``running`` and ``stopping`` count every attempt holding a
    slot; in each slot pool they never exceed its capacity: ``running + stopping -
    async_running - async_stopping - ray_running - ray_stopping <= capacity`` (threads
    and processes), ``async_running + async_stopping <= async_capacity`` (coroutines)
    and ``ray_running + ray_stopping <= ray_capacity`` (Ray attempts, those waiting in
    Ray's queue for resources included)."""

    capacity: int
    pending: int  # every task waiting: ready, delayed (or backing off), held by a breaker
    running: int
    stopping: int
    admitting: bool
    scheduled: int = 0  # of pending: delayed, or waiting out a retry's backoff
    held: int = 0  # of pending: held back by their operation's open circuit breaker
    # Not in pending: recovered tasks of an operation not registered yet.
    awaiting: int = 0
    # Recurring schedules by id: interval, runs, skipped, last_task_id, next_run_in.
    schedules: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    async_capacity: int = 0  # the event loop's slots (coroutine operations)
    async_running: int = 0  # of running: coroutine attempts
    async_stopping: int = 0  # of stopping: coroutine attempts
    # The host's resources: capacity, in use, holders, waiting (of pending: those in
    # the line for their resources); None when the runtime declares none.
    resources: ResourceStats | None = None
    ray_capacity: int = 0  # the Ray back-end's max_in_flight (0: no Ray back-end)
    ray_running: int = 0  # of running: Ray attempts (submitted, perhaps not started)
    ray_stopping: int = 0  # of stopping: Ray attempts


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
        self._backends = backends
        self._dispatcher = dispatcher
        self._clock = clock
        self._admission = admission
        self._max_task_age = max_task_age
        self._cleanup_interval = cleanup_interval
        self._stop_grace = stop_grace
        self._durable = durable
        self._start_timeout = start_timeout
        self._breakers = breakers
        self._faults = faults
        self._rng = random.Random()
        # Every pending task, wherever it waits (a delayed one with its StartDue timer).
        self._queue: PendingQueue[TimerHandle] = PendingQueue(_lane_of)
        self._active = ActiveAttempts()
        # The host's resources and the line of tasks waiting for them (the runtime
        # shares it: status reads look up what a task holds or waits for, and process
        # attempts their GPU indices).
        self._slots: ResourceSlots[TaskSpec] = ResourceSlots() if resources is None else resources
        self._schedules: Schedules[TimerHandle] = Schedules()
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
        for schedule in self._schedules:
            self._drop_schedule(schedule.schedule_id)
        _log.info("supervisor.stopped")

    # -- messages ------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SUPERVISOR_MESSAGES):
            return self._handle(cast(SupervisorMessage, message))
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
                return self._drop_schedule(schedule_id)
            case GetSchedules():
                return self._schedule_stats()
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
        removed = self._queue.remove(task_id)
        if removed is not None:
            if removed.handle is not None:
                self._timers.cancel(removed.handle)
            if removed.place != "awaiting":  # not admitted until its operation is known
                self._admission.leave()
            self._finish(task_id, cancelled)
            self._check_drained()
            return True
        if self._slots.withdraw(task_id) is not None:  # in the line for its resources
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
        outcome = TimedOut(timeout_seconds=timeout)
        self._record_attempt(active, failed=True)
        active.retry_at = self._retry_at(active, outcome)
        if active.retry_at is None:
            # The registry attaches the latest partial result it holds when it records this.
            self._finish(task_id, outcome)
        self._begin_stopping(active, StopReason.TIMEOUT)

    def _on_attempt_started(self, task_id: str) -> None:
        # The back-end recorded RUNNING itself, under the attempt's start gate; the
        # deadline starts now, so a cold child's start-up is not charged to the timeout.
        active = self._active.get(task_id)
        if active is None or active.started:
            return
        active.started = True
        if active.stopping is None:
            active.timer = self._arm_deadline(active.spec)
            self._arm_heartbeat(active)

    def _arm_heartbeat(self, active: ActiveAttempt) -> None:
        """The attempt started: its heartbeat deadline runs from now."""
        seconds = active.spec.options.heartbeat_timeout
        if seconds is None:
            return
        active.alive_since = self._clock.monotonic()
        active.watch = self._timers.schedule_after(
            seconds, self.actor_ref, HeartbeatDue(active.spec.task_id)
        )

    def _on_heartbeat_due(self, task_id: str) -> None:
        """The heartbeat deadline as of the last look: stalled if the operation has been
        silent for ``heartbeat_timeout`` seconds, else looked at again when it would be
        (one timer per attempt, not one per sign of life)."""
        active = self._active.get(task_id)
        if active is None or active.stopping is not None or active.watch is None:
            return  # ended or stopping: the timer raced it
        seconds = active.spec.options.heartbeat_timeout
        assert seconds is not None
        last = active.alive_since
        sign = None if active.published is None else active.published.last_sign()
        if sign is not None and sign > last:
            last = sign
        now = self._clock.monotonic()
        left = last + seconds - now
        if left > 0:
            active.watch = self._timers.schedule_after(left, self.actor_ref, HeartbeatDue(task_id))
            return
        active.watch = None
        outcome = Stalled(heartbeat_timeout=seconds, silent_seconds=round(now - last, 6))
        _log.warning("task.stall_detected", task_id=task_id, silent_seconds=outcome.silent_seconds)
        self._record_attempt(active, failed=True)
        active.retry_at = self._retry_at(active, outcome)
        if active.retry_at is None:
            # The registry attaches the latest progress, partial result and checkpoint.
            self._finish(task_id, outcome)
        self._begin_stopping(active, StopReason.STALLED)

    def _record_running(
        self, spec: TaskSpec, at: float, ticket: CommitTicket | None, injected: str | None
    ) -> TimerHandle | None:
        """Tell the registry RUNNING (before any progress of the attempt can reach it) and
        arm the deadline; returns its timer. So a cold child's start-up is not charged to
        the operation's timeout."""
        self._registry.tell(MarkRunning(spec.task_id, at, ticket, injected))
        return self._arm_deadline(spec)

    def _arm_deadline(self, spec: TaskSpec) -> TimerHandle | None:
        if spec.options.timeout is None:
            return None
        return self._timers.schedule_after(
            spec.options.timeout, self.actor_ref, DeadlinePassed(spec.task_id)
        )

    def _on_escalate(self, task_id: str) -> None:
        active = self._active.get(task_id)
        if active is None or active.stopping is None:
            return  # the operation returned meanwhile
        # The operation ignored is_cancelled() for stop_grace seconds: interrupt it, then
        # kill it; a back-end that cannot kill (threads) is interrupted again, more often,
        # until the operation has really returned.
        step, repeat = next_forced_step(
            active.forced_steps,
            stop_grace=self._stop_grace,
            kill_ends_attempt=active.backend.kill_ends_attempt,
        )
        active.forced_steps += 1
        with contextlib.suppress(pykka.ActorDeadError):
            active.worker.tell(step(active.stopping))
        active.timer = self._timers.schedule_after(repeat, self.actor_ref, EscalateStop(task_id))

    def _on_worker_finished(self, message: WorkerFinished) -> None:
        active = self._active.end(message.task_id)
        if active is None:
            return
        self._slots.release(message.task_id)  # with the slot: the attempt has ended
        if active.timer is not None:
            self._timers.cancel(active.timer)
        if active.watch is not None:
            self._timers.cancel(active.watch)
        outcome = message.outcome
        if not active.started and active.stopping is None:
            # The attempt failed before its operation began (its child could not start,
            # its start could not be stored): it was an attempt all the same, and a task
            # that is not running ends only by a cancel.
            self._registry.tell(MarkRunning(message.task_id, message.at, None, active.injected))
        if active.stopping is not None:
            if active.trial and active.stopping is not StopReason.TIMEOUT and self._breakers:
                self._breakers.abandon_trial(active.spec.operation_name)
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
        self._check_drained()

    # -- recurring schedules --------------------------------------------------------------

    def _on_add_schedule(self, message: AddSchedule) -> bool:
        if not self._admitting:
            return False
        schedule = self._schedules.add(
            message.schedule_id,
            message.interval,
            message.make_spec,
            message.operation,
            first_due=self._clock.monotonic() + message.first_in,
        )
        schedule.timer = self._timers.schedule_at(
            schedule.due, self.actor_ref, ScheduleTick(schedule.schedule_id)
        )
        return True

    def _on_schedule_tick(self, schedule_id: str) -> None:
        if not self._admitting:
            return
        schedule = self._schedules.advance(schedule_id)  # fixed rate: one interval on
        if schedule is None:
            return
        schedule.timer = self._timers.schedule_at(
            schedule.due, self.actor_ref, ScheduleTick(schedule_id)
        )
        last = schedule.last_task
        why = None
        if last is not None and self._unfinished(last):
            why = "last_run_unfinished"  # never two runs of one schedule at once
        elif self._breakers is not None and (
            self._breakers.refusal(schedule.operation, self._clock.monotonic()) is not None
        ):
            why = "operation_unavailable"  # its circuit breaker is open
        elif not self._admission.try_enter():
            why = "queue_full"
        if why is not None:
            schedule.skipped += 1
            _log.info("schedule.tick_skipped", schedule_id=schedule_id, reason=why, last=last)
            return
        spec = schedule.make_spec()
        schedule.last_task = spec.task_id
        schedule.runs += 1
        self._registry.tell(Register(spec))
        self._enqueue(spec)
        self._dispatch()

    def _unfinished(self, task_id: str) -> bool:
        """Still pending, or its operation still running (a stopping one included)."""
        return task_id in self._queue or task_id in self._active

    def _drop_schedule(self, schedule_id: str) -> bool:
        schedule = self._schedules.drop(schedule_id)
        if schedule is None:
            return False
        if schedule.timer is not None:
            self._timers.cancel(schedule.timer)
        return True

    def _schedule_stats(self) -> dict[str, dict[str, object]]:
        return self._schedules.statistics(self._clock.monotonic())

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
        for schedule in self._schedules:
            self._drop_schedule(schedule.schedule_id)
        pending = self._queue
        if cancel_pending:
            waiting = self._slots.take_all_waiting()
            for spec in pending.take_all_ready() + waiting + pending.take_all_held():
                self._admission.leave()
                self._finish(spec.task_id, Cancelled(StopReason.SHUTDOWN))
            for record in pending.take_all_awaiting():
                self._finish(record.task_id, Cancelled(StopReason.SHUTDOWN))
        # Otherwise tasks still waiting for their operation stay pending in the durable
        # store (only a durable store has them), for the next runtime that opens it.
        # Tasks that cannot start now (delayed, backing off, held by a breaker) are not
        # waited for: cancelled, or, with a durable store, left pending for the next
        # runtime that opens it.
        for spec, timer in pending.take_all_delayed():
            self._timers.cancel(timer)
            self._abandon(spec)
        for spec in pending.take_all_held():
            self._abandon(spec)
        if cancel_pending or self._durable:
            # Otherwise (memory store) tasks waiting for dependencies are run as those
            # finish (or dropped as they fail): the drain waits for them.
            for spec in pending.take_all_blocked():
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
        for pool, capacity in self._capacities.items():
            self._dispatch_pool(pool, capacity)

    def _dispatch_pool(self, pool: str, capacity: int) -> None:
        breakers = self._breakers
        if breakers is not None and not breakers.enabled:
            breakers = None
        while self._active.held(pool) < capacity:
            spec = self._next_ready(pool)
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

    def _next_ready(self, pool: str) -> TaskSpec | None:
        """The task to start next in ``pool``: of the head of its lane and the first task
        of the line that may take its resources now, the one ahead in the queue's order
        (priority, then seq). A head that cannot take its resources joins the line."""
        while True:
            admitted = self._slots.next_admitted(pool) if self._slots.waiting else None
            head = self._queue.peek_ready(pool)
            if admitted is not None and (head is None or admitted[0] < head):
                waiter = admitted[1]
                self._slots.withdraw(waiter.task_id)
                return waiter
            spec = self._queue.pop_ready(pool)
            if spec is None or not _holds_on_host(spec):
                return spec
            request = spec.options.resources
            assert request is not None
            key = (-spec.options.priority, spec.seq)
            if not self._slots.satisfiable(request):
                self._refuse_resources(spec, request)  # recovered, for other resources
            elif self._slots.may_take(request, key):
                return spec
            else:
                self._slots.wait(spec.task_id, key, request, pool, spec)

    def _refuse_resources(self, spec: TaskSpec, request: Resources) -> None:
        """A task (recovered from a store) asks for resources this runtime can never
        give: it ends ``Interrupted`` (cause ``resources_unavailable``), never run as if
        it held them; the refusal create_task would have raised is logged."""
        try:
            self._slots.check(request)
        except ResourcesUnavailableError as exc:
            _log.warning("task.resources_unavailable", task_id=spec.task_id, error=str(exc))
            self._admission.leave()
            now = self._clock.time()
            outcome = Interrupted(
                was_running=False,
                attempt=spec.prior_attempts,
                last_seen_at=spec.created_at,
                recovered_at=now,
                cause="resources_unavailable",
            )
            self._finish(spec.task_id, outcome)

    def _arm_cooldown(self, operation: str) -> None:
        """Wake the held tasks of ``operation`` when its cool-down ends. While a trial
        runs (the cool-down is over) its outcome releases them instead."""
        assert self._breakers is not None
        end = self._breakers.cooldown_end(operation)
        now = self._clock.monotonic()
        if end is not None and end > now:
            self._timers.schedule_after(end - now, self.actor_ref, CooldownOver(operation))

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
            return
        operation = active.spec.operation_name
        change = self._breakers.record(operation, failed, self._clock.monotonic())
        active.trial = False
        if change == "tripped":
            if self._queue.has_held(operation):
                self._arm_cooldown(operation)
            snapshot = self._breakers.snapshot(self._clock.monotonic())[operation]
            _log.warning(
                "operation.tripped",
                operation=operation,
                retry_after=snapshot["retry_after"],
                trips=snapshot["trips"],
            )
        elif change == "recovered":
            _log.info("operation.recovered", operation=operation)
            self._release_held(operation)

    def _retry_at(self, active: ActiveAttempt, outcome: Outcome) -> float | None:
        """When the task's next attempt is due after ``outcome``, or None for none. Tells
        the registry (the task reads pending with its next attempt's time)."""
        policy = active.spec.options.retry
        if policy is None or not self._admitting or not policy.retries(outcome, active.attempt):
            return None
        now = self._clock.time()
        next_at = now + policy.delay(active.attempt, self._rng)
        self._registry.tell(RetryScheduled(active.spec.task_id, outcome, now, next_at))
        return next_at

    def _requeue(self, active: ActiveAttempt, at: float) -> None:
        """Queue the next attempt of a task whose attempt failed, in a fresh worker."""
        # The next attempt resumes from the latest checkpoint this one published.
        published = active.published
        latest = None if published is None else published.latest_checkpoint()
        spec = replace(
            active.spec,
            prior_attempts=active.attempt,
            not_before=at,
            resume_json=active.spec.resume_json if latest is None else latest,
        )
        self._admission.enter()
        if self._admitting:
            self._enqueue(spec)
        else:
            self._abandon(spec)

    def _start_worker(self, spec: TaskSpec, *, trial: bool = False) -> None:
        now = self._clock.time()
        # A test's injected fault: the worker runs the wrapped operation, the attempt
        # keeps the real spec (a retry runs the real one).
        run_spec, injected = spec, None
        if self._faults is not None:
            run_spec, injected = self._faults.apply(spec)
        backend = self._backend_for(spec)
        if _holds_on_host(spec):
            assert spec.options.resources is not None
            self._slots.take(spec.task_id, spec.options.resources)
        # With a durable store the operation waits until RUNNING is committed: a crash can
        # then never make a task that had started read "pending" and run a second time. A
        # back-end that starts later records RUNNING itself, through its start gate.
        ticket = CommitTicket(spec.task_id) if self._durable else None
        # What the operation publishes; a durable store's checkpoint waits for its commit.
        published = Published(self._clock.monotonic, self._start_timeout if self._durable else None)
        gate = None if backend.starts_on_handover else StartGate()
        timer = None
        if gate is None:
            timer = self._record_running(spec, now, ticket, injected)
        worker = WorkerActor.spawn(
            spec=run_spec,
            backend=backend,
            supervisor=self.actor_ref,
            registry=self._registry,
            clock=self._clock,
            dispatcher=self._dispatcher,
            start_gate=gate,
            injected_fault=injected,
            start_ticket=ticket,
            start_timeout=self._start_timeout,
            store_results=self._durable,
            published=published,
        )
        active = ActiveAttempt(
            spec,
            worker.actor_ref,
            backend,
            timer,
            started=gate is None,
            gate=gate,
            injected=injected,
            attempt=spec.prior_attempts + 1,
            trial=trial,
            published=published,
        )
        self._active.add(active)
        if gate is None:
            self._arm_heartbeat(active)

    def _backend_for(self, spec: TaskSpec) -> ExecutionBackend:
        isolation = spec.options.isolation
        if isolation is None:  # the runtime resolves it before a spec is made
            raise ValueError(f"task {spec.task_id} has no resolved isolation")
        return self._backends[isolation]

    def _begin_stopping(self, active: ActiveAttempt, reason: StopReason) -> None:
        self._active.stop(active, reason)
        if active.gate is not None:
            active.gate.stop(reason)  # one that has not started never will
        if active.timer is not None:
            self._timers.cancel(active.timer)
        if active.watch is not None:
            self._timers.cancel(active.watch)
            active.watch = None
        # A dead worker means the operation just returned: its WorkerFinished is queued here.
        with contextlib.suppress(pykka.ActorDeadError):
            active.worker.tell(Stop(reason))
        active.timer = self._timers.schedule_after(
            self._stop_grace, self.actor_ref, EscalateStop(active.spec.task_id)
        )

    def _finish(self, task_id: str, outcome: Outcome) -> None:
        self._registry.tell(Finish(task_id, outcome, self._clock.time()))

    def _check_drained(self) -> None:
        if not self._admitting and not self._active:
            waiting = self._queue.statistics()
            if not (waiting.ready or waiting.held or waiting.blocked or self._slots.waiting):
                self._drained.set()

    def _stats(self) -> SupervisorStats:
        waiting = self._queue.statistics()
        return SupervisorStats(
            capacity=self._capacity,
            pending=(
                waiting.ready
                + waiting.delayed
                + waiting.held
                + waiting.blocked
                + self._slots.waiting
            ),
            running=self._active.running,
            stopping=self._active.stopping,
            admitting=self._admitting,
            scheduled=waiting.delayed,
            held=waiting.held,
            awaiting=waiting.awaiting,
            schedules=self._schedule_stats(),
            async_capacity=self._capacities[ASYNC_SLOTS],
            async_running=self._active.held(ASYNC_SLOTS) - self._active.stopping_in(ASYNC_SLOTS),
            async_stopping=self._active.stopping_in(ASYNC_SLOTS),
            resources=self._slots.statistics() if self._slots.capacity else None,
            ray_capacity=self._capacities[RAY_SLOTS],
            ray_running=self._active.held(RAY_SLOTS) - self._active.stopping_in(RAY_SLOTS),
            ray_stopping=self._active.stopping_in(RAY_SLOTS),
        )


def _holds_on_host(spec: TaskSpec) -> bool:
    """Whether the task's resources are taken from this host's ledger. The hook for
    another isolation (Ray): its resources are checked and held where it runs, so the
    supervisor only gives it a slot."""
    return spec.options.resources is not None and spec.options.isolation in HOST_ISOLATIONS


def _lane_of(spec: TaskSpec) -> str:
    """A ready task's lane in the pending queue: its slot pool."""
    return slot_pool(spec.options.isolation)
