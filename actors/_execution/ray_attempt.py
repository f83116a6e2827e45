"""One attempt of a Ray task on the host: its levers (the worker actor's thread), and
what its node says on the host channel and its Ray task's answer (both on the Ray
back-end's bridge loop), turned into the facts the registry knows. See
``actors._execution.ray_backend``."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pykka

from actors._execution.backend import AttemptEvents
from actors._execution.context import attempt_context
from actors._execution.published import CheckpointWaiter
from actors._outcome import (
    Cancelled,
    Completed,
    Crashed,
    Interrupted,
    Outcome,
    Raised,
    ResourceExhausted,
    StopReason,
)
from actors._records import TaskSpec
from actors.logs import library_logger


class RayLink(Protocol):
    """What an attempt needs of its back-end (``RayBackend``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def call_soon(self, call: Callable[[], object]) -> None: ...

    def watch(self, ref: Any, attempt: RayAttempt) -> None: ...

    def hint(self, ref: Any) -> None: ...

    def unwatch(self, ref: Any) -> None: ...

    @property
    def closed(self) -> bool: ...

    def new_key(self) -> int: ...

    def submit(self, spec: TaskSpec, work: bytes, key: int) -> Any: ...

    def dumps(self, value: Any) -> bytes: ...

    def listen(self, key: int, attempt: RayAttempt) -> None: ...

    def post(self, message: tuple[Any, ...]) -> None: ...

    def forget(self, key: int) -> None: ...

    def cancel(self, ref: Any, *, force: bool) -> None: ...

    def exceptions(self) -> Any: ...

    def count_progress(self) -> None: ...

    def attempt_over(self, attempt: RayAttempt) -> None: ...


__all__ = ["RayAttempt", "RayLink"]

_log = library_logger("actors.ray")


# A Ray task's answer came before progress its node had sent earlier: how long to wait
# for the channel to deliver it (it was written before the answer, so it is on its way).
CATCH_UP_SECONDS = 10.0


class RayAttempt:
    """One attempt as a Ray task, and its levers (the worker actor's thread); what its
    node says and its task's answer are read on the bridge's loop."""

    def __init__(
        self,
        spec: TaskSpec,
        registry: pykka.ActorRef[Any],
        events: AttemptEvents,
        backend: RayLink,
    ) -> None:
        self.spec = spec
        self._events = events
        self._backend = backend
        self._stop, self.context = attempt_context(spec, registry, events.published)
        self.key = backend.new_key()  # the attempt's name on the host channel
        self._lock = threading.Lock()
        self._ref: Any = None  # the Ray task's answer, once submitted
        self._started = False  # the node said so
        self._killed = False
        self._soft_cancelled = False  # Ray's soft cancel was sent (once is enough)
        self._node_id: str | None = None
        self._refusal: Outcome | None = None
        self._answered = False
        # The bridge loop's only: progress messages read, an answer waiting for the ones
        # it says were sent before it, the node's connection lost, the attempt over.
        self._received = 0
        self._waiting: tuple[Any, ...] | None = None
        self._link_lost: str | None = None
        self._answer_on_channel = False  # the node returned saying so; not read yet
        self._ended = False
        # The one timer an attempt may have (an answer that waits for the channel): it
        # is cancelled at the end, so an ended attempt is not held for its delay.
        self._late: asyncio.TimerHandle | None = None

    # -- levers --------------------------------------------------------------------------

    def stop(self, reason: StopReason) -> None:
        if not self._stop.request(reason):
            return
        self._backend.post(("stop", self.key, reason.value))
        self._cancel_if_waiting()

    def _cancel_if_waiting(self) -> None:
        """A stopped attempt not running on a node yet (waiting for resources) never
        will: Ray's soft cancel, once. Called by a stop, and by the submission once its
        task exists (a stop that came while it was being submitted found none)."""
        with self._lock:
            ref = self._ref
            cancel = ref is not None and not self._started and not self._soft_cancelled
            if cancel:
                self._soft_cancelled = True
        if cancel:
            self._backend.cancel(ref, force=False)
            self._backend.hint(ref)

    def interrupt(self, reason: StopReason) -> None:
        self._backend.post(("interrupt", self.key))
        _log.warning("task.ray_interrupted", task_id=self.spec.task_id, reason=reason.value)

    def kill(self, reason: StopReason) -> None:
        with self._lock:
            ref = self._ref
            self._killed = True
        if ref is not None:
            self._backend.cancel(ref, force=True)
            self._backend.hint(ref)
            _log.warning(
                "task.ray_killed", task_id=self.spec.task_id, node_id=self._node_id,
                reason=reason.value,
            )  # fmt: skip

    # -- the bridge's loop ---------------------------------------------------------------
    # Callbacks, not an asyncio task per attempt: the submission, Ray's answer (batched
    # by the back-end's RayAnswers, through its LoopInbox) and the channel's messages
    # each run as one call on the loop.

    def begin(self) -> None:
        try:
            refusal = self._submit()
        except Exception as exc:  # a bug of ours, or the cluster went away: it still ends
            refusal = Raised.from_exception(exc)
        if refusal is not None:
            self._end(refusal)

    def _submit(self) -> Outcome | None:
        spec = self.spec
        reason = self._stop.reason
        if reason is not None:  # stopped before it was submitted
            return Cancelled(reason)
        if self._backend.closed:  # shut down before its turn on the loop: never submitted
            return Cancelled(StopReason.SHUTDOWN)
        # With a durable store a node's checkpoint waits, as a child's does, for its commit.
        commit_wait = self.context._reports().commit_wait
        try:  # cloudpickle: a function of __main__ travels by value, others by name
            work = self._backend.dumps(
                (
                    spec.operation,
                    spec.params,
                    dict(spec.dependency_results or {}),
                    spec.resume_json,
                    commit_wait,
                )
            )
        except Exception as exc:  # checked at submission; a params value may have changed
            return Raised.from_exception(exc)
        self._backend.listen(self.key, self)
        ref = self._backend.submit(spec, work, self.key)
        self._backend.watch(ref, self)  # before a lever can hint it
        with self._lock:
            self._ref = ref
        if self._stop.reason is not None:  # stopped while it was being submitted
            self._cancel_if_waiting()
        return None

    def ray_answered(self, answer: Any, error: BaseException | None) -> None:
        """The Ray task's value, or the error ``ray.get`` raised for it (the back-end's
        RayAnswers, batched)."""
        if self._ended:
            return  # the answer came on the channel
        if error is not None:
            errors = self._backend.exceptions()
            if isinstance(error, errors.RayError):
                self._end(self._failure(error, errors))
            else:  # not Ray's: still an end
                self._end(Raised.from_exception(error))
            return
        if answer is None:  # on the channel, not read yet (it is on its way)
            if self._link_lost is not None:
                self._end(self._answer_lost())
            else:
                self._answer_on_channel = True
                self._late = self._backend.loop.call_later(
                    CATCH_UP_SECONDS, self._channel_answer_late
                )
            return
        self._take(answer)

    def _take(self, answer: tuple[Any, ...]) -> None:
        kind = answer[0]
        if kind == "lost":
            # No verdict reached the node (the host's channel broke or stayed unreachable):
            # the operation never ran. A lost link to the cluster, not a cancel no one asked.
            _log.warning("task.ray_channel_lost", task_id=self.spec.task_id, error=answer[1])
            reason = self._stop.reason
            self._end(Cancelled(reason) if reason is not None else self._unavailable(False))
        elif kind == "refused":
            self._end(self._refusal or Cancelled(self._stop.reason or StopReason.CANCEL_REQUESTED))
        elif self._received >= answer[2] or self._link_lost is not None:
            self._finish(answer)
        else:
            # The answer overtook progress the node sent before it (a partial result or
            # checkpoint among it is the attempt's): finish once the channel delivered it.
            self._waiting = answer
            self._late = self._backend.loop.call_later(CATCH_UP_SECONDS, self._caught_up_late)

    def _finish(self, answer: tuple[Any, ...]) -> None:
        kind, value, _, last = answer
        if last is not None:
            self._relay(last)
        if kind == "completed":
            try:
                outcome: Outcome = Completed(pickle.loads(value))
            except Exception as exc:  # a class the host cannot import
                outcome = Raised.from_exception(exc)
        else:
            exception_type, text, trace, mro = value
            outcome = Raised(exception_type=exception_type, message=text, traceback=trace,
                             exception_mro=tuple(mro))  # fmt: skip
        self._end(outcome)

    def _caught_up(self) -> None:
        answer, self._waiting = self._waiting, None
        if answer is not None:
            self._finish(answer)

    def _caught_up_late(self) -> None:
        if self._waiting is not None:
            _log.warning(
                "task.ray_progress_missing", task_id=self.spec.task_id,
                sent=self._waiting[2], received=self._received,
            )  # fmt: skip
            self._caught_up()

    def _end(self, outcome: Outcome) -> None:
        if self._ended:
            return
        self._ended = True
        if self._late is not None:
            self._late.cancel()
        self._backend.forget(self.key)
        self._backend.attempt_over(self)
        self._events.ended(outcome)

    # -- the host channel (the bridge's loop) ------------------------------------------

    def on_started(self, worker_pid: int, node_id: str) -> None:
        with self._lock:
            self._started, self._node_id = True, node_id
        self._events.started({"node_id": node_id, "worker_pid": worker_pid})
        if self._events.confirm_start_soon(self._answer_soon):
            self._answer()

    def on_progress(self, fields: tuple[Any, ...]) -> None:
        self._received += 1
        self._relay(fields)
        waiting = self._waiting
        if waiting is not None and self._received >= waiting[2]:
            self._caught_up()

    def on_answer(self, answer: tuple[Any, ...]) -> None:
        """The attempt's answer, after all its progress: no Ray call is needed for it."""
        with self._lock:
            ref = self._ref
        if ref is not None:
            self._backend.unwatch(ref)
        self._answer_on_channel = False  # it came
        if self._late is not None:
            self._late.cancel()
            self._late = None
        self._take(answer)

    def _channel_answer_late(self) -> None:
        if self._answer_on_channel:
            self._end(self._answer_lost())

    def _answer_lost(self) -> Outcome:
        """The node returned, saying its answer was on the channel, and it never came."""
        text = "the attempt's answer was lost with the host channel"
        if self._link_lost is not None:
            text = f"{text}: {self._link_lost}"
        return Crashed(exit_code=None, signal=None, node_id=self._node_id, ray_error=text)

    def on_ending(self) -> None:
        """The node is about to return: its answer is fetched first."""
        self._hint()

    def on_lost(self, why: str) -> None:
        """The node's connection broke: a verdict not sent yet cannot reach it (its
        answer says ``lost``), and progress not read yet will not come. Its worker may
        have died: its answer (Ray's error) is fetched first."""
        self._link_lost = why
        self._hint()
        self._caught_up()
        if self._answer_on_channel:
            self._end(self._answer_lost())

    def _hint(self) -> None:
        with self._lock:
            ref = self._ref
        if ref is not None:
            self._backend.hint(ref)

    def _relay(self, fields: tuple[Any, ...]) -> None:
        """A progress message into the attempt's context (see TaskContext._relay); a
        checkpoint's commit is answered on the channel."""
        self._backend.count_progress()
        progress, has_partial, blob, alive, checkpoint, number = fields
        partial = None
        if has_partial:
            try:
                partial = (pickle.loads(blob),)
            except Exception as exc:
                _log.warning("task.partial_not_loaded", task_id=self.spec.task_id, error=str(exc))
        waiter = self._stored(number) if number else None
        self.context._relay(progress, partial, alive, checkpoint, waiter)

    def _stored(self, number: int) -> CheckpointWaiter:
        """Tells the node its checkpoints up to ``number`` are committed (or why not); on
        the registry's thread, after the commit."""
        key = self.key

        def answer(error: BaseException | None) -> None:
            self._backend.post(("stored", key, number, None if error is None else str(error)))

        return answer

    def _answer_soon(self) -> None:
        """From the registry's thread (perhaps twice): back onto the loop."""
        self._backend.call_soon(self._answer)

    def _answer(self) -> None:
        if self._answered:
            return
        self._answered = True
        refusal = self._events.confirm_start(wait=False)
        self._refusal = refusal
        self._backend.post(("go", self.key, refusal is None))

    def _failure(self, exc: BaseException, errors: Any) -> Outcome:
        """Ray's error as a fact (the stop's outcome was recorded already when we killed it)."""
        text = f"{type(exc).__name__}: {exc}"
        with self._lock:
            killed = self._killed
        reason = self._stop.reason
        if isinstance(exc, errors.TaskCancelledError) and reason is not None:
            return Cancelled(reason)
        if killed and reason is not None:
            return Cancelled(reason)
        if isinstance(exc, errors.OutOfMemoryError):
            return ResourceExhausted(limit="node_memory", value=0.0, message=text)
        if isinstance(exc, errors.WorkerCrashedError | errors.NodeDiedError):
            return Crashed(exit_code=None, signal=None, node_id=self._node_id, ray_error=text)
        if isinstance(exc, errors.RaySystemError):
            return self._unavailable(self._started)
        if isinstance(exc, errors.RayTaskError):
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            return Raised.from_exception(cause)
        return Crashed(exit_code=None, signal=None, node_id=self._node_id, ray_error=text)

    def _unavailable(self, was_running: bool) -> Outcome:
        now = time.time()
        return Interrupted(
            was_running=was_running, attempt=self.spec.prior_attempts + 1,
            last_seen_at=now, recovered_at=now, cause="ray_unavailable",
        )  # fmt: skip
