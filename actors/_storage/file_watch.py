"""Whether the file at a path is still the one that was opened there.

A database deleted or replaced under an open connection takes every later write to an
inode nobody will read again. :class:`FileWatch` keeps a descriptor of its own on the
file as opened, with its device and inode, and :meth:`FileWatch.check` says what
happened to it:

* every check looks at the open file's link count (an fstat, about 1 µs): deleted, or
  replaced by a rename, it has no name left;
* at most once every ``path_check_seconds`` (of the ``now`` the caller passes) it also
  compares the path's device and inode: the file moved away, another put there.

Plain state: the caller passes the time, so tests check the schedule at exact times.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PATH_CHECK_SECONDS", "FileWatch"]

PATH_CHECK_SECONDS = 1.0  # how often the path itself is compared with the open file


class FileWatch:
    """Watches the file at ``path`` from :meth:`start` to :meth:`stop`."""

    def __init__(self, path: Path, *, path_check_seconds: float = PATH_CHECK_SECONDS) -> None:
        self._path = path
        self._path_check_seconds = path_check_seconds
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._next_path_check = 0.0

    @property
    def watching(self) -> bool:
        """Whether a file is watched (False before :meth:`start`, after :meth:`stop`, or
        when the file could not be opened)."""
        return self._fd is not None

    def start(self) -> None:
        """Open the file now at the path, to watch it. A file that cannot be opened is
        not watched: :meth:`check` then finds nothing."""
        self.stop()
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            opened = os.fstat(fd)
        except OSError:
            os.close(fd)
            return
        self._fd = fd
        self._identity = (opened.st_dev, opened.st_ino)

    def check(self, now: float) -> str | None:
        """What happened to the watched file, or None while it is still at the path (or
        nothing is watched, or it cannot be looked at: a permission change)."""
        fd = self._fd
        if fd is None:
            return None
        try:
            if os.fstat(fd).st_nlink == 0:
                return "deleted or replaced"
            if now < self._next_path_check:
                return None
            self._next_path_check = now + self._path_check_seconds
            try:
                found = os.stat(self._path)
            except FileNotFoundError:
                return "moved away or deleted"
        except OSError:
            return None  # cannot look: the file itself may be fine
        if (found.st_dev, found.st_ino) != self._identity:
            return "replaced by another file"
        return None

    def stop(self) -> None:
        """Close the descriptor; nothing is watched until the next :meth:`start`."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
