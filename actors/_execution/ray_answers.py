"""The answers of the Ray tasks in flight, fetched in batches on one thread.

A callback per task (``ObjectRef.future()``) runs Ray's deserialization and the
callback in Ray's own I/O thread, one task at a time: measured at about 0.6 ms of that
thread's CPU a task, more than a bare Ray task costs in all. And a ``ray.wait`` over
every task in flight, each time one ends, costs as much again with hundreds in flight.
So the host is told which tasks are about to answer (a *hint*: the node's ``ending``
on the host channel, a cancel the host sent, a node's connection that broke) and this
thread waits only for those, a batch at a time, with one ``ray.wait`` and one
``ray.get``. Every ``POLL_SECONDS`` it also asks Ray about all the others, so an answer
no hint announced (a worker that died silently) is still delivered. It never spins:
with nothing hinted it sleeps until a hint or the next poll.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["HINT_SLICE", "POLL_SECONDS", "Answer", "RayAnswers"]

HINT_SLICE = 0.01  # seconds: one wait for the hinted tasks (a hint comes just before)
POLL_SECONDS = 0.1  # seconds between two looks at every task in flight
_HINT_ROUNDS = 50  # a hinted task still not done after this many slices waits for a poll

Answer = tuple[Any, Any, BaseException | None]
"""(owner, the task's value, or the error ``ray.get`` raised for it)."""


class RayAnswers:
    """Waits for the tasks ``watch`` is given and calls ``deliver`` with each batch of
    answers (on its own thread), in the order ``ray.wait`` found them."""

    def __init__(self, ray: Any, deliver: Callable[[list[Answer]], None], name: str) -> None:
        self._ray = ray
        self._deliver = deliver
        self._new: collections.deque[tuple[Any, Any]] = collections.deque()
        self._hints: collections.deque[Any] = collections.deque()
        self._dropped: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        # Set by the thread before it sleeps with nothing in flight (then a watch wakes
        # it); it looks at the new ones after setting it, so none is missed.
        self._idle = False
        self._closed = False
        self._thread = threading.Thread(target=self._collect, name=f"{name}-answers", daemon=True)
        self._thread.start()

    def watch(self, ref: Any, owner: Any) -> None:
        """From any thread: deliver ``ref``'s answer, with ``owner``, once it is there.
        The thread is woken only if it sleeps with nothing in flight (no poll due);
        otherwise it takes ``ref`` on its next look, so a submission costs it no wake."""
        self._new.append((ref, owner))
        if self._idle:
            self._wake.set()

    def hint(self, ref: Any) -> None:
        """From any thread: ``ref`` (watched) is about to answer; look at it first."""
        self._hints.append(ref)
        self._wake.set()

    def unwatch(self, ref: Any) -> None:
        """From any thread: ``ref``'s answer came another way; never fetch it."""
        self._dropped.append(ref)

    def close(self) -> None:
        """Stop waiting (answers not there yet are never delivered); returns once the
        thread has ended."""
        self._closed = True
        self._wake.set()
        self._thread.join()

    def _collect(self) -> None:
        new, hints, dropped = self._new, self._hints, self._dropped
        pending: dict[Any, Any] = {}
        hinted: dict[Any, int] = {}  # ref -> slices waited
        next_poll = time.monotonic() + POLL_SECONDS
        while not self._closed:
            while new:
                ref, owner = new.popleft()
                pending[ref] = owner
            while dropped:
                ref = dropped.popleft()
                pending.pop(ref, None)
                hinted.pop(ref, None)
            while hints:
                ref = hints.popleft()
                if ref in pending:
                    hinted.setdefault(ref, 0)
            ready: list[Any] = []
            try:
                if hinted:
                    ready = self._hinted_ready(hinted)
                now = time.monotonic()
                if pending and now >= next_poll:
                    ready = list(
                        {
                            *ready,
                            *self._ray.wait(list(pending), num_returns=len(pending), timeout=0)[0],
                        }
                    )
                    next_poll = now + POLL_SECONDS
            except Exception as exc:  # the cluster is gone: every task in flight ends so
                self._deliver([(owner, None, exc) for owner in pending.values()])
                pending.clear()
                hinted.clear()
                continue
            for ref in ready:
                hinted.pop(ref, None)
            if ready:
                self._deliver(self._fetched(ready, pending))
            elif not hinted:
                self._sleep(pending, next_poll)

    def _sleep(self, pending: dict[Any, Any], next_poll: float) -> None:
        """Until a hint, the next poll or (nothing in flight) a watch."""
        if pending:
            self._wake.wait(max(0.0, next_poll - time.monotonic()))
        else:
            self._idle = True
            if not self._new:
                self._wake.wait()
            self._idle = False
        self._wake.clear()

    def _hinted_ready(self, hinted: dict[Any, int]) -> list[Any]:
        refs = list(hinted)
        ready, rest = self._ray.wait(refs, num_returns=len(refs), timeout=HINT_SLICE)
        for ref in rest:  # not done yet (a stop the operation takes its time over)
            hinted[ref] += 1
            if hinted[ref] >= _HINT_ROUNDS:
                del hinted[ref]
        return list(ready)

    def _fetched(self, ready: list[Any], pending: dict[Any, Any]) -> list[Answer]:
        ray = self._ray
        try:
            values = ray.get(ready)
        except Exception:  # one of them failed: each on its own, to tell which
            answers: list[Answer] = []
            for ref in ready:
                owner = pending.pop(ref)
                try:
                    answers.append((owner, ray.get(ref), None))
                except Exception as exc:
                    answers.append((owner, None, exc))
            return answers
        return [(pending.pop(ref), value, None) for ref, value in zip(ready, values, strict=True)]
