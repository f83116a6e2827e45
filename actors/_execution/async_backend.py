"""Async isolation: coroutine operations (``async def op(params, task)``) on one event
loop, thousands at once without a thread each.

The back-end owns one event-loop thread, started on first use and stopped (and joined)
by :meth:`AsyncBackend.shutdown`. An attempt is an ``asyncio.Task`` on that loop; the
hand-over is its start (the loop takes it at once), so the supervisor records
``running`` as it hands over, as for threads. The stop ladder's steps:

* ``stop``: the cooperative flag (``is_cancelled()``; ``await task.wait_cancelled()``
  returns at once);
* ``interrupt`` (``stop_grace`` later): ``asyncio.Task.cancel()``, so the coroutine
  gets ``CancelledError`` at its next ``await`` and its ``finally`` blocks run;
* ``kill`` (every 0.1 s after, until it has returned): a coroutine cannot be killed, so
  it is cancelled again. The first kill that finds it still running logs
  ``task.cancellation_ignored`` (it swallowed ``CancelledError``, or awaits in its
  cleanup) and counts it: the loop runs on for every other coroutine, the attempt
  keeps its slot until the coroutine returns. So ``kill_ends_attempt`` is False.

The asyncio tasks an operation starts (``asyncio.create_task``, ``gather``...) belong to
its attempt (the loop's task factory reads the attempt from the context they copy): those
still running when the attempt ends are cancelled (``task.children_cancelled``), so no
work of a task outlives it.

A coroutine that blocks the loop with synchronous work (``time.sleep``, a CPU-bound
loop) holds up every other coroutine: that is a misuse, and it is detected. A heartbeat
on the loop is read by a watchdog thread; lag above ``lag_threshold`` seconds logs
``task.loop_blocked`` with the id of the task the loop is running, once per stall, and
is counted in :meth:`AsyncBackend.statistics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import pykka

from actors._enums import Isolation
from actors._execution.api import AsyncOperation
from actors._execution.backend import Attempt, AttemptEvents
from actors._execution.context import StopFlag
from actors._execution.injected import InjectedCrash, InjectedLimit
from actors._execution.loop_context import LoopTaskContext, call_soon_safe, resolve_future
from actors._execution.loop_watchdog import LoopWatchdog
from actors._outcome import Cancelled, Completed, Outcome, Raised, StopReason
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["AsyncAttempt", "AsyncBackend", "LoopStats"]

_log = library_logger("actors.worker")

DEFAULT_LAG_THRESHOLD = 0.1
"""Seconds of event-loop lag past which the watchdog reports the loop blocked."""

_LOOP_STOP_GRACE = 2.0  # seconds the coroutines still running at shutdown get to end

# The attempt whose operation is running in this context: asyncio tasks the operation
# creates copy it, so the loop's task factory knows whose they are.
_ATTEMPT: contextvars.ContextVar[AsyncAttempt | None] = contextvars.ContextVar(
    "actors_async_attempt", default=None
)


@dataclass(frozen=True, slots=True)
class LoopStats:
    """The event loop's counters (a snapshot)."""

    running: bool  # the loop thread is up
    coroutines: int  # attempts whose coroutine has not returned yet
    started_total: int
    loop_blocked_total: int  # stalls over the lag threshold, in a coroutine
    cancellations_ignored_total: int  # coroutines still running after their cancel
    max_lag_seconds: float  # the longest stall a coroutine caused
    loop_lagged_total: int = 0  # stalls over the threshold outside any coroutine


