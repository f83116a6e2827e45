"""Hardening findings about who may reach whose task (issue 14, finding 7): a dependency
is another way to name a task, so it follows the same ownership rule as a status read.
Another user's task id in ``depends_on`` reads exactly as an id that never existed."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from actors import TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests.service_harness import running_service
from tests.test_ownership import PRINCIPALS, TOKEN  # the same users as the ownership tests

WAIT = 15.0


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return {"params": dict(params), "seen": dict(task.dependency_results)}


def fail(params: Mapping[str, Any], task: TaskContext) -> None:
    raise RuntimeError("alice's secret failure")


@dataclass
class Service:
    manager: TaskManager
    client: httpx.Client

    def post(self, as_: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN[as_]}"}
        return self.client.post("/v1/tasks", json=body, headers=headers)

    def create(self, as_: str, **body: Any) -> str:
        body.setdefault("operation", "echo")
        response = self.post(as_, body)
        assert response.status_code == 202, response.text
        task_id: str = response.json()["data"]["task_id"]
        return task_id


@pytest.fixture
def service(make_manager: Callable[..., TaskManager]) -> Iterator[Service]:
    manager = make_manager(num_workers=2)
    manager.register_operation("echo", echo)
    manager.register_operation("fail", fail)
    tokens = TokenStore([(hash_token(TOKEN[n]), p) for n, p in PRINCIPALS.items()])
    with ExitStack() as stack:
        live = stack.enter_context(running_service(manager, ServiceConfig(tokens=tokens)))
        client = stack.enter_context(httpx.Client(base_url=live.url, timeout=WAIT))
        yield Service(manager, client)


def test_another_users_dependency_answers_as_an_unknown_id(service: Service) -> None:
    """Finding 7: naming alice's task in bob's depends_on is refused exactly as an id that
    never existed (same status, same code, same message but for the id)."""
    alices = service.create("alice", params={"secret": "alice's data"})
    service.manager.wait(alices, timeout=WAIT)
    never = str(uuid.uuid4())
    crossed = service.post("bob", {"operation": "echo", "depends_on": [alices]})
    unknown = service.post("bob", {"operation": "echo", "depends_on": [never]})
    assert crossed.status_code == unknown.status_code == 400
    assert crossed.json()["error"]["code"] == unknown.json()["error"]["code"]
    assert (
        crossed.json()["error"]["message"].replace(alices, never)
        == (unknown.json()["error"]["message"])
    )
    # bob's refused task was never created: his listing is empty
    assert service.manager.list_tasks(user="bob") == []


def test_another_users_failed_dependency_reveals_nothing(service: Service) -> None:
    """Finding 7: a failed task of alice's is not a dependency bob can name either, so
    no error of bob's names it or its status."""
    alices = service.create("alice", operation="fail")
    assert service.manager.wait(alices, timeout=WAIT)["status"] == "failed"
    response = service.post("bob", {"operation": "echo", "depends_on": [alices]})
    assert response.status_code == 400
    assert "failed" not in response.json()["error"]["message"]
    assert "secret" not in response.text


def test_own_dependencies_still_pass_their_results(service: Service) -> None:
    """The owner's own dependency keeps working: its result reaches the dependent."""
    first = service.create("alice", params={"n": 1})
    second = service.create("alice", depends_on=[first])
    result = service.manager.wait(second, timeout=WAIT)["result"]
    assert result["seen"] == {first: {"params": {"n": 1}, "seen": {}}}


def test_library_dependencies_follow_the_user_rule(
    make_manager: Callable[..., TaskManager],
) -> None:
    """The library: a task with ``user=`` depends only on that user's tasks; a task
    without a user (the embedding application itself) may depend on any task."""
    manager = make_manager(num_workers=2)
    alices = manager.create_task(echo, {"x": 1}, user="alice")
    manager.wait(alices, timeout=WAIT)
    with pytest.raises(ValueError, match="unknown task ids"):
        manager.create_task(echo, user="bob", depends_on=[alices])
    trusted = manager.create_task(echo, depends_on=[alices])
    assert manager.wait(trusted, timeout=WAIT)["status"] == "completed"
    own = manager.create_task(echo, user="alice", depends_on=[alices])
    assert manager.wait(own, timeout=WAIT)["result"]["seen"][alices]["params"] == {"x": 1}
