"""What a submission becomes: a task's arguments checked and resolved into the fields of
its :class:`TaskSpec`.

Each option is checked once, by its declaration (``TaskOptions``); what depends on the
runtime is resolved here: the default isolation, limits and retry policy, the start time
(``delay``/``run_at`` against the clock), the operation's name, and the params as the
store keeps them. The runtime adds the task's id, seq and creation time.

A coroutine function (``async def op(params, task)``) runs on the event loop: given no
isolation it gets ``async`` whatever the runtime's default; ``thread`` or ``process``
for it, or ``async`` for a plain function, is refused with the fix.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import FunctionType
from typing import Any

from actors._clock import Clock
from actors._enums import Isolation
from actors._errors import RayUnavailableError, ResourcesUnavailableError, UnstorableValueError
from actors._execution.api import AnyOperation
from actors._operations import OperationRegistry
from actors._options import TaskOptions
from actors._policies import RetryPolicy
from actors._resources import Resources
from actors._storage.codec import check_value, normalized
from actors.validation import MAX_SECONDS, check_picklable, check_text

__all__ = ["SpecMaker"]

_SHARED_OPTIONS = 1024  # distinct option sets kept for sharing (then all forgotten)


class SpecMaker:
    """Turns ``submit``'s arguments into a spec's fields, with the runtime's defaults."""

    def __init__(
        self,
        *,
        operations: OperationRegistry,
        clock: Clock,
        durable: bool,
        isolation: Isolation,
        limits: tuple[float | None, float | None],
        retry: RetryPolicy | None,
        resource_checks: Mapping[Isolation, Callable[[Resources], None]] | None = None,
        ray_check: Callable[[Any, str, Mapping[str, Any], Any], None] | None = None,
    ) -> None:
        self._operations = operations
        # Per isolation, the check of a task's resources where it would run (the host's
        # ledger for threads, processes and coroutines; a cluster's for Ray). An
        # isolation without one gives no resources: a request is refused.
        self._resource_checks = dict(resource_checks or {})
        self._clock = clock
        self._durable = durable
        self._isolation = isolation
        self._limits = limits  # (memory_limit_mb, cpu_time_limit) of process tasks
        self._retry = retry
        # The Ray back-end's checks at create_task (picklable; resources some node has).
        self._ray_check = ray_check
        self._shared: dict[tuple[tuple[tuple[Any, ...], ...], bool], TaskOptions] = {}
        self._known: dict[AnyOperation, tuple[str, bool]] = {}  # see _traits

    def fields(
        self,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        **option_values: Any,
    ) -> dict[str, Any]:
        """Check a task's arguments; the fields of its TaskSpec but its id, seq and
        creation time. ``option_values`` are :class:`TaskOptions`' (each checked there,
        an unknown one refused by name); what depends on the runtime (its default
        isolation, limits and retry policy, the start time) is resolved here."""
        named = isinstance(operation, str)
        if isinstance(operation, str):
            entry = self._operations.resolve(operation)
            operation_name = operation
            operation = entry.function
        elif not callable(operation):
            raise TypeError(
                f"operation must be a callable taking (params, task) or the name of a "
                f"registered operation, got {type(operation).__name__}"
            )
        if params is None:
            params = {}
        elif not isinstance(params, Mapping):
            raise TypeError(
                f"params must be a mapping (a dict of the operation's arguments), got "
                f"{type(params).__name__}"
            )
        else:
            params = dict(params)  # later changes by the caller do not reach the task
        params_json = None
        try:
            if self._durable:
                params, params_json = normalized(params)
            elif params:  # (none: nothing to check, and a call fewer)
                check_value(params)  # kept as they are, but the service must show them
        except UnstorableValueError as exc:
            needs = "JSON data with a durable store" if self._durable else "storable"
            raise UnstorableValueError(
                f"params must be {needs}: {exc}", type_name=exc.type_name
            ) from None
        derived_name, coroutine = self._traits(operation)
        if operation_name is None:
            operation_name = derived_name
        else:
            check_text("the operation name", operation_name)
        options = self._options(option_values, coroutine)
        if options.isolation is Isolation.PROCESS:
            check_picklable(operation, operation_name, params)
        elif options.isolation is Isolation.RAY:
            if self._ray_check is None:
                raise RayUnavailableError(
                    "isolation='ray' runs operations on a Ray cluster, and this manager has "
                    "no Ray back-end: pass ray=RayBackend(address='local') (a private local "
                    "cluster) or ray=RayBackend(address='host:port') to the manager",
                    no_backend=True,
                )
            self._ray_check(operation, operation_name, params, options.resources)
        delay, run_at = option_values.get("delay"), option_values.get("run_at")
        not_before = None if delay is None and run_at is None else self.start_time(delay, run_at)
        return {
            "operation": operation,
            "operation_name": operation_name,
            "params": params,
            "options": options,
            "named": named,
            "params_json": params_json,
            "not_before": not_before,
        }

    def _traits(self, operation: AnyOperation) -> tuple[str, bool]:
        """The operation's qualified name (checked) and whether it is a coroutine
        operation: what a submission reads of the callable itself, worked out once per
        callable (at most ``_SHARED_OPTIONS`` kept)."""
        try:
            found = self._known.get(operation)
        except TypeError:  # an unhashable callable object: worked out every time
            found = None
        if found is None:
            name = _qualified_name(operation)
            check_text("the operation name", name)
            found = (name, is_coroutine_operation(operation))
            with contextlib.suppress(TypeError):
                if len(self._known) >= _SHARED_OPTIONS:
                    self._known.clear()
                self._known[operation] = found
        return found

    def _options(self, option_values: dict[str, Any], coroutine: bool) -> TaskOptions:
        """The task's resolved options. They are immutable, so tasks given the same
        option values (by name, in the same order; and the same kind of operation) share
        one object: checked and resolved once (per value types too, so ``True`` never
        passes as ``1``), at most ``_SHARED_OPTIONS`` kept."""
        # The names in their order, the values and their types, as three tuples built in
        # C: create_task passes every option it declares (eleven) on every call, and a
        # key built per item cost more than the rest of this method.
        values = tuple(option_values.values())
        key = (tuple(option_values), values, tuple(map(type, values)))
        shared_key = (key, coroutine)
        try:
            found = self._shared.get(shared_key)
        except TypeError:  # an unhashable value (a list of dependencies): not shared
            return self._resolve(option_values, coroutine)
        if found is None:
            found = self._resolve(option_values, coroutine)
            if len(self._shared) >= _SHARED_OPTIONS:
                self._shared.clear()
            self._shared[shared_key] = found
        return found

    def _resolve(self, option_values: dict[str, Any], coroutine: bool) -> TaskOptions:
        """Each given option checked by its declaration, then the runtime's defaults
        filled in; delay and run_at are the spec's start time, not options kept."""
        given = TaskOptions.checked(option_values)
        isolation = given.get("isolation")
        task_isolation = _isolation_of(isolation, self._isolation, coroutine)
        memory, cpu = self._limits
        given_memory, given_cpu = given.get("memory_limit_mb"), given.get("cpu_time_limit")
        if given_memory is not None or given_cpu is not None:
            memory = memory if given_memory is None else given_memory
            cpu = cpu if given_cpu is None else given_cpu
            _limits_need_a_process(task_isolation)
        elif task_isolation is not Isolation.PROCESS:
            memory = cpu = None  # the runtime's limits apply to its process tasks only
        resources = given.get("resources")
        if resources is not None and task_isolation is not Isolation.RAY:
            # A Ray task's are checked against its cluster (ray_check, in fields).
            self._check_resources(resources, task_isolation)
        retry = given.get("retry")
        given.update(
            isolation=task_isolation,
            memory_limit_mb=memory,
            cpu_time_limit=cpu,
            retry=self._retry if retry is None else retry,
            delay=None,
            run_at=None,
        )
        return TaskOptions.trusted(given)

    def _check_resources(self, resources: Resources, isolation: Isolation) -> None:
        """Refuse a request that could never be met where the task would run (the
        refusal names the resource and the capacity)."""
        check = self._resource_checks.get(isolation)
        if check is None:
            name = next(iter(resources))
            raise ResourcesUnavailableError(
                f"the task asks for resources ({', '.join(resources)}), but tasks with "
                f"isolation={isolation.value!r} get none on this manager: resource "
                f"{name!r} is not declared; leave resources out",
                resource=name,
            )
        check(resources)

    def start_time(self, delay: float | None, run_at: datetime | None) -> float | None:
        """The wall-clock time a task may start (None: at once), from its ``delay`` or
        ``run_at`` (each already checked by its option)."""
        if delay is None and run_at is None:
            return None
        if delay is not None and run_at is not None:
            raise ValueError("give delay or run_at, not both")
        if delay is not None:
            return self._clock.time() + delay if delay > 0 else None
        assert run_at is not None
        try:
            at = run_at.timestamp()
            datetime.fromtimestamp(at, tz=UTC)  # status dicts show it in UTC
        except (OverflowError, OSError, ValueError):
            raise ValueError(
                f"run_at {run_at.isoformat()} is outside the years 1-9999 in UTC; pick an "
                "earlier time"
            ) from None
        now = self._clock.time()
        if at - now > MAX_SECONDS:  # as a delay is bounded
            raise ValueError(
                f"run_at {run_at.isoformat()} is more than {MAX_SECONDS:g} seconds (10 "
                "years) from now; pick an earlier time"
            )
        return at if at > now else None  # in the past: at once


