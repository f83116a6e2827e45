"""Process isolation: an operation runs in a warm child process of the pool.

The attempt's driver runs on a thread of the operation pool (it holds the task's slot):
it acquires a child (a cold start, when none is idle), reports ``started`` (passing the
attempt's start gate, unless a stop came first), waits for the commit with a durable
store, and hands the task over (``run_in_child``). A task holding GPUs of the host's
ledger (``gpus_of``) gets their indices in the child's ``CUDA_VISIBLE_DEVICES`` while
it runs. So a task waiting for its child reads
``pending`` and its deadline is not armed yet. The
forced steps are signals: SIGTERM, then SIGKILL of the child and its processes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors._enums import Isolation
from actors._execution.backend import Attempt, AttemptEvents
from actors._execution.child_driver import run_in_child
from actors._execution.context import attempt_context
from actors._execution.processes import ChildProcess, ProcessPool, ProcessPoolStats
from actors._execution.threadpool import ThreadPool
from actors._execution.wire import CancelTask
from actors._outcome import Outcome, Raised, StopReason
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["ProcessAttempt", "ProcessBackend"]

_log = library_logger("actors.worker")


class ProcessBackend:
    """Operations in the children of its :class:`ProcessPool`, which it starts on first
    use (a thread-only runtime never pays for a child) and stops at shutdown."""

    isolation = Isolation.PROCESS
    starts_on_handover = False
    kill_ends_attempt = True

    def __init__(
        self,
        op_pool: ThreadPool,
        registry: pykka.ActorRef[Any],
        *,
        max_tasks_per_child: int | None,
        name: str,
        gpus_of: Callable[[str], tuple[int, ...]] | None = None,
    ) -> None:
        self._op_pool = op_pool
        # The GPU indices a task holds (taken by the supervisor before the attempt).
        self._gpus_of = gpus_of
        self._registry = registry
        self._max_tasks_per_child = max_tasks_per_child
        self._name = name
        self._lock = threading.Lock()
        self._pool: ProcessPool | None = None

    def pool(self) -> ProcessPool:
        """The pool, started now if it was not yet (its children start as they are needed)."""
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPool(
                    max_tasks_per_child=self._max_tasks_per_child, name=self._name
                )
            return self._pool

    def prewarm(self, count: int) -> None:
        """Start ``count`` children off the caller's thread (on the pool's starter), each
        ready for a task as soon as it is up."""
        self.pool().keep_warm(count)

    def statistics(self) -> ProcessPoolStats:
        with self._lock:
            pool = self._pool
        return pool.statistics() if pool is not None else ProcessPoolStats(0, 0, 0, 0)

    def start(self, spec: TaskSpec, events: AttemptEvents) -> Attempt:
        gpus = () if self._gpus_of is None else self._gpus_of(spec.task_id)
        devices = ",".join(map(str, gpus)) if gpus else None
        attempt = ProcessAttempt(spec, self._registry, events, devices, gpus)
        try:
            self._op_pool.submit(lambda: attempt.drive(self.pool))
        except RuntimeError as exc:  # the pool is shut down (interpreter exit)
            events.ended(Raised.from_exception(exc))
        return attempt

    def shutdown(self) -> None:
        """Stop every child (call it once no task runs). Idempotent."""
        with self._lock:
            pool = self._pool
        if pool is not None:
            pool.shutdown()


class ProcessAttempt:
    """One attempt in a child process, and its levers. The child is attached while it
    runs this attempt's task, so no step meant for this task reaches its next one."""

    __slots__ = ("_child", "_events", "_lock", "_stop", "context", "cuda_devices", "spec")

    def __init__(
        self,
        spec: TaskSpec,
        registry: pykka.ActorRef[Any],
        events: AttemptEvents,
        cuda_devices: str | None = None,
        gpu_indices: tuple[int, ...] = (),
    ) -> None:
        self.spec = spec
        self.cuda_devices = cuda_devices  # CUDA_VISIBLE_DEVICES in the child, or None
        self._events = events
        # The context is the host's side: what the child reports is relayed into it (the
        # child's own context reads its gpu_indices from cuda_devices).
        self._stop, self.context = attempt_context(spec, registry, events.published, gpu_indices)
        self._lock = threading.Lock()
        self._child: ChildProcess | None = None

    @property
    def stop_reason(self) -> StopReason | None:
        return self._stop.reason

    # -- levers (the worker actor's thread) -------------------------------------------

    def stop(self, reason: StopReason) -> None:
        if self._stop.request(reason):
            with self._lock:
                child = self._child
                if child is not None:
                    child.send(CancelTask(self.spec.task_id, reason.value))

    def interrupt(self, reason: StopReason) -> None:
        self._signal(signal.SIGTERM, reason)

    def kill(self, reason: StopReason) -> None:
        self._signal(signal.SIGKILL, reason)

    def _signal(self, signum: int, reason: StopReason) -> None:
        with self._lock:
            child = self._child
            if child is None:
                return  # not attached yet (the next step tries again), or given back
            child.signal(signum)
            pid = child.pid
        _log.warning(
            "task.child_signalled",
            task_id=self.spec.task_id,
            pid=pid,
            signal=signal.Signals(signum).name,
            reason=reason.value,
        )

    # -- the driver (a thread of the operation pool) -------------------------------------

    def attach_child(self, child: ChildProcess) -> None:
        with self._lock:
            self._child = child

    def detach_child(self) -> None:
        """Before the child goes back to its pool: from then on no signal or cancel
        meant for this task can reach the child's next task."""
        with self._lock:
            self._child = None

    def begin(self) -> Outcome | None:
        """The child has the task's slot: report the start; None to run it."""
        self._events.started()
        return self._events.confirm_start()

    def drive(self, process_pool: Callable[[], ProcessPool]) -> None:
        outcome: Outcome
        try:
            outcome = run_in_child(process_pool(), self.spec, self)
        except Exception as exc:  # the pool could not start a child, or is shut down
            outcome = Raised.from_exception(exc)
        self._events.ended(outcome)
