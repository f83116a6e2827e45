"""Live task events over Server-Sent Events.

``GET /v1/tasks/{task_id}/events`` streams one task: every lifecycle and progress event
of it as ``id: <seq>\\nevent: <kind>\\ndata: <json>\\n\\n`` (``seq`` counts the task's
events from 1; ``data`` holds ``task_id``, ``kind``, ``seq``, ``at`` (ISO-8601) and the
event's own fields), up to and including the terminal one (``completed``, ``failed`` or
``cancelled``), after which the stream ends. The events the task already had are
replayed first; a reconnect with ``Last-Event-ID: n`` gets exactly the events after
``n``. When the service holds no events of the task or not its first ones (it was
created before the service started, or its events were forgotten, see below), or the
resume point is older than what is kept, the stream starts with a synthetic
``event: status`` (no ``id``) whose data is the task's current status dict, and ends at
once if the task has ended.

``GET /v1/events`` streams every task the caller may see (an admin every task, a user
the tasks they created) without end, each event with ``id: <global seq>``. Without
``Last-Event-ID`` it starts with the next event; with one it resumes from a ring of the
last :data:`GLOBAL_HISTORY` events. When the resume point has left the ring (or comes
from an earlier run of the service) the stream sends ``event: reset`` (no ``id``) first:
the client missed events and should reload the task list.

Both send a ``: keep-alive`` comment after :data:`HEARTBEAT_SECONDS` of silence, and
stop when the client disconnects.

The :class:`EventLog` listens to the manager with one subscription, whose target is an
actor of its own: events arrive on that actor's thread, are appended under the log's
lock, and wake the streams waiting on them on their event loop
(``loop.call_soon_threadsafe``; the actor never waits for a stream). An actor rather
than a callback so that a stream opened right after a task was created can wait for the
log to have the task's first events (:meth:`EventLog.sync`) instead of mistaking it for a
task from before the service.

Memory is bounded: each task keeps its last ``history`` events; once more than
``max_tasks`` tasks have a log, or more than ``max_events`` events are held in all, the
logs of ended tasks are forgotten, the one that ended first first (a stream of such a
task then starts with its status). Logs of unfinished tasks are never forgotten (their
number is bounded by the manager's queue and workers), so their sequence numbers never
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pykka
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from actors import TERMINAL_STATUSES, TaskEvent
from actors.logs import library_logger
from storycore_tasks.async_manager import AsyncTaskManager
from storycore_tasks.envelope import to_jsonable
from storycore_tasks.errors import ErrorCodes, ErrorDetails, Surface, iso_utc, status_shown_on
from storycore_tasks.manager import TaskManager
from storycore_tasks.service.auth import Principal
from storycore_tasks.service.deps import (
    ERROR_RESPONSES,
    AuthenticatedFirst,
    ServiceError,
    await_manager,
    manager_of,
    stream_principal,
    task_not_found,
)

__all__ = [
    "GLOBAL_HISTORY",
    "HEARTBEAT_SECONDS",
    "MAX_EVENTS",
    "MAX_TASKS",
    "EventLog",
    "EventStreamResponse",
    "LoggedEvent",
    "router",
]

_log = library_logger("storycore_tasks.service")

HEARTBEAT_SECONDS = 15.0
"""Seconds of silence after which a stream sends a ``: keep-alive`` comment."""
MAX_TASKS = 10_000
"""Tasks whose logs are kept before ended ones are forgotten."""
MAX_EVENTS = 200_000
"""Events kept in all task logs before ended tasks' logs are forgotten."""
GLOBAL_HISTORY = 10_000
"""Events ``GET /v1/events`` can resume from."""

