"""The process tree of an operation in a child process: find it, end it (Linux ``/proc``).

A pool child puts itself in a process group of its own and makes itself a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``), so while it lives every process its operation started
is a descendant by ``ppid`` links, even a daemon that double-forked or called ``setsid``
(an orphan reparents to the child, not to init). Ending the tree is then: walk the
descendants, SIGKILL each, walk again until a walk finds none left unsignalled (a process
may fork while we walk), and SIGKILL the group. See docs/ARCHITECTURE.md, "Stops", for
what this covers and what can escape it.

Kept to the standard library: a child imports it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

__all__ = ["become_subreaper", "descendants", "kill_descendants", "kill_group"]

_PR_SET_CHILD_SUBREAPER = 36
_MAX_PASSES = 50  # a fork bomb faster than the walks is not contained: said in the docs


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _live_parents() -> dict[int, int]:
    """pid -> ppid of every process that is not a zombie (a zombie is already dead)."""
    parents: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return parents
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2 :].split(maxsplit=2)
        if fields[0] in (b"Z", b"X"):
            continue
        parents[int(entry)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    """The live (not zombie) descendants of ``root``, parents before their children."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _live_parents().items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child in children.get(pid, ()):
            found.append(child)
            frontier.append(child)
    return found


def kill_descendants(root: int) -> int:
    """SIGKILL every descendant of ``root`` (which must be alive, and a subreaper, for
    orphans to be found), walking again until none is left unsignalled. Returns how
    many were signalled."""
    signalled: set[int] = set()
    for _ in range(_MAX_PASSES):
        new = [pid for pid in descendants(root) if pid not in signalled]
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            signalled.add(pid)
    return len(signalled)


def kill_group(pgid: int) -> None:
    """SIGKILL process group ``pgid`` (the child's own; its members outlive the child)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
