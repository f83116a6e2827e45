"""Who comes first for an attempt whose start is not its hand-over (a child process that
must be acquired, later a node with room): its start, on the back-end's thread, or a
stop, on the supervisor's. One lock, no round trip.

The start records ``running`` under the gate, so RUNNING is in the registry's mailbox
before the supervisor can see the attempt as started; a stop that wins means the
operation never runs, so a task cancelled while it read ``pending`` never starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from actors._enums import StopReason

__all__ = ["StartGate"]


class StartGate:
    __slots__ = ("_lock", "_reason", "_started")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        self._reason: StopReason | None = None  # set by a stop that came first

    @property
    def started(self) -> bool:
        return self._started

    def open(self, record_running: Callable[[], None]) -> StopReason | None:
        """The back-end's thread, before the operation: start, calling ``record_running``
        under the gate, unless a stop came first (then its reason, and nothing is
        recorded). Called once."""
        with self._lock:
            if self._reason is not None:
                return self._reason
            self._started = True
            record_running()
        return None

    def stop(self, reason: StopReason) -> bool:
        """The supervisor: True if the attempt had not started (it never will)."""
        with self._lock:
            if self._started:
                return False
            if self._reason is None:
                self._reason = reason
            return True