_BATCH = 500  # events sent in one write
_SYNC_TIMEOUT = 10.0
_KEEP_ALIVE = b": keep-alive\n\n"


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event as the log keeps it: its numbers, whose it is, and its SSE data."""

    seq: int  # the task's own count from 1: a task stream's SSE id
    global_seq: int  # the log's count from 1: GET /v1/events's SSE id
    task_id: str
    kind: str
    user: str | None
    data: str  # JSON

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_STATUSES

    def frame(self, *, global_id: bool = False) -> bytes:
        """The event in the SSE wire format."""
        ident = self.global_seq if global_id else self.seq
        return f"id: {ident}\nevent: {self.kind}\ndata: {self.data}\n\n".encode()


@dataclass(frozen=True, slots=True)
class TaskLogInfo:
    """What the log holds of one task."""

    first_seq: int  # of the oldest event kept (last_seq + 1 when none is)
    last_seq: int
    terminal: bool
    from_creation: bool = True  # its first event was "created" (not a task from before)


class _TaskLog:
    __slots__ = ("events", "from_creation", "last_seq", "terminal", "user")

    def __init__(self, user: str | None, history: int, from_creation: bool) -> None:
        self.events: deque[LoggedEvent] = deque(maxlen=history)
        self.last_seq = 0
        self.user = user
        self.terminal = False
        self.from_creation = from_creation

    def info(self) -> TaskLogInfo:
        first = self.events[0].seq if self.events else self.last_seq + 1
        return TaskLogInfo(first, self.last_seq, self.terminal, self.from_creation)


class _Watcher:
    """A stream waiting for events, woken on its own event loop."""

    __slots__ = ("_event", "_loop", "_scheduled", "owner", "task_id")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, task_id: str | None, owner: str | None
    ) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._scheduled = False
        self.task_id = task_id  # None: every task (GET /v1/events)
        self.owner = owner  # None: every user's tasks

    def wants(self, event: LoggedEvent) -> bool:
        return self.owner is None or self.owner == event.user

    def wake(self) -> None:
        """From any thread, under the log's lock: never blocks."""
        if self._scheduled:
            return  # a wake-up is already on its way, and comes after this event
        self._scheduled = True
        with contextlib.suppress(RuntimeError):  # a closed loop: its stream is gone
            self._loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        self._scheduled = False
        self._event.set()

    def reset(self) -> None:
        """Before reading the log: a wake-up from now on means something new."""
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """Until woken (True) or ``timeout`` seconds (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class _Sync:
    """Asked of the listener: answered once every event before it is in the log."""


class _Listener(pykka.ThreadingActor):
    """The log's subscription target: records each event on its own thread."""

    use_daemon_thread = True

    def __init__(self, log: EventLog) -> None:
        super().__init__()
        self._log = log

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TaskEvent):
            try:
                self._log._record(message)
            except Exception as exc:  # never stop listening over one event
                _log.warning(
                    "events.record_failed",
                    task_id=message.task_id,
                    task_event=message.kind,
                    error=f"{type(exc).__name__}: {exc}",
                )
            return None
        if isinstance(message, _Sync):
            return True
        return super().on_receive(message)


