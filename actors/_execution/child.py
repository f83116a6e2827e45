"""The code that runs inside a child process of the process pool.

Kept lean: a child imports this module, the standard library and a few leaf modules of
``actors`` (never pykka, structlog, sqlite3, ``actors._core`` or ``actors._storage``;
tests/test_lean_child_imports.py checks it), then the operations it is sent. It speaks
to the host in the records of :mod:`actors._execution.wire`: it receives ``RunTask``,
``CancelTask`` and ``Exit``, and sends ``Ready`` once at start, then per task
``Progress`` records and one ``Done``, each in a frame of its own. ``Done.retire`` says
the child must not be reused (it ran out of memory, or its CPU hard limit could not be
raised again).

The child runs in a process group of its own and is a child subreaper (``_proctree``), so
the processes an operation starts can be found and ended with it; whatever the operation
left running when it returns is ended before ``Done`` is sent. A process forked from the
child by the operation (``os.fork``) loses the channel at once: only the child speaks on
it. The child ignores SIGINT (the host's stop ladder decides), from its first instruction
on (the host starts it with SIGINT blocked, :func:`sigint_held`), and when the host goes
away it ends its operation's processes and exits quietly. tests/test_child_signals.py and
tests/test_hardening_process.py pin both.

Progress is coalesced in the child: the operation's calls only record the latest values;
one sender thread per child (started by the first report, shared by later tasks) ships
them at most every ``_PROGRESS_INTERVAL`` seconds, and the last values are flushed before
``Done``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from multiprocessing.connection import Connection
from typing import Any

from actors._clock import blocking_timeout
from actors._enums import StopReason
from actors._exception_facts import exception_facts
from actors._execution.checkpoints import decode_checkpoint, encode_checkpoint
from actors._execution.child_task_env import (
    DEVICES_UNCHANGED,
    apply_limits,
    end_leftover_processes,
    has_child_processes,
    is_out_of_memory,
    restore_devices,
    restore_limits,
    show_devices,
)
from actors._execution.proctree import become_subreaper, kill_descendants
from actors._execution.published import NumberedWaiter, Published, RemoteCommits
from actors._execution.wire import (
    FRAME_HEADER,
    FRAME_MAGIC,
    CancelTask,
    CheckpointStored,
    ChildRecord,
    Done,
    DoneKind,
    ExceptionInfo,
    Progress,
    Ready,
    RunTask,
)

__all__ = ["ChildTaskContext", "child_main", "sigint_held"]

_PROGRESS_INTERVAL = 0.01
_CHILD_NICENESS = 10
# RLIMIT_CPU: the kernel sends SIGXCPU at the soft limit and SIGKILL at the hard one, so
# an operation that ignores SIGXCPU is still ended this much later.


class _HostGone(Exception):
    """The host's end of the channel is closed: nobody can read what the child sends."""


