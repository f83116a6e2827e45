"""Process isolation's children: a warm pool of ``spawn``ed child processes (the driver
that runs one task in one of them is ``actors._execution.child_driver``).

Children are started with the ``spawn`` context (never a ``fork`` of the threaded host)
and are reused: a child is replaced after a crash, a kill, a memory error, a CPU limit,
or ``max_tasks_per_child`` tasks. They are direct children of the host, so a stopped pool
leaves no process behind and every child is reaped (joined).

A child's death is watched through a pidfd (the kernel's word on that one process), never
through the end of a pipe: a process the operation forked may hold the child's end of
every pipe, and the slot must be freed when the child itself is gone. A kill of a child
ends its whole process tree first (``_proctree``).

"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from actors._errors import UnguardedMainError
from actors._execution.child import child_main, sigint_held
from actors._execution.main_guard import CHILD_NAME_MARKER, UNGUARDED_MAIN_EXIT_CODE
from actors._execution.proctree import kill_descendants, kill_group
from actors._execution.wire import (
    FRAME_HEADER,
    FRAME_MAGIC,
    CancelTask,
    ChannelCorrupted,
    Done,
    Exit,
    Progress,
    Ready,
    RunTask,
    decode_child_record,
)
from actors.logs import library_logger

__all__ = ["EXIT_GRACE_SECONDS", "ChildProcess", "ProcessPool", "ProcessPoolStats"]

_log = library_logger("actors.processes")
EXIT_GRACE_SECONDS = 5.0
_START_TIMEOUT_SECONDS = 60.0
_READ_CHUNK = 1 << 16
_MAX_FRAME_BYTES = 1 << 40  # a larger length is not one the child wrote
# Where pidfds are missing (not Linux, or an old kernel), how often the driver looks
# whether its child is still alive.
_EXIT_POLL_SECONDS = 0.2


class _FrameReader:
    """Frames from the child, decoded from whatever bytes have arrived so far."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self.eof = False

    def fill(self) -> int:
        """Read what is there (the descriptor is readable: this does not block)."""
        try:
            data = os.read(self._fd, _READ_CHUNK)
        except OSError:
            data = b""
        if not data:
            self.eof = True
        self._buffer += data
        return len(data)

    def frames(self) -> Iterator[bytes]:
        """The complete frames buffered; raises ChannelCorrupted on bytes that are not one."""
        size = FRAME_HEADER.size
        while self._buffer:
            # The magic is checked from the first byte: a few junk bytes, fewer than a
            # header, must not be waited on as the start of one.
            start = bytes(self._buffer[: len(FRAME_MAGIC)])
            if not FRAME_MAGIC.startswith(start):
                raise self._junk()
            if len(self._buffer) < size:
                return
            _, length = FRAME_HEADER.unpack_from(self._buffer)
            if length > _MAX_FRAME_BYTES:
                raise self._junk()
            if len(self._buffer) < size + length:
                return
            payload = bytes(self._buffer[size : size + length])
            del self._buffer[: size + length]
            yield payload

    def _junk(self) -> ChannelCorrupted:
        return ChannelCorrupted(
            f"the child's channel carried bytes that are not a message "
            f"({bytes(self._buffer[:16])!r}...): did the operation write on the channel's "
            "descriptor?"
        )


