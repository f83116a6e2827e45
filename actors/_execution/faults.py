"""Fault injection: make chosen runs of an operation fail in a chosen way, without
touching the operation's code.

A :class:`FaultPlan` holds rules ("the next 2 runs of ``render`` raise
``OSError``"). The supervisor asks the plan once per attempt, just before it spawns
the attempt's worker, and only while some rule is armed (so an unused plan costs one
attribute read per task). A matching rule wraps the attempt's operation in an
:class:`InjectedOperation`, which runs wherever the operation would have run (an
operation thread or a child process) and is picklable for the latter.

Every injected fault is named in the task's record (``injected_faults``) and logged as
``fault.injected``, so a test report never passes one off as a real failure.

The operation side (:class:`Fault`, the wrapped operations and the exceptions standing
for a crash or a limit) is :mod:`actors._execution.injected`, which pool children
unpickle; this module is the host's plan.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import signal as signal_module
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from actors._enums import Isolation
from actors._execution.api import AsyncOperation, Operation
from actors._execution.injected import AsyncInjectedOperation, Fault, InjectedOperation

if TYPE_CHECKING:
    from actors._records import TaskSpec

__all__ = ["FaultPlan", "FaultRule", "InjectedFaultError"]

FAULT_KINDS = ("raise", "hang", "ignore_cancellation", "delay", "crash", "exceed_limit")
_LIMITS = ("memory", "cpu")
# How the runtime makes its registry fail: (error, message type(s) or None, task id).
_FailRegistry = Callable[[Exception, type | tuple[type, ...] | None, str | None], None]


@dataclass(eq=False, slots=True)
class FaultRule:
    """One armed rule of a :class:`FaultPlan`: its fault, whom it targets, and how many
    runs it still applies to (None: every run until removed)."""

    fault: Fault
    operation: str | None
    task_id: str | None
    remaining: int | None
    applied: int = 0
    rule_id: int = 0
    _plan: FaultPlan | None = field(default=None, repr=False)

    def matches(self, task_id: str, operation: str) -> bool:
        if self.task_id is not None:
            return self.task_id == task_id
        return self.operation == operation

    def remove(self) -> bool:
        """Disarm this rule; False if it was already spent or removed."""
        assert self._plan is not None
        return self._plan.remove(self)


class FaultPlan:
    """The armed fault rules of one runtime; thread-safe.

    The newest matching rule wins, and a rule for a task id wins over one for its
    operation, so a test can single out one task among many.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self.armed = False  # read without the lock on the hot path: a stale False only
        # means a rule added this instant applies from the next dispatch on.
        self.injected_total = 0
        # Set by the runtime: how to make its registry, timers and supervisor fail.
        self._fail_registry: _FailRegistry | None = None
        self._fail_timers: Callable[[Exception], None] | None = None
        self._fail_supervisor: Callable[[Exception], None] | None = None

    def attach(
        self,
        fail_registry: _FailRegistry,
        fail_timers: Callable[[Exception], None],
        fail_supervisor: Callable[[Exception], None],
    ) -> None:
        self._fail_registry = fail_registry
        self._fail_timers = fail_timers
        self._fail_supervisor = fail_supervisor

    def add(
        self,
        fault: Fault,
        *,
        operation: str | None = None,
        task_id: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; one of {FAULT_KINDS}")
        if (operation is None) == (task_id is None):
            raise ValueError(
                "a fault targets exactly one of operation='name' or task_id='id'; "
                f"got operation={operation!r}, task_id={task_id!r}"
            )
        for name, value in (("operation", operation), ("task_id", task_id)):
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"{name} must be a non-empty str, got {value!r}")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(
                f"times must be a positive int (runs to affect) or None for every run, "
                f"got {times!r}"
            )
        with self._lock:
            rule = FaultRule(fault, operation, task_id, times, rule_id=next(self._ids), _plan=self)
            self._rules.append(rule)
            self.armed = True
        return rule

    # -- the faults, by kind ---------------------------------------------------------------
    # Each targets operation="name" or task_id="id" and applies to the next ``times``
    # runs (attempts) of it (None: every run until removed); returns the armed rule.

    def raise_error(
        self,
        exception: BaseException | type[BaseException],
        *,
        operation: str | None = None,
        task_id: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """The run raises ``exception`` instead of running the operation."""
        if isinstance(exception, type) and issubclass(exception, BaseException):
            exception = exception("injected fault")
        if not isinstance(exception, BaseException):
            raise TypeError(f"exception must be an exception instance or class, got {exception!r}")
        return self.add(
            Fault("raise", exception=exception), operation=operation, task_id=task_id, times=times
        )

    def hang(
        self, *, operation: str | None = None, task_id: str | None = None, times: int | None = 1
    ) -> FaultRule:
        """The run blocks until the task is cancelled or times out (it cooperates then)."""
        return self.add(Fault("hang"), operation=operation, task_id=task_id, times=times)

    def ignore_cancellation(
        self,
        seconds: float | None = None,
        *,
        operation: str | None = None,
        task_id: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """The run never looks at ``is_cancelled()``: it sleeps ``seconds`` (None: until
        the supervisor's stop escalation ends it: an interrupt in thread isolation,
        SIGTERM then SIGKILL in process isolation)."""
        seconds = _check_seconds("seconds", seconds, allow_none=True)
        return self.add(
            Fault("ignore_cancellation", seconds=seconds),
            operation=operation,
            task_id=task_id,
            times=times,
        )

    def delay(
        self,
        seconds: float,
        *,
        operation: str | None = None,
        task_id: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """The run sleeps ``seconds`` (real time, ignoring cancellation), then runs the
        operation as usual."""
        return self.add(
            Fault("delay", seconds=_check_seconds("seconds", seconds, allow_none=False)),
            operation=operation,
            task_id=task_id,
            times=times,
        )

    def crash(
        self,
        signal: int = signal_module.SIGKILL,
        *,
        operation: str | None = None,
        task_id: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """The worker crashes. In process isolation its child really dies by ``signal``;
        in thread isolation (a thread cannot die alone) the attempt ends with the same
        crashed outcome, without killing anything."""
        try:
            if isinstance(signal, bool) or not isinstance(signal, int):
                raise TypeError
            signum = int(signal_module.Signals(signal))
        except (TypeError, ValueError):
            raise ValueError(
                f"signal must be a signal number or signal.Signals member, got {signal!r}"
            ) from None
        return self.add(
            Fault("crash", signum=signum), operation=operation, task_id=task_id, times=times
        )

    def exceed_limit(
        self,
        limit: str = "memory",
        *,
        operation: str | None = None,
        task_id: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """The run goes past a resource limit: ``"memory"`` or ``"cpu"``. In process
        isolation with that limit set (``memory_limit_mb``, ``cpu_time_limit``) the child
        really does; otherwise the attempt ends as if it had."""
        if limit not in _LIMITS:
            raise ValueError(f"limit must be one of {_LIMITS}, got {limit!r}")
        return self.add(
            Fault("exceed_limit", limit=limit), operation=operation, task_id=task_id, times=times
        )

    # -- the runtime's own parts -------------------------------------------------------------

    def fail_registry(
        self,
        error: Exception | None = None,
        *,
        on: str = "now",
        task_id: str | None = None,
    ) -> None:
        """Make the registry actor fail: at once (``on="now"``), or while it handles the
        next message of one kind: ``"create"``, ``"start"``, ``"progress"``, ``"retry"``,
        ``"finish"`` (of task ``task_id`` when given), or ``"status"`` (a status query).
        It is restarted and rebuilt; a task whose message it failed on ends with
        ``INTERRUPTED`` (cause ``registry_restarted``). A failed status query restarts
        nothing (a query changes nothing): its caller gets :class:`QueryFailedError`."""

        # Here, not at the top: an InjectedOperation is unpickled in a pool child, which
        # imports this module and must not import the runtime (pykka) with it.
        from actors._core.messages import (
            Finish,
            GetSnapshot,
            MarkRunning,
            ProgressReady,
            Register,
            RegisterDependent,
            RetryScheduled,
        )

        points: dict[str, type | tuple[type, ...] | None] = {
            "now": None,
            "create": (Register, RegisterDependent),
            "start": MarkRunning,
            "progress": ProgressReady,
            "retry": RetryScheduled,
            "finish": Finish,
            "status": GetSnapshot,
        }
        if on not in points:
            raise ValueError(f"on must be one of {sorted(points)}, got {on!r}")
        if task_id is not None and on == "now":
            raise ValueError("task_id needs on= a message kind ('start', 'finish', ...)")
        if self._fail_registry is None:
            raise RuntimeError("this fault plan belongs to no runtime")
        self._fail_registry(_injected(error, "registry"), points[on], task_id)

    def fail_timers(self, error: Exception | None = None) -> None:
        """Make the timer service's next tick fail; it is restarted and rebuilt, and no
        armed timer is lost."""
        if self._fail_timers is None:
            raise RuntimeError("this fault plan belongs to no runtime")
        self._fail_timers(_injected(error, "timers"))

    def fail_supervisor(self, error: Exception | None = None) -> None:
        """Make the supervisor actor fail. It is not restarted (its state has no other
        copy): the manager stops itself, unfinished tasks end ``INTERRUPTED`` (cause
        ``supervisor_failed``; kept pending with a durable store), waiters get answers,
        and later calls raise ``RuntimeClosedError`` with the reason."""
        if self._fail_supervisor is None:
            raise RuntimeError("this fault plan belongs to no runtime")
        self._fail_supervisor(_injected(error, "supervisor"))

    # -- the plan ---------------------------------------------------------------------------

    def apply(self, spec: TaskSpec) -> tuple[TaskSpec, str | None]:
        """The spec this attempt runs, and the fault injected into it (None: the spec
        itself). The fault applies to this attempt only: a retry runs the real one."""
        if not self.armed:
            return spec, None
        fault = self.take(spec.task_id, spec.operation_name)
        if fault is None:
            return spec, None
        options = spec.options
        wrapped: InjectedOperation | AsyncInjectedOperation
        if options.isolation is Isolation.ASYNC:
            wrapped = AsyncInjectedOperation(fault, cast(AsyncOperation, spec.operation))
            return dataclasses.replace(spec, operation=wrapped), fault.describe()
        wrapped = InjectedOperation(
            fault,
            cast(Operation, spec.operation),
            in_child=options.isolation is Isolation.PROCESS,
            memory_limit_mb=options.memory_limit_mb,
            cpu_time_limit=options.cpu_time_limit,
        )
        return dataclasses.replace(spec, operation=wrapped), fault.describe()

    def take(self, task_id: str, operation: str) -> Fault | None:
        """The fault for this run of this task, if any rule matches; spends one run."""
        with self._lock:
            chosen: FaultRule | None = None
            for rule in reversed(self._rules):
                if rule.matches(task_id, operation) and (
                    chosen is None or (rule.task_id is not None and chosen.task_id is None)
                ):
                    chosen = rule
            if chosen is None:
                return None
            chosen.applied += 1
            self.injected_total += 1
            if chosen.remaining is not None:
                chosen.remaining -= 1
                if chosen.remaining == 0:
                    self._rules.remove(chosen)
                    self.armed = bool(self._rules)
            return chosen.fault

    def remove(self, rule: FaultRule) -> bool:
        with self._lock:
            if rule not in self._rules:
                return False
            self._rules.remove(rule)
            self.armed = bool(self._rules)
            return True

    def clear(self) -> int:
        """Disarm every rule; returns how many there were."""
        with self._lock:
            count = len(self._rules)
            self._rules.clear()
            self.armed = False
            return count

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)


class InjectedFaultError(RuntimeError):
    """The default error of an injected failure of the runtime's own parts."""


def _injected(error: Exception | None, part: str) -> Exception:
    if error is None:
        return InjectedFaultError(f"injected fault in the {part}")
    if not isinstance(error, Exception):
        raise TypeError(f"error must be an Exception instance, got {error!r}")
    return error


def _check_seconds(name: str, value: float | None, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)