class _Channel:
    """The child's end of the connection: sends from several threads, one at a time.

    Writes frames itself (``FRAME_HEADER``), straight to the descriptor."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._fd = conn.fileno()
        self._lock = threading.Lock()
        self._owner = os.getpid()

    def send(self, message: ChildRecord) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        header = FRAME_HEADER.pack(FRAME_MAGIC, len(data))
        with self._lock:
            if os.getpid() != self._owner:
                return  # a copy forked by the operation: only the child speaks
            try:
                for part in (header, data):
                    view = memoryview(part)
                    while view:
                        view = view[os.write(self._fd, view) :]
            except OSError as exc:  # EPIPE, ECONNRESET: the host went away
                raise _HostGone() from exc

    def disown(self) -> None:
        """In a process forked from the child: let go of the channel (the child keeps it)."""
        with contextlib.suppress(OSError):
            os.close(self._fd)


class _ProgressSender:
    """The child's one progress thread, shared by its tasks and started on the first
    report (an operation that never reports costs no thread): it ships the current
    task's latest values at most every ``_PROGRESS_INTERVAL`` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the current task, and one flush at a time
        self._current: ChildTaskContext | None = None
        self._dirty = threading.Event()
        self._pause = threading.Event()  # the wait between two flushes (set: closed)
        self._thread: threading.Thread | None = None

    def begin(self, context: ChildTaskContext) -> None:
        with self._lock:
            self._current = context

    def poke(self) -> None:
        """The current task recorded a value: ship it soon."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._send_loop, name="progress-sender", daemon=True
                    )
                    self._thread.start()
        self._dirty.set()

    def end(self, context: ChildTaskContext) -> None:
        """The task is over: after this, nothing of it is sent but what the caller
        flushes (its last values, before Done)."""
        with self._lock:  # waits for a flush of it under way
            if self._current is context:
                self._current = None

    def close(self) -> None:
        """Stop the thread (a child never needs to: it dies with the process)."""
        self._pause.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join()

    def _send_loop(self) -> None:
        while not self._pause.is_set():
            self._dirty.wait()
            self._dirty.clear()
            with self._lock:
                if self._current is not None:
                    self._current._flush()
            self._pause.wait(_PROGRESS_INTERVAL)  # at most one message per interval


class ChildTaskContext:
    """The ``task`` argument of an operation running in a child: the members of the
    :class:`actors.TaskContext` protocol, with the same types. What the child's task loop
    does to it (a stop, the last flush) is private to this module."""

    def __init__(
        self,
        task_id: str,
        channel: _Channel,
        sender: _ProgressSender,
        resume_json: str | None = None,
        checkpoint_wait: float | None = None,
        cuda_visible_devices: str | None = None,
    ) -> None:
        self.task_id = task_id
        self._channel = channel
        self._sender = sender
        self._stop = threading.Event()
        self._stop_reason: StopReason | None = None
        self._published = Published()
        self.dependency_results: Mapping[str, Any] = {}
        self.resume_from: Any = decode_checkpoint(resume_json)
        # The GPUs the task holds, as the host gave them for CUDA_VISIBLE_DEVICES.
        self.gpu_indices: tuple[int, ...] = (
            tuple(int(index) for index in cuda_visible_devices.split(","))
            if cuda_visible_devices
            else ()
        )
        # With a durable store: how long a checkpoint waits for the host's word that it
        # is committed (None: it does not wait), and the host's answers.
        self._checkpoint_wait = checkpoint_wait
        self._commits = RemoteCommits()
        sender.begin(self)

    def heartbeat(self) -> None:
        self._published.heartbeat()
        self._sender.poke()

    def checkpoint(self, state: Any) -> None:
        text = encode_checkpoint(state)  # a TypeError here, in the operation
        self._commits.checkpoint(
            self._published, text, self._checkpoint_wait, self.task_id, self._ship
        )

    def _ship(self, first: bool) -> None:
        self._sender.poke()  # the sender coalesces: every value pokes it

    def _checkpoint_stored(self, number: int, error: str | None) -> None:
        """The receiver thread: the host's CheckpointStored for this task."""
        self._commits.answer(number, error)

    def is_cancelled(self) -> bool:
        return self._stop.is_set()

    @property
    def stop_reason(self) -> StopReason | None:
        return self._stop_reason

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        return self._stop.wait(blocking_timeout(timeout))

    def update_progress(self, fraction: float) -> None:
        self._published.progress(fraction)
        self._sender.poke()

    @property
    def partial_result(self) -> Any:
        return self._published.latest_partial()

    @partial_result.setter
    def partial_result(self, value: Any) -> None:
        self._published.partial(value)
        self._sender.poke()

    def _request_stop(self, reason: str) -> None:
        """``reason``: a :class:`StopReason` value as sent on the wire; turned back into the
        enum here, so ``task.stop_reason`` is the same type as in thread isolation."""
        if self._stop_reason is None:
            self._stop_reason = StopReason(reason)
        self._stop.set()

    def _close(self) -> None:
        """Detach from the sender, then flush the latest values."""
        self._sender.end(self)
        self._flush()

    def _flush(self) -> None:
        progress, partial, has_partial = self._published.drain()
        alive, checkpoint, waiters = self._published.drain_signs()
        if progress is None and not has_partial and not alive and checkpoint is None:
            return
        number = NumberedWaiter.latest(waiters)
        try:
            self._channel.send(
                Progress(self.task_id, progress, has_partial, partial, alive, checkpoint, number)
            )
        except _HostGone:
            _exit_quietly()
        except Exception:  # an unpicklable partial result: keep the rest
            try:
                self._channel.send(
                    Progress(self.task_id, progress, False, None, alive, checkpoint, number)
                )
            except _HostGone:
                _exit_quietly()


def _exception_info(exc: BaseException) -> ExceptionInfo:
    """(qualified type, message, traceback, class names): the host's Raised fact."""
    return exception_facts(exc)