def _open_exit_handle(pid: int) -> int | None:
    """A pidfd for ``pid`` (readable once it has exited), or None where there is none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return int(pidfd_open(pid))
    except OSError:
        return None


class ChildProcess:
    """One child of the pool and its end of the connection."""

    def __init__(self, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        self.process = context.Process(
            target=child_main,
            args=(child_end,),
            # The marker lets a child that finds an unguarded main module leave at once.
            name=f"{name} {CHILD_NAME_MARKER}",
            daemon=True,
        )
        with sigint_held():  # a Ctrl-C while it starts must not reach it (see there)
            self.process.start()
        child_end.close()
        self.conn: Connection = parent_end
        self.reader = _FrameReader(parent_end.fileno())
        self._exit_fd = _open_exit_handle(self.pid)
        self.tasks_run = 0
        self.killed_by_host = False  # the host sent it a signal (a stop, a kill)
        self._reaped = False
        self._signal_lock = threading.Lock()
        self._driven = False  # a run_in_child loop delivers its stop-ladder steps
        self._requested: int | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._send_lock = threading.Lock()
        # Wait for the interpreter to be up, so that no task's timeout pays for it.
        try:
            hello = self._read_hello()
        except BaseException:
            self.close()
            raise
        if not isinstance(hello, Ready):
            self.close()
            raise RuntimeError(f"a child process started with {hello!r} instead of Ready()")

    def _read_hello(self) -> Ready | Progress | Done:
        """The child's first record (Ready, unless something is wrong with the child)."""
        waited = 0.0
        while True:
            for payload in self.reader.frames():
                try:
                    return decode_child_record(payload)
                except ChannelCorrupted as exc:
                    raise RuntimeError(f"a child process did not start cleanly: {exc}") from None
            if self.reader.eof or self.has_exited():
                self.process.join(EXIT_GRACE_SECONDS)
                # Read before close(): a closed process has no exit code to give.
                exitcode = self.process.exitcode
                if exitcode == UNGUARDED_MAIN_EXIT_CODE:
                    main = sys.modules.get("__main__")
                    raise UnguardedMainError(str(getattr(main, "__file__", None) or "__main__"))
                raise RuntimeError(f"a child process died while starting (exit code {exitcode})")
            if waited >= _START_TIMEOUT_SECONDS:
                raise RuntimeError(
                    f"a child process did not start within {_START_TIMEOUT_SECONDS} s"
                )
            if self.conn in wait([self.conn, *self.exit_waitables()], _EXIT_POLL_SECONDS):
                self.reader.fill()
            else:
                waited += _EXIT_POLL_SECONDS

    @property
    def pid(self) -> int:
        pid = self.process.pid
        if pid is None:
            raise RuntimeError("the child process was never started")
        return pid

    def exit_waitables(self) -> list[int]:
        """What becomes ready when the child has exited (empty where only polling can
        tell: then call has_exited() every _EXIT_POLL_SECONDS)."""
        return [] if self._exit_fd is None else [self._exit_fd]

    @property
    def poll_timeout(self) -> float | None:
        return _EXIT_POLL_SECONDS if self._exit_fd is None else None

    def has_exited(self) -> bool:
        """Whether the child has exited; it is not reaped (its pid stays its own) when a
        pidfd can tell."""
        if self._exit_fd is not None:
            return bool(wait([self._exit_fd], 0))
        return self.process.exitcode is not None

    def exited_in(self, ready: list[Any]) -> bool:
        """Whether ``ready`` (from wait() on exit_waitables()) says the child exited."""
        if self._exit_fd is not None:
            return self._exit_fd in ready
        return self.process.exitcode is not None

    def send(self, message: RunTask | CancelTask | Exit) -> bool:
        """Send to the child; False if it is gone."""
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, ValueError):
            return False
        return True

    def signal(self, signum: int) -> None:
        """A step of the stop ladder (called on an actor's thread). While a driver runs
        the child's task, the step is handed to it (the /proc walk costs milliseconds,
        and the actors' threads must not wait on it); otherwise it is done here."""
        with self._signal_lock:
            if self._driven:
                if self._requested != signal.SIGKILL:
                    self._requested = signum
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"\0")
                return
        self.signal_now(signum)

    def signal_now(self, signum: int) -> None:
        """Signal the child. The processes the operation started are killed first,
        while the child lives to be their subreaper, so its death orphans none."""
        if self.has_exited():
            return
        self.killed_by_host = True
        kill_descendants(self.pid)
        if signum == signal.SIGKILL:
            kill_group(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL the child and its whole process tree, now."""
        self.signal_now(signal.SIGKILL)

    @property
    def wake_fd(self) -> int:
        """Readable when a stop-ladder step waits for the driver (deliver_requested)."""
        return self._wake_r

    def drive(self, driven: bool) -> None:
        """A driver starts (True) or stops (False) handling this child's signals; a step
        still waiting when it stops is dropped (the task it was meant for is over)."""
        with self._signal_lock:
            self._driven = driven
            self._requested = None
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 64):
                pass

    def deliver_requested(self) -> None:
        """On the driver's thread: carry out the stop-ladder step that woke it."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 64):
                pass
        with self._signal_lock:
            signum, self._requested = self._requested, None
        if signum is not None:
            self.signal_now(signum)

    def reap(self) -> int | None:
        """Wait for the child (which has exited or been killed) and return its exit code.
        Members of its process group that outlived it are killed first, while its pid
        (their group's id) cannot have been reused."""
        if not self._reaped:
            kill_group(self.pid)
            self.process.join()
            self._reaped = True
        return self.process.exitcode

    def wait_exit(self, timeout: float) -> bool:
        if self._exit_fd is not None:
            return bool(wait([self._exit_fd], timeout))
        self.process.join(timeout)
        return self.process.exitcode is not None

    def close(self) -> None:
        """Ask the child to exit, kill it if it does not, and reap it."""
        if not self.has_exited():
            self.send(Exit())
            if not self.wait_exit(EXIT_GRACE_SECONDS):
                self.kill()
        self.reap()
        self.conn.close()
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.process.close()


@dataclass(frozen=True, slots=True)
class ProcessPoolStats:
    children: int  # alive now, idle or busy
    idle: int
    started_total: int
    replaced_total: int


class ProcessPool:
    """Warm children, handed out one task at a time."""

    def __init__(self, *, max_tasks_per_child: int | None, name: str) -> None:
        self._max_tasks = max_tasks_per_child
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[ChildProcess] = []
        self._busy: set[ChildProcess] = set()
        self._numbers = itertools.count(1)
        self._started = 0
        self._replaced = 0
        self._starting = 0  # children being started by prewarm_one
        self._closed = False

    def acquire(self) -> ChildProcess:
        """An idle child, or a new one (started here: call it off the actors' threads)."""
        dead: list[ChildProcess] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("the process pool is shut down")
            found = None
            while self._idle:
                child = self._idle.pop()
                if not child.has_exited():
                    self._busy.add(child)
                    found = child
                    break
                dead.append(child)  # died while idle (killed from outside)
                self._replaced += 1
            number = next(self._numbers)
        for child in dead:
            child.close()  # reap it
        if found is not None:
            return found
        child = ChildProcess(f"{self._name}-{number}")
        with self._lock:
            self._started += 1
            self._busy.add(child)
        _log.debug("process.started", pid=child.pid)
        return child

    def release(self, child: ChildProcess, *, reusable: bool) -> None:
        """Return a child after its task. One that is not reusable (it crashed, was
        killed, ran out of memory, or ran max_tasks_per_child tasks) is replaced."""
        worn_out = self._max_tasks is not None and child.tasks_run >= self._max_tasks
        keep = reusable and not worn_out and not child.has_exited()
        with self._lock:
            self._busy.discard(child)
            if keep and not self._closed:
                self._idle.append(child)
                return
            self._replaced += 1
        _log.debug("process.retired", pid=child.pid, tasks_run=child.tasks_run)
        child.close()

    def prewarm_one(self, count: int) -> bool:
        """Start one child if fewer than ``count`` exist or are starting (blocking);
        returns whether it started one."""
        with self._lock:
            if self._closed or len(self._idle) + len(self._busy) + self._starting >= count:
                return False
            self._starting += 1
        try:
            child = ChildProcess(f"{self._name}-{next(self._numbers)}")
        finally:
            with self._lock:
                self._starting -= 1
        with self._lock:
            self._started += 1
            if not self._closed:
                self._idle.append(child)
                return True
        child.close()
        return False

    def shutdown(self) -> None:
        """Stop every child (busy ones too: call it once no task runs). Idempotent."""
        with self._lock:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
        for child in children:
            child.close()

    def statistics(self) -> ProcessPoolStats:
        with self._lock:
            alive = [c for c in (*self._idle, *self._busy) if not c.has_exited()]
            return ProcessPoolStats(
                children=len(alive),
                idle=len(self._idle),
                started_total=self._started,
                replaced_total=self._replaced,
            )
