"""A plain pykka actor that stands in for a receiver in the tests of the runtime's state
objects: it keeps every message it is told, and :func:`told` reads them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pykka

WAIT = 10.0
_TOLD = object()  # the question; never a message a test tells


class Collector(pykka.ThreadingActor):
    """Keeps every message, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message is _TOLD:
            return list(self.messages)
        self.messages.append(message)
        return None


def told(ref: pykka.ActorRef[Any]) -> list[Any]:
    """What ``ref`` was told. Asked behind the tells, so the answer is a barrier: every
    earlier tell has been handled."""
    messages = ref.ask(_TOLD, block=True, timeout=WAIT)
    assert isinstance(messages, list)
    return messages


@contextlib.contextmanager
def collecting() -> Iterator[pykka.ActorRef[Any]]:
    """A running :class:`Collector`, stopped at the end."""
    ref = Collector.start()
    try:
        yield ref
    finally:
        ref.stop(timeout=WAIT)
