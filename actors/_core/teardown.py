"""The runtime's teardown: its parts stopped in their order, on a thread of its own.

It starts once the supervisor has drained (every operation has returned, or the pending
ones were cancelled) and runs each step in turn. Where it is, is readable at any time, so
a shutdown whose timeout passed can say what really holds it up (``describe_wait``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from actors._clock import blocking_timeout
from actors._core.supervisor import SupervisorStats

__all__ = ["Step", "Teardown", "describe_wait"]

Step = tuple[str, Callable[[], None]]
"""A step's name (what the teardown waits for while it runs) and what it does."""


class Teardown:
    def __init__(self, steps: Sequence[Step], *, name: str = "actors-shutdown") -> None:
        self._steps = tuple(steps)
        self._step = "drain"  # before the first step: operations still running or pending
        self.error: BaseException | None = None  # what made a step fail, if one did
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._drained: threading.Event | None = None

    @property
    def step(self) -> str:
        """ "drain" until the drain is over, then the name of the step running."""
        return self._step

    def start(self, drained: threading.Event) -> None:
        """Run the steps once ``drained`` is set."""
        self._drained = drained
        self._thread.start()

    def join(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for the last step; whether it is done."""
        self._thread.join(blocking_timeout(timeout))
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            if self._drained is not None:
                self._drained.wait()
            for name, step in self._steps:
                self._step = name
                step()
        except BaseException as exc:
            self.error = exc


def describe_wait(
    step: str,
    *,
    running: Callable[[], Sequence[str]],
    supervisor: Callable[[], SupervisorStats],
    subscription: Callable[[], object],
) -> str:
    """What a shutdown that has not finished is waiting for, in words: the step the
    teardown is at (``Teardown.step``), so a timeout blames what really holds it up.
    ``running`` reads the running task ids, ``supervisor`` its statistics and
    ``subscription`` the subscription whose callback is being waited for; each is read
    only at the step it explains."""
    if step == "drain":
        running_ids = list(running())
        stats = supervisor()
        return (
            f"operations to return (running: {running_ids}; timed out or cancelled but "
            f"not yet returned: {stats.stopping}; pending still to run: "
            f"{stats.pending})"
        )
    if step == "subscribers":
        return (
            f"the callback of subscription {subscription()} to return "
            "(every operation has ended; a subscriber callback that blocks holds "
            "shutdown up: return from it, or unsubscribe before shutting down)"
        )
    if step == "actors":
        return "the runtime's actors to stop (every operation has ended)"
    return "the runtime's threads to stop (every operation has ended)"
