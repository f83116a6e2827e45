"""One attempt of a Ray task on the host: its levers (the worker actor's thread), and
what its node says on the host channel and its Ray task's answer (both on the Ray
back-end's bridge loop), turned into the facts the registry knows. See
``actors._execution.ray_backend``."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
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
        self._node_id: str | None = None
        self._refusal: Outcome | None = None
        self._answered = False
        self._task: asyncio.Task[None] | None = None
        # The bridge loop's only: progress messages read, and the wait for the ones the
        # node's answer says it sent.
        self._received = 0
        self._expected: int | None = None
        self._caught_up: asyncio.Event | None = None
        self._link_lost: str | None = None

    # -- levers --------------------------------------------------------------------------

    def stop(self, reason: StopReason) -> None:
        if not self._stop.request(reason):
            return
        self._backend.post(("stop", self.key, reason.value))
        with self._lock:
            ref, started = self._ref, self._started
        if ref is not None and not started:
            # Not running on a node yet (waiting for resources): it never will.
            self._backend.cancel(ref, force=False)

    def interrupt(self, reason: StopReason) -> None:
        self._backend.post(("interrupt", self.key))
        _log.warning("task.ray_interrupted", task_id=self.spec.task_id, reason=reason.value)

    def kill(self, reason: StopReason) -> None:
        with self._lock:
            ref = self._ref
            self._killed = True
        if ref is not None:
            self._backend.cancel(ref, force=True)
            _log.warning(
                "task.ray_killed", task_id=self.spec.task_id, node_id=self._node_id,
                reason=reason.value,
            )  # fmt: skip

    # -- the bridge's loop ---------------------------------------------------------------

    def begin(self) -> None:
        # Kept: the loop holds only a weak reference to its tasks.
        self._task = self._backend.loop.create_task(self._run())

    async def _run(self) -> None:
        outcome: Outcome
        try:
            outcome = await self._drive()
        except Exception as exc:  # a bug of ours: the attempt still ends
            outcome = Raised.from_exception(exc)
        finally:
            self._backend.forget(self.key)
            self._backend.attempt_over(self)
        self._events.ended(outcome)

    async def _drive(self) -> Outcome:
        spec = self.spec
        reason = self._stop.reason
        if reason is not None:  # stopped before it was submitted
            return Cancelled(reason)
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
        with self._lock:
            self._ref = ref
        errors = self._backend.exceptions()
        try:
            answer = await ref
        except errors.RayError as exc:
            return self._failure(exc, errors)
        return await self._answered_with(answer)

    async def _answered_with(self, answer: tuple[Any, ...]) -> Outcome:
        kind = answer[0]
        if kind == "lost":
            # No verdict reached the node (the host's channel broke or stayed unreachable):
            # the operation never ran. A lost link to the cluster, not a cancel no one asked.
            _log.warning("task.ray_channel_lost", task_id=self.spec.task_id, error=answer[1])
            reason = self._stop.reason
            if reason is not None:
                return Cancelled(reason)
            return self._unavailable(was_running=False)
        if kind == "refused":
            return self._refusal or Cancelled(self._stop.reason or StopReason.CANCEL_REQUESTED)
        _, value, sent, last = answer
        await self._catch_up(sent)
        if last is not None:
            self._relay(last)
        if kind == "completed":
            try:
                return Completed(pickle.loads(value))
            except Exception as exc:  # a class the host cannot import
                return Raised.from_exception(exc)
        exception_type, text, trace, mro = value
        return Raised(exception_type=exception_type, message=text, traceback=trace,
                      exception_mro=tuple(mro))  # fmt: skip

    async def _catch_up(self, sent: int) -> None:
        """Until the channel delivered the ``sent`` progress messages the node wrote
        before its answer (or it broke): a partial result or checkpoint among them is
        the attempt's."""
        if self._received >= sent or self._link_lost is not None:
            return
        self._expected = sent
        self._caught_up = asyncio.Event()
        try:
            await asyncio.wait_for(self._caught_up.wait(), CATCH_UP_SECONDS)
        except TimeoutError:
            _log.warning(
                "task.ray_progress_missing", task_id=self.spec.task_id,
                sent=sent, received=self._received,
            )  # fmt: skip

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
        if self._expected is not None and self._received >= self._expected:
            assert self._caught_up is not None
            self._caught_up.set()

    def on_lost(self, why: str) -> None:
        """The node's connection broke: a verdict not sent yet cannot reach it (its
        answer says ``lost``), and progress not read yet will not come."""
        self._link_lost = why
        if self._caught_up is not None:
            self._caught_up.set()

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
        self._backend.loop.call_soon_threadsafe(self._answer)

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
            return self._unavailable(was_running=self._started)
        if isinstance(exc, errors.RayTaskError):
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            return Raised.from_exception(cause)
        return Crashed(exit_code=None, signal=None, node_id=self._node_id, ray_error=text)

    def _unavailable(self, *, was_running: bool) -> Outcome:
        now = time.time()
        return Interrupted(
            was_running=was_running, attempt=self.spec.prior_attempts + 1,
            last_seen_at=now, recovered_at=now, cause="ray_unavailable",
        )  # fmt: skip
