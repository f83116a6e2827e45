"""The HTTP service's task routes over the awaitable facade: creating, reading, listing
and cancelling tasks, event streams, the stats, the health check and whoami run on the
server's loop and take no thread of its pool, even with many requests at once (a
blocking route would have the pool start a worker thread for each concurrent request)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from actors import AsyncTaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests.service_harness import running_service

TOKEN = "alice-token"
WAIT = 30.0
CONCURRENT = 20


async def until_cancelled(params: Mapping[str, Any], task: AsyncTaskContext) -> str:
    await task.wait_cancelled(3600)
    return "cancelled"


def pool_threads() -> int:
    """The worker threads of the server's thread pool (anyio's, which FastAPI runs
    blocking routes and dependencies on)."""
    return sum(t.name == "AnyIO worker thread" for t in threading.enumerate())


def test_task_routes_take_no_pool_thread_under_concurrent_requests(
    make_manager: Callable[..., TaskManager], tmp_path: Path
) -> None:
    """20 clients at once create coroutine tasks, read them, list tasks, read the stats,
    the health check and whoami, cancel their tasks and read each one's event stream to
    its end through the service (a durable
    store: each create awaits its commit): every answer is right, and the server's thread
    pool started no worker for any of it."""
    manager = make_manager(
        num_workers=1, store=tmp_path / "tasks.db", operations={"wait": until_cancelled}
    )
    config = ServiceConfig(tokens=TokenStore([(hash_token(TOKEN), Principal("alice", "user"))]))

    async def one_client(url: str) -> tuple[str, str, bool]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=WAIT) as client:
            created = await client.post("/v1/tasks", json={"operation": "wait"})
            assert created.status_code == 202, created.text
            task_id = created.json()["data"]["task_id"]
            status = await client.get(f"/v1/tasks/{task_id}")
            assert status.status_code == 200, status.text
            listed = await client.get("/v1/tasks", params={"limit": 5})
            assert listed.status_code == 200, listed.text
            stats = await client.get("/v1/stats")
            assert stats.status_code == 200, stats.text
            assert stats.json()["data"]["async"]["loop_running"] is True
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/v1/whoami")).json()["data"]["user"] == "alice"
            cancelled = await client.post(f"/v1/tasks/{task_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            # The task's event stream, to its end (the cancel ended the task).
            async with client.stream("GET", f"/v1/tasks/{task_id}/events") as events:
                assert events.status_code == 200
                kinds = [
                    line.removeprefix("event: ")
                    async for line in events.aiter_lines()
                    if line.startswith("event: ")
                ]
            assert kinds[-1] == "cancelled", kinds
            return task_id, status.json()["data"]["status"], cancelled.json()["data"]["cancelled"]

    async def clients(url: str) -> list[tuple[str, str, bool]]:
        return await asyncio.gather(*(one_client(url) for _ in range(CONCURRENT)))

    with running_service(manager, config) as service:
        before = pool_threads()
        answers = asyncio.run(clients(service.url))
        after = pool_threads()
    assert len({task_id for task_id, _, _ in answers}) == CONCURRENT
    assert {status for _, status, _ in answers} <= {"pending", "running"}
    assert all(cancelled for _, _, cancelled in answers)
    assert after == before
    for task_id, _, _ in answers:
        assert manager.wait(task_id, timeout=WAIT)["status"] == "cancelled"
