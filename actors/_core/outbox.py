"""``EventOutbox``: the registry's side of subscriptions, the lifecycle facts it tells.

The registry sees every lifecycle fact in order and tells each to the notifier actor,
but only while someone is subscribed (``listening``), and with a durable store only
after the commit that covers the fact: an event must never report a state a crash
could undo. Progress is not a durable fact and goes out at once. This class keeps the
facts held for a commit and sends them when the registry says the commit worked
(leaving out those of records the store refused); it is tested directly with a plain
pykka actor standing in for the notifier.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from actors._core.notifier import TaskEvent
from actors._records import TaskRecord

__all__ = ["EventOutbox"]


class EventOutbox:
    """Lifecycle facts for ``notifier``: sent at once, or, when ``durable``, held until
    :meth:`release` (the commit that covers them worked)."""

    __slots__ = ("_durable", "_held", "_listening", "_notifier")

    def __init__(
        self,
        notifier: pykka.ActorRef[Any] | None,
        listening: threading.Event | None,
        *,
        durable: bool,
    ) -> None:
        self._notifier = notifier
        self._listening = listening if listening is not None else threading.Event()
        self._durable = durable
        self._held: list[TaskEvent] = []  # facts waiting for their commit

    def __len__(self) -> int:
        """How many facts wait for a commit."""
        return len(self._held)

    def listened(self) -> bool:
        """Anyone subscribed? Checked before an event's fields are even built: without
        subscribers the events cost nothing."""
        return self._notifier is not None and self._listening.is_set()

    def probe(self) -> Callable[[], bool]:
        """:meth:`listened` as the cheapest callable that answers it: the registry binds
        it once and calls it for every lifecycle fact."""
        if self._notifier is None:
            return _nobody
        return self._listening.is_set

    def emit(self, kind: str, record: TaskRecord, *, now: bool = False, **data: Any) -> None:
        """Tell subscribers a lifecycle fact (callers check :meth:`listened` first).
        With a durable store a fact (other than progress, ``now``) goes out after the
        commit that covers it."""
        notifier = self._notifier
        assert notifier is not None
        event = TaskEvent(kind, record.task_id, record.updated_at, data)
        if not self._durable or now:
            with contextlib.suppress(pykka.ActorDeadError):  # stopped: nobody listens
                notifier.tell(event)
        else:
            self._held.append(event)

    def release(self, refused: Mapping[str, object] | None = None) -> None:
        """The commit covering the held facts worked: send them, in order, except those
        of the tasks in ``refused`` (facts the file does not hold are not told)."""
        if not self._held:
            return
        held = self._held
        if refused:
            held = [e for e in held if e.task_id not in refused]
        notifier = self._notifier
        assert notifier is not None
        with contextlib.suppress(pykka.ActorDeadError):  # stopped: nobody listens
            for event in held:
                notifier.tell(event)
        self._held = []


def _nobody() -> bool:
    return False
