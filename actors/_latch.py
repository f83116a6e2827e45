"""``Latch``: a one-shot signal that one thread opens and others wait for, or are called
back by.

A bare lock held until the latch opens: opening it is one C call, where ``Event.set``
goes through a Python-level Condition (it showed as the registry's largest cost when
every submission waited on one). A waiter blocks in :meth:`Latch.wait`; an event loop
registers :meth:`Latch.on_done` instead. The registry's commit tickets and terminal
waiters are latches carrying what they were opened with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from actors._clock import blocking_timeout

__all__ = ["Latch"]


class Latch:
    __slots__ = ("_callback", "_done", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._done = False
        self._callback: Callable[[], None] | None = None

    def _open(self) -> None:
        """Called once, by the one thread that opens it, after it stored its result."""
        self._done = True
        self._lock.release()
        callback = self._callback
        if callback is not None:
            callback()

    def on_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the latch is open (on the opener's thread, or now if it
        is open already) instead of blocking in :meth:`wait`: how an event loop waits.
        It must be short, never block, and bear being called twice (a race of this call
        with the opening may call it from both sides). One callback a latch."""
        self._callback = callback
        if self._done:
            callback()

    def wait(self, timeout: float | None) -> bool:
        """Block until the latch is open, at most ``timeout`` seconds; whether it is."""
        if self._lock.acquire(timeout=-1 if timeout is None else blocking_timeout(timeout)):
            self._lock.release()  # a second wait() returns at once too
            return True
        return False
