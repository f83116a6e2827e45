"""The host's task context (what an operation in a thread of the host, or the host's
side of a child process, reports into) and the stop flag an attempt sets.

Progress and partial results are coalesced: the context keeps only the latest values
(``Published``) and has at most one ``ProgressReady`` message in flight to the registry,
which drains the publication when it handles that message. A tight loop of a million
``update_progress`` calls therefore sends a handful of messages and holds constant memory.

The context has only the members of the :class:`~actors.TaskContext` protocol; the
runtime's levers are on the attempt (``actors._execution.thread_backend``,
``actors._execution.process_backend``), which shares the :class:`StopFlag` with it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pykka

from actors._clock import blocking_timeout
from actors._core.messages import ProgressReady
from actors._errors import ActorUnresponsiveError
from actors._execution.checkpoints import encode_checkpoint
from actors._execution.published import CheckpointWaiter, Published
from actors._outcome import StopReason
from actors._storage.store import CommitTicket

if TYPE_CHECKING:
    from actors._records import TaskSpec

__all__ = ["LocalTaskContext", "ReportingContext", "StopFlag", "attempt_context"]

_NO_RESULTS: Mapping[str, Any] = MappingProxyType({})


class StopFlag:
    """Whether, and why, an attempt was asked to stop. The first reason wins."""

    __slots__ = ("_event", "_lock", "_reason")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: StopReason | None = None
        # Created on the first wait(): most operations only poll is_cancelled(), and an
        # Event (a Condition and a lock) costs more than the rest of the context.
        self._event: threading.Event | None = None

    @property
    def reason(self) -> StopReason | None:
        return self._reason

    def request(self, reason: StopReason) -> bool:
        """Set the flag; True if this call set it (False: it was already set)."""
        with self._lock:
            if self._reason is not None:
                return False
            self._reason = reason
            event = self._event
        if event is not None:
            event.set()
        return True

    def wait(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` seconds or until the flag is set; whether it is."""
        with self._lock:
            event = self._event
            if event is None:
                event = self._event = threading.Event()
                if self._reason is not None:
                    event.set()
        return event.wait(blocking_timeout(timeout))


_FIRST_REPORT = threading.Lock()


