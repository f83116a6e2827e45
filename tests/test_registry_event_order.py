"""The registry publishes a change on the board before its subscribers' event about it
leaves: a subscriber that reads a task's status on hearing ``started`` reads it running.

The notifier here is a stand-in whose ``tell`` runs in the registry's own thread, at the
very moment the event leaves, and notes what the board publishes for the task then: so
the order is checked exactly, not raced."""

from __future__ import annotations

import threading
from typing import Any

from actors import ManualClock
from actors._core.messages import Finish, GetStats, MarkRunning, Register, RetryScheduled
from actors._core.notifier import TaskEvent
from actors._core.registry import RegistryActor
from actors._core.table import TaskTable
from actors._enums import TaskStatus
from actors._outcome import Completed, Raised
from tests.records import make_spec

WAIT = 10.0


class SeesPublished:
    """Notes, for each event told, the status the board publishes for its task."""

    def __init__(self, table: TaskTable) -> None:
        self._table = table
        self.seen: list[tuple[str, TaskStatus | None]] = []

    def tell(self, event: TaskEvent) -> None:
        record = self._table.get(event.task_id)
        state = None if record is None else record.published
        self.seen.append((event.kind, None if state is None else state[0]))


def test_every_step_is_published_before_its_event_leaves() -> None:
    table, clock = TaskTable(), ManualClock()
    notifier = SeesPublished(table)
    listening = threading.Event()
    listening.set()
    notifier_ref: Any = notifier  # EventOutbox only calls tell()
    registry = RegistryActor.start(table, clock, None, notifier_ref, listening)
    try:
        spec = make_spec("t")
        failure = Raised.from_exception(ValueError("once"))
        for message in (
            Register(spec),
            MarkRunning("t", clock.time()),
            RetryScheduled("t", failure, clock.time(), clock.time() + 1.0),
            MarkRunning("t", clock.time()),
            Finish("t", Completed(1), clock.time()),
        ):
            registry.tell(message)
        registry.ask(GetStats(), timeout=WAIT)  # behind every tell
    finally:
        registry.stop(timeout=WAIT)
    assert notifier.seen == [
        ("created", TaskStatus.PENDING),
        ("started", TaskStatus.RUNNING),
        ("retry_scheduled", TaskStatus.PENDING),
        ("started", TaskStatus.RUNNING),
        ("completed", TaskStatus.COMPLETED),
    ]
