"""Operations whose progress a test controls exactly, without sleeping."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from actors import TaskContext
from storycore_tasks import TaskManager

RELEASE_TIMEOUT = 30.0  # an op never blocks longer than this, so a broken test cannot hang


class Gate:
    """An operation that blocks until released, without looking at ``is_cancelled``.

    ``entered`` is set once the operation runs; ``saw_cancel`` records what
    ``is_cancelled()`` said when it was released.
    """

    def __init__(self, result: Any = "done", *, partial: Any = None) -> None:
        self.result = result
        self.partial = partial
        self.entered = threading.Event()
        self.release_event = threading.Event()
        self.saw_cancel: bool | None = None
        self.calls = 0

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        self.calls += 1
        if self.partial is not None:
            task.partial_result = self.partial
        self.entered.set()
        self.release_event.wait(RELEASE_TIMEOUT)
        self.saw_cancel = task.is_cancelled()
        return self.result

    def release(self) -> None:
        self.release_event.set()

    def wait_entered(self, timeout: float = 10.0) -> None:
        assert self.entered.wait(timeout), "the operation never started"


def settle(manager: TaskManager) -> None:
    """A barrier through both actors: every message told to the supervisor before this
    call has been handled, and so have the registry messages it sent meanwhile."""
    manager.get_stats()  # asks the registry, then the supervisor
    manager.get_stats()  # the supervisor's tells to the registry are now ahead of this ask