class EventLog:
    """Every task event the manager emits, kept per task (the last ``history`` of each)
    for streams to replay from ``Last-Event-ID``, and a ring of the last
    ``global_history`` events of all tasks. See the module docstring for its bounds."""

    def __init__(
        self,
        manager: TaskManager,
        *,
        history: int,
        max_tasks: int = MAX_TASKS,
        max_events: int = MAX_EVENTS,
        global_history: int = GLOBAL_HISTORY,
    ) -> None:
        for name, value in (
            ("history", history),
            ("max_tasks", max_tasks),
            ("max_events", max_events),
            ("global_history", global_history),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self._manager = manager
        self._history = history
        self._max_tasks = max_tasks
        self._max_events = max_events
        self._lock = threading.Lock()
        self._tasks: dict[str, _TaskLog] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()  # ended tasks, first ended first
        self._event_count = 0
        self._global: deque[LoggedEvent] = deque(maxlen=global_history)
        self._global_seq = 0
        self._watchers: dict[str | None, set[_Watcher]] = {}
        self._closed = False
        self._listener: pykka.ActorRef[_Listener] = _Listener.start(self)
        try:
            self._subscription: str | None = manager.subscribe(self._listener)
        except BaseException:
            self._listener.stop(block=True)
            raise

    # -- the manager's side ----------------------------------------------------------------

    def close(self) -> None:
        """Stop listening (the manager is not shut down); streams end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                self._manager.unsubscribe(subscription)
            except Exception as exc:
                _log.warning("events.unsubscribe_failed", error=f"{type(exc).__name__}: {exc}")
        self._listener.stop(block=True, timeout=_SYNC_TIMEOUT)
        with self._lock:
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def sync(self) -> None:
        """Return once every event the registry had sent before the caller's last query
        of the manager (``get_task_status``...) is in the log.

        ``runtime.sync()`` returns once the notifier has told this log's listener those
        events; the listener then answers an ask after recording them. (Every mailbox on
        the way is FIFO.)
        """
        if self._closed:
            return
        try:
            self._manager.runtime.sync()
            self._listener.ask(_Sync(), timeout=_SYNC_TIMEOUT)
        except Exception as exc:  # a manager shutting down: nothing more will come
            _log.debug("events.sync_failed", error=f"{type(exc).__name__}: {exc}")

    async def sync_awaited(self, tasks: AsyncTaskManager) -> None:
        """:meth:`sync`, awaited on the caller's event loop (no thread waits)."""
        if self._closed:
            return
        try:
            await tasks.runtime.sync()
            await tasks.runtime.ask(self._listener, _Sync(), timeout=_SYNC_TIMEOUT)
        except Exception as exc:  # a manager shutting down: nothing more will come
            _log.debug("events.sync_failed", error=f"{type(exc).__name__}: {exc}")

    def _record(self, event: TaskEvent) -> None:
        """On the listener's thread: append the event and wake its streams."""
        with self._lock:
            known = event.task_id in self._tasks
        user: str | None = None
        if not known:
            user = _user_of(event.data) if event.kind == "created" else self._lookup(event)
        payload: dict[str, Any] = {"task_id": event.task_id, "kind": event.kind, "seq": 0}
        payload["at"] = iso_utc(event.at)
        for key, value in to_jsonable(dict(event.data)).items():
            payload.setdefault(key, value)
        with self._lock:
            if self._closed:
                return
            task = self._tasks.get(event.task_id)
            if task is None:
                task = self._tasks[event.task_id] = _TaskLog(
                    user, self._history, from_creation=event.kind == "created"
                )
            elif task.terminal:
                return  # a terminal event is final: nothing can follow it
            task.last_seq += 1
            self._global_seq += 1
            payload["seq"] = task.last_seq
            logged = LoggedEvent(
                task.last_seq,
                self._global_seq,
                event.task_id,
                event.kind,
                task.user,
                json.dumps(payload, separators=(",", ":"), allow_nan=False),
            )
            dropped = len(task.events) == task.events.maxlen
            task.events.append(logged)
            self._event_count += 0 if dropped else 1
            self._global.append(logged)
            if logged.terminal:
                task.terminal = True
                self._ended[event.task_id] = None
            self._forget_old()
            for watcher in self._watchers.get(event.task_id, ()):
                watcher.wake()
            for watcher in self._watchers.get(None, ()):
                if watcher.wants(logged):
                    watcher.wake()

    def _lookup(self, event: TaskEvent) -> str | None:
        """The user of a task whose ``created`` event the log never saw."""
        try:
            status = self._manager.get_task_status(event.task_id)
        except Exception:
            return None
        return None if status is None else _user_of(status)

    def _forget_old(self) -> None:
        while self._ended and (
            len(self._tasks) > self._max_tasks or self._event_count > self._max_events
        ):
            task_id, _ = self._ended.popitem(last=False)
            gone = self._tasks.pop(task_id, None)
            if gone is not None:
                self._event_count -= len(gone.events)

    # -- the streams' side -----------------------------------------------------------------

    def task_info(self, task_id: str) -> TaskLogInfo | None:
        """What the log holds of the task, or None if it holds nothing of it."""
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else task.info()

    def task_user(self, task_id: str) -> str | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else task.user

    def task_events(self, task_id: str, after: int, limit: int = _BATCH) -> list[LoggedEvent]:
        """The task's kept events with ``seq > after``, oldest first (at most ``limit``)."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or not task.events:
                return []
            start = max(0, after + 1 - task.events[0].seq)
            return [task.events[i] for i in range(start, min(len(task.events), start + limit))]

    @property
    def global_seq(self) -> int:
        """The id of the latest event of all tasks (0 before the first)."""
        with self._lock:
            return self._global_seq

    def global_events(
        self, after: int, owner: str | None, limit: int = _BATCH
    ) -> tuple[list[LoggedEvent], int, bool]:
        """Events of every task with ``global_seq > after`` that ``owner`` may see (all
        with None), at most ``limit``; the global seq read up to (the next ``after``);
        and whether events after ``after`` have already left the ring (a gap)."""
        with self._lock:
            if not self._global:  # no event yet
                return [], after, False
            first = self._global[0].global_seq
            gap = after + 1 < first
            start = max(0, after + 1 - first)
            found: list[LoggedEvent] = []
            reached = max(after, first - 1)
            for index in range(start, len(self._global)):
                logged = self._global[index]
                reached = logged.global_seq
                if owner is None or logged.user == owner:
                    found.append(logged)
                    if len(found) >= limit:
                        break
            return found, reached, gap

    @contextlib.contextmanager
    def watch(self, task_id: str | None, owner: str | None) -> Iterator[_Watcher]:
        """Register a stream (on the running event loop) to be woken by new events of
        ``task_id`` (every task with None) that ``owner`` may see (all with None)."""
        watcher = _Watcher(asyncio.get_running_loop(), task_id, owner)
        with self._lock:
            self._watchers.setdefault(task_id, set()).add(watcher)
        try:
            yield watcher
        finally:
            with self._lock:
                watchers = self._watchers.get(task_id)
                if watchers is not None:
                    watchers.discard(watcher)
                    if not watchers:
                        del self._watchers[task_id]

    @property
    def watcher_count(self) -> int:
        """Streams waiting now (for tests and inspection)."""
        with self._lock:
            return sum(len(w) for w in self._watchers.values())


def _user_of(data: Mapping[str, Any]) -> str | None:
    user = data.get("user")
    return user if isinstance(user, str) else None


# -- routes -------------------------------------------------------------------------------


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response (documents the media type in OpenAPI)."""

    media_type = "text/event-stream"


_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    200: {
        "description": "Server-Sent Events: `id: <n>`, `event: <kind>`, `data: <JSON>`",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
}

StreamWho = Annotated[Principal, Depends(stream_principal)]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=20,
        description="Resume after this event id (an EventSource sends it on reconnect)",
    ),
]
AccessToken = Annotated[
    str | None,
    Query(
        max_length=512,
        description="The bearer token, for clients that cannot set headers (EventSource)",
    ),
]


