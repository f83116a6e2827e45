"""Supervision policies: how a failed task is retried, and when an operation that keeps
failing is given a rest (restart intensity, as an OTP supervisor's intensity/period).

Both are decided by the supervisor from failure *facts*, so they work the same for
thread- and process-isolated tasks: a retry policy matches an exception by the names of
its classes (``Raised.exception_mro``), not by the class object.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from actors._outcome import Crashed, Outcome, Raised, Stalled, TimedOut, exception_name
from actors.validation import MAX_SECONDS, check_seconds

__all__ = ["BreakerState", "CircuitBreakers", "OperationLimits", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Run a failed task again, up to ``max_attempts`` attempts in all.

    The wait before attempt ``n + 1`` is ``backoff * 2 ** (n - 1)`` seconds, at most
    ``max_backoff``; with ``jitter`` a random part of it (between half and all of it),
    so tasks that failed together do not all come back together.

    ``retry_on``: exception classes (or their qualified names) that are worth another
    attempt; a subclass matches. A crashed child process counts as an exception only to
    a policy that retries on ``Exception`` (or ``BaseException``). ``retry_on_timeout``:
    a timed-out attempt is retried too. A resource limit or a cancellation never is.
    """

    max_attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: bool = True
    retry_on: tuple[type[BaseException] | str, ...] = (Exception,)
    retry_on_timeout: bool = False
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"max_attempts must be an int, got {type(self.max_attempts).__name__}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
            if value > MAX_SECONDS:  # a retry's start time must stay a datetime
                raise ValueError(f"{name} must be at most {MAX_SECONDS:g} seconds, got {value!r}")
        if not isinstance(self.jitter, bool) or not isinstance(self.retry_on_timeout, bool):
            raise TypeError("jitter and retry_on_timeout must be bools")
        retry_on = self.retry_on
        if isinstance(retry_on, type | str):
            retry_on = (retry_on,)
        names = set()
        for item in retry_on:
            if isinstance(item, str) and item:
                names.add(item)
            elif isinstance(item, type) and issubclass(item, BaseException):
                names.add(exception_name(item))
            else:
                raise TypeError(
                    f"retry_on takes exception classes or their qualified names, got {item!r}"
                )
        object.__setattr__(self, "retry_on", tuple(retry_on))
        object.__setattr__(self, "_names", frozenset(names))

    def retries(self, outcome: Outcome, attempt: int) -> bool:
        """Whether attempt number ``attempt``, which ended with ``outcome``, gets another."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(outcome, Raised):
            mro = outcome.exception_mro or (outcome.exception_type,)
            return not self._names.isdisjoint(mro)
        if isinstance(outcome, TimedOut | Stalled):
            return self.retry_on_timeout  # a stall is retried as a timeout is
        if isinstance(outcome, Crashed):
            return not self._names.isdisjoint(("Exception", "BaseException"))
        return False

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after attempt number ``attempt`` failed."""
        base = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base * rng.uniform(0.5, 1.0) if self.jitter else base

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff": self.backoff,
            "max_backoff": self.max_backoff,
            "jitter": self.jitter,
            "retry_on": sorted(self._names),
            "retry_on_timeout": self.retry_on_timeout,
        }

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> RetryPolicy:
        return cls(**{**fields, "retry_on": tuple(fields["retry_on"])})