def _exit_quietly() -> None:
    """The host is gone: end the operation's processes and leave, without a traceback."""
    with contextlib.suppress(Exception):
        kill_descendants(os.getpid())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _ignore_sigint(signum: int, frame: Any) -> None:
    """Ctrl-C reaches the host; the host's stop ladder decides what happens to a child.
    (A handler, not SIG_IGN: a program the operation runs gets the default back.)"""


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """In the host, around the start of a child: SIGINT blocked in the starting thread.

    A signal mask survives fork and exec, so the child begins with SIGINT blocked: a
    Ctrl-C that reaches it while it starts (it is in the host's process group until
    :func:`child_main` makes it one of its own) stays pending until child_main has put
    its handler in place and unblocks it, instead of killing the interpreter or printing
    a ``KeyboardInterrupt`` traceback from multiprocessing's bootstrap. The host's other
    threads take the signal meanwhile. (CPython's ``multiprocessing.resource_tracker``
    starts its process the same way.)
    """
    # Started first, outside the block: the tracker's own start (inside the first
    # Process.start) unblocks SIGINT in the calling thread when it is done, which would
    # undo the block for the child started right after it.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def child_main(conn: Connection) -> None:
    """Entry point of a pool child: run tasks until told to exit or the parent goes."""
    # Below the host's priority: operations in children must not starve the
    # supervisor's own threads of CPU (status queries, timers, stops).
    with contextlib.suppress(OSError):
        os.nice(_CHILD_NICENESS)
    signal.signal(signal.SIGINT, _ignore_sigint)
    # Started with SIGINT blocked (sigint_held): from now on the handler takes it, and
    # the threads and programs started below inherit an unblocked mask.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # A group of its own (a Ctrl-C at the terminal does not reach it, and the group can
    # be killed whole) and the reaper of its orphans: the operation's processes stay
    # findable (see _proctree).
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    become_subreaper()
    channel = _Channel(conn)
    os.register_at_fork(after_in_child=channel.disown)
    try:
        channel.send(Ready())  # the interpreter is up: the parent may hand out this child
    except _HostGone:
        _exit_quietly()
    sender = _ProgressSender()
    tasks: queue.SimpleQueue[RunTask | None] = queue.SimpleQueue()
    current: dict[str, ChildTaskContext] = {}
    early_cancels: dict[str, str] = {}
    lock = threading.Lock()  # current and early_cancels, shared with the receiver

    def receive() -> None:
        # The only reader of the connection: cancels must arrive while an operation runs.
        try:
            while True:
                message = conn.recv()
                match message:
                    case CancelTask(task_id=task_id, reason=reason):
                        with lock:
                            context = current.get(task_id)
                            if context is None:
                                # Sent just before or after RunTask reached the main loop:
                                # keep it for the task's context, which does not exist yet.
                                early_cancels[task_id] = reason
                        if context is not None:
                            context._request_stop(reason)
                    case CheckpointStored(task_id=task_id):
                        with lock:
                            context = current.get(task_id)
                        if context is not None:
                            context._checkpoint_stored(message.checkpoint_id, message.error)
                    case RunTask():
                        tasks.put(message)
                    case _:  # Exit
                        break
        except (EOFError, OSError):
            _exit_quietly()  # the host went away: nobody wants what the operation makes
        tasks.put(None)

    threading.Thread(target=receive, name="receiver", daemon=True).start()
    me = os.getpid()
    while True:
        run = tasks.get()
        if run is None:
            return
        task_id, memory_limit_mb = run.task_id, run.memory_limit_mb
        context = ChildTaskContext(
            task_id,
            channel,
            sender,
            run.resume_json,
            run.checkpoint_wait,
            run.cuda_visible_devices,
        )
        with lock:
            current[task_id] = context
            early = early_cancels.pop(task_id, None)
            early_cancels.clear()  # cancels of earlier tasks that came too late to matter
        if early is not None:
            context._request_stop(early)
        saved = apply_limits(memory_limit_mb, run.cpu_time_limit)
        devices = show_devices(run.cuda_visible_devices)
        kind: DoneKind
        payload: Any
        try:
            try:
                # Unpickled here, not by the receiver: an operation that cannot be
                # imported in the child fails its task instead of the child.
                operation, params, context.dependency_results = pickle.loads(run.work)
                payload = operation(params, context)
                kind = "completed"
            except BaseException as exc:  # SystemExit too: the child carries on
                out_of_memory = memory_limit_mb is not None and is_out_of_memory(exc)
                kind = "memory" if out_of_memory else "raised"
                payload = _exception_info(exc)
        finally:
            restored = restore_limits(saved)
            restore_devices(devices)
            if os.getpid() != me:
                os._exit(0)  # the operation forked and this copy returned: not the child
            context._close()
            with lock:
                del current[task_id]
        # A task's processes never outlive it (one system call when it started none).
        ended = not has_child_processes() or end_leftover_processes()
        # A GPU task's child is replaced: CUDA reads CUDA_VISIBLE_DEVICES once per
        # process, so a library it initialised would keep this task's devices.
        retire = kind == "memory" or not restored or not ended or devices is not DEVICES_UNCHANGED
        try:
            try:
                channel.send(Done(task_id, kind, payload, retire))
            except _HostGone:
                raise
            except Exception as exc:  # the result cannot be pickled
                _, text, trace, _ = _exception_info(exc)
                info = (
                    "pickle.PicklingError",
                    f"the operation's result cannot be pickled: {text}",
                )
                mro = ("pickle.PicklingError", "Exception", "BaseException")
                channel.send(Done(task_id, "raised", (*info, trace, mro), retire))
        except _HostGone:
            _exit_quietly()
        if retire:
            return  # out of memory (maybe damaged) or limits it cannot undo: replaced
