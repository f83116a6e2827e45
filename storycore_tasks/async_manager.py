"""AsyncTaskManager: the TaskManager awaited from an event loop (an async web framework,
an asyncio pipeline).

It is a facade over a :class:`TaskManager`, not a second manager: the tasks, the
operations, the store and the status dicts are that manager's, so threaded code and
async code share them. Its methods are coroutines that never block the caller's loop
and take no thread: each is one message to the manager's actors whose answer resolves a
future on the caller's loop (``actors._core.awaitable``).

We chose a facade object over ``async`` twins of every method on ``TaskManager``
(``acreate_task``...): one name per operation, the same names as the blocking API, and
the blocking class stays as it was. Shutting down stays ``TaskManager.shutdown``, which
joins threads (call it at exit, or with ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from actors import Isolation, RetryPolicy, TaskEvent, TaskPriority, TaskSnapshot, UnknownTaskError
from actors._core.awaitable import AwaitableRuntime
from actors._execution.api import AnyOperation
from storycore_tasks.manager import TaskManager, is_task_id, snapshot_to_status

__all__ = ["AsyncTaskManager"]


class AsyncTaskManager:
    """``await create_task / get_task_status / wait / cancel_task / get_stats`` and
    ``async for event in events(task_id)`` over ``manager``::

        manager = TaskManager(num_workers=4)
        tasks = AsyncTaskManager(manager)
        task_id = await tasks.create_task(fetch_chapter, {"chapter": 3}, timeout=60)
        status = await tasks.wait(task_id, timeout=120)

    Each method takes and returns what :class:`TaskManager`'s method of that name does,
    and raises the same errors.
    """

    def __init__(self, manager: TaskManager) -> None:
        if not isinstance(manager, TaskManager):
            raise TypeError(
                f"AsyncTaskManager wraps a TaskManager (AsyncTaskManager(TaskManager(...))), "
                f"got {type(manager).__name__}"
            )
        self._manager = manager
        self._runtime = manager.runtime.awaitable()

    @property
    def manager(self) -> TaskManager:
        """The TaskManager underneath (its blocking API, its shutdown)."""
        return self._manager

    async def create_task(
        self,
        operation: AnyOperation | str,
        params: Mapping[str, Any] | None = None,
        user: str | None = None,
        timeout: float | None = None,
        priority: TaskPriority | int | str = TaskPriority.NORMAL,
        isolation: Isolation | str | None = None,
        memory_limit_mb: float | None = None,
        cpu_time_limit: float | None = None,
        *,
        delay: float | None = None,
        run_at: datetime | None = None,
        retry: RetryPolicy | None = None,
        depends_on: Sequence[str] = (),
        **options: Any,
    ) -> str:
        """:meth:`TaskManager.create_task`, awaited: the task id, once the task is
        registered (with a durable store, committed)."""
        return await self._runtime.submit(
            operation,
            params,
            user=user,
            timeout=self._manager.default_timeout if timeout is None else timeout,
            priority=priority,
            isolation=isolation,
            memory_limit_mb=memory_limit_mb,
            cpu_time_limit=cpu_time_limit,
            delay=delay,
            run_at=run_at,
            retry=retry,
            depends_on=depends_on,
            group_id=None,
            **options,
        )

    async def get_task_status(
        self, task_id: str, *, user: str | None = None
    ) -> dict[str, Any] | None:
        """:meth:`TaskManager.get_task_status`, awaited."""
        if not is_task_id(task_id):
            return None
        snapshot = await self._owned_snapshot(task_id, user)
        if snapshot is None:
            return None
        return snapshot_to_status(snapshot)

    async def wait(self, task_id: str, timeout: float | None = None) -> dict[str, Any]:
        """:meth:`TaskManager.wait`, awaited: the status dict once the task has ended
        (``TimeoutError`` after ``timeout`` seconds, ``UnknownTaskError`` for no such
        task). No thread waits meanwhile."""
        if not is_task_id(task_id):
            raise UnknownTaskError(str(task_id))
        return snapshot_to_status(await self._runtime.wait(task_id, timeout))

    async def cancel_task(self, task_id: str, *, user: str | None = None) -> bool:
        """:meth:`TaskManager.cancel_task`, awaited."""
        if not is_task_id(task_id):
            return False
        if user is not None and await self._owned_snapshot(task_id, user) is None:
            return False
        return await self._runtime.cancel(task_id)

    async def resume_task(self, task_id: str, *, user: str | None = None) -> None:
        """:meth:`TaskManager.resume_task`, awaited (on a thread of its own: with a
        durable store it waits for the reopening's commit)."""
        await asyncio.to_thread(self._manager.resume_task, task_id, user=user)

    async def events(
        self,
        task_id: str,
        *,
        user: str | None = None,
        events: Iterable[str] | None = None,
    ) -> AsyncIterator[TaskEvent]:
        """The task's lifecycle events (``actors.TaskEvent``) from now on, ending after
        its terminal one (made from its status when it had already ended). ``events``
        narrows the kinds (``"started"``, ``"progress"``, ...; the terminal event always
        comes). ``UnknownTaskError`` for an unknown task, or another user's."""
        if not is_task_id(task_id) or (
            user is not None and await self._owned_snapshot(task_id, user) is None
        ):
            raise UnknownTaskError(str(task_id))
        async for event in self._runtime.events(task_id, events=events):
            yield event

    async def get_stats(self) -> dict[str, Any]:
        """:meth:`TaskManager.get_stats`, awaited."""
        return self._manager._stats_dict(await self._runtime.stats())

    @property
    def runtime(self) -> AwaitableRuntime:
        """The awaitable runtime underneath (``page``, ``stats``, ... as coroutines)."""
        return self._runtime

    async def _owned_snapshot(self, task_id: str, user: str | None) -> TaskSnapshot | None:
        snapshot = await self._runtime.snapshot(task_id)
        if snapshot is None or (user is not None and snapshot.options.user != user):
            return None
        return snapshot
