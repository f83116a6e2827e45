"""Measuring tools shared by the scenarios: percentiles, alternation, logging set-ups,
waiting for a batch of tasks, child processes, and the leak check around each scenario.

Every duration is taken with :func:`time.perf_counter` and kept in seconds; scenarios
convert to µs or ms only when they summarise.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from actors.testing import ResourceSnapshot, wait_until
from storycore_tasks import TaskManager
from storycore_tasks.logging import configure as configure_storycore_logging

__all__ = [
    "ChildProcessInfo",
    "LeakError",
    "alternate",
    "child_processes",
    "logging_json_to_file",
    "logging_off",
    "median",
    "no_leaks",
    "percentile",
    "pid_gone",
    "quiet_logging",
    "summarize",
    "wait_all_done",
]


class LeakError(RuntimeError):
    """A scenario left a thread, a pykka actor or a child process running."""


@dataclass(frozen=True, slots=True)
class ChildProcessInfo:
    """One child process of this process, from ``/proc/<pid>/stat``."""

    pid: int
    state: str  # "R", "S", "Z" (zombie), ...
    command: str

    @property
    def zombie(self) -> bool:
        return self.state == "Z"


def child_processes(*, include_resource_tracker: bool = False) -> list[ChildProcessInfo]:
    """The live and zombie children of this process (``ppid == os.getpid()`` in
    ``/proc/*/stat``); empty where there is no ``/proc``.

    multiprocessing's resource tracker, which the first ``spawn`` starts once per host
    process and which stays until the host exits, is left out unless asked for.
    """
    me = os.getpid()
    found: list[ChildProcessInfo] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stream:
                stat = stream.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 2 or int(fields[1]) != me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as stream:
                command = stream.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = ""
        if not include_resource_tracker and "resource_tracker" in command:
            continue
        found.append(ChildProcessInfo(int(entry), fields[0], command))
    return sorted(found, key=lambda child: child.pid)


def pid_gone(pid: int) -> bool:
    """Whether ``pid`` no longer exists (a zombie still exists: it is not reaped)."""
    return not os.path.exists(f"/proc/{pid}")


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of raw ``samples`` (``pct`` from 0 to 100).

    Nearest rank: the smallest sample with at least ``pct`` % of the samples at or
    below it, so the result is always one of the samples (p100 is the maximum).
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile must be from 0 to 100, got {pct!r}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def summarize(samples: Sequence[float], scale: float, digits: int = 1) -> dict[str, float]:
    """p50 / p99 / max / mean of ``samples`` (seconds) multiplied by ``scale``
    (1e6 for µs, 1e3 for ms), plus the sample count ``n``."""
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50) * scale, digits),
        "p99": round(percentile(samples, 99) * scale, digits),
        "max": round(max(samples) * scale, digits),
        "mean": round(sum(samples) / len(samples) * scale, digits),
    }


def alternate(runs: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every contender once per round, rotating the order each round, and collect
    what each returns (one figure per round).

    Alternating in one process means a noisy moment of the machine lands on every
    contender alike, and the rotation keeps any "who runs first" effect from favouring
    one of them. A full collection before each run keeps one run's garbage off the next.
    """
    names = list(runs)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            figures[name].append(runs[name]())
    return figures


@contextmanager
def logging_off() -> Iterator[None]:
    """Issue 7's "logging off": structlog configured to drop everything below WARNING
    at the call site. structlog's defaults are restored afterwards."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.reset_defaults()


@contextmanager
def quiet_logging() -> Iterator[None]:
    """Below WARNING dropped at the call site, and warnings (``task.timed_out``) go
    nowhere, so scenarios that time tasks out do not print over the table."""
    structlog.configure(
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    try:
        yield
    finally:
        structlog.reset_defaults()


@contextmanager
def logging_json_to_file() -> Iterator[Path]:
    """Issue 7's "logging on": the library's own JSON set-up at info level, writing to a
    file in a temporary directory (yielded, so the caller can count the lines)."""
    with tempfile.TemporaryDirectory(prefix="storycore-bench-") as directory:
        path = Path(directory) / "lifecycle.jsonl"
        with path.open("w", encoding="utf-8") as stream:
            configure_storycore_logging(json=True, level="info", stream=stream)
            try:
                yield path
            finally:
                structlog.reset_defaults()


def wait_all_done(
    manager: TaskManager, last_id: str, *, terminal: int, timeout: float = 600.0
) -> dict[str, Any]:
    """Wait for ``last_id``, then until the manager's lifetime counters show
    ``terminal`` ended tasks; returns those counters.

    Raises TimeoutError if that does not happen within ``timeout`` seconds.
    """
    manager.wait(last_id, timeout=timeout)
    deadline = time.perf_counter() + timeout
    while True:
        lifetime: dict[str, Any] = manager.get_stats()["lifetime_stats"]
        ended = lifetime["total_completed"] + lifetime["total_failed"] + lifetime["total_cancelled"]
        if ended >= terminal:
            return lifetime
        if time.perf_counter() > deadline:
            raise TimeoutError(f"only {ended} of {terminal} tasks ended within {timeout} s")
        time.sleep(0.0005)


@contextmanager
def no_leaks(grace_seconds: float = 10.0) -> Iterator[None]:
    """Raise :class:`LeakError` if the block leaves a thread, a pykka actor or a child
    process (a zombie included) behind."""
    before = ResourceSnapshot.take()
    children_before = {child.pid for child in child_processes()}
    yield
    leaked: tuple[list[str], list[str], list[int]] = ([], [], [])
    children: list[ChildProcessInfo] = []

    def clean() -> bool:
        nonlocal leaked, children
        leaked = ResourceSnapshot.take().leaked_since(before)
        children = [c for c in child_processes() if c.pid not in children_before]
        return not leaked[0] and not leaked[1] and not children

    if not wait_until(clean, timeout=grace_seconds):
        raise LeakError(
            f"left running: threads {leaked[0]}, actors {leaked[1]}, "
            f"child processes {[(c.pid, c.state) for c in children]}"
        )
