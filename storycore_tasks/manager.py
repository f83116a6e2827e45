"""TaskManager: the API StoryCore already calls, on top of the actor runtime.

It validates input, hands tasks to the :class:`actors.TaskRuntime`, and turns the
runtime's snapshots and failure facts into StoryCore's status dicts and ErrorDetails.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar, overload

import pykka

from actors import (
    Clock,
    FaultPlan,
    Isolation,
    NamedOperation,
    OperationLimits,
    RayBackend,
    RetryPolicy,
    RuntimeStats,
    SqliteStore,
    Store,
    TaskEvent,
    TaskPriority,
    TaskRuntime,
    TaskSnapshot,
    TaskStatus,
    UnknownGroupError,
    UnknownOptionError,
    UnknownTaskError,
)
from actors._core.resource_slots import ResourceStats
from actors._execution.api import AnyOperation
from actors._execution.async_backend import LoopStats
from actors._options import OptionKind, options_of
from actors._resources import Resources
from actors.validation import check_count, check_seconds
from storycore_tasks.errors import error_from_outcome, iso_utc

__all__ = ["TaskManager", "is_task_id", "open_store", "snapshot_to_status"]

_Op = TypeVar("_Op", bound="AnyOperation")


class _Registrar(Protocol):
    """``register_operation(name)`` used as a decorator: it returns the function."""

    def __call__(self, function: _Op, /) -> _Op: ...


class TaskManager:
    """Runs StoryCore's long operations under supervision.

    ``create_task`` answers at once with a task id; the operation runs as
    ``operation(params, task)`` in a worker actor while clients poll
    ``get_task_status``, ``wait`` or ``cancel_task``.

    Args:
        num_workers: operations that may run at once in threads and processes.
        async_concurrency: coroutine operations (``async def op(params, task)``) that
            may run at once on the manager's event loop, apart from ``num_workers``.
        default_timeout: seconds a task may run when ``create_task`` gives no timeout
            (None: no limit).
        max_task_age: seconds a finished task is kept before the automatic cleanup.
        cleanup_interval: seconds between automatic cleanups.
        max_pending: tasks that may wait for a worker; past it ``create_task`` raises
            :class:`actors.QueueFullError` (``SERVICE_UNAVAILABLE``).
        clock: an :class:`actors.Clock`; tests pass a :class:`actors.ManualClock`.
        isolation: where plain operations run by default: ``"thread"`` (a thread of
            this process) or ``"process"`` (a warm child process, which contains crashes
            and can be killed and limited); ``create_task`` can override it per task. A
            coroutine function always runs on the event loop (``"async"``).
        stop_grace: seconds a timed-out or cancelled operation gets to notice
            ``is_cancelled()`` and return. Then, in thread isolation, its thread is
            interrupted with :class:`actors.TaskInterrupted` until it has left the
            operation; in process isolation its child gets SIGTERM, and SIGKILL one more
            ``stop_grace`` later.
        max_tasks_per_child: tasks a child process runs before it is replaced (None: no
            limit).
        memory_limit_mb: address-space limit of the child running a process-isolated
            task (it includes the interpreter, about 30 MB); past it the task fails with
            ``RESOURCE_EXHAUSTED``.
        cpu_time_limit: CPU seconds a process-isolated task may use; past it the task
            fails with ``RESOURCE_EXHAUSTED``.
        ask_timeout: seconds any query waits for the manager's actors before raising
            :class:`actors.ActorUnresponsiveError`.
        store: where task records live. None keeps them in memory (lost with the
            process); ``"sqlite:///path/to/tasks.db"`` (or a ``pathlib.Path``) keeps
            them in a SQLite file that survives crashes and restarts; or any
            :class:`actors.Store`. Opening an existing file recovers its tasks.
        operations: named operations to register up front, before the store's tasks
            are recovered: ``{name: function}``, or ``{name: NamedOperation(function,
            retry_on_interrupt=True)}`` for one that is safe to run again after a crash
            interrupted it.
        retry: the :class:`RetryPolicy` of tasks that give none (None: no retries).
        max_failures, failure_window, cooldown: restart intensity per operation, as an
            OTP supervisor's intensity and period: more than ``max_failures`` failed
            attempts of one operation within ``failure_window`` seconds make new tasks of
            it fail with ``SERVICE_UNAVAILABLE`` (and a ``retry_after``) and hold its
            pending tasks for ``cooldown`` seconds (default: ``failure_window``); then
            one trial task runs, and its outcome closes or reopens the breaker. None
            (the default) turns it off; ``register_operation`` can set it per operation.
        heartbeat_timeout: the heartbeat timeout of tasks created without one (None:
            none): a running task silent that long (no progress, partial result,
            checkpoint or ``task.heartbeat()``) is stopped and fails ``STALLED``.
        max_restarts, restart_window: the manager's own restart intensity. Its registry
            and timer service are restarted and rebuilt when they fail; more than
            ``max_restarts`` such restarts within ``restart_window`` seconds stop the
            manager cleanly (pending tasks cancelled, the reason logged as
            ``manager.giving_up`` and given by every later call) instead of looping.
        resources: what this host has that tasks may ask for by name, such as
            ``{"gpu": 2, "vram_gb": 80, "render_license": 1}`` (``gpu`` counts whole
            devices, indices 0 to n-1). ``create_task(..., resources={"gpu": 1})`` then
            starts only once all it asks for is free, in the queue's order (README,
            "Resource slots"), and holds it until its attempt has really ended; a
            request for an undeclared resource or more than there is raises
            :class:`actors.ResourcesUnavailableError` (``VALIDATION_ERROR``).
        ray: a :class:`RayBackend` (``RayBackend(address="local")`` or a cluster's
            ``"host:port"``): tasks with ``isolation="ray"`` (or all, with it as the
            default) run on that cluster's nodes; the manager's shutdown stops a local
            cluster it started. Needs the ``ray`` extra.
    """

    def __init__(
        self,
        num_workers: int = 4,
        default_timeout: float | None = None,
        max_task_age: float = 3600.0,
        cleanup_interval: float = 300.0,
        max_pending: int = 100_000,
        clock: Clock | None = None,
        *,
        isolation: Isolation | str = Isolation.THREAD,
        async_concurrency: int = 1000,
        stop_grace: float = 2.0,
        max_tasks_per_child: int | None = 100,
        memory_limit_mb: float | None = None,
        cpu_time_limit: float | None = None,
        ask_timeout: float = 30.0,
        store: str | os.PathLike[str] | Store | None = None,
        operations: Mapping[str, AnyOperation | NamedOperation] | None = None,
        retry: RetryPolicy | None = None,
        max_failures: int | None = None,
        failure_window: float = 60.0,
        cooldown: float | None = None,
        max_restarts: int = 3,
        restart_window: float = 60.0,
        heartbeat_timeout: float | None = None,
        resources: Mapping[str, float] | None = None,
        ray: RayBackend | None = None,
    ) -> None:
        self._num_workers = check_count("num_workers", num_workers)
        self._ray = ray
        self._default_timeout = check_seconds("default_timeout", default_timeout, allow_none=True)
        self._heartbeat_timeout = check_seconds(
            "heartbeat_timeout", heartbeat_timeout, allow_none=True
        )
        self._runtime = TaskRuntime(
            concurrency=self._num_workers,
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
            store=open_store(store),
            operations=operations,
            retry=retry,
            max_failures=max_failures,
            failure_window=failure_window,
            cooldown=cooldown,
            max_restarts=max_restarts,
            restart_window=restart_window,
            resources=resources,
            ray=ray,
            name="storycore-tasks",
        )

    # -- context manager ------------------------------------------------------------------

    def __enter__(self) -> TaskManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True, cancel_pending=exc is not None)

    # -- commands -------------------------------------------------------------------------

    @overload
    def register_operation(
        self,
        name: str,
        function: _Op,
        *,
        retry_on_interrupt: bool = False,
        max_failures: int | None = None,
        failure_window: float = 60.0,
        cooldown: float | None = None,
    ) -> _Op: ...

    @overload
    def register_operation(
        self,
        name: str,
        function: None = None,
        *,
        retry_on_interrupt: bool = False,
        max_failures: int | None = None,
        failure_window: float = 60.0,
        cooldown: float | None = None,
    ) -> _Registrar: ...

    def register_operation(
        self,
        name: str,
        function: AnyOperation | None = None,
        *,
        retry_on_interrupt: bool = False,
        max_failures: int | None = None,
        failure_window: float = 60.0,
        cooldown: float | None = None,
    ) -> AnyOperation | _Registrar:
        """Register ``function`` as the operation ``name``; ``create_task(name, ...)`` runs
        it, and a manager that reopens a durable store finds it again by that name.

        Without ``function`` it is a decorator::

            @manager.register_operation("storycore.video.render")
            def render(params, task): ...

        A coroutine function (``async def``) registers the same way and runs on the
        event loop (``isolation="async"``).

        ``retry_on_interrupt=True`` declares the operation safe to run again from the
        start when the process died while it ran: such a task is queued again after a
        restart instead of failing with ``INTERRUPTED``. Pending tasks recovered from the
        store that waited for this name are queued now, in their original order.
        ``max_failures``, ``failure_window`` and ``cooldown`` give this operation its own
        restart intensity (see the class).

        Raises:
            TypeError: ``name`` is not a string or ``function`` is not callable.
            ValueError: ``name`` is malformed, or already registered to another function.
        """

        limits = OperationLimits.from_arguments(max_failures, failure_window, cooldown)

        def register(fn: _Op) -> _Op:
            self._runtime.register_operation(
                name, fn, retry_on_interrupt=retry_on_interrupt, limits=limits
            )
            return fn

        if function is None:
            return register
        return register(function)

    def create_task(
        self,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        priority: TaskPriority | int | str = TaskPriority.NORMAL,
        isolation: Isolation | str | None = None,
        memory_limit_mb: float | None = None,
        cpu_time_limit: float | None = None,
        *,
        delay: float | None = None,
        run_at: datetime | None = None,
        retry: RetryPolicy | None = None,
        depends_on: Sequence[str] = (),
        **options: Any,
    ) -> str:
        """Queue ``operation(params, task)`` and return its task id (a UUID string) at once.

        ``operation`` is a function, or the name of a registered operation (only named
        tasks can be resumed after a restart). ``isolation``, ``memory_limit_mb`` and
        ``cpu_time_limit`` default to the manager's. With a durable store the task is
        committed before its id is returned. ``delay`` (seconds) or ``run_at`` (an
        aware datetime) keep it pending until then; ``retry`` (a :class:`RetryPolicy`)
        runs it again after a failure (default: the manager's policy). ``depends_on``:
        ids of existing tasks that must complete first (with ``user``, tasks that same
        user created: another user's task reads as unknown); the operation reads their
        results from ``task.dependency_results``; if one fails or is cancelled, this task
        is cancelled with ``DEPENDENCY_ERROR`` (and so on down the chain). ``options``:
        any other field of :class:`actors.TaskOptions` (the one declaration of every
        per-task option); an unknown name raises :class:`actors.UnknownOptionError`.

        Raises:
            TypeError: ``operation`` is neither callable nor a name, ``params`` is not a
                mapping, ``user`` is not a string, or (process isolation) the operation
                or a param cannot be pickled.
            actors.UnstorableValueError: (a TypeError and a ValueError) ``params``
                cannot be stored or sent: not JSON with a durable store, text that is
                not valid Unicode (a lone surrogate), or nested more than
                ``actors.MAX_NESTING`` levels deep.
            ValueError: no operation is registered under that name (an
                :class:`actors.UnknownOperationError`), ``timeout`` is not a finite
                number > 0, ``priority`` or ``isolation`` is unknown, or limits were
                given for a thread task, ``delay`` is negative, ``run_at`` is naive, or
                both are given.
            actors.OperationUnavailableError: the operation's circuit breaker is open
                (``SERVICE_UNAVAILABLE`` with ``retry_after``).
            actors.QueueFullError: ``max_pending`` tasks are already waiting.
            actors.RuntimeClosedError: the manager was shut down.
        """
        return self._create(
            operation,
            params,
            user=user,
            timeout=timeout,
            priority=priority,
            isolation=isolation,
            memory_limit_mb=memory_limit_mb,
            cpu_time_limit=cpu_time_limit,
            delay=delay,
            run_at=run_at,
            retry=retry,
            depends_on=depends_on,
            **options,
        )

    def _create(
        self,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        group_id: str | None = None,
        **options: Any,
    ) -> str:
        if self._heartbeat_timeout is not None and options.get("heartbeat_timeout") is None:
            options["heartbeat_timeout"] = self._heartbeat_timeout  # the manager's default
        return self._runtime.submit(
            operation,
            params,
            timeout=self._default_timeout if timeout is None else timeout,
            group_id=group_id,
            **options,
        )

    def create_group(self, tasks: Sequence[Mapping[str, Any]]) -> str:
        """Create several tasks as one group; returns the group id (a UUID string).

        Each item holds ``create_task``'s arguments by name (``operation`` required;
        ``params``, ``user``, ``timeout``, ``priority``, ``isolation``, ``delay``,
        ``run_at``, ``retry``, ``depends_on``, ...). Every item is checked before any
        task is created; if creating one still fails (a full queue), the ones already
        created are cancelled and the error is raised.
        """
        if isinstance(tasks, Mapping | str) or not isinstance(tasks, Sequence):
            raise TypeError(
                f"tasks must be a list of dicts of create_task arguments, got "
                f"{type(tasks).__name__}"
            )
        if not tasks:
            raise ValueError("a group needs at least one task")
        # The group sets each member's group_id; everything else is a task option.
        known = {o.name for o in options_of()} - {"group_id"}
        for index, item in enumerate(tasks):
            if not isinstance(item, Mapping):
                raise TypeError(f"tasks[{index}] must be a dict, got {type(item).__name__}")
            if "operation" not in item:
                raise ValueError(f"tasks[{index}] has no 'operation'")
            unknown = set(item) - {"operation", "params"} - known
            if unknown:
                raise UnknownOptionError(
                    unknown, known | {"operation", "params"}, f"tasks[{index}]"
                )
            arguments = dict(item)
            operation = arguments.pop("operation")
            try:
                self._runtime.check_task(operation, **arguments)
            except TypeError as exc:
                raise TypeError(f"tasks[{index}]: {exc}") from exc
            except ValueError as exc:
                raise ValueError(f"tasks[{index}]: {exc}") from exc
        group_id = str(uuid.uuid4())
        created: list[str] = []
        try:
            for item in tasks:
                arguments = dict(item)
                operation = arguments.pop("operation")
                created.append(self._create(operation, group_id=group_id, **arguments))
        except BaseException:
            for task_id in created:
                self._runtime.cancel(task_id)
            raise
        return group_id

    def get_group_status(self, group_id: str, *, user: str | None = None) -> dict[str, Any] | None:
        """The group's aggregate status, or None for an unknown group: ``counts`` per
        state, ``progress`` (the mean of its tasks'), ``state`` (``pending``,
        ``running``, ``completed``, ``failed`` or ``cancelled``) and its ``tasks``.
        With ``user``, None also for a group whose tasks another user created."""
        if not is_task_id(group_id):
            return None
        members = self._runtime.group(group_id)
        if members is None:
            return None
        if user is not None and any(m.options.user != user for m in members):
            return None
        counts = {status.value: 0 for status in TaskStatus}
        for member in members:
            counts[member.status.value] += 1
        unfinished = counts["pending"] + counts["running"]
        if unfinished:
            state = "running" if counts["running"] or len(members) > unfinished else "pending"
        elif counts["failed"]:
            state = "failed"
        elif counts["cancelled"]:
            state = "cancelled"
        else:
            state = "completed"
        progress = sum(m.progress for m in members) / len(members) if members else 0.0
        return {
            "group_id": group_id,
            "state": state,
            "total": len(members),
            "counts": counts,
            "progress": progress,
            "tasks": [m.task_id for m in members],
        }

    def cancel_group(self, group_id: str, *, user: str | None = None) -> int:
        """Cancel every member of the group that has not finished; returns how many.
        With ``user``, a group whose tasks another user created is unknown."""
        status = self.get_group_status(group_id, user=user)
        if status is None:
            raise UnknownGroupError(str(group_id))
        return sum(self._runtime.cancel(task_id) for task_id in status["tasks"])

    def schedule_every(
        self,
        interval: float,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        *,
        first_in: float | None = None,
        **options: Any,
    ) -> str:
        """Create one task of ``operation`` every ``interval`` seconds (the first after
        ``first_in``, default one interval); returns the schedule id. A tick that finds
        the schedule's last task still pending or running is skipped and counted, so two
        runs never overlap. ``options`` are ``create_task``'s (``timeout``, ``priority``,
        ``retry``, ``user``, ...). Schedules live as long as the manager."""
        if "timeout" not in options and self._default_timeout is not None:
            options["timeout"] = self._default_timeout
        return self._runtime.schedule_every(
            interval, operation, params, first_in=first_in, **options
        )

    def cancel_schedule(self, schedule_id: str) -> bool:
        """Stop a schedule; a task it already created carries on. False if unknown."""
        if not isinstance(schedule_id, str):
            return False
        return self._runtime.cancel_schedule(schedule_id)

    def subscribe(
        self,
        callback: Callable[[TaskEvent], Any] | pykka.ActorRef[Any],
        task_id: str | None = None,
        events: Iterable[str] | None = None,
    ) -> str:
        """Receive lifecycle events (``actors.TaskEvent``: created, started, progress,
        retry_scheduled, completed, failed, cancelled) as they happen; returns the
        subscription id.

        ``callback`` is called with each event on a thread of its own (a slow or raising
        callback delays or affects no one else; an exception is logged as
        ``subscription.callback_failed``), or is a pykka actor ref that is told each
        event as a message. ``task_id`` limits the events to one task; ``events`` to
        some kinds (``"created"``, ``"started"``, ``"progress"``, ``"retry"``,
        ``"terminal"``). Events of one task arrive in the order they happened.
        """
        return self._runtime.subscribe(callback, task_id=task_id, events=events)

    def unsubscribe(self, subscription_id: str) -> bool:
        """End a subscription (the events already on their way are delivered first)."""
        if not isinstance(subscription_id, str):
            return False
        return self._runtime.unsubscribe(subscription_id)

    def cancel_task(self, task_id: str, *, user: str | None = None) -> bool:
        """Cancel a pending or running task.

        True when the cancellation was accepted: the task reads ``cancelled`` from now on,
        a pending one never runs, a running one sees ``is_cancelled()``. False when the id
        is unknown or malformed, or the task has already ended. With ``user``, only a
        task that user created can be cancelled (any other is treated as unknown).
        """
        if not is_task_id(task_id):
            return False
        if user is not None and self._owned_snapshot(task_id, user) is None:
            return False
        return self._runtime.cancel(task_id)

    def resume_task(self, task_id: str, *, user: str | None = None) -> None:
        """Run a failed or cancelled task again from its latest checkpoint: a new attempt
        of the same id, whose operation reads the checkpoint as ``task.resume_from``.

        Only a task of a named operation (registered in this manager) that has a
        checkpoint can be resumed; with ``user``, only a task that user created.

        Raises:
            actors.UnknownTaskError: no such task (or another user's).
            actors.NotResumableError: the task is pending, running or completed, has no
                checkpoint, or its operation was a plain function or is not registered;
                the message says which, and what to do (``CONFLICT``).
        """
        if not is_task_id(task_id) or (
            user is not None and self._owned_snapshot(task_id, user) is None
        ):
            raise UnknownTaskError(str(task_id))
        self._runtime.resume(task_id)

    def cleanup_old_tasks(self, max_age_seconds: float = 3600) -> int:
        """Remove finished tasks that ended more than ``max_age_seconds`` ago; returns how many."""
        return self._runtime.cleanup(max_age_seconds)

    def shutdown(
        self, wait: bool = True, cancel_pending: bool = False, timeout: float | None = None
    ) -> None:
        """Stop admitting tasks, run (or cancel) the pending ones, then stop every actor
        and thread. With ``wait``, return only once all of them are gone (or raise
        ``TimeoutError`` after ``timeout`` seconds, the shutdown carrying on).
        Idempotent; queries keep answering from the final records afterwards."""
        self._runtime.shutdown(wait=wait, cancel_pending=cancel_pending, timeout=timeout)

    # -- queries --------------------------------------------------------------------------

    def get_task_status(self, task_id: str, *, user: str | None = None) -> dict[str, Any] | None:
        """The task's status dict, or None for an unknown or malformed id. With ``user``,
        None also for a task another user created: its existence is not revealed."""
        if not is_task_id(task_id):
            return None
        snapshot = self._owned_snapshot(task_id, user)
        return None if snapshot is None else snapshot_to_status(snapshot)

    def _owned_snapshot(self, task_id: str, user: str | None) -> TaskSnapshot | None:
        snapshot = self._runtime.snapshot(task_id)
        if snapshot is None or (user is not None and snapshot.options.user != user):
            return None
        return snapshot

    def get_task_result(self, task_id: str) -> Any:
        """The result of a completed task, else None."""
        if not is_task_id(task_id):
            return None
        snapshot = self._runtime.snapshot(task_id)
        if snapshot is None or snapshot.status is not TaskStatus.COMPLETED:
            return None
        return snapshot.result

    def wait(self, task_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the task has ended and return its status dict.

        Raises:
            actors.UnknownTaskError: no such task.
            TimeoutError: ``timeout`` seconds passed first.
        """
        if not is_task_id(task_id):
            raise UnknownTaskError(str(task_id))
        return snapshot_to_status(self._runtime.wait(task_id, timeout))

    def get_pending_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Pending tasks in the order they will run."""
        return self.list_tasks(TaskStatus.PENDING, limit)

    def get_running_tasks(self) -> list[dict[str, Any]]:
        return self.list_tasks(TaskStatus.RUNNING)

    def list_tasks(
        self,
        status: TaskStatus | str | None = None,
        limit: int | None = None,
        *,
        user: str | None = None,
    ) -> list[dict[str, Any]]:
        """Status dicts of the tasks with ``status`` (every retained task if None):
        pending ones in the order they will run, then running ones, then ended ones in
        the order they ended. With ``user``, only the tasks that user created."""
        if status is not None and not isinstance(status, TaskStatus):
            try:
                status = TaskStatus(status)
            except ValueError:
                choices = ", ".join(s.value for s in TaskStatus)
                raise ValueError(f"unknown status {status!r}; use one of {choices}") from None
        tasks = self._runtime.list(status, limit, user)
        return [snapshot_to_status(s) for s in tasks]

    def get_stats(self) -> dict[str, Any]:
        return self._stats_dict(self._runtime.stats())

    def _ray_stats(self, capacity: int, running: int, stopping: int) -> dict[str, Any]:
        """Ray attempts holding a slot (``running`` includes those Ray has not started
        yet: they read pending), and the back-end's connection."""
        shown: dict[str, Any] = {"max_in_flight": capacity, "running": running}
        shown["stopping"] = stopping
        if self._ray is not None:
            backend = self._ray.statistics()
            shown.update(
                connected=backend.connected,
                address=backend.address,
                owns_cluster=backend.owns_cluster,
                in_flight=backend.in_flight,
                submitted=backend.submitted,
                progress_items=backend.progress_items,
            )
        return shown

    def _stats_dict(self, stats: RuntimeStats) -> dict[str, Any]:
        """The runtime's statistics as ``get_stats`` answers them."""
        table, supervisor = stats.table, stats.supervisor
        return {
            "total_tasks": table.total_tasks,
            "queue_size": supervisor.pending,
            "num_workers": self._num_workers,
            "async_concurrency": supervisor.async_capacity,
            "running": supervisor.running,
            "stopping": supervisor.stopping,
            "scheduled": supervisor.scheduled,
            "held": supervisor.held,
            "accepting_tasks": supervisor.admitting,
            "resources": _resource_stats(supervisor.resources),
            "status_counts": {s.value: n for s, n in table.status_counts.items()},
            "priority_counts": {p.label: n for p, n in table.priority_counts.items()},
            "lifetime_stats": {
                "total_created": table.total_created,
                "total_completed": table.total_completed,
                "total_failed": table.total_failed,
                "total_cancelled": table.total_cancelled,
                "total_timed_out": table.total_timed_out,
                "total_stalled": table.total_stalled,
            },
            "timers": {
                "armed": stats.timers.armed,
                "fired_total": stats.timers.fired_total,
            },
            "process_pool": {
                "children": stats.processes.children,
                "idle": stats.processes.idle,
                "started_total": stats.processes.started_total,
                "replaced_total": stats.processes.replaced_total,
            },
            "operations": {name: dict(state) for name, state in stats.operations.items()},
            "restarts": dict(stats.restarts),
            "injected_faults": stats.injected_faults,
            "async": _loop_stats(stats.loop, supervisor.async_running, supervisor.async_stopping),
            "ray": self._ray_stats(
                supervisor.ray_capacity, supervisor.ray_running, supervisor.ray_stopping
            ),
            "schedules": {sid: dict(s) for sid, s in supervisor.schedules.items()},
            "store": {
                "kind": stats.store.kind,
                "location": stats.store.location,
                "durable": stats.store.durable,
                "commits": stats.store.commits,
                "records_written": stats.store.records_written,
                "records_deleted": stats.store.records_deleted,
                "failed_writes": stats.store.failed_writes,
                "awaiting_operation": stats.awaiting_operation,
            },
        }

    @property
    def faults(self) -> FaultPlan:
        """Fault injection for tests (see ``storycore_tasks.testing``): make chosen runs
        of an operation raise, hang, crash..., or the manager's own actors fail."""
        return self._runtime.faults

    @property
    def heartbeat_timeout(self) -> float | None:
        """The heartbeat timeout of a task ``create_task`` gives none (None: none)."""
        return self._heartbeat_timeout

    @property
    def default_timeout(self) -> float | None:
        """Seconds a task may run when ``create_task`` gives no timeout (None: no limit)."""
        return self._default_timeout

    @property
    def runtime(self) -> TaskRuntime:
        """The actor runtime underneath, for tools that need its clock or raw snapshots."""
        return self._runtime


def _loop_stats(loop: LoopStats | None, running: int, stopping: int) -> dict[str, Any]:
    """The event loop of coroutine operations, as ``get_stats()["async"]`` shows it."""
    return {
        "running": running,
        "stopping": stopping,
        "loop_running": loop is not None and loop.running,
        "started_total": 0 if loop is None else loop.started_total,
        "loop_blocked_total": 0 if loop is None else loop.loop_blocked_total,
        "max_lag_seconds": 0.0 if loop is None else loop.max_lag_seconds,
        "loop_lagged_total": 0 if loop is None else loop.loop_lagged_total,
        "cancellations_ignored_total": 0 if loop is None else loop.cancellations_ignored_total,
    }


def _same(value: Any) -> Any:
    return value


def _utc(moment: datetime) -> str | None:
    return iso_utc(moment.timestamp())


# How the status dict shows each kind of option (None stays None): JSON values, a
# priority by its label, a time in UTC ISO-8601 as the status's own times.
_SHOWN_KINDS: dict[OptionKind, Callable[[Any], Any]] = {
    "text": _same,
    "seconds": _same,
    "megabytes": _same,
    "priority": lambda priority: priority.label,
    "isolation": lambda isolation: isolation.value,
    "datetime": _utc,
    "retry": lambda policy: policy.to_json(),
    "task_ids": list,
    "resources": Resources.as_dict,
}
# The options a status shows: the stored ones (a task's resolved options; delay and
# run_at show as scheduled_for) that their declaration does not keep out of it.
_SHOWN_OPTIONS = tuple(
    (declared.name, _SHOWN_KINDS[declared.kind]) for declared in options_of(stored=True, shown=True)
)


def _resource_stats(resources: ResourceStats | None) -> dict[str, Any] | None:
    """The host's resources as ``get_stats()["resources"]`` shows them (None: none
    declared): per resource its capacity, amount in use and free amount."""
    if resources is None:
        return None
    return {
        "capacity": dict(resources.capacity),
        "in_use": dict(resources.in_use),
        "free": {n: c - resources.in_use[n] for n, c in resources.capacity.items()},
        "holders": resources.holders,
        "waiting": resources.waiting,
        "free_gpus": list(resources.free_gpus),
    }


def snapshot_to_status(snapshot: TaskSnapshot) -> dict[str, Any]:
    """StoryCore's status dict for one task snapshot, what the task holds of the host's
    resources (``resources_held``, ``gpu_indices``) and what it waits for
    (``waiting_for``) included: the registry publishes them with the rest of the task's
    state, so every status read has one path."""
    status: dict[str, Any] = {
        "task_id": snapshot.task_id,
        "status": snapshot.status.value,
        "attempt": snapshot.attempt,
        "progress": snapshot.progress,
        "operation": snapshot.operation_name,
        "params": dict(snapshot.params),
    }
    options = snapshot.options
    for name, show in _SHOWN_OPTIONS:  # from the declaration: a new option needs no line
        value = getattr(options, name)
        status[name] = None if value is None else show(value)
    held, waiting = snapshot.resources_held, snapshot.waiting_for
    status["resources_held"] = None if held is None else held.as_dict()
    if snapshot.gpu_indices:
        status["gpu_indices"] = list(snapshot.gpu_indices)
    status["waiting_for"] = None if waiting is None else waiting.as_dict()
    status["created_at"] = iso_utc(snapshot.created_at)
    status["updated_at"] = iso_utc(snapshot.updated_at)
    status["started_at"] = iso_utc(snapshot.started_at)
    status["ended_at"] = iso_utc(snapshot.ended_at)
    status["scheduled_for"] = iso_utc(snapshot.scheduled_for)
    status["last_heartbeat_at"] = iso_utc(snapshot.last_heartbeat_at)
    status["checkpoint"] = snapshot.checkpoint
    status["checkpointed_at"] = iso_utc(snapshot.checkpointed_at)
    status["next_attempt_at"] = (
        iso_utc(snapshot.scheduled_for) if snapshot.attempt_outcomes else None
    )
    if snapshot.attempt_outcomes:
        # Retried: how each earlier attempt ended, kept even when a later one completed
        # (the error's details only say it when the task ended in an error).
        status["attempt_errors"] = [
            {"attempt": number, "code": e.code.value, "message": e.message}
            for number, e in enumerate(map(error_from_outcome, snapshot.attempt_outcomes), 1)
            if e is not None
        ]
    if snapshot.injected_faults:
        # Only when a test injected faults (storycore_tasks.testing): never mistaken
        # for a real failure.
        status["injected_faults"] = [
            {"attempt": attempt, "fault": fault} for attempt, fault in snapshot.injected_faults
        ]
    if snapshot.placement is not None:
        # Where the attempt runs (Ray isolation: the node's id and the worker's pid).
        status["placement"] = dict(snapshot.placement)
    if snapshot.has_result:
        status["result"] = snapshot.result
    if snapshot.has_partial_result:
        status["partial_result"] = snapshot.partial_result
    error = error_from_outcome(snapshot.outcome)
    if error is not None:
        status["error"] = error.to_dict()
        # Did the error end an attempt (not a cancel or a failed dependency while the
        # task waited for its next one)?
        ended_an_attempt = snapshot.attempt > len(snapshot.attempt_outcomes)
        last_injected = snapshot.injected_faults[-1] if snapshot.injected_faults else None
        if last_injected is not None and last_injected[0] == snapshot.attempt and ended_an_attempt:
            status["error"]["details"]["injected_fault"] = last_injected[1]
        if snapshot.attempt_outcomes:
            # Retried: the number of attempts and how each one ended, the last included
            # when it ended an attempt.
            attempts = [error_from_outcome(o) for o in snapshot.attempt_outcomes]
            if ended_an_attempt:
                attempts.append(error)
            status["error"]["details"]["attempts"] = len(attempts)
            status["error"]["details"]["attempt_errors"] = [
                {"code": e.code.value, "message": e.message} for e in attempts if e is not None
            ]
    return status


def open_store(store: str | os.PathLike[str] | Store | None) -> Store | None:
    """The store a ``TaskManager(store=...)`` argument names."""
    if store is None or isinstance(store, Store):
        return store
    if isinstance(store, str):
        if not store.startswith("sqlite:"):
            raise ValueError(
                f"store {store!r} is not a store URL; use 'sqlite:///path/to/tasks.db' "
                "(or pass a pathlib.Path, or None for memory only)"
            )
        return SqliteStore.from_url(store)
    if isinstance(store, os.PathLike):
        return SqliteStore(store)
    raise TypeError(
        f"store must be None, a 'sqlite:///...' URL, a path or an actors.Store, got "
        f"{type(store).__name__}"
    )


def is_task_id(task_id: object) -> bool:
    """True for a well-formed task id: a canonical, lower-case UUID string as create_task
    returns (``uuid.UUID`` alone would also accept braces, prefixes and stray hyphens).
    Matched, not parsed: every status read and wait checks one (a tenth of the cost)."""
    return isinstance(task_id, str) and _TASK_ID(task_id) is not None


# What str(uuid.UUID(...)) writes: 32 lower-case hex digits in groups of 8-4-4-4-12.
_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
