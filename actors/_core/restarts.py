"""Self-healing for the runtime's own parts: the registry actor and the timer service.

When one of them fails (an exception escapes a handler: a bug, or a test's injected
fault) it is restarted in place, as Akka restarts an actor: its address and its
mailbox are kept, the message that failed is not handled again (it may be what makes
it fail), and its state is rebuilt from what is known to be true (the records, the
store). Callers that were waiting get their answer, or :class:`ActorRestartedError`
for the one call that met the failure; none hangs.

A query that fails (a read that changes nothing) is not a restart: its asker gets
:class:`QueryFailedError` and nothing is rebuilt or counted, so no caller can use up
the restart intensity with reads.

A restart intensity, as in OTP, bounds this: more than ``max_restarts`` restarts
within ``window`` seconds means the fault is not transient, and the runtime stops
cleanly with the reason logged instead of restarting in a loop.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.pooled import stop_all_actors
from actors._errors import QueryFailedError
from actors.logs import library_logger

__all__ = ["RestartingActor", "SelfHealing"]

_log = library_logger("actors.restarts")


class SelfHealing:
    """The runtime's restart bookkeeping: counts per part, the restart intensity, and
    the one-time decision to give up. Thread-safe (the registry's and the timers'
    threads report here)."""

    def __init__(
        self,
        *,
        max_restarts: int,
        window: float,
        clock: Clock,
        give_up: Callable[[str], None],
    ) -> None:
        self._max_restarts = max_restarts
        self._window = window
        self._clock = clock
        self._give_up = give_up
        self._lock = threading.Lock()
        self._recent: collections.deque[float] = collections.deque()
        self._counts: dict[str, int] = {"registry": 0, "timers": 0}
        self.gave_up_reason: str | None = None

    def restarted(self, part: str, error: BaseException, **details: Any) -> bool:
        """Count a restart of ``part``; False once the intensity is exceeded (the runtime
        is then being stopped, and the caller should not count on it any more)."""
        now = self._clock.monotonic()
        with self._lock:
            self._counts[part] = self._counts.get(part, 0) + 1
            self._recent.append(now)
            while self._recent and self._recent[0] <= now - self._window:
                self._recent.popleft()
            within = len(self._recent) <= self._max_restarts
            count = self._counts[part]
            first_give_up = not within and self.gave_up_reason is None
            if first_give_up:
                self.gave_up_reason = (
                    f"its own actors needed {len(self._recent)} restarts within "
                    f"{self._window:g} s (max_restarts={self._max_restarts}); the last: "
                    f"the {part} failed with {error!r}"
                )
            reason = self.gave_up_reason
        _log.warning("actor.restarted", actor=part, restarts=count, error=repr(error), **details)
        if first_give_up:
            assert reason is not None
            _log.error("manager.giving_up", actor=part, reason=reason)
            self._give_up(reason)
        return within

    def fatal(
        self, part: str, error: BaseException | None, why: str = "could not be rebuilt"
    ) -> None:
        """``part`` failed and cannot be brought back: give up at once."""
        with self._lock:
            first = self.gave_up_reason is None
            if first:
                self.gave_up_reason = f"the {part} failed and {why}: {error!r}"
            reason = self.gave_up_reason
        if first:
            assert reason is not None
            _log.error("manager.giving_up", actor=part, reason=reason)
            self._give_up(reason)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self._counts,
                "total": sum(self._counts.values()),
                "max_restarts": self._max_restarts,
                "window": self._window,
                "gave_up": self.gave_up_reason,
            }


class CountingInbox(queue.SimpleQueue[Any]):
    """A mailbox that counts the messages put in it and those its actor has handled
    (each message's handler has returned, or the actor restarted after it), so another
    thread can tell whether the actor has handled everything sent to it before a given
    moment: read ``sent`` then, later, ``handled`` at least that. The count and the put
    are one step under a lock, so the counts follow the mailbox's order."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.sent = 0
        self.handled = 0  # written by the actor's thread only

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        lock = self._lock  # acquire/release, not ``with``: half the cost (measured)
        lock.acquire()
        try:
            self.sent += 1
            super().put(item, block, timeout)
        finally:
            lock.release()

    def mark_handled(self) -> None:
        self.handled += 1


class RestartingActor(pykka.ThreadingActor):
    """A threading actor that survives a handler that raises.

    pykka stops an actor whose handler raises on a told message, and answers every
    message left in its mailbox with ActorDeadError. This loop instead calls
    :meth:`on_restart` (which rebuilds the actor's state) and carries on with the same
    mailbox; an asker whose message failed gets the exception ``on_restart`` returns.

    A handler that raises :class:`QueryFailedError` says its message was a query that
    changed nothing: its asker gets that error, and the actor is not restarted.
    """

    def on_restart(self, error: Exception, message: Any) -> BaseException:
        """Rebuild the state after ``message`` failed with ``error``; returns what its
        asker (if it was asked) gets instead of an answer."""
        raise NotImplementedError

    def _actor_loop_running(self) -> None:
        # pykka 4's loop (see pykka._actor.Actor._actor_loop_running), with the failure
        # of a handler turned into a restart instead of a stop, and (a CountingInbox)
        # each message counted once it is handled, whichever way that went.
        inbox = self.actor_inbox
        counted = inbox if isinstance(inbox, CountingInbox) else None
        while not self.actor_stopped.is_set():
            envelope = inbox.get()
            try:
                try:
                    response = self._handle_receive(envelope.message)
                except QueryFailedError as failed:
                    # A query changes nothing: there is nothing to rebuild, so its failure is
                    # its asker's answer alone and never counts toward the restart intensity
                    # (else any caller could stop the runtime with a few bad reads).
                    _log.error(
                        "actor.query_failed",
                        actor=failed.actor,
                        request=failed.request,
                        error=repr(failed.error),
                        exception_type=type(failed.error).__qualname__,
                    )
                    if envelope.reply_to is not None:
                        envelope.reply_to.set_exception(exc_info=(type(failed), failed, None))
                    continue
                except Exception as exc:
                    try:
                        answer = self.on_restart(exc, envelope.message)
                    except Exception:  # the rebuild itself failed: stop as pykka would
                        failure = sys.exc_info()
                        if envelope.reply_to is not None:
                            envelope.reply_to.set_exception(exc_info=failure)
                        self._handle_failure(*failure)
                        with contextlib.suppress(Exception):
                            self.on_failure(*failure)
                        return
                    if envelope.reply_to is not None:
                        envelope.reply_to.set_exception(exc_info=(type(answer), answer, None))
                    continue
                except BaseException:
                    # As pykka: an interpreter exit or KeyboardInterrupt stops every actor.
                    self._stop()
                    stop_all_actors()
                    return
                if envelope.reply_to is not None:
                    envelope.reply_to.set(response)
            finally:
                if counted is not None:
                    counted.handled += 1  # see CountingInbox.mark_handled (inlined: hot)
