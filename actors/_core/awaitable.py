"""The runtime awaited from an event loop: submit, snapshot, wait, cancel and a task's
events, none of which blocks the caller's loop or takes a thread per call.

pykka 4.5's futures cannot be awaited without blocking (``Future.__await__`` calls the
blocking ``get()``) and have no done-callbacks, so the bridge is the reply slot itself:
an ask puts the message in the actor's inbox with a :class:`LoopReply`, whose ``set``
(called on the actor's thread) resolves an ``asyncio`` future through
``call_soon_threadsafe``. What the registry hands back to be waited on (a
``TerminalWaiter``, a ``CommitTicket``) gets a callback that does the same. Every await
has a deadline (``ask_timeout``), as every blocking ask does: an ask racing an actor's
stop can leave its reply unset, and the caller then gets ``ActorUnresponsiveError``.
Events reach the loop through a pooled relay actor (no thread of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka
from pykka._envelope import Envelope

from actors._core.board import ASK_REGISTRY, Held
from actors._core.messages import (
    Cancel,
    Flush,
    GetSnapshot,
    GetStats,
    GetSupervisorStats,
    RegisterDependent,
    TaskPage,
    Watch,
)
from actors._core.notifier import TaskEvent
from actors._core.pooled import Dispatcher, PooledActor
from actors._enums import TaskStatus
from actors._errors import (
    ActorRestartedError,
    ActorUnresponsiveError,
    StoreError,
    UnknownTaskError,
)
from actors._execution.api import AnyOperation
from actors._ids import new_id
from actors._records import TaskSnapshot
from actors._storage.store import CommitTicket
from actors.validation import check_seconds

if TYPE_CHECKING:
    from actors._core.notifier import Subscriptions
    from actors._core.queries import RegistryQueries
    from actors._core.stats import RuntimeStats, StatsReader
    from actors._core.submission_path import SubmissionPath
    from actors._core.supervisor import SupervisorStats
    from actors._core.table import TableStats, TaskTable

__all__ = ["AwaitableRuntime", "FacadeParts", "LoopReply"]

_TERMINAL_KINDS = frozenset({"completed", "failed", "cancelled"})


def _soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
        loop.call_soon_threadsafe(callback, *args)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class LoopReply(pykka.Future[Any]):
    """The reply slot of an ask awaited on an event loop: the actor's ``set`` or
    ``set_exception`` resolves ``future`` on its own loop. Nothing blocks on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        super().__init__()
        self._loop = loop
        self._future = future

    def set(self, value: Any = None) -> None:
        _soon(self._loop, _set_result, self._future, value)

    def set_exception(self, exc_info: Any = None) -> None:
        error = (exc_info or sys.exc_info())[1]
        if error is None:
            error = RuntimeError("the actor failed without an exception")
        _soon(self._loop, _set_exception, self._future, error)


