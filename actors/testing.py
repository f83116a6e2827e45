"""Test helpers shipped with the library, for its users as much as for its own suite.

* :class:`ManualClock`: virtual time that moves only when advanced.
* :class:`ResourceSnapshot` / :func:`assert_no_leaks`: prove that a block of code left no
  thread and no pykka actor behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pykka

from actors._clock import ManualClock

__all__ = ["ManualClock", "ResourceSnapshot", "assert_no_leaks", "wait_until"]


@dataclass(frozen=True, slots=True)
class ResourceSnapshot:
    """The threads and pykka actors alive at one moment."""

    threads: frozenset[threading.Thread]
    actors: frozenset[str]

    @classmethod
    def take(cls) -> ResourceSnapshot:
        return cls(
            threads=frozenset(t for t in threading.enumerate() if t.is_alive()),
            actors=frozenset(ref.actor_urn for ref in pykka.ActorRegistry.get_all()),
        )

    def leaked_since(self, before: ResourceSnapshot) -> tuple[list[str], list[str]]:
        """(thread names, actor urns) alive now that were not alive ``before``."""
        threads = sorted(t.name for t in self.threads - before.threads)
        actors = sorted(self.actors - before.actors)
        return threads, actors


@contextmanager
def assert_no_leaks(grace_seconds: float = 5.0) -> Iterator[None]:
    """Fail if the block leaves a thread or a pykka actor alive.

    Threads that are already stopping get up to ``grace_seconds`` to finish (a joined
    thread can linger in ``threading.enumerate`` for a moment).
    """
    before = ResourceSnapshot.take()
    yield
    leaked: tuple[list[str], list[str]] = ([], [])

    def clean() -> bool:
        nonlocal leaked
        leaked = ResourceSnapshot.take().leaked_since(before)
        return not leaked[0] and not leaked[1]

    if not wait_until(clean, timeout=grace_seconds):
        threads, actors = leaked
        raise AssertionError(f"leaked threads {threads} and actors {actors}")


def wait_until(predicate: object, *, timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass; returns the last value.

    For conditions that have no event to wait on (a thread leaving the process). Prefer
    ``TaskManager.wait`` or an event wherever one exists.
    """
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
