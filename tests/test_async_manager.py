"""The awaitable facade, used from inside a running event loop (``asyncio.run`` in each
test): it answers as the blocking API does, yields the loop while it waits (a ticker on
the caller's loop counts the turns it got), and takes no thread per call."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import pytest

from actors import AsyncTaskContext, ManualClock, TaskContext, UnknownTaskError
from storycore_tasks import AsyncTaskManager, TaskManager
from storycore_tasks.testing import advance

MakeManager = Callable[..., TaskManager]
DEADLINE = 30.0


class Ticker:
    """A coroutine on the caller's loop that counts its turns: a facade call that
    blocked the loop would let it run no turn while awaited."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def turns_during(self, call: Coroutine[Any, Any, Any]) -> tuple[Any, int]:
        """The call's answer, and how many turns the ticker ran while it was awaited."""
        before = self.turns
        answer = await call
        return answer, self.turns - before


async def halve(params: Mapping[str, Any], task: AsyncTaskContext) -> float:
    task.update_progress(0.5)
    await asyncio.sleep(0)
    return float(params["n"]) / 2


def test_the_facade_answers_as_the_blocking_api_and_yields_the_loop(
    make_manager: MakeManager,
) -> None:
    """create_task, wait, get_task_status and cancel_task, awaited in a running loop:
    the same status dicts as TaskManager's, and the ticker ran during every call that
    waits for an actor's answer (a read the registry's board answers sends none)."""
    manager = make_manager(num_workers=1)

    def plain(params: Mapping[str, Any], task: TaskContext) -> str:
        return "thread"

    async def main() -> None:
        tasks = AsyncTaskManager(manager)
        with Ticker() as ticker:
            # A few tells, nothing to wait for (memory store, no dependencies).
            coroutine_task = await tasks.create_task(halve, {"n": 3})
            # A pending task is read from the registry: an ask, awaited.
            pending_task = await tasks.create_task(halve, {"n": 1}, delay=3600)
            status, turns = await ticker.turns_during(tasks.get_task_status(pending_task))
            assert turns >= 1
            assert status is not None
            assert status["status"] == "pending"
            assert await tasks.cancel_task(pending_task)
            # An ended task's wait and status are read from the registry's board, with no
            # message (so nothing to wait for either), or awaited if it has not ended yet.
            done = await tasks.wait(coroutine_task, timeout=DEADLINE)
            assert (done["status"], done["result"], done["isolation"]) == (
                "completed",
                1.5,
                "async",
            )
            status = await tasks.get_task_status(coroutine_task)
            assert status == manager.get_task_status(coroutine_task)
            thread_task = await tasks.create_task(plain, user="ann")
            assert (await tasks.wait(thread_task, timeout=DEADLINE))["result"] == "thread"
            cancelled, turns = await ticker.turns_during(tasks.cancel_task(thread_task))
            assert turns >= 1
            assert cancelled is False  # it has ended already
            assert await tasks.get_task_status(thread_task, user="bob") is None
            assert await tasks.get_task_status("not-a-task-id") is None
            assert await tasks.cancel_task("not-a-task-id") is False
            with pytest.raises(UnknownTaskError):
                await tasks.wait("00000000-0000-0000-0000-000000000000", timeout=1)

    asyncio.run(main())


def test_wait_leaves_the_callers_loop_running(make_manager: MakeManager) -> None:
    """While the caller awaits wait(), a callback on its loop still runs: the operation
    here cannot finish until that callback has run, so a blocking wait would deadlock
    (and the task would time out waiting for it)."""
    manager = make_manager(num_workers=1)
    loop_ran = threading.Event()

    def needs_the_callers_loop(params: Mapping[str, Any], task: TaskContext) -> bool:
        return loop_ran.wait(DEADLINE)

    async def main() -> dict[str, Any]:
        tasks = AsyncTaskManager(manager)
        task_id = await tasks.create_task(needs_the_callers_loop)
        asyncio.get_running_loop().call_later(0.01, loop_ran.set)
        return await tasks.wait(task_id, timeout=DEADLINE)

    done = asyncio.run(main())
    assert (done["status"], done["result"]) == ("completed", True)


