"""``wait`` on a task the registry knows and that has not ended sends the registry no
message: the caller adds its waiter itself, and the registry's end of the task wakes it.

Nor does a wait right after ``create_task``, while the task's ``Register`` may still be
queued: the submitter marked it registering. Shown by arming a registry fault on
``Watch``, the ask a wait would otherwise make: with it armed, every wait here still
returns the task's end, and the fault is still armed after it. A wait that gives up (a
timeout, a cancelled await) leaves no waiter. Both stores: with a durable one the end
is seen only once it is committed (a wait on a task whose end is not committed yet
asks, and its answer waits for that commit).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors._core.messages import Watch
from actors.testing import wait_until
from storycore_tasks import AsyncTaskManager, TaskManager
from tests.gates import Gate
from tests.registry_peek import registry_actor, watched

WAIT = 15.0
STORES = ["memory", "durable"]


def _manager(make_manager: Callable[..., TaskManager], store: str, folder: Path) -> TaskManager:
    if store == "durable":
        return make_manager(num_workers=2, store=folder / "tasks.db")
    return make_manager(num_workers=2)


def _arm_watch_fault(manager: TaskManager, task_id: str | None) -> None:
    """A ``Watch`` about ``task_id`` (any, given None) from now on fails
    (QueryFailedError to its asker)."""
    manager.runtime._fail_registry(RuntimeError("a wait asked the registry"), Watch, task_id)
    manager.runtime.sync()  # armed before the wait below


def _armed(manager: TaskManager) -> int:
    manager.runtime.sync()
    return len(registry_actor(manager)._traps.armed)


def _running(manager: TaskManager, gate: Gate) -> str:
    task_id = manager.create_task(gate, {})
    gate.wait_entered()
    assert wait_until(lambda: manager.get_task_status(task_id)["status"] == "running", timeout=WAIT)
    return task_id


@pytest.mark.parametrize("store", STORES)
def test_a_wait_on_a_running_task_is_woken_by_its_end_without_asking_the_registry(
    make_manager: Callable[..., TaskManager], store: str, tmp_path: Path
) -> None:
    manager = _manager(make_manager, store, tmp_path)
    gate = Gate(result={"frames": 24})
    task_id = _running(manager, gate)
    _arm_watch_fault(manager, task_id)
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(manager.wait(task_id, WAIT)))
    waiter.start()
    assert wait_until(lambda: watched(manager, task_id), timeout=WAIT)
    gate.release()
    waiter.join(WAIT)
    assert not waiter.is_alive()
    (status,) = answers
    assert (status["status"], status["result"]) == ("completed", {"frames": 24})
    assert _armed(manager) == 1  # no Watch reached the registry
    assert not watched(manager, task_id)


@pytest.mark.parametrize("store", STORES)
def test_a_wait_that_times_out_leaves_no_waiter_and_a_later_wait_sees_the_end(
    make_manager: Callable[..., TaskManager], store: str, tmp_path: Path
) -> None:
    manager = _manager(make_manager, store, tmp_path)
    gate = Gate()
    task_id = _running(manager, gate)
    _arm_watch_fault(manager, task_id)
    with pytest.raises(TimeoutError, match=task_id):
        manager.wait(task_id, timeout=0.05)
    assert not watched(manager, task_id)
    gate.release()
    assert manager.wait(task_id, WAIT)["status"] == "completed"
    assert _armed(manager) == 1


def test_an_awaited_wait_is_woken_without_asking_and_a_cancelled_one_leaves_no_waiter(
    make_manager: Callable[..., TaskManager],
) -> None:
    manager = make_manager(num_workers=2)
    tasks = AsyncTaskManager(manager)
    gate = Gate(result="cut")
    task_id = _running(manager, gate)
    _arm_watch_fault(manager, task_id)

    async def scenario() -> dict[str, Any]:
        given_up = asyncio.ensure_future(tasks.wait(task_id))
        await asyncio.to_thread(wait_until, lambda: watched(manager, task_id), timeout=WAIT)
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up
        assert not watched(manager, task_id)
        kept = asyncio.ensure_future(tasks.wait(task_id, timeout=WAIT))
        await asyncio.to_thread(wait_until, lambda: watched(manager, task_id), timeout=WAIT)
        gate.release()
        return await kept

    status = asyncio.run(scenario())
    assert (status["status"], status["result"]) == ("completed", "cut")
    assert _armed(manager) == 1
    assert not watched(manager, task_id)


def test_a_wait_right_after_each_create_task_never_asks_over_many_rounds(
    make_manager: Callable[..., TaskManager],
) -> None:
    """Submit then wait at once, from two threads: whether the wait finds the task in
    the registry's table, registering, or ended, it never asks. (Memory store: with a
    durable one, a task that ended and whose end is not committed yet is still asked
    about, so that the answer waits for that commit.)"""
    manager = make_manager(num_workers=2)
    _arm_watch_fault(manager, None)
    rounds = 150
    results: dict[int, list[Any]] = {0: [], 1: []}

    def submit_and_wait(worker: int) -> None:
        for round_ in range(rounds):
            task_id = manager.create_task(lambda params, task: params["n"], {"n": round_})
            results[worker].append(manager.wait(task_id, WAIT)["result"])

    threads = [threading.Thread(target=submit_and_wait, args=(w,)) for w in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
        assert not thread.is_alive()
    assert results == {0: list(range(rounds)), 1: list(range(rounds))}
    assert _armed(manager) == 1
