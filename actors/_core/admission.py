"""The admission gate: how many tasks may wait for a slot (``max_pending``).

Shared by the submitting threads (which take a place) and the supervisor (which gives
one back when a task leaves the queue: started or cancelled). A counter under a lock is
all it takes; a ``threading.Semaphore`` would build a Condition round it for waiting
that nobody does here.
"""

from __future__ import annotations

import threading

__all__ = ["AdmissionGate"]


class AdmissionGate:
    __slots__ = ("_lock", "_waiting", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._waiting = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        """Take a place; False (and nothing taken) when all ``capacity`` are taken."""
        # acquire/release, not ``with``: half the cost of the call (measured), twice a task.
        lock = self._lock
        lock.acquire()
        try:
            if self._waiting >= self.capacity:
                return False
            self._waiting += 1
            return True
        finally:
            lock.release()

    def enter(self) -> None:
        """Take a place even past ``capacity``: tasks recovered from a durable store were
        admitted once already and are never refused."""
        with self._lock:
            self._waiting += 1

    def leave(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            if self._waiting <= 0:
                raise RuntimeError("AdmissionGate.leave() without a matching try_enter()")
            self._waiting -= 1
        finally:
            lock.release()

    @property
    def waiting(self) -> int:
        return self._waiting