def event_log_of(request: Request) -> EventLog:
    """The service's event log (``app.state.service.events``)."""
    log: EventLog = request.app.state.service.events
    return log


router = APIRouter(route_class=AuthenticatedFirst)


@router.get(
    "/v1/tasks/{task_id}/events",
    response_class=EventStreamResponse,
    responses=_STREAM_RESPONSES,
    tags=["events"],
)
async def task_events(
    request: Request,
    task_id: str,
    who: StreamWho,
    last_event_id: LastEventId = None,
    access_token: AccessToken = None,
) -> EventStreamResponse:
    """The task's events as Server-Sent Events, from its creation (or after
    ``Last-Event-ID``) to its end. Another user's task is NOT_FOUND."""
    log = event_log_of(request)
    tasks = AsyncTaskManager(manager_of(request))  # awaited on the server's loop
    after = _parse_last_event_id(last_event_id)
    # A query of the registry: every event of the task it sent before answering is on
    # its way to the log (and sync() waits for them if the log has none yet).
    status = await await_manager(tasks.get_task_status(task_id, user=who.owner_filter))
    if status is None:
        raise task_not_found(task_id)
    info = log.task_info(task_id)
    if info is None:
        await log.sync_awaited(tasks)
        info = log.task_info(task_id)
    first: bytes | None = None
    done = False
    if info is None:
        # Nothing logged: created before the service started, or forgotten.
        first, done, after = _status_frame(status), _ended(status), 0
    else:
        after = min(after, info.last_seq)
        if info.terminal and after >= info.last_seq:
            done = True
        elif after + 1 < info.first_seq or (after == 0 and not info.from_creation):
            # Some of the events asked for are no longer kept, or the task is older than
            # the log: its status tells what the events cannot.
            fresh = await await_manager(tasks.get_task_status(task_id)) or status
            first = _status_frame(fresh)
    return EventStreamResponse(
        _task_stream(log, request, task_id, after, first, done), headers=_STREAM_HEADERS
    )