def _qualified_name(operation: Callable[..., Any]) -> str:
    module = getattr(operation, "__module__", None)
    name = getattr(operation, "__qualname__", None) or type(operation).__qualname__
    return f"{module}.{name}" if module else name


def _limits_need_a_process(isolation: Isolation) -> None:
    """Limits (each checked by its option) apply to a child process only."""
    if isolation is Isolation.THREAD:
        raise ValueError(
            "memory_limit_mb and cpu_time_limit apply to a child process: pass "
            "isolation='process' with them (a thread cannot be limited)"
        )
    if isolation is Isolation.RAY:
        raise ValueError(
            "memory_limit_mb and cpu_time_limit are not enforced on a Ray node (Ray's "
            "workers are reused, so an rlimit would outlive the task): drop them, or pass "
            "isolation='process'; resources={'memory_mb': ...} tells Ray's scheduler how "
            "much memory the task needs, which Ray does not enforce"
        )
    if isolation is Isolation.ASYNC:
        raise ValueError(
            "memory_limit_mb and cpu_time_limit apply to a child process, and a coroutine "
            "operation runs on the event loop (isolation='async'), which cannot be "
            "limited: drop the limits, or make the operation a plain function and pass "
            "isolation='process'"
        )


def is_coroutine_operation(operation: Any) -> bool:
    """An ``async def`` function, a ``functools.partial`` of one, or an object whose
    ``__call__`` is one: it runs on the event loop (``isolation="async"``)."""
    if type(operation) is FunctionType and not hasattr(operation, "_is_coroutine_marker"):
        # A plain function, the common case, read as inspect reads it but without its
        # unwrapping (on every task's path; the marker is Python 3.12's
        # markcoroutinefunction, which only inspect understands).
        return bool(operation.__code__.co_flags & inspect.CO_COROUTINE)
    if inspect.iscoroutinefunction(operation):
        return True
    call = getattr(type(operation), "__call__", None)  # noqa: B004 (not a callable test)
    return call is not None and inspect.iscoroutinefunction(call)


def _isolation_of(given: Isolation | None, default: Isolation, coroutine: bool) -> Isolation:
    """Where a task runs: the given isolation or the default, which is ``async`` for a
    coroutine function; a mismatch is refused with the fix."""
    if given is None:
        return Isolation.ASYNC if coroutine else default
    if coroutine and given is not Isolation.ASYNC:
        where = {Isolation.THREAD: "thread", Isolation.RAY: "Ray task"}.get(given, "child process")
        raise ValueError(
            f"the operation is a coroutine function (async def), which runs on the event "
            f"loop, not with isolation={given.value!r}: leave isolation out (or pass "
            f"isolation='async'), or make it a plain def to run it in a "
            f"{where}"
        )
    if not coroutine and given is Isolation.ASYNC:
        raise ValueError(
            "isolation='async' runs coroutine functions (async def op(params, task)) on "
            "the event loop; this operation is a plain function: make it async def, or "
            "pass isolation='thread' or 'process'"
        )
    return given
