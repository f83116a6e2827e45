"""What an operation has published since the last look: its latest progress, partial
result and checkpoint, and whether it showed a sign of life. Both task contexts (in the
host and in a child process) coalesce through it: however often the values change
between two drains, a drain returns only the latest, so a tight loop of updates costs
memory and messages of one.

In the host the supervisor makes one per attempt (before the operation starts) and keeps
it: it reads the time of the latest sign of life there for the attempt's heartbeat
deadline, and the latest checkpoint for a retry's ``resume_from``, without a message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from actors.validation import check_fraction

__all__ = ["CheckpointWaiter", "NumberedWaiter", "Published", "RemoteCommits"]

_UNSET: Any = object()

CheckpointWaiter = Callable[[BaseException | None], None]
"""Called once the checkpoint it came with is committed (None) or could not be kept
(the error): with a durable store, ``checkpoint`` waits for it."""


class NumberedWaiter:
    """A checkpoint's waiter away from the host (in a child process, on a Ray node): only
    its number, which travels with the checkpoint; the host's answer comes back by that
    number (a ``CheckpointStored`` record, the host channel's ``stored``) to the
    :class:`RemoteCommits` that made it, not by a call."""

    __slots__ = ("number",)

    def __init__(self, number: int) -> None:
        self.number = number

    def __call__(self, error: BaseException | None) -> None:
        """Never called: the answer comes back by number."""

    @staticmethod
    def latest(waiters: list[CheckpointWaiter]) -> int:
        """The number to send with the drained checkpoint: its waiter's, the last drained
        (they come in order; 0: nothing waits for it)."""
        last = waiters[-1] if waiters else None
        return last.number if isinstance(last, NumberedWaiter) else 0


class RemoteCommits:
    """Away from the host, with a durable store: numbers the checkpoints that wait for
    their commit, and holds the host's answers (the latest number answered, and why it
    could not be kept). An answer covers every checkpoint up to its number."""

    __slots__ = ("_answered", "_changed", "_error", "_made")

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._made = 0
        self._answered = 0
        self._error: str | None = None

    def waiter(self) -> NumberedWaiter:
        """The next checkpoint's waiter, to publish it with."""
        with self._changed:
            self._made += 1
            return NumberedWaiter(self._made)

    def answer(self, number: int, error: str | None) -> None:
        """The host's word for checkpoints up to ``number`` (an older word is ignored)."""
        with self._changed:
            if number > self._answered:
                self._answered, self._error = number, error
                self._changed.notify_all()

    def checkpoint(
        self,
        published: Published,
        text: str,
        wait: float | None,
        task_id: str,
        ship: Callable[[bool], None],
    ) -> None:
        """Publish a checkpoint made away from the host and tell ``ship`` (whether it is
        the first value since the last report, as :meth:`Published.checkpoint` says);
        with a durable store (``wait``: seconds), return only once the host says it is
        committed (see :meth:`wait`)."""
        if wait is None:
            ship(published.checkpoint(text))
            return
        waiter = self.waiter()
        ship(published.checkpoint(text, waiter))
        self.wait(waiter, wait, task_id)

    def wait(self, waiter: NumberedWaiter, seconds: float, task_id: str) -> None:
        """Return once the host says the checkpoint is committed; TimeoutError if it says
        nothing within ``seconds``, RuntimeError with its reason if it could not keep it."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._answered >= waiter.number, seconds):
                raise TimeoutError(
                    f"task {task_id}: the host did not confirm within {seconds} s that "
                    "the checkpoint was committed"
                )
            error = self._error
        if error is not None:
            raise RuntimeError(f"the checkpoint could not be kept: {error}")


class Published:
    __slots__ = (
        "_alive",
        "_checkpoint",
        "_checkpoint_new",
        "_last_sign",
        "_lock",
        "_monotonic",
        "_partial",
        "_partial_new",
        "_pending",
        "_progress",
        "_waiters",
        "commit_wait",
    )

    def __init__(
        self, monotonic: Callable[[], float] | None = None, commit_wait: float | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._progress: float | None = None  # set since the last drain
        self._partial: Any = _UNSET  # the latest, for reads inside the operation
        self._partial_new: Any = _UNSET  # set since the last drain
        self._pending = False  # something was published since the last drain
        self._alive = False  # a sign of life since the last drain
        self._checkpoint: str | None = None  # the latest checkpoint's JSON text
        self._checkpoint_new: str | None = None  # published since the last drain
        self._waiters: list[CheckpointWaiter] = []
        # The clock the signs of life are stamped with: the host's for an attempt with a
        # heartbeat deadline, none otherwise (nothing reads the stamp) and in a child.
        self._monotonic = monotonic
        self._last_sign: float | None = None
        # With a durable store: seconds a checkpoint waits for its commit (None: none).
        self.commit_wait = commit_wait

    def progress(self, fraction: float) -> bool:
        """Publish progress (a fraction from 0.0 to 1.0). True when this is the first
        value since the last drain: the caller then tells whoever drains."""
        # Written out for the tight loop of updates that pays for every call: the common
        # float in range (NaN fails both comparisons; anything else is checked in full),
        # then _sign and _first inline (measured: about a third of each call's cost).
        # A change to either of those changes this too. acquire/release rather than
        # ``with``, which allocates on every call: measured, it doubled the call's cost,
        # and made it six times slower under tracemalloc (which traces each allocation).
        value = fraction if type(fraction) is float and 0.0 <= fraction <= 1.0 else None
        if value is None:
            value = check_fraction(fraction)
        monotonic = self._monotonic
        if monotonic is not None:
            self._last_sign = monotonic()
        lock = self._lock
        lock.acquire()
        try:
            self._progress = value
            self._alive = True
            if self._pending:
                return False
            self._pending = True
            return True
        finally:
            lock.release()

    def partial(self, value: Any) -> bool:
        """Publish a partial result; True as for :meth:`progress`."""
        self._sign()
        with self._lock:
            self._partial = self._partial_new = value
            return self._first()

    def heartbeat(self) -> bool:
        """A sign of life and nothing else; True as for :meth:`progress`."""
        self._sign()
        with self._lock:
            return self._first()

    def checkpoint(self, text: str, waiter: CheckpointWaiter | None = None) -> bool:
        """Publish a checkpoint (its JSON text); ``waiter`` hears when it (or a later one
        that replaced it) is committed. True as for :meth:`progress`."""
        self._sign()
        with self._lock:
            self._checkpoint = self._checkpoint_new = text
            if waiter is not None:
                self._waiters.append(waiter)
            return self._first()

    def latest_partial(self) -> Any:
        """The latest partial result ever published (None if none was)."""
        with self._lock:
            return None if self._partial is _UNSET else self._partial

    def latest_checkpoint(self) -> str | None:
        """The latest checkpoint's JSON text ever published here (None if none was)."""
        return self._checkpoint

    def last_sign(self) -> float | None:
        """The monotonic time of the latest sign of life (None: none yet, or no clock)."""
        return self._last_sign

    def drain(self) -> tuple[float | None, Any, bool]:
        """Take what was published since the last drain: (progress or None, partial,
        whether a partial was published). The signs are taken by :meth:`drain_signs`."""
        with self._lock:
            progress, partial = self._progress, self._partial_new
            self._progress, self._partial_new = None, _UNSET
            self._pending = False
        if partial is _UNSET:
            return progress, None, False
        return progress, partial, True

    def drain_signs(self) -> tuple[bool, str | None, list[CheckpointWaiter]]:
        """Take the rest: (a sign of life since the last drain, the new checkpoint's
        text or None, the waiters of the checkpoints it covers)."""
        with self._lock:
            alive, text, waiters = self._alive, self._checkpoint_new, self._waiters
            self._alive, self._checkpoint_new = False, None
            if waiters:
                self._waiters = []
        return alive, text, waiters

    def _sign(self) -> None:
        monotonic = self._monotonic
        if monotonic is not None:
            self._last_sign = monotonic()

    def _first(self) -> bool:
        self._alive = True  # under the lock, as drain_signs takes it
        if self._pending:
            return False
        self._pending = True
        return True
