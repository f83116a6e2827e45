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
    ChannelCorrupted,
    Done,
    Exit,
    HostRecord,
    Progress,
    Ready,
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

    def send(self, message: HostRecord) -> bool:
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
    """Warm children, handed out one task at a time.

    Replacements are started ahead of need by a starter thread of the pool's own, so a
    task does not wait for an interpreter to boot: when a child is handed out for its
    last task (``max_tasks_per_child``), its replacement starts beside that task; when
    one retires early (a crash, a kill, a memory error), right after. The pool keeps
    warm as many children as it was asked to (:meth:`keep_warm`) or, if more, as many
    as were ever busy at once. A task that finds no idle child waits for one that is
    being started, if one is not spoken for, else starts its own (a cold start)."""

    def __init__(self, *, max_tasks_per_child: int | None, name: str) -> None:
        self._max_tasks = max_tasks_per_child
        self._name = name
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # idle, starting or closed changed
        self._idle: list[ChildProcess] = []
        self._busy: set[ChildProcess] = set()
        self._retiring: set[ChildProcess] = set()  # busy on their last task
        self._numbers = itertools.count(1)
        self._started = 0
        self._replaced = 0
        self._starting = 0  # children being started (by the starter or by an acquire)
        self._spares = 0  # of those, the starter's (for whoever needs one first)
        self._waiting = 0  # acquirers waiting for a spare
        self._target = 0  # children to keep warm
        self._starter: threading.Thread | None = None
        self._closed = False

    def acquire(self) -> ChildProcess:
        """An idle child, one being started, or a new one (started here: call it off
        the actors' threads)."""
        dead: list[ChildProcess] = []
        try:
            with self._changed:
                while True:
                    if self._closed:
                        raise RuntimeError("the process pool is shut down")
                    while self._idle:
                        child = self._idle.pop()
                        if not child.has_exited():
                            return self._hand_out(child)
                        dead.append(child)  # died while idle (killed from outside)
                        self._replaced += 1
                        self._wake_starter()
                    if self._spares <= self._waiting:
                        break  # no spare on its way for this caller: start one here
                    self._waiting += 1
                    try:
                        self._changed.wait(_START_TIMEOUT_SECONDS)
                    finally:
                        self._waiting -= 1
                self._starting += 1
                number = next(self._numbers)
        finally:
            for child in dead:
                child.close()  # reap it
        try:
            child = ChildProcess(f"{self._name}-{number}")
        finally:
            with self._changed:
                self._starting -= 1
                self._changed.notify_all()  # a waiter may now start its own
        _log.debug("process.started", pid=child.pid)
        with self._changed:
            self._started += 1
            return self._hand_out(child)

    def _hand_out(self, child: ChildProcess) -> ChildProcess:
        """(Under the lock.) ``child`` is busy from now; its replacement is started at
        once when this is its last task."""
        self._busy.add(child)
        self._target = max(self._target, len(self._busy))
        if self._max_tasks is not None and child.tasks_run + 1 >= self._max_tasks:
            self._retiring.add(child)
            self._wake_starter()
        return child

    def release(self, child: ChildProcess, *, reusable: bool) -> None:
        """Return a child after its task. One that is not reusable (it crashed, was
        killed, ran out of memory, or ran max_tasks_per_child tasks) is replaced."""
        worn_out = self._max_tasks is not None and child.tasks_run >= self._max_tasks
        keep = reusable and not worn_out and not child.has_exited()
        with self._changed:
            self._busy.discard(child)
            self._retiring.discard(child)
            if keep and not self._closed:
                self._idle.append(child)
                self._changed.notify_all()
                return
            self._replaced += 1
            self._wake_starter()
        _log.debug("process.retired", pid=child.pid, tasks_run=child.tasks_run)
        child.close()

    def keep_warm(self, count: int) -> None:
        """Keep at least ``count`` children started, starting the missing ones now on the
        pool's starter thread (this does not block). A task can take each one as soon as
        it is up, before the others are."""
        with self._changed:
            self._target = max(self._target, count)
            self._wake_starter()

    def _deficit(self) -> int:
        """(Under the lock.) How many children to start to have the target warm: busy
        ones on their last task do not count, those being started do."""
        usable = len(self._idle) + len(self._busy) - len(self._retiring) + self._starting
        return self._target - usable

    def _wake_starter(self) -> None:
        """(Under the lock.) Start the starter thread, or wake it, if children are due."""
        if self._closed or self._deficit() <= 0:
            return
        if self._starter is None:
            self._starter = threading.Thread(
                target=self._keep_starting, name=f"{self._name}-starter", daemon=True
            )
            self._starter.start()
        else:
            self._changed.notify_all()

    def _keep_starting(self) -> None:
        """The starter thread: start children while some are due, until shutdown."""
        while True:
            with self._changed:
                while not self._closed and self._deficit() <= 0:
                    self._changed.wait()
                if self._closed:
                    return
                self._starting += 1
                self._spares += 1
                number = next(self._numbers)
            child: ChildProcess | None = None
            try:
                child = ChildProcess(f"{self._name}-{number}")
            except Exception as exc:
                # No retry loop on a child that cannot start: the next task that needs
                # one starts its own and gets the error (an unguarded main, a full disk).
                _log.warning("process.start_failed", error=repr(exc))
            with self._changed:
                self._starting -= 1
                self._spares -= 1
                if child is None:
                    self._target = len(self._idle) + len(self._busy) - len(self._retiring)
                elif not self._closed:
                    self._started += 1
                    self._idle.append(child)
                    child = None
                self._changed.notify_all()
            if child is not None:  # shut down while it started
                child.close()

    def shutdown(self) -> None:
        """Stop every child (busy ones too: call it once no task runs), after the starter
        thread has finished the start it is in. Idempotent."""
        with self._changed:
            self._closed = True
            children = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
            self._retiring.clear()
            starter = self._starter
            self._changed.notify_all()
        if starter is not None and starter is not threading.current_thread():
            starter.join()
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
