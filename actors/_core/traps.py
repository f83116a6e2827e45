"""``FaultTraps``: the registry faults a test armed (``InjectFault``), and which message
springs each.

The registry's restart is tested by making one of its handlers raise. A trap names
the kind of message (and, optionally, the task) it waits for; the first matching
message raises the trap's error inside the handler, exactly as a bug there would, and
disarms it. Kept apart from the registry so its matching rule is read (and tested) on
its own, and so the handlers' hot path pays one attribute check while nothing is armed.
"""

from __future__ import annotations

from typing import Any

from actors._core.messages import InjectFault

__all__ = ["FaultTraps", "task_of"]


def task_of(message: Any) -> str | None:
    """The task a message is about (its ``task_id``, or its spec's), if any."""
    task_id = getattr(message, "task_id", None)
    if task_id is None:
        spec = getattr(message, "spec", None)
        task_id = getattr(spec, "task_id", None)
    return task_id if isinstance(task_id, str) else None


class FaultTraps:
    """Armed faults, in the order they were armed."""

    __slots__ = ("armed",)

    def __init__(self) -> None:
        self.armed: list[InjectFault] = []  # read by the registry before each message

    def arm(self, trap: InjectFault) -> None:
        """Arm ``trap``; one without a message type springs at once (on itself)."""
        self.armed.append(trap)
        self.spring(trap)

    def spring(self, message: Any) -> None:
        """Raise the first armed fault that ``message`` triggers (and disarm it)."""
        for trap in self.armed:
            if trap.message_type is None:
                if message is not trap:
                    continue
            elif not isinstance(message, trap.message_type) or (
                trap.task_id is not None and task_of(message) != trap.task_id
            ):
                continue
            self.armed.remove(trap)
            raise trap.error
