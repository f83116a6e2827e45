"""What callers ask the registry about tasks, from their own threads.

A task's status, and ``wait`` for a task that has ended, are read from the registry's
:class:`TaskBoard` in the caller's thread, with no message; ``wait`` for a task that is
known and has not ended adds the caller's waiter to the registry's :class:`Waiters`
from the caller's thread, with no message either (the registry wakes it at the end, as
it wakes every waiter). The rest is one ask of the
registry each (it is the single writer: an answer reflects every change sent before the
question), as is a status read of a task whose latest change awaits a commit; once the
registry has stopped, the final table is read directly. The registry answers a question
about a change it has not committed (a durable store failing to write) with the
``StoreError``, which is raised here: nothing is shown that is not durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import pykka

from actors._core.board import ASK_REGISTRY, Held, TaskBoard
from actors._core.messages import (
    GetGroup,
    GetSnapshot,
    ListPage,
    ListTasks,
    TaskPage,
    Watch,
)
from actors._core.table import TaskTable
from actors._core.waiters import TerminalWaiter, Waiters
from actors._enums import TaskStatus
from actors._errors import (
    ActorUnresponsiveError,
    RuntimeClosedError,
    StoreError,
    UnknownTaskError,
)
from actors._records import TaskSnapshot
from actors.validation import check_count, check_seconds

__all__ = ["RegistryQueries", "ask"]

T = TypeVar("T")


def ask(ref: pykka.ActorRef[Any], message: Any, actor: str, timeout: float) -> Any:
    """Ask an actor; past ``timeout`` seconds :class:`ActorUnresponsiveError` names it."""
    try:
        return ref.ask(message, timeout=timeout)
    except pykka.Timeout:
        raise ActorUnresponsiveError(actor, type(message).__name__, timeout) from None


class RegistryQueries:
    def __init__(
        self,
        registry: pykka.ActorRef[Any],
        table: TaskTable,
        board: TaskBoard,
        waiters: Waiters,
        ask_timeout: float,
        closed: Callable[[], bool],
    ) -> None:
        self._registry = registry
        self._table = table
        self._board = board
        self._waiters = waiters
        self._ask_timeout = ask_timeout
        self._closed = closed  # whether the runtime is shut down (a lost task reads so)

    def query(self, message: Any, local: Callable[[], T]) -> T:
        """Ask the registry; once it has stopped, read the final table directly."""
        try:
            result: T = ask(self._registry, message, "registry", self._ask_timeout)
        except pykka.ActorDeadError:
            return local()
        if isinstance(result, StoreError):
            raise result
        return result

    def snapshot(self, task_id: str) -> TaskSnapshot | None:
        found = self._board.read(task_id)
        if found is not ASK_REGISTRY:
            return found

        def local() -> TaskSnapshot | None:
            record = self._table.get(task_id)
            return None if record is None else record.snapshot()

        result: TaskSnapshot | None = self.query(GetSnapshot(task_id), local)
        return result

    def wait(self, task_id: str, timeout: float | None = None) -> TaskSnapshot:
        """Block until the task is terminal (see ``TaskRuntime.wait``)."""
        timeout = check_seconds("timeout", timeout, allow_none=True, allow_zero=True)
        ended = self.ended_on_board(task_id)
        if ended is not None:
            return ended  # (and, with a durable store, committed): no round trip
        waiter = self.watch_directly(task_id)
        if waiter is None:
            waiter = self.query(Watch(task_id), self.watched_locally(task_id))
            if waiter is None:
                raise UnknownTaskError(task_id)
        if not waiter.wait(timeout):
            self.unwatch(task_id, waiter, timeout)
        return self.waited(task_id, waiter)

    def watch_directly(self, task_id: str) -> TerminalWaiter | None:
        """A waiter for the end of a task that is known and has not ended, added from
        this thread with no message; None when only the registry can say (ask it with
        ``Watch``)."""
        return self._waiters.watch_unless_ended(task_id, self._table.get)

    def on_board(self, task_id: str) -> TaskSnapshot | Held | None:
        """The task as the board shows it (None: unknown), or ``ASK_REGISTRY`` when only
        the registry can say (messages sent to it before are still queued, the task's
        latest change awaits a commit, a rebuild)."""
        return self._board.read(task_id)

    def ended_on_board(self, task_id: str) -> TaskSnapshot | None:
        """The task's snapshot when the board shows it ended (whatever is queued for the
        registry: an end is final), else None."""
        return self._board.ended(task_id)

    def watched_locally(self, task_id: str) -> Callable[[], TerminalWaiter | None]:
        """How a ``Watch`` is answered once the registry has stopped: from the table."""

        def local() -> TerminalWaiter | None:
            record = self._table.get(task_id)
            if record is None:
                return None
            waiter = TerminalWaiter()
            waiter.set(record.snapshot())
            return waiter

        return local

    def unwatch(self, task_id: str, waiter: TerminalWaiter, timeout: float | None) -> NoReturn:
        """A wait that timed out: its waiter is forgotten; TimeoutError."""
        self.forget(task_id, waiter)
        raise TimeoutError(f"task {task_id} did not finish within {timeout} s")

    def forget(self, task_id: str, waiter: TerminalWaiter) -> None:
        """The caller of a wait gave up: its waiter is never woken and is not kept."""
        self._waiters.unwatch(task_id, waiter)

    def waited(self, task_id: str, waiter: TerminalWaiter) -> TaskSnapshot:
        """The terminal snapshot a set waiter carries, or the error that explains why it
        has none."""
        if waiter.error is not None:
            raise waiter.error  # its end could not be committed
        snapshot = waiter.snapshot
        if snapshot is None and not self._closed():
            raise UnknownTaskError(task_id)  # lost by a restarted registry (not seen yet)
        if snapshot is None or not snapshot.status.is_terminal:
            raise RuntimeClosedError(f"the task manager stopped before task {task_id} finished")
        return snapshot

    def list(
        self, status: TaskStatus | None = None, limit: int | None = None, user: str | None = None
    ) -> list[TaskSnapshot]:
        """Snapshots with ``status`` (see ``TaskRuntime.list``)."""
        if limit is not None:
            limit = check_count("limit", limit, minimum=0)

        def local() -> list[TaskSnapshot]:
            return [r.snapshot() for r in self._table.list(status, limit, user)]

        result: list[TaskSnapshot] = self.query(ListTasks(status, limit, user), local)
        return result

    def page(
        self,
        status: TaskStatus | None = None,
        *,
        after: int = -1,
        limit: int,
        user: str | None = None,
    ) -> TaskPage:
        """One page, from the registry's indexes (see ``TaskRuntime.page``)."""
        message, local = self.page_request(status, after, limit, user)
        result: TaskPage = self.query(message, local)
        return result

    def page_request(
        self, status: TaskStatus | None, after: int, limit: int, user: str | None
    ) -> tuple[ListPage, Callable[[], TaskPage]]:
        """A page's arguments checked: the question for the registry, and how the final
        table answers it once the registry has stopped (shared with the awaitable
        facade)."""
        limit = check_count("limit", limit, minimum=1)
        if isinstance(after, bool) or not isinstance(after, int):
            raise TypeError(f"after must be an int (a task's seq, or -1), not {after!r}")

        def local() -> TaskPage:
            page = self._table.page(status, after, limit, user)
            return TaskPage([r.snapshot() for r in page.records], page.next_after)

        return ListPage(status, after, limit, user), local

    def group(self, group_id: str) -> Sequence[TaskSnapshot] | None:
        """A group's retained members (see ``TaskRuntime.group``)."""

        def local() -> Sequence[TaskSnapshot] | None:
            members = [
                r.snapshot()
                for r in self._table.iter_status(None)
                if r.options.group_id == group_id
            ]
            return sorted(members, key=lambda m: m.created_at) or None

        result: Sequence[TaskSnapshot] | None = self.query(GetGroup(group_id), local)
        return result
