"""The task context of a coroutine operation (``isolation="async"``): the host's
coalesced reporting, with waits that are awaited on the event loop instead of blocking
it. Its stop flag is set from the worker actor's thread; the waiters are resolved on the
loop (:func:`call_soon_safe`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from actors._errors import ActorUnresponsiveError
from actors._execution.context import ReportingContext, StopFlag
from actors._execution.published import Published

__all__ = ["LoopTaskContext", "call_soon_safe", "resolve_future"]


def call_soon_safe(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any
) -> None:
    """``call_soon_threadsafe`` that bears a loop already closed (a late lever, a
    commit after shutdown): then there is nothing left to tell."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def resolve_future(future: asyncio.Future[None]) -> None:
    """On the loop: resolve a waiter unless it is done already (timed out, cancelled)."""
    if not future.done():
        future.set_result(None)


class LoopTaskContext(ReportingContext):
    """The :class:`~actors.AsyncTaskContext` of a coroutine operation: the host's
    coalesced reporting (:class:`ReportingContext`), and a ``wait_cancelled`` that is
    awaited on the loop instead of blocking it."""

    __slots__ = ("_loop", "_waiters")

    def __init__(
        self,
        task_id: str,
        registry: pykka.ActorRef[Any],
        stop: StopFlag,
        loop: asyncio.AbstractEventLoop,
        dependency_results: Mapping[str, Any] | None = None,
        published: Published | None = None,
        resume_from: Any = None,
        gpu_indices: tuple[int, ...] = (),
    ) -> None:
        super().__init__(
            task_id, registry, stop, dependency_results, published, resume_from, gpu_indices
        )
        self._loop = loop
        self._waiters: list[asyncio.Future[None]] = []  # touched on the loop only

    async def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds or until a stop is requested, without holding
        the event loop; returns :meth:`is_cancelled`."""
        if self._stop.reason is not None:
            return True
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            if self._stop.reason is None:  # set between the check and the append
                await asyncio.wait((waiter,), timeout=timeout)
        finally:
            self._waiters.remove(waiter)
        return self._stop.reason is not None

    async def checkpoint(self, state: Any) -> None:
        """Record a resume point (JSON data); with a durable store, wait (on the loop,
        without holding it) until it is committed, raising why when it could not be."""
        ticket = self._publish_checkpoint(state)
        if ticket is None:
            return
        committed = self._loop.create_future()
        loop = self._loop
        ticket.on_done(lambda: call_soon_safe(loop, resolve_future, committed))
        wait = self._reports().commit_wait
        done, _ = await asyncio.wait((committed,), timeout=wait)
        if not done:
            raise ActorUnresponsiveError("registry", "a checkpoint's commit", wait or 0.0)
        if ticket.error is not None:
            raise ticket.error

    def _wake(self) -> None:
        """On the loop, after the stop flag was set: every waiter returns."""
        for waiter in self._waiters:
            resolve_future(waiter)