class ReportingContext:
    """What every task context of this process shares: the stop flag it reads, and its
    progress and partial result coalesced to the registry. :class:`LocalTaskContext`
    adds the blocking ``wait_cancelled`` of threads, the event loop's context
    (``actors._execution.async_backend``) an awaitable one."""

    __slots__ = (
        "_published",
        "_registry",
        "_stop",
        "dependency_results",
        "gpu_indices",
        "resume_from",
        "task_id",
    )

    def __init__(
        self,
        task_id: str,
        registry: pykka.ActorRef[Any],
        stop: StopFlag | None = None,
        dependency_results: Mapping[str, Any] | None = None,
        published: Published | None = None,
        resume_from: Any = None,
        gpu_indices: tuple[int, ...] = (),
    ) -> None:
        self.task_id = task_id
        self._registry = registry
        self._stop = StopFlag() if stop is None else stop
        # Coalesced: at most one ProgressReady is in flight to the registry at a time.
        # Made by the first report (most operations of a busy runtime never report).
        self._published = published
        # The results of the tasks this one depended on, by task id (empty without any).
        self.dependency_results = dependency_results or _NO_RESULTS
        # The latest checkpoint of an earlier attempt (None on a first run).
        self.resume_from = resume_from
        # The GPU indices the attempt holds of the host's ledger (empty without any).
        self.gpu_indices = gpu_indices

    def is_cancelled(self) -> bool:
        """True once the task was cancelled or timed out: return soon (see stop_grace)."""
        return self._stop.reason is not None

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the operation is being asked to stop, or None while it may carry on."""
        return self._stop.reason

    def update_progress(self, fraction: float) -> None:
        """Report progress as a fraction from 0.0 to 1.0."""
        published = self._published or self._reports()
        if published.progress(fraction):
            self._notify(published)

    @property
    def partial_result(self) -> Any:
        """The latest partial result set by the operation (None if never set)."""
        published = self._published
        return None if published is None else published.latest_partial()

    @partial_result.setter
    def partial_result(self, value: Any) -> None:
        published = self._reports()
        if published.partial(value):
            self._notify(published)

    def heartbeat(self) -> None:
        """A sign of life (for ``heartbeat_timeout``), coalesced."""
        published = self._reports()
        if published.heartbeat():
            self._notify(published)

    def _publish_checkpoint(self, state: Any) -> CommitTicket | None:
        """Check and publish a checkpoint; with a durable store, the ticket its commit
        releases (None: nothing to wait for)."""
        text = encode_checkpoint(state)  # a TypeError here, in the operation
        return self._relay_checkpoint(text)

    def _relay_checkpoint(
        self, text: str, waiter: CheckpointWaiter | None = None
    ) -> CommitTicket | None:
        """Publish a checkpoint's text (checked where it was made: here, or in a child,
        whose host relays it with the ``waiter`` that answers the child)."""
        published = self._reports()
        ticket = None
        if published.commit_wait is not None:
            ticket = CommitTicket(self.task_id)
            if waiter is not None:
                ticket.on_done(lambda: waiter(ticket.error))
        if published.checkpoint(text, None if ticket is None else ticket.done):
            self._notify(published)
        if ticket is None and waiter is not None:
            waiter(None)  # nothing to wait for: kept once the registry drains it
        return ticket

    def _relay(
        self,
        progress: float | None,
        partial: tuple[Any] | None,
        alive: bool,
        checkpoint: str | None,
        waiter: CheckpointWaiter | None,
    ) -> None:
        """What an attempt away from the host (a child, a Ray node) published since its
        last report, in its order: progress, the partial result (``(value,)``, or None
        for none), then a checkpoint (answered through ``waiter``) or, if nothing else
        came, a bare sign of life."""
        if progress is not None:
            self.update_progress(progress)
        if partial is not None:
            self.partial_result = partial[0]
        if checkpoint is not None:
            self._relay_checkpoint(checkpoint, waiter)
        elif alive and progress is None and partial is None:
            self.heartbeat()  # a bare sign of life (progress and a partial are signs too)

    def _reports(self) -> Published:
        published = self._published
        if published is None:
            # Threads of one operation may report at once: only one channel is made.
            with _FIRST_REPORT:
                published = self._published
                if published is None:
                    published = self._published = Published()
        return published

    def _notify(self, published: Published) -> None:
        # The registry may be gone (shutdown without wait while an operation still
        # reports progress): progress then has nowhere to go, which is harmless.
        with contextlib.suppress(pykka.ActorDeadError):
            self._registry.tell(ProgressReady(self.task_id, published))

    def __repr__(self) -> str:
        return f"<TaskContext {self.task_id} cancelled={self.is_cancelled()}>"


class LocalTaskContext(ReportingContext):
    """The :class:`~actors.TaskContext` of an operation whose reports reach the registry
    from this process: run in a thread of the host, or relayed from a child."""

    __slots__ = ()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds or until a stop is requested; returns
        :meth:`is_cancelled`. Use it instead of ``time.sleep`` inside operations."""
        return self._stop.wait(timeout)

    def checkpoint(self, state: Any) -> None:
        """Record a resume point (JSON data); with a durable store, return once it is
        committed (raising why, when it could not be)."""
        ticket = self._publish_checkpoint(state)
        if ticket is None:
            return
        wait = self._reports().commit_wait
        if not ticket.wait(wait):
            raise ActorUnresponsiveError("registry", "a checkpoint's commit", wait or 0.0)
        if ticket.error is not None:
            raise ticket.error


def attempt_context(
    spec: TaskSpec,
    registry: pykka.ActorRef[Any],
    published: Published | None = None,
    gpu_indices: tuple[int, ...] = (),
) -> tuple[StopFlag, LocalTaskContext]:
    """A new attempt's stop flag (the attempt's lever) and the context it shares it with
    (the operation's view), reporting to ``registry`` through ``published`` (the one
    the supervisor keeps for the attempt); ``gpu_indices``: the GPUs it holds."""
    stop = StopFlag()
    context = LocalTaskContext(
        spec.task_id,
        registry,
        stop,
        spec.dependency_results,
        published,
        None if spec.resume_json is None else spec.resume_from,
        gpu_indices,
    )
    return stop, context
