"""Who sees which task: a user sees only the tasks they created (another user's task is
NOT_FOUND, never revealed), an admin sees every task. The same rules over HTTP, through
the Python API (``user=``) and through the endpoint router (``RequestContext.owner_only``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import TaskContext, UnknownGroupError
from storycore_tasks import TaskManager
from storycore_tasks.envelope import RequestContext
from storycore_tasks.router import APIRouter, register_task_endpoints
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests.gates import Gate
from tests.service_harness import running_service

WAIT = 15.0
PRINCIPALS = {
    "alice": Principal("alice", "user"),
    "bob": Principal("bob", "user"),
    "ops": Principal("ops", "admin"),
}
TOKEN = {name: f"{name}-token-{name}" for name in PRINCIPALS}


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return dict(params)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN[name]}"}


@dataclass
class Service:
    manager: TaskManager
    client: httpx.Client  # no token: pass headers=bearer(name)
    gate: Gate

    def create(self, as_: str, **body: Any) -> str:
        body.setdefault("operation", "echo")
        response = self.client.post("/v1/tasks", json=body, headers=bearer(as_))
        assert response.status_code == 202, response.text
        task_id: str = response.json()["data"]["task_id"]
        return task_id

    def get(self, as_: str, path: str) -> httpx.Response:
        return self.client.get(path, headers=bearer(as_))

    def post(self, as_: str, path: str, json: Any = None) -> httpx.Response:
        return self.client.post(path, json=json, headers=bearer(as_))

    def listed(self, as_: str, **params: Any) -> list[str]:
        ids: list[str] = []
        cursor = None
        while True:
            query = dict(params, limit=7, **({"cursor": cursor} if cursor else {}))
            response = self.client.get("/v1/tasks", params=query, headers=bearer(as_))
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            ids += [t["task_id"] for t in data["tasks"]]
            cursor = data["next_cursor"]
            if cursor is None:
                return ids


def not_found(response: httpx.Response, task_id: str | None = None) -> None:
    """A 404 NOT_FOUND that reveals nothing about the task (not its owner, status or
    operation): exactly what an id that never existed gets."""
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["error"]["code"] == "NOT_FOUND"
    for secret in ("alice", "echo", "running", "pending", "completed"):
        assert secret not in body["error"]["message"]
        assert secret not in str(body["error"]["details"])


@pytest.fixture
def service(make_manager: Callable[..., TaskManager]) -> Iterator[Service]:
    manager = make_manager(num_workers=4)
    gate = Gate()
    manager.register_operation("echo", echo)
    manager.register_operation("gate", gate)
    tokens = TokenStore([(hash_token(TOKEN[n]), p) for n, p in PRINCIPALS.items()])
    with ExitStack() as stack:
        live = stack.enter_context(running_service(manager, ServiceConfig(tokens=tokens)))
        client = stack.enter_context(httpx.Client(base_url=live.url, timeout=WAIT))
        try:
            yield Service(manager, client, gate)
        finally:
            gate.release()


# -- over HTTP ----------------------------------------------------------------------------


def test_bob_cannot_see_or_cancel_alices_tasks(service: Service) -> None:
    running = service.create("alice", operation="gate")
    service.gate.wait_entered()
    done = service.create("alice")
    service.manager.wait(done, timeout=WAIT)
    for task_id in (running, done):
        not_found(service.get("bob", f"/v1/tasks/{task_id}"))
        not_found(service.post("bob", f"/v1/tasks/{task_id}/cancel"))
        not_found(service.post("bob", "/v1/rpc/storycore.task.status", {"task_id": task_id}))
        not_found(service.post("bob", "/v1/rpc/storycore.task.cancel", {"task_id": task_id}))
    # bob's answers are the ones an id that never existed gets
    never = str(uuid.uuid4())
    assert service.get("bob", f"/v1/tasks/{never}").json()["error"]["message"] == (
        service.get("bob", f"/v1/tasks/{running}")
        .json()["error"]["message"]
        .replace(running, never)
    )
    # bob's attempts changed nothing
    status = service.get("alice", f"/v1/tasks/{running}").json()["data"]
    assert status["status"] == "running"
    assert service.post("alice", f"/v1/tasks/{running}/cancel").status_code == 200


def test_listings_hold_only_the_askers_tasks(service: Service) -> None:
    alices = [service.create("alice", params={"i": i}) for i in range(9)]
    bobs = [service.create("bob", params={"i": i}) for i in range(4)]
    admins = [service.create("ops")]
    for task_id in alices + bobs + admins:
        service.manager.wait(task_id, timeout=WAIT)
    assert service.listed("alice") == alices
    assert service.listed("bob") == bobs
    assert service.listed("bob", status="completed") == bobs
    assert service.listed("ops") == alices + bobs + admins
    rpc = service.post("bob", "/v1/rpc/storycore.task.list", {}).json()["data"]
    assert {t["task_id"] for t in rpc["tasks"]} == set(bobs)
    assert rpc["count"] == len(bobs)
    limited = service.post("bob", "/v1/rpc/storycore.task.list", {"limit": 2}).json()["data"]
    assert {t["task_id"] for t in limited["tasks"]} <= set(bobs)
    assert limited["count"] == 2


def test_a_users_cursor_does_not_leak_other_tasks(service: Service) -> None:
    alices = [service.create("alice") for _ in range(3)]
    bobs = [service.create("bob") for _ in range(3)]
    page = service.get("alice", "/v1/tasks?limit=1").json()["data"]
    rest = service.client.get(
        "/v1/tasks", params={"cursor": page["next_cursor"]}, headers=bearer("bob")
    ).json()["data"]
    assert {t["task_id"] for t in rest["tasks"]} <= set(bobs)
    assert not {t["task_id"] for t in rest["tasks"]} & set(alices)


def test_the_admin_sees_and_cancels_everything(service: Service) -> None:
    alices = service.create("alice", operation="gate")
    service.gate.wait_entered()
    bobs = service.create("bob", delay=3600)
    for task_id, owner in ((alices, "alice"), (bobs, "bob")):
        status = service.get("ops", f"/v1/tasks/{task_id}")
        assert status.status_code == 200
        assert status.json()["data"]["user"] == owner
        rpc = service.post("ops", "/v1/rpc/storycore.task.status", {"task_id": task_id})
        assert rpc.json()["data"]["user"] == owner
    assert service.post("ops", f"/v1/tasks/{alices}/cancel").json()["data"]["cancelled"] is True
    rpc_cancel = service.post("ops", "/v1/rpc/storycore.task.cancel", {"task_id": bobs})
    assert rpc_cancel.json()["data"]["cancelled"] is True
    service.gate.release()
    assert service.manager.wait(alices, timeout=WAIT)["status"] == "cancelled"
    assert service.manager.wait(bobs, timeout=WAIT)["status"] == "cancelled"
    conflict = service.post("ops", f"/v1/tasks/{bobs}/cancel")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["details"]["current_status"] == "cancelled"


def test_another_users_ended_task_is_404_not_409(service: Service) -> None:
    task_id = service.create("alice")
    service.manager.wait(task_id, timeout=WAIT)
    assert service.post("alice", f"/v1/tasks/{task_id}/cancel").status_code == 409
    not_found(service.post("bob", f"/v1/tasks/{task_id}/cancel"))
    not_found(service.post("bob", "/v1/rpc/storycore.task.cancel", {"task_id": task_id}))


def test_groups_over_rpc(service: Service) -> None:
    group = service.manager.create_group(
        [{"operation": "echo", "user": "alice", "delay": 3600} for _ in range(2)]
    )
    not_found(service.post("bob", "/v1/rpc/storycore.group.status", {"group_id": group}))
    not_found(service.post("bob", "/v1/rpc/storycore.group.cancel", {"group_id": group}))
    status = service.post("alice", "/v1/rpc/storycore.group.status", {"group_id": group})
    assert status.json()["data"]["total"] == 2
    assert service.post("ops", "/v1/rpc/storycore.group.status", {"group_id": group}).is_success
    cancelled = service.post("alice", "/v1/rpc/storycore.group.cancel", {"group_id": group})
    assert cancelled.json()["data"]["cancelled"] == 2


def test_stats_are_not_filtered_by_owner(service: Service) -> None:
    """Documented behaviour: /v1/stats is the manager's counters, the same for everyone
    (it holds counts, not tasks)."""
    service.create("alice")
    for name in PRINCIPALS:
        stats = service.get(name, "/v1/stats").json()["data"]
        assert stats["lifetime_stats"]["total_created"] == 1


@given(
    creators=st.lists(st.sampled_from(sorted(PRINCIPALS)), min_size=1, max_size=5),
    askers=st.lists(st.sampled_from(sorted(PRINCIPALS)), min_size=1, max_size=3),
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_visibility_is_owner_or_admin_over_http(
    service: Service, creators: list[str], askers: list[str]
) -> None:
    tasks = [(service.create(creator, delay=3600), creator) for creator in creators]
    for asker in askers:
        listed = set(service.listed(asker))
        for task_id, owner in tasks:
            visible = owner == asker or PRINCIPALS[asker].is_admin
            status = service.get(asker, f"/v1/tasks/{task_id}")
            rpc = service.post(asker, "/v1/rpc/storycore.task.status", {"task_id": task_id})
            assert status.status_code == rpc.status_code == (200 if visible else 404)
            assert (task_id in listed) == visible
    for task_id, owner in tasks:  # the owner cancels each; no one else could
        others = [a for a in PRINCIPALS if a != owner and not PRINCIPALS[a].is_admin]
        for other in others:
            not_found(service.post(other, f"/v1/tasks/{task_id}/cancel"))
        assert service.post(owner, f"/v1/tasks/{task_id}/cancel").status_code == 200


# -- the Python API -----------------------------------------------------------------------


@pytest.fixture
def manager(make_manager: Callable[..., TaskManager]) -> TaskManager:
    manager = make_manager(num_workers=2)
    manager.register_operation("echo", echo)
    return manager


def test_python_api_status_and_cancel(manager: TaskManager) -> None:
    task_id = manager.create_task("echo", {}, user="alice", delay=3600)
    assert manager.get_task_status(task_id, user="bob") is None
    assert manager.get_task_status(task_id, user="alice")["user"] == "alice"  # type: ignore[index]
    assert manager.get_task_status(task_id)["user"] == "alice"  # type: ignore[index]
    assert manager.cancel_task(task_id, user="bob") is False
    assert manager.get_task_status(task_id)["status"] == "pending"  # type: ignore[index]
    assert manager.cancel_task(task_id, user="alice") is True
    assert manager.get_task_status(task_id)["status"] == "cancelled"  # type: ignore[index]
    other = manager.create_task("echo", {}, user="alice", delay=3600)
    assert manager.cancel_task(other) is True  # no user: embedding code may cancel anything


def test_python_api_tasks_without_an_owner_are_no_users(manager: TaskManager) -> None:
    task_id = manager.create_task("echo", {}, delay=3600)
    assert manager.get_task_status(task_id, user="alice") is None
    assert manager.get_task_status(task_id)["user"] is None  # type: ignore[index]
    assert manager.list_tasks(user="alice") == []
    assert manager.cancel_task(task_id, user="alice") is False


def test_python_api_list_tasks(manager: TaskManager) -> None:
    alices = [manager.create_task("echo", {}, user="alice", delay=3600) for _ in range(3)]
    bobs = [manager.create_task("echo", {}, user="bob", delay=3600) for _ in range(2)]
    assert [t["task_id"] for t in manager.list_tasks(user="alice")] == alices
    assert [t["task_id"] for t in manager.list_tasks("pending", user="bob")] == bobs
    assert [t["task_id"] for t in manager.list_tasks("pending", 1, user="bob")] == bobs[:1]
    assert manager.list_tasks("completed", user="alice") == []
    assert {t["task_id"] for t in manager.list_tasks()} == set(alices + bobs)
    assert manager.list_tasks(user="carol") == []


def test_python_api_groups(manager: TaskManager) -> None:
    group = manager.create_group([{"operation": "echo", "user": "alice", "delay": 3600}] * 3)
    assert manager.get_group_status(group, user="bob") is None
    assert manager.get_group_status(group, user="alice")["total"] == 3  # type: ignore[index]
    assert manager.get_group_status(group)["total"] == 3  # type: ignore[index]
    with pytest.raises(UnknownGroupError):
        manager.cancel_group(group, user="bob")
    assert manager.get_group_status(group)["counts"]["pending"] == 3  # type: ignore[index]
    assert manager.cancel_group(group, user="alice") == 3
    assert manager.get_group_status(group)["state"] == "cancelled"  # type: ignore[index]


def test_python_api_a_group_of_several_owners_is_no_single_users(manager: TaskManager) -> None:
    group = manager.create_group(
        [
            {"operation": "echo", "user": "alice", "delay": 3600},
            {"operation": "echo", "user": "bob", "delay": 3600},
        ]
    )
    assert manager.get_group_status(group, user="alice") is None
    assert manager.get_group_status(group, user="bob") is None
    with pytest.raises(UnknownGroupError):
        manager.cancel_group(group, user="alice")
    assert manager.cancel_group(group) == 2


OWNERS = st.sampled_from([None, "alice", "bob", "carol"])


@given(
    creators=st.lists(OWNERS, min_size=1, max_size=6),
    askers=st.lists(OWNERS, min_size=1, max_size=4),
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_python_api_visibility_is_owner_or_everyone(
    manager: TaskManager, creators: list[str | None], askers: list[str | None]
) -> None:
    """``user=None`` is the embedding code (an admin); a user sees exactly their own."""
    tasks = [(manager.create_task("echo", {}, user=c, delay=3600), c) for c in creators]
    mine = {task_id for task_id, _ in tasks}
    for asker in askers:
        listed = {t["task_id"] for t in manager.list_tasks(user=asker)} & mine
        for task_id, owner in tasks:
            visible = asker is None or owner == asker
            assert (manager.get_task_status(task_id, user=asker) is not None) == visible
            assert (task_id in listed) == visible
    for task_id, owner in tasks:
        for asker in ("alice", "bob", "carol"):
            if asker != owner:
                assert manager.cancel_task(task_id, user=asker) is False
        assert manager.cancel_task(task_id, user=owner) is True


# -- the endpoint router ------------------------------------------------------------------


@pytest.fixture
def router(manager: TaskManager) -> APIRouter:
    router = APIRouter()
    register_task_endpoints(router, manager)
    return router


def as_user(user: str) -> RequestContext:
    return RequestContext(user=user, owner_only=True)


def test_router_owner_only(manager: TaskManager, router: APIRouter) -> None:
    task_id = manager.create_task("echo", {}, user="alice", delay=3600)
    params = {"task_id": task_id}
    for path, method in (("storycore.task.status", "GET"), ("storycore.task.cancel", "POST")):
        answer = router.route_request(path, method, params, as_user("bob"))
        assert answer.http_status == 404
        assert answer.error is not None
        assert answer.error.code == "NOT_FOUND"
    listing = router.route_request("storycore.task.list", "GET", {}, as_user("bob"))
    assert listing.data == {"tasks": [], "count": 0}
    mine = router.route_request("storycore.task.list", "GET", {}, as_user("alice"))
    assert [t["task_id"] for t in mine.data["tasks"]] == [task_id]
    status = router.route_request("storycore.task.status", "GET", params, as_user("alice"))
    assert status.is_success
    cancelled = router.route_request("storycore.task.cancel", "POST", params, as_user("alice"))
    assert cancelled.data["cancelled"] is True


def test_router_without_owner_only_sees_everything(manager: TaskManager, router: APIRouter) -> None:
    """Embedding code (owner_only False, the default) sees every task, whatever its user."""
    task_id = manager.create_task("echo", {}, user="alice", delay=3600)
    for context in (RequestContext(), RequestContext(user="bob")):
        answer = router.route_request("storycore.task.status", "GET", {"task_id": task_id}, context)
        assert answer.is_success
        listing = router.route_request("storycore.task.list", "GET", {}, context)
        assert listing.data["count"] == 1
    assert RequestContext(user="bob").owner is None
    assert as_user("bob").owner == "bob"


def test_router_groups(manager: TaskManager, router: APIRouter) -> None:
    group = manager.create_group([{"operation": "echo", "user": "alice", "delay": 3600}] * 2)
    params = {"group_id": group}
    for path, method in (("storycore.group.status", "GET"), ("storycore.group.cancel", "POST")):
        answer = router.route_request(path, method, params, as_user("bob"))
        assert answer.http_status == 404, answer
    assert manager.get_group_status(group)["counts"]["pending"] == 2  # type: ignore[index]
    status = router.route_request("storycore.group.status", "GET", params, as_user("alice"))
    assert status.data["total"] == 2
    cancel = router.route_request("storycore.group.cancel", "POST", params, as_user("alice"))
    assert cancel.data == {"group_id": group, "cancelled": 2}


def test_router_owner_only_without_a_user_is_refused(
    manager: TaskManager, router: APIRouter
) -> None:
    """Fail closed: a context limited to "the user's own tasks" with no user is refused
    when it is made, so it can never read as "every task"."""
    manager.create_task("echo", {}, user="alice", delay=3600)
    with pytest.raises(ValueError, match="owner_only=True\\) needs the user"):
        RequestContext(owner_only=True)