class AsyncAttempt:
    """One attempt: a coroutine on the back-end's loop, and its levers."""

    __slots__ = (
        "_backend",
        "_cancels",
        "_children",
        "_committed",
        "_ended",
        "_entered",
        "_events",
        "_loop",
        "_reported_ignored",
        "_stop",
        "_task",
        "context",
        "spec",
    )

    def __init__(
        self,
        spec: TaskSpec,
        registry: pykka.ActorRef[Any],
        events: AttemptEvents,
        loop: asyncio.AbstractEventLoop,
        backend: AsyncBackend,
        gpu_indices: tuple[int, ...] = (),
    ) -> None:
        self.spec = spec
        self._events = events
        self._loop = loop
        self._backend = backend
        self._stop = StopFlag()
        self.context = LoopTaskContext(
            spec.task_id,
            registry,
            self._stop,
            loop,
            spec.dependency_results,
            events.published,
            spec.resume_from,
            gpu_indices,
        )
        self._task: asyncio.Task[None] | None = None
        self._committed: asyncio.Future[None] | None = None  # a durable store's start
        # asyncio tasks the operation created that have not ended (the loop's own).
        self._children: set[asyncio.Task[Any]] = set()
        self._entered = False  # the coroutine has begun (a cancel now reaches its body)
        self._ended = False
        self._cancels = 0
        self._reported_ignored = False

    # -- levers (the worker actor's thread) -------------------------------------------

    def stop(self, reason: StopReason) -> None:
        if self._stop.request(reason):
            call_soon_safe(self._loop, self.context._wake)

    def interrupt(self, reason: StopReason) -> None:
        call_soon_safe(self._loop, self._cancel, reason, False)

    def kill(self, reason: StopReason) -> None:
        call_soon_safe(self._loop, self._cancel, reason, True)  # a coroutine cannot be killed

    # -- the loop ---------------------------------------------------------------------

    def begin(self) -> None:
        """On the loop: the attempt's task."""
        # Made directly, not through the loop's task factory: it is nobody's child.
        task = asyncio.Task(self._run(), loop=self._loop, name=f"task-{self.spec.task_id}")
        self._task = task
        self._backend._began(task, self)
        task.add_done_callback(self._task_done)

    def _cancel(self, reason: StopReason, again: bool) -> None:
        task = self._task
        if task is None or task.done() or self._ended or not self._entered:
            return  # not in the coroutine (yet, or any more): the ladder comes again
        self._cancels += 1
        task.cancel(f"the task was stopped ({reason.value}) and did not return in time")
        if again and not self._reported_ignored:
            self._reported_ignored = True
            self._backend._cancellation_ignored()
            _log.warning(
                "task.cancellation_ignored",
                task_id=self.spec.task_id,
                cancels=self._cancels,
                reason=reason.value,
                detail=(
                    "the coroutine is still running after its CancelledError: it "
                    "swallows cancellation, or awaits in its cleanup; it is cancelled "
                    "again until it returns (the loop runs on for the others)"
                ),
            )
        elif not again:
            _log.warning(
                "task.interrupted", task_id=self.spec.task_id, attempt=1, reason=reason.value
            )

    async def _run(self) -> None:
        self._entered = True
        outcome: Outcome
        try:
            refused = await self._confirmed()
            if refused is not None:
                outcome = refused
            else:
                outcome = await self._call()
        except asyncio.CancelledError:
            # Cancelled while its start was being confirmed, or at shutdown.
            outcome = Cancelled(self._stop.reason or StopReason.SHUTDOWN)
        self._end(outcome)

    async def _confirmed(self) -> Outcome | None:
        """None to run the operation; else the outcome that ends the attempt unrun. With
        a durable store, waits (on the loop) until ``running`` is committed."""
        events = self._events
        if not events.confirm_start_soon(self._commit_seen):
            # The callback runs on the loop (call_soon_threadsafe), so after this line
            # even when the commit was done as it was registered.
            self._committed = self._loop.create_future()
            await asyncio.wait((self._committed,), timeout=self._backend.start_timeout)
        return events.confirm_start(wait=False)

    def _commit_seen(self) -> None:
        """The registry's thread: the start is committed (or could not be)."""
        call_soon_safe(self._loop, self._commit_arrived)

    def _commit_arrived(self) -> None:
        if self._committed is not None:
            resolve_future(self._committed)

    async def _call(self) -> Outcome:
        spec = self.spec
        _ATTEMPT.set(self)  # in this task's own context: the tasks it creates copy it
        try:
            operation = cast(AsyncOperation, spec.operation)  # checked at submission
            awaitable = operation(spec.params, self.context)
            if not inspect.isawaitable(awaitable):
                raise TypeError(
                    f"operation {spec.operation_name!r} runs with isolation='async' but "
                    f"returned {type(awaitable).__name__}, not an awaitable: make it an "
                    "async def function"
                )
            return Completed(await awaitable)
        except (InjectedCrash, InjectedLimit) as fault:
            return fault.outcome()  # what the real fault does to a child
        except asyncio.CancelledError as exc:
            reason = self._stop.reason
            if self._cancels and reason is not None:
                return Cancelled(reason)  # the runtime cancelled it (the ladder's step)
            return Raised.from_exception(exc)  # a CancelledError of its own
        except BaseException as exc:
            # SystemExit and KeyboardInterrupt included: none may reach the loop.
            return Raised.from_exception(exc)

    def _end(self, outcome: Outcome) -> None:
        if self._ended:
            return
        self._ended = True
        self._cancel_children()
        self._backend._ended(self)
        self._events.ended(outcome)

    def adopt(self, child: asyncio.Task[Any]) -> None:
        """The loop's task factory: the operation created ``child``."""
        if self._ended:
            return
        self._children.add(child)
        self._backend._adopted(child, self)
        child.add_done_callback(self._child_done)

    def _child_done(self, child: asyncio.Task[Any]) -> None:
        self._children.discard(child)
        self._backend._orphaned(child)

    def _cancel_children(self) -> None:
        """The attempt is over: the tasks its operation started and left running (a
        fire-and-forget ``asyncio.create_task``) are cancelled, so no work of a task
        outlives it, as no process of a child outlives its task."""
        left = [child for child in self._children if not child.done()]
        if not left:
            return
        for child in left:
            child.cancel("the task that started it has ended")
        _log.warning(
            "task.children_cancelled",
            task_id=self.spec.task_id,
            count=len(left),
            detail=(
                "the operation returned (or was stopped) leaving asyncio tasks it started "
                "running: they were cancelled; await them before returning"
            ),
        )

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # _run reports its end itself; this is for a task that never ran its body (the
        # loop closed first), so no slot is ever lost.
        if not self._ended:
            self._end(Cancelled(self._stop.reason or StopReason.SHUTDOWN))


