"""An operation that spins in pure Python and never looks at ``is_cancelled()``: what the
stop ladder's interrupt is for, in any back-end's tests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from actors import TaskContext, TaskInterrupted


class Spinner:
    """An operation that spins in pure Python and never looks at is_cancelled().

    ``swallow`` interrupts are caught and ignored before it lets one through.
    """

    def __init__(self, swallow: int = 0) -> None:
        self.swallow = swallow
        self.entered = threading.Event()
        self.left = threading.Event()
        self.interrupts_seen = 0

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> str:
        task.partial_result = {"spun": True}
        self.entered.set()
        try:
            while True:
                try:
                    while True:
                        pass
                except TaskInterrupted:
                    self.interrupts_seen += 1
                    if self.interrupts_seen > self.swallow:
                        raise
        finally:
            self.left.set()
