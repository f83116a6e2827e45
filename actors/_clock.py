"""Clocks: the real one, and a manual one that tests (and users) advance by hand.

Every part of the runtime that reads time takes a :class:`Clock`, so timeouts and
retention can be tested in virtual time, exactly, without sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, overload, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@overload
def blocking_timeout(timeout: float) -> float: ...
@overload
def blocking_timeout(timeout: None) -> None: ...
def blocking_timeout(timeout: float | None) -> float | None:
    """``timeout`` as a blocking call accepts it (``Lock.acquire``, ``Event.wait``,
    ``Condition.wait``, ``Thread.join``): at most ``threading.TIMEOUT_MAX`` (about 292
    years), past which those raise OverflowError; None (no limit) stays None."""
    if timeout is None:
        return None
    return min(timeout, threading.TIMEOUT_MAX)


@runtime_checkable
class Clock(Protocol):
    """What the runtime needs from a clock. All values are seconds, as floats."""

    def monotonic(self) -> float:
        """A never-decreasing reading, for deadlines."""
        ...

    def time(self) -> float:
        """Seconds since the Unix epoch, for timestamps that people read."""
        ...

    def seconds_until(self, deadline: float) -> float | None:
        """Real seconds a waiter should block before ``deadline`` may have passed.

        ``None`` means "block until woken": a manual clock only moves when it is advanced,
        and it wakes its subscribers when that happens.
        """
        ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` after every jump of the clock; returns the unsubscribe function."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` for deadlines, :func:`time.time` for stamps."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def seconds_until(self, deadline: float) -> float | None:
        return max(0.0, deadline - time.monotonic())

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        # Real time moves by itself; waiters use timeouts instead of notifications.
        return _noop

    def __repr__(self) -> str:
        return "SystemClock()"


def _noop() -> None:
    return None


class ManualClock:
    """A clock that only moves when :meth:`advance` is called.

    Subscribers (the timer service) are called synchronously inside :meth:`advance`,
    after the clock has moved, so every deadline that became due has been fired by the
    time ``advance`` returns.
    """

    def __init__(self, start_time: float = 1_767_225_600.0) -> None:
        # start_time defaults to 2026-01-01T00:00:00Z so stamps are realistic and stable.
        _check_finite("start_time", start_time)
        self._lock = threading.Lock()
        self._elapsed = 0.0
        self._start_time = float(start_time)
        self._subscribers: list[Callable[[], None]] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def time(self) -> float:
        with self._lock:
            return self._start_time + self._elapsed

    def seconds_until(self, deadline: float) -> float | None:
        return None

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` and fire whatever became due."""
        _check_finite("seconds", seconds)
        if seconds < 0:
            raise ValueError(f"ManualClock.advance({seconds!r}): a clock cannot go backwards")
        with self._lock:
            self._elapsed += float(seconds)
            subscribers = list(self._subscribers)
        failures: list[BaseException] = []
        for callback in subscribers:
            # One raising subscriber must not keep the others from hearing the jump.
            try:
                callback()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def __repr__(self) -> str:
        return f"ManualClock(elapsed={self._elapsed!r})"


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