class AsyncBackend:
    """Coroutine operations on one event loop of its own.

    ``start_timeout``: seconds an attempt waits for its start to be committed (a durable
    store). ``lag_threshold``: seconds of loop lag reported as a blocked loop.
    ``gpus_of``: the GPU indices a task holds of the host's ledger (its
    ``task.gpu_indices``).
    """

    isolation = Isolation.ASYNC
    starts_on_handover = True
    kill_ends_attempt = False

    def __init__(
        self,
        registry: pykka.ActorRef[Any],
        *,
        name: str = "actors-async",
        start_timeout: float = 30.0,
        lag_threshold: float = DEFAULT_LAG_THRESHOLD,
        gpus_of: Callable[[str], tuple[int, ...]] | None = None,
    ) -> None:
        self._registry = registry
        # The GPU indices a task holds (taken by the supervisor before the attempt).
        self._gpus_of = gpus_of
        self._name = name
        self.start_timeout = start_timeout
        self._lag_threshold = lag_threshold
        self._lock = threading.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._watchdog: LoopWatchdog | None = None
        # Hand-overs queued for the loop: one wake-up of the loop per batch of starts.
        self._handovers: list[AsyncAttempt] = []
        self._attempts: dict[asyncio.Task[Any], AsyncAttempt] = {}  # the loop's own
        self._children: dict[asyncio.Task[Any], AsyncAttempt] = {}  # tasks ops started
        self._started_total = 0
        self._blocked_total = 0
        self._lagged_total = 0
        self._ignored_total = 0
        self._max_lag = 0.0

    # -- ExecutionBackend -----------------------------------------------------------------

    def start(self, spec: TaskSpec, events: AttemptEvents) -> Attempt:
        first = False
        gpus = () if self._gpus_of is None else self._gpus_of(spec.task_id)
        with self._lock:
            loop = None if self._closed else self._loop_locked()
            attempt = None
            if loop is not None:
                attempt = AsyncAttempt(spec, self._registry, events, loop, self, gpus)
                self._handovers.append(attempt)
                first = len(self._handovers) == 1
        if loop is None or attempt is None:
            # Shut down (interpreter exit): the supervisor must still hear about it.
            error = RuntimeError("the event loop is shut down; nothing more can run on it")
            events.ended(Raised.from_exception(error))
            return _Unstarted()
        if first:
            call_soon_safe(loop, self._take_handovers)
        return attempt

    def shutdown(self) -> None:
        """Stop the loop (coroutines still running get ``CancelledError`` and up to
        2 s to end) and join its thread and the watchdog's. Idempotent."""
        with self._lock:
            self._closed = True
            loop, thread, watchdog = self._loop, self._thread, self._watchdog
        if watchdog is not None:
            watchdog.stop()
        if loop is None or thread is None:
            return
        call_soon_safe(loop, loop.stop)
        if thread is not threading.current_thread():
            thread.join()

    # -- queries --------------------------------------------------------------------------

    def owns_current_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def statistics(self) -> LoopStats:
        thread = self._thread
        return LoopStats(
            running=thread is not None and thread.is_alive(),
            coroutines=len(self._attempts),
            started_total=self._started_total,
            loop_blocked_total=self._blocked_total,
            cancellations_ignored_total=self._ignored_total,
            max_lag_seconds=self._max_lag,
            loop_lagged_total=self._lagged_total,
        )

    @property
    def watchdog(self) -> LoopWatchdog | None:
        return self._watchdog

    # -- the loop ---------------------------------------------------------------------------

    def _loop_locked(self) -> asyncio.AbstractEventLoop:
        """The loop, its thread and its watchdog started on first use (lock held)."""
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        loop.set_task_factory(_task_factory)
        watchdog = LoopWatchdog(
            loop,
            threshold=self._lag_threshold,
            task_id_of=self._task_id_of,
            on_blocked=self._blocked,
            on_lagged=self._lagged,
        )
        thread = threading.Thread(
            target=self._serve, args=(loop, watchdog), name=f"{self._name}-loop", daemon=True
        )
        self._loop, self._thread, self._watchdog = loop, thread, watchdog
        thread.start()
        watchdog.start(f"{self._name}-watchdog")
        return loop

    def _serve(self, loop: asyncio.AbstractEventLoop, watchdog: LoopWatchdog) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.call_soon(watchdog.beat)
            loop.run_forever()
            self._drain_loop(loop)
        finally:
            # An operation's async generators, and the default executor's threads (an
            # operation that used asyncio.to_thread or run_in_executor(None, ...)).
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_default_executor())
            asyncio.set_event_loop(None)
            loop.close()

    def _drain_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """After ``stop``: normally nothing runs any more (the runtime drained). After a
        supervisor failure coroutines may: each is cancelled and gets a moment to end."""
        self._take_handovers()
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in tasks:
            task.cancel("the task manager is shutting down")
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=_LOOP_STOP_GRACE))
        for attempt in list(self._attempts.values()):  # swallowed even that: let it go
            attempt._end(Cancelled(StopReason.SHUTDOWN))

    def _take_handovers(self) -> None:
        with self._lock:
            handovers, self._handovers = self._handovers, []
        for attempt in handovers:
            attempt.begin()

    def _began(self, task: asyncio.Task[Any], attempt: AsyncAttempt) -> None:
        self._attempts[task] = attempt
        self._started_total += 1

    def _ended(self, attempt: AsyncAttempt) -> None:
        if attempt._task is not None:
            self._attempts.pop(attempt._task, None)

    def _adopted(self, child: asyncio.Task[Any], attempt: AsyncAttempt) -> None:
        self._children[child] = attempt

    def _orphaned(self, child: asyncio.Task[Any]) -> None:
        self._children.pop(child, None)

    def _task_id_of(self, task: asyncio.Task[Any] | None) -> str | None:
        """The task id of the attempt running ``task``: its own, or one it started."""
        if task is None:
            return None
        attempt = self._attempts.get(task) or self._children.get(task)
        return None if attempt is None else attempt.spec.task_id

    def _blocked(self, lag: float) -> None:
        self._blocked_total += 1
        self._max_lag = max(self._max_lag, lag)

    def _lagged(self, lag: float) -> None:
        self._lagged_total += 1

    def _cancellation_ignored(self) -> None:
        self._ignored_total += 1


def _task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
    """The loop's task factory: a plain task, adopted by the attempt whose operation
    created it (its context says which), so the attempt can cancel it when it ends and
    the watchdog can name the task id of a child that blocks the loop."""
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **options)
    context = options.get("context")
    attempt = _ATTEMPT.get() if context is None else context.get(_ATTEMPT)
    if attempt is not None:
        attempt.adopt(task)
    return task


class _Unstarted:
    """The levers of an attempt that never began (the loop was shut down)."""

    def stop(self, reason: StopReason) -> None:
        return None

    def interrupt(self, reason: StopReason) -> None:
        return None

    def kill(self, reason: StopReason) -> None:
        return None