class _EventRelay(PooledActor):
    """A subscription's target: puts each event in an asyncio queue on its loop. A
    pooled actor, so an ``events()`` stream costs a mailbox, not a thread."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[TaskEvent],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._loop = loop
        self._queue = queue

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TaskEvent):
            _soon(self._loop, self._queue.put_nowait, message)
            return None
        return super().on_receive(message)


@dataclass(frozen=True, slots=True)
class FacadeParts:
    """What the awaitable facade shares with the runtime it fronts, handed over by the
    runtime itself (:meth:`actors.TaskRuntime.awaitable`): its submission steps, its
    actors, the reads that need no message, and its settings."""

    submission: SubmissionPath
    registry: pykka.ActorRef[Any]
    supervisor: pykka.ActorRef[Any]
    queries: RegistryQueries
    table: TaskTable  # read once the registry has stopped
    stats: StatsReader
    subscriptions: Subscriptions
    dispatcher: Dispatcher  # the event relays' mailboxes
    ask_timeout: float
    closed: Callable[[], bool]  # the runtime shut down


class AwaitableRuntime:
    """A :class:`~actors.TaskRuntime`'s submit, snapshot, wait, cancel and events as
    coroutines, for callers on an event loop. Shares the runtime's checks and actors:
    a task submitted here is the same task its blocking API sees. Made by the runtime
    (``runtime.awaitable()``)."""

    def __init__(self, parts: FacadeParts) -> None:
        self._parts = parts

    # -- commands ----------------------------------------------------------------------------

    async def submit(
        self,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        **options: Any,
    ) -> str:
        """:meth:`TaskRuntime.submit`, awaited: with dependencies the registry's verdict,
        with a durable store the commit, are awaited instead of blocked on."""
        parts = self._parts
        path = parts.submission
        fields = path.fields(operation, params, operation_name, options)
        loop = asyncio.get_running_loop()
        reply = None
        task_id = new_id()  # outside the lock (see SubmissionPath.admit)
        with path.lock:  # held for a few tells, as by the blocking submit
            spec, ticket = path.admit(task_id, fields)
            if spec.options.depends_on:
                reply = self._send(parts.registry, RegisterDependent(spec, ticket), loop)
            else:
                path.register_and_submit(spec, ticket)
        if reply is not None:
            try:
                verdict, unknown = await self._answer(reply, "registry", RegisterDependent)
            except ActorRestartedError:
                verdict, unknown = path.restarted_verdict()
            path.check_verdict(verdict, unknown)
        if ticket is not None:
            await self._committed(ticket, spec.task_id)
        return spec.task_id

    async def cancel(self, task_id: str) -> bool:
        """:meth:`TaskRuntime.cancel`, awaited: True once the registry has recorded the
        cancel (a status read shows it; with a durable store, committed)."""
        parts = self._parts
        try:
            accepted = bool(await self._ask(parts.supervisor, Cancel(task_id), "supervisor"))
        except pykka.ActorDeadError:
            return False  # shut down: every task is terminal already
        if accepted and parts.queries.ended_on_board(task_id) is None:  # as the runtime's
            ticket = CommitTicket(task_id)
            with contextlib.suppress(pykka.ActorDeadError):  # stopped: it committed
                parts.registry.tell(Flush(ticket))
                await self._committed(ticket, None)
        return accepted

    # -- queries ------------------------------------------------------------------------------

    async def snapshot(self, task_id: str) -> TaskSnapshot | None:
        """:meth:`TaskRuntime.snapshot`, awaited: from the registry's board without a
        message when it can answer, as the blocking read does."""
        found = self._parts.queries.on_board(task_id)
        if found is not ASK_REGISTRY:
            assert not isinstance(found, Held)
            return found  # a snapshot, or None: unknown
        table = self._parts.table

        def local() -> TaskSnapshot | None:
            record = table.get(task_id)
            return None if record is None else record.snapshot()

        result: TaskSnapshot | None = await self._query(GetSnapshot(task_id), local)
        return result

    async def stats(self) -> RuntimeStats:
        """:meth:`TaskRuntime.stats`, awaited (the registry's and the supervisor's
        answers; the rest is read without asking an actor)."""
        parts = self._parts
        table: TableStats = await self._query(GetStats(), parts.table.stats)
        try:
            supervisor: SupervisorStats = await self._ask(
                parts.supervisor, GetSupervisorStats(), "supervisor"
            )
        except pykka.ActorDeadError:
            supervisor = parts.stats.stopped_supervisor()
        return parts.stats.around(table, supervisor)

    async def page(
        self,
        status: TaskStatus | None = None,
        *,
        after: int = -1,
        limit: int,
        user: str | None = None,
    ) -> TaskPage:
        """:meth:`TaskRuntime.page`, awaited."""
        message, local = self._parts.queries.page_request(status, after, limit, user)
        result: TaskPage = await self._query(message, local)
        return result

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskSnapshot:
        """:meth:`TaskRuntime.wait`, awaited: no thread waits, the registry's wake-up
        resolves a future on the caller's loop."""
        timeout = check_seconds("timeout", timeout, allow_none=True, allow_zero=True)
        queries = self._parts.queries
        ended = queries.ended_on_board(task_id)
        if ended is not None:
            return ended  # ended (and, with a durable store, committed): no round trip
        waiter = queries.watch_directly(task_id)  # known, not ended: no round trip
        if waiter is None:
            waiter = await self._query(Watch(task_id), queries.watched_locally(task_id))
            if waiter is None:
                raise UnknownTaskError(task_id)
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        waiter.on_done(lambda: _soon(loop, _set_result, woken, None))
        try:
            await asyncio.wait_for(woken, timeout)
        except TimeoutError:
            queries.unwatch(task_id, waiter, timeout)
        except asyncio.CancelledError:
            queries.forget(task_id, waiter)  # the caller gave up (a client went away)
            raise
        return queries.waited(task_id, waiter)

    async def events(
        self, task_id: str, *, events: Iterable[str] | None = None
    ) -> AsyncIterator[TaskEvent]:
        """The task's lifecycle events from now on, as they happen, ending after its
        terminal one; one made from its snapshot if it had already ended. ``events``
        narrows the kinds as :meth:`TaskRuntime.subscribe` does (the terminal ones are
        always delivered)."""
        parts = self._parts
        subscriptions = parts.subscriptions
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[TaskEvent] = asyncio.Queue()
        kinds = None if events is None else [*events, "terminal"]
        relay = _EventRelay.spawn(loop=loop, queue=queue, dispatcher=parts.dispatcher)
        subscription, adding = subscriptions.relayed(relay.actor_ref, task_id=task_id, events=kinds)
        try:
            await self._ask(subscriptions.notifier, adding, "notifier")
            # Subscribed: from here on no event is missed. One that ended before it
            # gets its end from the snapshot.
            snapshot = await self.snapshot(task_id)
            if snapshot is None:
                raise UnknownTaskError(task_id)
            if snapshot.status.is_terminal:
                yield _terminal_event(snapshot)
                return
            while True:
                event = await queue.get()
                yield event
                if event.kind in _TERMINAL_KINDS:
                    return
        finally:
            with contextlib.suppress(pykka.ActorDeadError, ActorUnresponsiveError):
                removal = subscriptions.removal(subscription.subscription_id)
                await self._ask(subscriptions.notifier, removal, "notifier")
            relay.stop_when_idle()

    async def sync(self) -> None:
        """:meth:`TaskRuntime.sync`, awaited: once it returns, the supervisor, then the
        registry, then the notifier have handled every message sent to them before."""
        parts = self._parts
        if parts.closed():
            return
        subscriptions = parts.subscriptions
        with contextlib.suppress(pykka.ActorDeadError):
            await self._ask(parts.supervisor, GetSupervisorStats(), "supervisor")
            await self._ask(parts.registry, GetStats(), "registry")
            await self._ask(subscriptions.notifier, subscriptions.flushing(), "notifier")

    async def ask(
        self, ref: pykka.ActorRef[Any], message: Any, *, timeout: float | None = None
    ) -> Any:
        """Ask any actor ``message``, awaited (within ``timeout`` seconds, default the
        runtime's ``ask_timeout``; past it ``ActorUnresponsiveError``)."""
        future = self._send(ref, message, asyncio.get_running_loop())
        return await self._answer(future, ref.actor_class.__name__, type(message), timeout)

    # -- the bridge ---------------------------------------------------------------------------

    def _send(
        self, ref: pykka.ActorRef[Any], message: Any, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[Any]:
        """Put ``message`` in the actor's inbox with a reply that resolves the future
        returned (an actor already stopped answers ActorDeadError)."""
        future: asyncio.Future[Any] = loop.create_future()
        if not ref.is_alive():
            future.set_exception(pykka.ActorDeadError(f"{ref} not found"))
        else:
            ref.actor_inbox.put(Envelope(message, reply_to=LoopReply(loop, future)))
        return future

    async def _answer(
        self,
        future: asyncio.Future[Any],
        actor: str,
        message: type,
        timeout: float | None = None,
    ) -> Any:
        timeout = self._parts.ask_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ActorUnresponsiveError(actor, message.__name__, timeout) from None

    async def _ask(self, ref: pykka.ActorRef[Any], message: Any, actor: str) -> Any:
        future = self._send(ref, message, asyncio.get_running_loop())
        return await self._answer(future, actor, type(message))

    async def _query(self, message: Any, local: Callable[[], Any]) -> Any:
        """As ``RegistryQueries.query``: the registry's answer, or once it has stopped
        the final table's."""
        try:
            result = await self._ask(self._parts.registry, message, "registry")
        except pykka.ActorDeadError:
            return local()
        if isinstance(result, StoreError):
            raise result
        return result

    async def _committed(self, ticket: CommitTicket, new_task: str | None) -> None:
        """As ``TaskRuntime._await_commit``, awaited on the caller's loop."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        ticket.on_done(lambda: _soon(loop, _set_result, done, None))
        timeout = self._parts.ask_timeout
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise ActorUnresponsiveError("registry", "a commit", timeout) from None
        if ticket.error is not None:
            if new_task is not None:
                await self.cancel(new_task)  # not durable: do not leave it running
            raise ticket.error


def _terminal_event(snapshot: TaskSnapshot) -> TaskEvent:
    """The terminal event of a task that ended before its stream began, as the
    registry would have sent it."""
    duration = snapshot.duration_seconds
    return TaskEvent(
        snapshot.status.value,
        snapshot.task_id,
        snapshot.updated_at,
        {
            "status": snapshot.status.value,
            "outcome": type(snapshot.outcome).__name__,
            "duration_ms": None if duration is None else round(duration * 1000.0, 3),
        },
    )
