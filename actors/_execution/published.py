"""What an operation has published since the last look: its latest progress and
partial result. Both task contexts (in the host and in a child process) coalesce
through it: however often the values change between two drains, a drain returns only
the latest, so a tight loop of updates costs memory and messages of one."""

from __future__ import annotations

import threading
from typing import Any

from actors.validation import check_fraction

__all__ = ["Published"]

_UNSET: Any = object()


class Published:
    __slots__ = ("_lock", "_partial", "_partial_new", "_pending", "_progress")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: float | None = None  # set since the last drain
        self._partial: Any = _UNSET  # the latest, for reads inside the operation
        self._partial_new: Any = _UNSET  # set since the last drain
        self._pending = False  # something was published since the last drain

    def progress(self, fraction: float) -> bool:
        """Publish progress (a fraction from 0.0 to 1.0). True when this is the first
        value since the last drain: the caller then tells whoever drains."""
        value = check_fraction(fraction)
        with self._lock:
            self._progress = value
            return self._first()

    def partial(self, value: Any) -> bool:
        """Publish a partial result; True as for :meth:`progress`."""
        with self._lock:
            self._partial = self._partial_new = value
            return self._first()

    def latest_partial(self) -> Any:
        """The latest partial result ever published (None if none was)."""
        with self._lock:
            return None if self._partial is _UNSET else self._partial

    def drain(self) -> tuple[float | None, Any, bool]:
        """Take what was published since the last drain: (progress or None, partial,
        whether a partial was published)."""
        with self._lock:
            progress, partial = self._progress, self._partial_new
            self._progress, self._partial_new = None, _UNSET
            self._pending = False
        if partial is _UNSET:
            return progress, None, False
        return progress, partial, True

    def _first(self) -> bool:
        if self._pending:
            return False
        self._pending = True
        return True
