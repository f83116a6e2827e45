"""What runs where the operation would have run when a test injects a fault: the
:class:`Fault` itself and the operation wrapped around it (:class:`InjectedOperation`,
:class:`AsyncInjectedOperation`), and the exceptions a thread or the event loop raises to
stand for a crash or a resource limit they cannot really have.

Pool children unpickle these, so the module imports only the standard library and leaf
modules. The plan that arms faults, on the host, is :mod:`actors._execution.faults`.
"""

from __future__ import annotations

import os
import signal as signal_module
import time
from dataclasses import dataclass
from typing import Any

from actors._execution.api import AsyncOperation, Operation
from actors._outcome import Crashed, Outcome, ResourceExhausted

__all__ = [
    "AsyncInjectedOperation",
    "Fault",
    "InjectedCrash",
    "InjectedLimit",
    "InjectedOperation",
]

_SLICE = 0.01  # seconds between checks in the faults that wait


class InjectedCrash(BaseException):
    """Raised in an operation thread to stand for a crash (a thread cannot die alone):
    the worker records it as the :class:`Crashed` outcome a child killed by
    ``signal`` would have."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"injected crash ({_signal_name(signum)})")
        self.signum = signum

    def outcome(self) -> Outcome:
        return Crashed(exit_code=None, signal=self.signum)


class InjectedLimit(BaseException):
    """Raised in an operation thread to stand for a resource limit (threads have none):
    recorded as the :class:`ResourceExhausted` outcome of a child over its limit."""

    def __init__(self, limit: str, value: float) -> None:
        super().__init__(f"injected: {limit} exceeded")
        self.limit = limit
        self.value = value

    def outcome(self) -> Outcome:
        return ResourceExhausted(
            limit=self.limit,
            value=self.value,
            message=f"injected fault: {self.limit} exceeded (simulated in thread isolation)",
        )


@dataclass(frozen=True, slots=True)
class Fault:
    """One way for a run to go wrong. Build them with the :class:`FaultPlan` methods."""

    kind: str
    exception: BaseException | None = None  # "raise"
    seconds: float | None = None  # "delay", "ignore_cancellation" (None: until stopped)
    signum: int = signal_module.SIGKILL  # "crash"
    limit: str = "memory"  # "exceed_limit"

    def describe(self) -> str:
        """How records and logs name it: ``raise OSError('disk full')``."""
        if self.kind == "raise":
            return f"raise {self.exception!r}"
        if self.kind == "crash":
            return f"crash ({_signal_name(self.signum)})"
        if self.kind == "exceed_limit":
            return f"exceed_limit ({self.limit})"
        if self.kind in ("delay", "ignore_cancellation") and self.seconds is not None:
            return f"{self.kind} ({self.seconds:g} s)"
        return self.kind


@dataclass(frozen=True, slots=True)
class InjectedOperation:
    """An attempt's operation with a fault in front of (or instead of) it."""

    fault: Fault
    operation: Operation
    in_child: bool = False
    memory_limit_mb: float | None = None
    cpu_time_limit: float | None = None

    def __call__(self, params: Any, task: Any) -> Any:
        fault = self.fault
        kind = fault.kind
        if kind == "raise":
            assert fault.exception is not None
            # A copy per run: raising one instance twice would chain their tracebacks.
            raise _fresh(fault.exception)
        if kind == "hang":
            # Until the supervisor stops the task (a cancel, a timeout, shutdown).
            while not task.wait_cancelled(1.0):
                pass
            return None
        if kind == "ignore_cancellation":
            _sleep_ignoring_cancellation(fault.seconds)
            return None
        if kind == "delay":
            assert fault.seconds is not None
            time.sleep(fault.seconds)
            return self.operation(params, task)
        if kind == "crash":
            if not self.in_child:
                raise InjectedCrash(fault.signum)
            # The default action, whatever handler the child installed: it really dies.
            # (SIGKILL and SIGSTOP cannot have a handler, nor be given one.)
            if fault.signum not in (signal_module.SIGKILL, signal_module.SIGSTOP):
                signal_module.signal(fault.signum, signal_module.SIG_DFL)
            os.kill(os.getpid(), fault.signum)
            _sleep_ignoring_cancellation(None)  # a signal that does not kill (SIGCHLD...)
            return None
        if kind == "exceed_limit":
            return self._exceed_limit()
        raise AssertionError(f"unknown fault kind {kind!r}")

    def _exceed_limit(self) -> None:
        limit = self.fault.limit
        if limit == "memory":
            if not self.in_child or self.memory_limit_mb is None:
                raise InjectedLimit("memory_limit_mb", self.memory_limit_mb or 0.0)
            hog: list[bytearray] = []
            while True:  # until the address-space limit makes an allocation fail
                hog.append(bytearray(16 * 1024 * 1024))
        if not self.in_child or self.cpu_time_limit is None:
            raise InjectedLimit("cpu_time_limit", self.cpu_time_limit or 0.0)
        while True:  # until SIGXCPU ends the child
            sum(range(10_000))


@dataclass(frozen=True, slots=True)
class AsyncInjectedOperation:
    """A coroutine attempt's operation with a fault in front of (or instead of) it: the
    same faults, awaited on the event loop instead of blocking it (``hang`` awaits the
    stop, ``delay`` and ``ignore_cancellation`` await ``asyncio.sleep``, which only the
    stop ladder's ``CancelledError`` ends early)."""

    fault: Fault
    operation: AsyncOperation

    async def __call__(self, params: Any, task: Any) -> Any:
        import asyncio  # here: a pool child unpickles this module without needing it

        fault = self.fault
        kind = fault.kind
        if kind == "raise":
            assert fault.exception is not None
            raise _fresh(fault.exception)
        if kind == "hang":
            while not await task.wait_cancelled(1.0):
                pass
            return None
        if kind == "ignore_cancellation":
            # Never looks at is_cancelled(): the ladder's task.cancel() ends it early.
            if fault.seconds is None:
                await asyncio.Event().wait()  # until cancelled
            else:
                await asyncio.sleep(fault.seconds)
            return None
        if kind == "delay":
            assert fault.seconds is not None
            await asyncio.sleep(fault.seconds)
            return await self.operation(params, task)
        if kind == "crash":
            raise InjectedCrash(fault.signum)  # an event loop's task cannot die alone
        if kind == "exceed_limit":
            raise InjectedLimit(
                "memory_limit_mb" if fault.limit == "memory" else "cpu_time_limit", 0.0
            )
        raise AssertionError(f"unknown fault kind {kind!r}")


def _fresh(exception: BaseException) -> BaseException:
    """A new instance equal to ``exception``: made without calling its ``__init__`` (a
    constructor may format its message from other arguments), with its args and
    attributes, and no traceback yet."""
    cls = type(exception)
    try:
        copy = cls.__new__(cls, *exception.args)
        copy.args = exception.args
        copy.__dict__.update(vars(exception))
    except Exception:  # a class that cannot be made this way: raise the instance itself
        return exception.with_traceback(None)
    return copy


def _sleep_ignoring_cancellation(seconds: float | None) -> None:
    """Sleep in short slices and never look at the task: the supervisor's escalation
    (an interrupt in a thread, signals for a child) is what ends it early."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        time.sleep(_SLICE)


def _signal_name(signum: int) -> str:
    try:
        return signal_module.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