@router.get(
    "/v1/events", response_class=EventStreamResponse, responses=_STREAM_RESPONSES, tags=["events"]
)
async def all_events(
    request: Request,
    who: StreamWho,
    last_event_id: LastEventId = None,
    access_token: AccessToken = None,
) -> EventStreamResponse:
    """Every event of the tasks the caller may see (an admin: all), live and without
    end; ids count all events, for ``Last-Event-ID``. An ``event: reset`` says that
    events were missed (reload the tasks)."""
    log = event_log_of(request)
    head = log.global_seq  # before the response: every event after it is streamed
    after = head if last_event_id is None else _parse_last_event_id(last_event_id)
    reset = after > head  # an id from an earlier run of the service: numbers restarted
    return EventStreamResponse(
        _global_stream(log, request, who.owner_filter, min(after, head), reset),
        headers=_STREAM_HEADERS,
    )


async def _task_stream(
    log: EventLog,
    request: Request,
    task_id: str,
    after: int,
    first: bytes | None,
    done: bool,
) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    if done:
        return
    with log.watch(task_id, None) as watcher:
        while True:
            watcher.reset()
            batch = log.task_events(task_id, after)
            if batch:
                yield b"".join(e.frame() for e in batch)
                after = batch[-1].seq
                if batch[-1].terminal:
                    return
                continue
            if log.closed or await request.is_disconnected():
                return
            if not await watcher.wait(HEARTBEAT_SECONDS):
                yield _KEEP_ALIVE


async def _global_stream(
    log: EventLog, request: Request, owner: str | None, after: int, reset: bool
) -> AsyncIterator[bytes]:
    if reset:
        yield _reset_frame("the event ids restarted: the service was restarted")
    with log.watch(None, owner) as watcher:
        while True:
            watcher.reset()
            batch, reached, gap = log.global_events(after, owner)
            if gap:
                yield _reset_frame("some events are no longer kept")
            after = reached
            if batch:
                yield b"".join(e.frame(global_id=True) for e in batch)
                continue
            if log.closed or await request.is_disconnected():
                return
            if not await watcher.wait(HEARTBEAT_SECONDS):
                yield _KEEP_ALIVE


def _reset_frame(reason: str) -> bytes:
    return f"event: reset\ndata: {json.dumps({'reason': reason})}\n\n".encode()


def _status_frame(status: Mapping[str, Any]) -> bytes:
    shown = status_shown_on(status, Surface.HTTP)  # as GET /v1/tasks/{id} words it
    data = json.dumps(to_jsonable(shown), separators=(",", ":"), allow_nan=False)
    return f"event: status\ndata: {data}\n\n".encode()


def _ended(status: Mapping[str, Any]) -> bool:
    return status.get("status") in TERMINAL_STATUSES


def _parse_last_event_id(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ServiceError(
            ErrorDetails.of(
                ErrorCodes.VALIDATION_ERROR,
                "Last-Event-ID must be the id of an event this stream sent (a whole number >= 0)",
            )
        )
    return int(value)
