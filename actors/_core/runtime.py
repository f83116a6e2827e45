"""The runtime: one supervisor, one registry, a timer service, a dispatcher for worker
actors and a pool of operation threads, assembled behind a small blocking API.

Every call that needs an answer asks an actor with a timeout (``ask_timeout``), so no
caller can hang on a stuck actor. Once shut down, queries are answered from the final
task table, which no actor writes any more. The parts are built and connected in
``actors._core.assembly``; this module is the facade over them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.assembly import assemble
from actors._core.awaitable import AwaitableRuntime, FacadeParts
from actors._core.closing import stop_in_background
from actors._core.messages import (
    Cancel,
    CancelSchedule,
    Cleanup,
    Flush,
    GetSchedules,
    GetStats,
    GetSupervisorStats,
    OperationRegistered,
    RegisterDependent,
    TaskPage,
)
from actors._core.notifier import TaskEvent
from actors._core.queries import ask
from actors._core.reopening import reopen
from actors._core.schedule_requests import schedule_request
from actors._core.settings import RuntimeSettings
from actors._core.shutdown_sequence import ShutdownSequence
from actors._core.stats import RuntimeStats
from actors._core.submission_path import SubmissionPath
from actors._core.supervisor import SupervisorStats
from actors._core.table import TableStats
from actors._enums import Isolation, TaskStatus
from actors._errors import (
    ActorRestartedError,
    ActorUnresponsiveError,
    RuntimeClosedError,
    UnknownTaskError,
)
from actors._execution.api import AnyOperation
from actors._execution.async_backend import AsyncBackend
from actors._execution.faults import FaultPlan
from actors._execution.main_guard import leave_if_importing_main
from actors._execution.ray_backend import RayBackend
from actors._ids import new_id
from actors._operations import NamedOperation
from actors._policies import OperationLimits, RetryPolicy
from actors._records import TaskSnapshot
from actors._resources import Resources
from actors._storage.store import CommitTicket, Store
from actors.logs import library_logger
from actors.validation import check_seconds

__all__ = ["RuntimeStats", "TaskRuntime"]

_log = library_logger("actors.registry")


class TaskRuntime:
    """Supervised execution of operations, one worker actor per task.

    Args:
        concurrency: operations that may run at once in threads and processes (threads
            in the operation pool).
        async_concurrency: coroutine operations (``async def``) that may run at once on
            the event loop: slots of their own, apart from ``concurrency``.
        max_pending: tasks that may wait for a slot; past it ``submit`` raises
            :class:`QueueFullError`.
        max_task_age: seconds a terminal task is retained by the automatic cleanup.
        cleanup_interval: seconds between automatic cleanups (a supervisor timer).
        clock: where time comes from; a :class:`ManualClock` in tests.
        ask_timeout: seconds any blocking query waits for an actor before raising
            :class:`ActorUnresponsiveError`.
        stop_grace: seconds a timed-out or cancelled operation may take to return by
            itself (it sees ``is_cancelled()``) before its thread is interrupted with
            :class:`TaskInterrupted`, repeatedly, until it has left the operation.
        store: where records live. None (or a :class:`MemoryStore`) keeps them in memory
            only; a durable store (:class:`SqliteStore`) is opened here, its records are
            recovered (see ``actors._storage.recovery``), and every acknowledged change survives
            a crash of the process.
        retry: the retry policy of tasks that do not give one (None: no retries).
        max_failures, failure_window, cooldown: restart intensity per operation: more
            than ``max_failures`` failed attempts within ``failure_window`` seconds refuse
            new tasks of that operation (:class:`OperationUnavailableError`) and hold its
            pending ones for ``cooldown`` seconds (default: ``failure_window``), then let
            one trial task through. None (the default) turns it off.
        operations: named operations to register before the store is recovered:
            ``{name: function}``, or ``{name: NamedOperation(function,
            retry_on_interrupt=True)}`` for one that may run again after a crash.
        max_restarts, restart_window: the restart intensity of the runtime's own parts:
            a failed registry or timer service is restarted and rebuilt, but more than
            ``max_restarts`` restarts within ``restart_window`` seconds stop the runtime
            (pending tasks cancelled) with the reason logged, instead of a restart loop.
        resources: what this host has that tasks may ask for by name, such as
            ``{"gpu": 2, "vram_gb": 80, "render_license": 1}`` (``gpu`` in whole
            devices). A thread, process or coroutine task that asks for some
            (``resources=``) starts only when all of it is free, holds it until its
            attempt has really ended, and waits in the order of the queue (see
            ``actors._core.resource_slots``); a request naming an undeclared resource,
            or more than there is, is refused by ``submit``.
    """

    def __init__(
        self,
        *,
        concurrency: int = 4,
        async_concurrency: int = 1000,
        max_pending: int = 100_000,
        max_task_age: float = 3600.0,
        cleanup_interval: float = 300.0,
        clock: Clock | None = None,
        ask_timeout: float = 30.0,
        stop_grace: float = 2.0,
        isolation: Isolation | str = Isolation.THREAD,
        max_tasks_per_child: int | None = 100,
        memory_limit_mb: float | None = None,
        cpu_time_limit: float | None = None,
        store: Store | None = None,
        operations: Mapping[str, AnyOperation | NamedOperation] | None = None,
        retry: RetryPolicy | None = None,
        max_failures: int | None = None,
        failure_window: float = 60.0,
        cooldown: float | None = None,
        max_restarts: int = 3,
        restart_window: float = 60.0,
        resources: Mapping[str, float] | None = None,
        ray: RayBackend | None = None,
        name: str = "actors",
    ) -> None:
        leave_if_importing_main()  # in a spawned child importing an unguarded main module
        settings = RuntimeSettings.checked(
            concurrency=concurrency,
            async_concurrency=async_concurrency,
            max_pending=max_pending,
            max_task_age=max_task_age,
            cleanup_interval=cleanup_interval,
            clock=clock,
            ask_timeout=ask_timeout,
            stop_grace=stop_grace,
            isolation=isolation,
            max_tasks_per_child=max_tasks_per_child,
            memory_limit_mb=memory_limit_mb,
            cpu_time_limit=cpu_time_limit,
            store=store,
            retry=retry,
            max_failures=max_failures,
            failure_window=failure_window,
            cooldown=cooldown,
            max_restarts=max_restarts,
            restart_window=restart_window,
            resources=resources,
        )
        self._settings = settings
        self._clock = settings.clock
        self._durable = settings.store.durable
        self._ask_timeout = settings.ask_timeout
        parts = assemble(
            settings,
            owner=self,
            ray=ray,
            operations=operations,
            name=name,
            give_up=self._give_up,
            closed=lambda: self.closed,
        )
        self._parts = parts
        # Whether it still accepts work, and its shutdown (begun once).
        self._closing = ShutdownSequence(
            submit_lock=parts.submit_lock,
            healing=parts.healing,
            drain=parts.drain,
            steps=parts.teardown_steps,
            in_operation=lambda: (
                parts.op_pool.owns_current_thread() or parts.loop.owns_current_thread()
            ),
            running=lambda: [s.task_id for s in self.list(TaskStatus.RUNNING)],
            supervisor=lambda: self.stats().supervisor,
            subscription=lambda: parts.subscriptions.stopping,
        )
        # Direct attributes for what the facades read (no lookup through the parts).
        self._specs, self._admission = parts.specs, parts.admission
        self._submit_lock = parts.submit_lock
        self._registry, self._supervisor = parts.registry, parts.supervisor
        # The submission's steps, which the awaitable facade shares.
        self._submission = SubmissionPath(
            specs=parts.specs,
            breakers=parts.breakers,
            clock=self._clock,
            admission=parts.admission,
            max_pending=settings.max_pending,
            seq=parts.seq,
            lock=parts.submit_lock,
            registry=parts.registry,
            supervisor=parts.supervisor,
            waiters=parts.waiters,
            durable=self._durable,
            refusal=self._closing.refusal,
        )
        self._healing, self._table, self._queries = parts.healing, parts.table, parts.queries
        self._subscriptions, self._listening = parts.subscriptions, parts.listening
        self._dispatcher, self._ray, self._stats = parts.dispatcher, parts.ray, parts.stats
        self._fail_registry = parts.fail_registry  # the fault plan's hook (tests arm it)

    # -- properties ---------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def concurrency(self) -> int:
        return self._settings.concurrency

    @property
    def resources(self) -> Resources | None:
        """The host's resources tasks may ask for (None: none declared)."""
        return self._parts.slots.capacity

    @property
    def async_concurrency(self) -> int:
        return self._settings.async_concurrency

    @property
    def async_backend(self) -> AsyncBackend:
        """The event loop's back-end (its statistics, its watchdog)."""
        return self._parts.loop

    @property
    def closed(self) -> bool:
        return self._closing.closed

    # -- commands ------------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        """Fault injection for tests: ``faults.raise_error(OSError(), operation="x")``."""
        return self._parts.faults

    @property
    def store(self) -> Store:
        return self._settings.store

    def register_operation(
        self,
        name: str,
        function: AnyOperation,
        *,
        retry_on_interrupt: bool = False,
        limits: OperationLimits | None = None,
    ) -> None:
        """Make ``function`` reachable as ``name`` (``submit(name, ...)``), and queue the
        recovered pending tasks that were waiting for it, in their original order.

        ``retry_on_interrupt``: the operation is safe to run again from the start when
        the process died while it ran; such tasks are queued again after a restart
        instead of failing with :class:`Interrupted`. ``limits``: this operation's own
        restart intensity (else the runtime's).
        """
        if limits is not None and not isinstance(limits, OperationLimits):
            raise TypeError(f"limits must be OperationLimits, got {type(limits).__name__}")
        with self._submit_lock:
            self._parts.operations.register(name, function, retry_on_interrupt=retry_on_interrupt)
            if limits is not None:
                self._parts.breakers.set_limits(name, limits)
            # Recovered tasks awaiting this name wait in the supervisor's queue, which
            # queues them now (after a shutdown they stay pending in the store).
            with contextlib.suppress(pykka.ActorDeadError):
                self._supervisor.tell(
                    OperationRegistered(name, self._parts.operations.resolve(name))
                )
        _log.info("operation.registered", operation=name)

    def subscribe(
        self,
        target: Callable[[TaskEvent], Any] | pykka.ActorRef[Any],
        *,
        task_id: str | None = None,
        events: Iterable[str] | None = None,
    ) -> str:
        """Deliver lifecycle events (:class:`TaskEvent`) to ``target``: a callable, called
        on a thread of its own, or a pykka actor ref, told each event as a message.
        ``task_id`` limits them to one task, ``events`` to some kinds (``"created"``,
        ``"started"``, ``"progress"``, ``"retry"``, ``"terminal"``, or the exact kinds).
        Events of one task arrive in order. Returns the subscription id."""
        if self._closing.refusing:
            raise self._closing.closed_error("nothing more will happen")
        try:
            return self._subscriptions.subscribe(target, task_id=task_id, events=events)
        except pykka.ActorDeadError:
            raise RuntimeClosedError(
                "the task manager shut down while subscribing; nothing more will happen"
            ) from None

    def unsubscribe(self, subscription_id: str) -> bool:
        """Stop a subscription (after the events already on their way to it); False if
        unknown."""
        return self._subscriptions.unsubscribe(subscription_id)

    def operation_names(self) -> list[str]:
        return self._parts.operations.names()

    def submit(
        self,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        **options: Any,
    ) -> str:
        """Queue ``operation(params, task)``; returns the new task id at once.

        ``operation`` is a function or the name of a registered one. The task is visible
        to :meth:`snapshot` as soon as this returns, and with a durable store it is
        committed by then. ``isolation`` and the limits default to the runtime's; limits
        need process isolation, and in process isolation the operation and its params
        must be picklable. With a durable store the params must be JSON, and the
        operation receives them as JSON reads them back (tuples become lists). In every
        store mode they must be valid Unicode and nested at most ``MAX_NESTING`` deep
        (else :class:`UnstorableValueError`).

        ``options`` are :class:`TaskOptions`' fields (its declaration lists them); an
        unknown one raises :class:`UnknownOptionError` naming it. The snapshot's
        ``options`` are these, resolved (the runtime's defaults filled in). ``delay``
        (seconds) or ``run_at`` (an aware datetime): the task stays pending until then.
        ``retry``: its retry policy (default: the runtime's). ``depends_on``: ids of
        existing tasks that must complete first (their results reach the operation as
        ``task.dependency_results``); if one fails or is cancelled, this task is
        cancelled with a :class:`DependencyFailed` fact.
        """
        path = self._submission
        fields = path.fields(operation, params, operation_name, options)
        task_id = new_id()  # outside the lock (see SubmissionPath.admit)
        lock = path.lock  # acquire/release, not ``with``: half the cost (measured)
        lock.acquire()
        try:
            spec, ticket = path.admit(task_id, fields)
            if spec.options.depends_on:
                # The registry resolves the dependencies and forwards the task to the
                # supervisor itself, so its answer and the task's release keep one order.
                try:
                    verdict, unknown = self._ask(
                        self._registry, RegisterDependent(spec, ticket), "registry"
                    )
                except ActorRestartedError:
                    verdict, unknown = path.restarted_verdict()
                path.check_verdict(verdict, unknown)
            else:
                path.register_and_submit(spec, ticket)
        finally:
            lock.release()
        if ticket is not None:
            # Outside the lock, so concurrent submitters share one commit.
            self._await_commit(ticket, spec.task_id)
        return spec.task_id

    def check_task(self, operation: AnyOperation | str, params: Any = None, **options: Any) -> None:
        """Raise what :meth:`submit` would raise for these arguments, creating nothing
        (dependencies are checked only by submit: they must exist then)."""
        self._specs.fields(operation, params, **options)

    def schedule_every(
        self,
        interval: float,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        *,
        first_in: float | None = None,
        **options: Any,
    ) -> str:
        """Submit one task of ``operation(params, task)`` every ``interval`` seconds, the
        first ``first_in`` seconds from now (default: one interval). A tick that finds the
        schedule's last task still pending or running is skipped (and counted), so two
        runs of one schedule never overlap. ``options`` are :meth:`submit`'s (timeout,
        priority, retry, ...). Returns the schedule id; schedules live as long as the
        runtime (a durable store does not keep them)."""
        parts = self._parts
        message = schedule_request(
            parts.specs, parts.seq, self._clock, interval, operation, params, first_in, options
        )
        if self._closing.refusing or not self._ask(self._supervisor, message, "supervisor"):
            raise self._closing.closed_error("it schedules nothing")
        return message.schedule_id

    def cancel_schedule(self, schedule_id: str) -> bool:
        """Stop a schedule (a task it already submitted carries on); False if unknown."""
        try:
            return bool(self._ask(self._supervisor, CancelSchedule(schedule_id), "supervisor"))
        except pykka.ActorDeadError:
            return False

    def schedules(self) -> dict[str, dict[str, Any]]:
        """Each schedule's interval, runs, skipped ticks, last task and next run."""
        try:
            result: dict[str, dict[str, Any]] = self._ask(
                self._supervisor, GetSchedules(), "supervisor"
            )
        except pykka.ActorDeadError:
            return {}
        return result

    def resume(self, task_id: str) -> None:
        """A new attempt of an ended task from its latest checkpoint: the task (same id)
        is pending again, and its operation receives the checkpoint as
        ``task.resume_from``. Allowed for a failed or cancelled task of a named
        operation (registered here) that has a checkpoint; with a durable store the
        reopening is committed when this returns.

        Raises :class:`UnknownTaskError` for an unknown id, :class:`NotResumableError`
        (saying why and what would make it resumable) for a task that cannot be resumed,
        and as ``submit`` does when the queue is full or the runtime closed."""
        snapshot = self.snapshot(task_id)
        if snapshot is None:
            raise UnknownTaskError(task_id)
        entry = self._parts.operations.get(snapshot.operation_name)
        with self._submit_lock:
            if self._closing.refusing:
                raise self._closing.closed_error("it resumes no task")
            ticket = reopen(
                task_id,
                None if entry is None else entry.function,
                at=self._clock.time(),
                admission=self._admission,
                durable=self._durable,
                ask_registry=lambda message: self._ask(self._registry, message, "registry"),
            )
        if ticket is not None:
            self._await_commit(ticket, None)

    def cancel(self, task_id: str) -> bool:
        """Cancel a pending or running task. False if unknown or already terminal.

        When True is returned, a status read shows the task cancelled; with a durable
        store the cancellation is committed by then: a crash afterwards cannot bring the
        task back to run."""
        accepted = self._cancel(task_id)
        # The registry may have recorded it already (the supervisor told it before its
        # answer): then the board shows the end, committed, and no Flush is needed.
        if accepted and self._queries.ended_on_board(task_id) is None:
            ticket = CommitTicket(task_id)
            with contextlib.suppress(pykka.ActorDeadError):  # stopped: it committed
                # Behind the Finish the supervisor (or _cancel) told the registry.
                self._registry.tell(Flush(ticket))
                self._await_commit(ticket, None)
        return accepted

    def _cancel(self, task_id: str) -> bool:
        try:
            return bool(self._ask(self._supervisor, Cancel(task_id), "supervisor"))
        except pykka.ActorDeadError:
            return False  # shut down: every task is terminal already

    def cleanup(self, max_age_seconds: float = 3600.0) -> int:
        """Remove terminal tasks that ended more than ``max_age_seconds`` ago."""
        max_age = check_seconds("max_age_seconds", max_age_seconds, allow_zero=True) or 0.0
        message = Cleanup(self._clock.time() - max_age)
        return int(
            self._queries.query(
                message, lambda: len(self._table.remove_ended_before(message.cutoff))
            )
        )

    def shutdown(
        self, *, wait: bool = True, cancel_pending: bool = False, timeout: float | None = None
    ) -> None:
        """Stop admitting tasks; run (or cancel) the pending ones; then stop every actor
        and thread. With ``wait``, return only once all of them are gone.

        ``timeout`` bounds the wait: past it :class:`TimeoutError` is raised and the
        shutdown carries on in the background.
        """
        timeout = check_seconds("timeout", timeout, allow_none=True, allow_zero=True)
        self._closing.run(wait=wait, cancel_pending=cancel_pending, timeout=timeout)

    # -- queries -------------------------------------------------------------------------

    def snapshot(self, task_id: str) -> TaskSnapshot | None:
        """The task's snapshot, or None for an unknown (or removed) id."""
        return self._queries.snapshot(task_id)

    def wait(self, task_id: str, timeout: float | None = None) -> TaskSnapshot:
        """Block until the task is terminal; returns its snapshot.

        Raises :class:`UnknownTaskError` for an unknown id and :class:`TimeoutError` if
        ``timeout`` seconds pass first. No polling: the registry wakes the caller.
        """
        return self._queries.wait(task_id, timeout)

    def list(
        self, status: TaskStatus | None = None, limit: int | None = None, user: str | None = None
    ) -> list[TaskSnapshot]:
        """Snapshots with ``status`` (all if None): pending ones in the order they will run.
        With ``user``, only the tasks that user created."""
        return self._queries.list(status, limit, user)

    def page(
        self,
        status: TaskStatus | None = None,
        *,
        after: int = -1,
        limit: int,
        user: str | None = None,
    ) -> TaskPage:
        """Up to ``limit`` snapshots with ``status`` (all if None) in submission order,
        after the task whose ``seq`` is ``after``; only ``user``'s when given. The
        registry answers from its indexes (built by the first page): a page costs its
        own size. Pass the answer's ``next_after`` as ``after`` for the next page (None:
        no more)."""
        return self._queries.page(status, after=after, limit=limit, user=user)

    def group(self, group_id: str) -> Sequence[TaskSnapshot] | None:
        """Snapshots of a group's retained members, in creation order (None: unknown)."""
        return self._queries.group(group_id)

    def stats(self) -> RuntimeStats:
        table: TableStats = self._queries.query(GetStats(), self._table.stats)
        try:
            supervisor: SupervisorStats = self._ask(
                self._supervisor, GetSupervisorStats(), "supervisor"
            )
        except pykka.ActorDeadError:
            supervisor = self._stats.stopped_supervisor()
        return self._stats.around(table, supervisor)

    def sync(self) -> None:
        """Return once the supervisor, then the registry, then the notifier have handled
        every message sent to them before this call (and what each told the next
        meanwhile): the effects are recorded and their events are with the subscribers.

        For tests on a :class:`ManualClock`: after ``clock.advance(...)`` the due timers
        have been told; after ``sync()`` their effects (a timeout recorded, a retry
        queued, a cleanup done) can be read.
        """
        if self.closed:
            return
        with contextlib.suppress(pykka.ActorDeadError):
            self._ask(self._supervisor, GetSupervisorStats(), "supervisor")
            self._ask(self._registry, GetStats(), "registry")
            self._subscriptions.flush()

    def awaitable(self) -> AwaitableRuntime:
        """This runtime's submit, snapshot, wait, cancel, page, stats, sync and a task's
        events as coroutines, for callers on an event loop: the same tasks and actors,
        with no thread blocked per call."""
        return AwaitableRuntime(
            FacadeParts(
                submission=self._submission,
                registry=self._registry,
                supervisor=self._supervisor,
                queries=self._queries,
                table=self._table,
                stats=self._stats,
                subscriptions=self._subscriptions,
                dispatcher=self._dispatcher,
                ask_timeout=self._ask_timeout,
                closed=lambda: self.closed,
            )
        )

    # -- self-healing ----------------------------------------------------------------------

    @property
    def stopped_reason(self) -> str | None:
        """Why the runtime stopped itself (its parts failed too often, or its supervisor
        failed), or None."""
        return self._healing.gave_up_reason

    def _give_up(self, reason: str) -> None:
        """The runtime cannot go on (the restart intensity was exceeded, or the
        supervisor failed): stop cleanly, from a thread of its own."""
        stop_in_background(lambda: self.shutdown(wait=False, cancel_pending=True), reason)

    # -- internals -----------------------------------------------------------------------

    def _await_commit(self, ticket: CommitTicket, new_task: str | None) -> None:
        if not ticket.wait(self._ask_timeout):
            raise ActorUnresponsiveError("registry", "a commit", self._ask_timeout)
        if ticket.error is not None:
            if new_task is not None:
                # Not durable: do not leave it running behind a caller who got an error.
                self._cancel(new_task)
            raise ticket.error

    def _ask(self, ref: pykka.ActorRef[Any], message: Any, actor: str) -> Any:
        return ask(ref, message, actor, self._ask_timeout)
