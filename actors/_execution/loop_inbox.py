"""Calls into an event loop from other threads, one wake-up per burst.

``loop.call_soon_threadsafe`` writes a byte to the loop's self-pipe on every call. The
Ray back-end's bridge loop is called into once or twice per attempt (each submission,
each Ray answer), from the supervisor's and Ray's threads; with hundreds of attempts in
flight that write was a measured share of the host's CPU (BENCHMARKS.md, B14). Here a
call is appended to a deque and the loop is woken only when no wake-up is pending
already; one turn of the loop then runs every call queued by then, in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable

__all__ = ["LoopInbox"]


class LoopInbox:
    """Calls for ``loop``, run on it in the order they were put."""

    __slots__ = ("_calls", "_loop", "_wake_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: collections.deque[Callable[[], object]] = collections.deque()
        self._wake_pending = False

    def put(self, call: Callable[[], object]) -> None:
        """From any thread. A loop already closed (a late call after shutdown) takes
        nothing: there is no one left to run it."""
        # Lock-free under the GIL: the call is in the deque before the flag is read, so
        # either a run still to come (flag set) pops it, or this put schedules one.
        self._calls.append(call)
        if not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        self._wake_pending = False
        calls = self._calls
        while calls:
            call = calls.popleft()
            try:
                call()
            except Exception as exc:  # logged as asyncio logs a failed callback; the rest run
                self._loop.call_exception_handler(
                    {"message": f"a call of a LoopInbox failed: {call!r}", "exception": exc}
                )
