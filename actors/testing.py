"""Test helpers shipped with the library, for its users as much as for its own suite.

* :class:`ManualClock`: virtual time that moves only when advanced.
* :class:`ResourceSnapshot` / :func:`assert_no_leaks`: prove that a block of code left no
  thread, no pykka actor and no child process behind.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pykka

from actors._clock import ManualClock
from actors._core.pooled import unlisted_actors

__all__ = [
    "ManualClock",
    "ResourceSnapshot",
    "assert_no_leaks",
    "child_processes",
    "leaks_since",
    "wait_until",
]


@dataclass(frozen=True, slots=True)
class ResourceSnapshot:
    """The threads, pykka actors (the pooled ones kept out of pykka's registry too) and
    child processes alive at one moment."""

    threads: frozenset[threading.Thread]
    actors: frozenset[str]
    children: frozenset[int] = frozenset()

    @classmethod
    def take(cls) -> ResourceSnapshot:
        return cls(
            threads=frozenset(t for t in threading.enumerate() if t.is_alive()),
            actors=frozenset(
                ref.actor_urn for ref in [*pykka.ActorRegistry.get_all(), *unlisted_actors()]
            ),
            children=child_processes(),
        )

    def leaked_since(self, before: ResourceSnapshot) -> tuple[list[str], list[str], list[int]]:
        """(thread names, actor urns, child pids) alive now that were not ``before``."""
        threads = sorted(t.name for t in self.threads - before.threads)
        actors = sorted(self.actors - before.actors)
        children = sorted(self.children - before.children)
        return threads, actors, children

    def describe_leaks(self, before: ResourceSnapshot) -> str | None:
        """What was left behind since ``before``, in words; None when nothing was."""
        threads, actors, children = self.leaked_since(before)
        if not threads and not actors and not children:
            return None
        return (
            f"leaked threads {threads}, actors {actors} and child processes {children}; "
            "shut down every TaskManager the code started (shutdown(wait=True))"
        )


def child_processes() -> frozenset[int]:
    """Pids of this process's live (not zombie) children: read from /proc on Linux,
    else the children multiprocessing knows about."""
    me = str(os.getpid())
    try:
        entries = os.listdir("/proc")
    except OSError:
        import multiprocessing

        return frozenset(p.pid for p in multiprocessing.active_children() if p.pid is not None)
    pids = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it exited meanwhile
        if fields[1] == me and fields[0] != "Z" and not _is_resource_tracker(entry):
            pids.append(int(entry))
    return frozenset(pids)


def _is_resource_tracker(pid: str) -> bool:
    """multiprocessing's resource tracker: started with a process's first child process
    and kept until the process exits, by design; not anyone's leak."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"multiprocessing.resource_tracker" in cmdline.read()
    except OSError:
        return False


@contextmanager
def assert_no_leaks(grace_seconds: float = 5.0) -> Iterator[None]:
    """Fail if the block leaves a thread, a pykka actor or a child process alive.

    Threads that are already stopping get up to ``grace_seconds`` to finish (a joined
    thread can linger in ``threading.enumerate`` for a moment).
    """
    before = ResourceSnapshot.take()
    yield
    leaks = leaks_since(before, grace_seconds=grace_seconds)
    if leaks is not None:
        raise AssertionError(leaks)


def leaks_since(before: ResourceSnapshot, *, grace_seconds: float = 5.0) -> str | None:
    """What is still alive ``grace_seconds`` after now that was not ``before``, in
    words; None as soon as nothing is (stopping threads get the grace to finish)."""
    leaks: str | None = None

    def clean() -> bool:
        nonlocal leaks
        leaks = ResourceSnapshot.take().describe_leaks(before)
        return leaks is None

    return None if wait_until(clean, timeout=grace_seconds) else leaks


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