def test_hundreds_of_awaited_waits_take_no_thread(make_manager: MakeManager) -> None:
    """500 wait() calls pending at once on coroutine tasks: the process has exactly the
    threads it had before they began; then a cancel of each ends every wait."""
    manager = make_manager(num_workers=1)

    async def until_cancelled(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
        await task.wait_cancelled(3600)
        return "released"

    async def main() -> None:
        tasks = AsyncTaskManager(manager)
        ids = [await tasks.create_task(until_cancelled) for _ in range(500)]
        backend = manager.runtime.async_backend
        for _ in range(int(DEADLINE * 1000)):  # until every coroutine runs on the loop
            if backend.statistics().coroutines == len(ids):
                break
            await asyncio.sleep(0.001)
        threads_before = threading.active_count()
        waits = [asyncio.create_task(tasks.wait(task_id, timeout=DEADLINE)) for task_id in ids]
        await asyncio.sleep(0)  # each wait has told the registry its Watch
        await tasks.get_task_status(ids[0])  # answered after every Watch
        assert not any(w.done() for w in waits)
        assert threading.active_count() == threads_before
        assert all([await tasks.cancel_task(task_id) for task_id in ids])
        statuses = await asyncio.gather(*waits)
        assert {s["status"] for s in statuses} == {"cancelled"}
        assert threading.active_count() == threads_before

    asyncio.run(main())


def test_events_stream_a_tasks_life_and_end_after_its_terminal_event(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """async for over events(task_id): started, progress, completed, then the stream
    ends; a task that had already ended gives its terminal event at once."""
    manager = make_manager(num_workers=1, clock=clock)

    async def main() -> None:
        tasks = AsyncTaskManager(manager)
        task_id = await tasks.create_task(halve, {"n": 8}, delay=10)
        # Read once the registry has handled the registration (a read is never behind
        # its mailbox), so its "created" event is before the stream, not in it.
        status = await tasks.get_task_status(task_id)
        assert status is not None
        assert status["status"] == "pending"
        received: list[Any] = []

        async def collect() -> None:
            async for event in tasks.events(task_id):
                received.append(event)

        collector = asyncio.create_task(collect())
        while not manager.runtime._listening.is_set():  # the stream has subscribed
            await asyncio.sleep(0.001)
        await asyncio.to_thread(advance, manager, 10)  # the delay is over: it runs
        await asyncio.wait_for(collector, DEADLINE)
        kinds = [event.kind for event in received]
        assert kinds[0] == "started"
        assert "progress" in kinds
        assert kinds[-1] == "completed"
        assert all(event.task_id == task_id for event in received)
        replay = [event async for event in tasks.events(task_id)]
        assert [(e.kind, e.data["status"]) for e in replay] == [("completed", "completed")]
        with pytest.raises(UnknownTaskError):
            [e async for e in tasks.events(task_id, user="somebody-else")]

    asyncio.run(main())
    assert not manager.runtime._listening.is_set()  # every stream unsubscribed


def test_the_facade_with_a_durable_store_and_dependencies(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    """With SQLite, create_task returns once committed (awaited on the loop); a task
    with dependencies gets the registry's verdict awaited: unknown ids are refused as
    by the blocking API."""
    manager = make_manager(num_workers=1, store=tmp_path / "tasks.db")

    async def main() -> None:
        tasks = AsyncTaskManager(manager)
        first = await tasks.create_task(halve, {"n": 2})
        second = await tasks.create_task(halve, {"n": 4}, depends_on=[first])
        assert (await tasks.wait(second, timeout=DEADLINE))["result"] == 2.0
        with pytest.raises(ValueError, match="unknown task ids"):
            await tasks.create_task(halve, {"n": 1}, depends_on=[str(uuid.uuid4())])
        assert await tasks.cancel_task(second) is False

    asyncio.run(main())
    assert manager.get_stats()["total_tasks"] == 2


def test_stats_and_pages_awaited(make_manager: MakeManager) -> None:
    """await get_stats() answers what get_stats() does; the awaitable runtime's page
    lists tasks in creation order, one page after another."""
    manager = make_manager(num_workers=1)

    async def main() -> None:
        tasks = AsyncTaskManager(manager)
        ids = [await tasks.create_task(halve, {"n": n}) for n in range(5)]
        for task_id in ids:
            await tasks.wait(task_id, timeout=DEADLINE)
        with Ticker() as ticker:
            stats, turns = await ticker.turns_during(tasks.get_stats())
            assert turns >= 1
        blocking = manager.get_stats()
        # The loop's lag counters may move between the two calls; the rest may not.
        assert stats["async"].keys() == blocking["async"].keys()
        assert {k: v for k, v in stats.items() if k != "async"} == {
            k: v for k, v in blocking.items() if k != "async"
        }
        assert stats["lifetime_stats"]["total_completed"] == 5
        first = await tasks.runtime.page(limit=3)
        assert first.next_after is not None
        rest = await tasks.runtime.page(after=first.next_after, limit=3)
        assert [s.task_id for s in [*first.tasks, *rest.tasks]] == ids
        assert rest.next_after is None

    asyncio.run(main())


def test_the_facade_wraps_a_task_manager_only() -> None:
    """A clear TypeError for anything else."""
    with pytest.raises(TypeError, match="wraps a TaskManager"):
        AsyncTaskManager(object())  # type: ignore[arg-type]


def test_after_shutdown_the_facade_answers_from_the_final_table(
    make_manager: MakeManager,
) -> None:
    """Once the manager has shut down, awaited reads answer from the final table, as the
    blocking ones do (the registry has stopped: no ask), and ``sync`` returns at once."""
    manager = make_manager(num_workers=1)
    tasks = AsyncTaskManager(manager)

    async def create() -> list[str]:
        ids = [await tasks.create_task(halve, {"n": n}) for n in range(3)]
        for task_id in ids:
            await tasks.wait(task_id, timeout=DEADLINE)
        return ids

    ids = asyncio.run(create())
    manager.shutdown()
    assert manager.runtime.closed

    async def read() -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
        statuses = [await tasks.get_task_status(task_id) for task_id in ids]
        page = await tasks.runtime.page(limit=10)
        stats = await tasks.get_stats()
        await tasks.runtime.sync()
        return statuses, [s.task_id for s in page.tasks], stats

    statuses, listed, stats = asyncio.run(read())
    assert statuses == [manager.get_task_status(task_id) for task_id in ids]
    assert [status["result"] for status in statuses] == [0.0, 0.5, 1.0]
    assert listed == ids
    assert stats["lifetime_stats"]["total_completed"] == 3