@dataclass(frozen=True, slots=True)
class OperationLimits:
    """Restart intensity for one operation: more than ``max_failures`` failures within
    ``failure_window`` seconds trips it for ``cooldown`` seconds."""

    max_failures: int
    failure_window: float
    cooldown: float

    def __post_init__(self) -> None:
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int):
            raise TypeError(f"max_failures must be an int, got {type(self.max_failures).__name__}")
        if self.max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {self.max_failures}")
        for name in ("failure_window", "cooldown"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
            if value > MAX_SECONDS:  # a cool-down is a timer deadline
                raise ValueError(f"{name} must be at most {MAX_SECONDS:g} seconds, got {value!r}")

    @classmethod
    def from_arguments(
        cls, max_failures: int | None, failure_window: float, cooldown: float | None
    ) -> OperationLimits | None:
        """The limits ``TaskManager(...)`` or ``register_operation(...)`` arguments name:
        None when ``max_failures`` is None (off); the cool-down defaults to the window."""
        if max_failures is None:
            return None
        window = check_seconds("failure_window", failure_window) or 0.0
        rest = window if cooldown is None else check_seconds("cooldown", cooldown) or 0.0
        return cls(max_failures, window, rest)


class BreakerState(StrEnum):
    CLOSED = "closed"  # tasks run
    OPEN = "open"  # new tasks refused, pending ones wait, until the cool-down ends
    HALF_OPEN = "half_open"  # one trial task runs; its outcome closes or reopens


@dataclass(slots=True)
class _Breaker:
    limits: OperationLimits
    failures: deque[float] = field(default_factory=deque)
    state: BreakerState = BreakerState.CLOSED
    open_until: float = 0.0
    trial_running: bool = False
    trips: int = 0


class CircuitBreakers:
    """One breaker per operation name, shared by the submitting threads (which refuse
    new tasks of an open operation) and the supervisor (which records outcomes and holds
    back pending tasks). Times are the runtime clock's monotonic seconds."""

    def __init__(self, default: OperationLimits | None) -> None:
        self._default = default
        self._overrides: dict[str, OperationLimits] = {}
        self._breakers: dict[str, _Breaker] = {}
        self._lock = threading.Lock()
        # False while no operation has limits: the supervisor then skips every check.
        # A plain attribute (read several times a task), set once limits exist: limits
        # are only ever added or replaced, never removed.
        self.enabled = default is not None

    def set_limits(self, operation: str, limits: OperationLimits) -> None:
        with self._lock:
            self._overrides[operation] = limits
            self.enabled = True
            breaker = self._breakers.get(operation)
            if breaker is not None:
                breaker.limits = limits

    def _breaker(self, operation: str) -> _Breaker | None:
        breaker = self._breakers.get(operation)
        if breaker is None:
            limits = self._overrides.get(operation, self._default)
            if limits is None:
                return None
            breaker = self._breakers[operation] = _Breaker(limits)
        return breaker

    def refusal(self, operation: str, now: float) -> float | None:
        """Seconds until ``operation`` takes new tasks again, or None if it does now."""
        with self._lock:
            breaker = self._breakers.get(operation)
            if breaker is None or breaker.state is not BreakerState.OPEN:
                return None
            return max(breaker.open_until - now, 0.0) if breaker.open_until > now else None

    def may_start(self, operation: str, now: float) -> Literal["yes", "trial", "no"]:
        """For the supervisor's dispatch: may a task of ``operation`` start now? Once the
        cool-down is over, one task at a time starts as the half-open breaker's trial."""
        with self._lock:
            breaker = self._breakers.get(operation)
            if breaker is None or breaker.state is BreakerState.CLOSED:
                return "yes"
            if breaker.state is BreakerState.OPEN:
                if now < breaker.open_until:
                    return "no"
                breaker.state = BreakerState.HALF_OPEN
            if breaker.trial_running:
                return "no"
            breaker.trial_running = True
            return "trial"

    def abandon_trial(self, operation: str) -> None:
        """The trial task was cancelled: its outcome says nothing; the next one tries."""
        with self._lock:
            breaker = self._breakers.get(operation)
            if breaker is not None:
                breaker.trial_running = False

    def record(self, operation: str, failed: bool, now: float) -> str | None:
        """Record an attempt's outcome; returns ``"tripped"`` or ``"recovered"`` when the
        breaker changed state, else None."""
        with self._lock:
            breaker = self._breaker(operation)
            if breaker is None:
                return None
            if breaker.state is BreakerState.HALF_OPEN and breaker.trial_running:
                breaker.trial_running = False
                if failed:
                    return self._trip(breaker, now)
                breaker.state = BreakerState.CLOSED
                breaker.failures.clear()
                return "recovered"
            if not failed or breaker.state is not BreakerState.CLOSED:
                return None
            window = breaker.limits.failure_window
            failures = breaker.failures
            failures.append(now)
            while failures and failures[0] <= now - window:
                failures.popleft()
            if len(failures) > breaker.limits.max_failures:
                return self._trip(breaker, now)
            return None

    def _trip(self, breaker: _Breaker, now: float) -> str:
        breaker.state = BreakerState.OPEN
        breaker.open_until = now + breaker.limits.cooldown
        breaker.failures.clear()
        breaker.trips += 1
        return "tripped"

    def cooldown_end(self, operation: str) -> float | None:
        with self._lock:
            breaker = self._breakers.get(operation)
            return None if breaker is None else breaker.open_until

    def snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        """Per operation with a breaker: its state, recent failures, trips, retry_after."""
        with self._lock:
            snapshot: dict[str, dict[str, Any]] = {}
            for name, b in self._breakers.items():
                state = b.state
                if state is BreakerState.OPEN and now >= b.open_until:
                    state = BreakerState.HALF_OPEN  # the cool-down is over: a trial may run
                snapshot[name] = {
                    "state": state.value,
                    "recent_failures": len(b.failures),
                    "trips": b.trips,
                    "retry_after": b.open_until - now if state is BreakerState.OPEN else None,
                }
            return snapshot
