"""A runtime's settings, checked once into one frozen record (as OTP's ``check_childspec``
turns a child spec into one validated record): each bad argument is refused by name,
in the order ``TaskRuntime`` takes them, before any thread starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors._clock import Clock, SystemClock
from actors._core.resource_slots import check_capacity
from actors._enums import Isolation
from actors._options import TaskOptions
from actors._policies import OperationLimits, RetryPolicy
from actors._resources import Resources
from actors._storage.store import MemoryStore, Store
from actors.validation import check_count, check_isolation, check_seconds

__all__ = ["RuntimeSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    concurrency: int
    # Coroutine operations that may run at once on the event loop: a slot count of its
    # own, apart from ``concurrency`` (the threads and processes).
    async_concurrency: int
    max_pending: int
    max_task_age: float
    cleanup_interval: float
    ask_timeout: float
    stop_grace: float
    isolation: Isolation
    max_tasks_per_child: int | None
    # The runtime's limits apply to its process-isolated tasks, whatever the default.
    memory_limit_mb: float | None
    cpu_time_limit: float | None
    clock: Clock
    store: Store
    retry: RetryPolicy | None
    operation_limits: OperationLimits | None  # None: no circuit breakers
    max_restarts: int
    restart_window: float
    # The host's resources that tasks may ask for by name (None: none declared).
    resources: Resources | None = None

    @classmethod
    def checked(
        cls,
        *,
        concurrency: int,
        async_concurrency: int = 1000,
        max_pending: int,
        max_task_age: float,
        cleanup_interval: float,
        clock: Clock | None,
        ask_timeout: float,
        stop_grace: float,
        isolation: Isolation | str,
        max_tasks_per_child: int | None,
        memory_limit_mb: float | None,
        cpu_time_limit: float | None,
        store: Store | None,
        retry: RetryPolicy | None,
        max_failures: int | None,
        failure_window: float,
        cooldown: float | None,
        max_restarts: int,
        restart_window: float,
        resources: Mapping[str, float] | None = None,
    ) -> RuntimeSettings:
        """The settings, or the error that names the first bad argument and its fix."""
        counts = (check_count("concurrency", concurrency), check_count("max_pending", max_pending))
        seconds = (
            check_seconds("max_task_age", max_task_age, allow_zero=True) or 0.0,
            check_seconds("cleanup_interval", cleanup_interval) or 0.0,
            check_seconds("ask_timeout", ask_timeout) or 0.0,
            check_seconds("stop_grace", stop_grace, allow_zero=True) or 0.0,
        )
        async_slots = check_count("async_concurrency", async_concurrency)
        checked_isolation = check_isolation(isolation)
        if checked_isolation is Isolation.ASYNC:
            raise ValueError(
                "isolation='async' cannot be the default: it is where coroutine functions "
                "run, and they get it by themselves; the default is for plain functions: "
                "pass isolation='thread' or 'process'"
            )
        if max_tasks_per_child is not None:
            max_tasks_per_child = check_count("max_tasks_per_child", max_tasks_per_child)
        # Checked as the task options of those names are.
        limits = TaskOptions(memory_limit_mb=memory_limit_mb, cpu_time_limit=cpu_time_limit)
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(
                f"clock must provide monotonic(), time(), seconds_until() and subscribe() "
                f"(see actors.Clock), got {type(clock).__name__}"
            )
        if store is not None and not isinstance(store, Store):
            raise TypeError(
                f"store must be a Store (such as SqliteStore(path)) or None, got "
                f"{type(store).__name__}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy or None, got {type(retry).__name__}")
        return cls(
            concurrency=counts[0],
            async_concurrency=async_slots,
            max_pending=counts[1],
            max_task_age=seconds[0],
            cleanup_interval=seconds[1],
            ask_timeout=seconds[2],
            stop_grace=seconds[3],
            isolation=checked_isolation,
            max_tasks_per_child=max_tasks_per_child,
            memory_limit_mb=limits.memory_limit_mb,
            cpu_time_limit=limits.cpu_time_limit,
            clock=SystemClock() if clock is None else clock,
            store=MemoryStore() if store is None else store,
            retry=retry,
            operation_limits=OperationLimits.from_arguments(max_failures, failure_window, cooldown),
            max_restarts=check_count("max_restarts", max_restarts, minimum=0),
            restart_window=check_seconds("restart_window", restart_window) or 0.0,
            resources=check_capacity(resources),
        )
