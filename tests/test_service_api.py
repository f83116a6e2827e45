"""The HTTP service's task API, over real HTTP (httpx) against uvicorn on a loopback port.

Every answer is StoryCore's envelope; bad input is a 400 VALIDATION_ERROR envelope (never a
500, never a traceback); every response carries ``metadata.request_id``.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from actors import ManualClock, TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests import process_ops
from tests.gates import Gate
from tests.service_harness import running_service

ALICE_TOKEN = "alice-token"
ADMIN_TOKEN = "ops-token"
WAIT = 15.0  # seconds any wait may take before the test fails (never slept)

RPC_ENDPOINTS = (
    "storycore.task.status",
    "storycore.task.cancel",
    "storycore.task.resume",
    "storycore.task.list",
    "storycore.task.stats",
    "storycore.group.status",
    "storycore.group.cancel",
)


def tokens() -> TokenStore:
    return TokenStore(
        [
            (hash_token(ALICE_TOKEN), Principal("alice", "user")),
            (hash_token(ADMIN_TOKEN), Principal("ops", "admin")),
        ]
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def envelope(response: httpx.Response, status_code: int, code: str | None = None) -> Any:
    """The response's envelope, checked: the HTTP status, success or the error ``code``,
    a request id, and no traceback anywhere in the body."""
    assert response.status_code == status_code, response.text
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "data", "error", "metadata"}, body
    assert isinstance(body["metadata"]["request_id"], str)
    assert body["metadata"]["request_id"]
    assert body["metadata"]["api_version"] == "v1"
    if code is None:
        assert body["status"] == "success", body
        assert body["error"] is None
    else:
        assert body["status"] == "error", body
        assert body["data"] is None
        assert body["error"]["code"] == code, body
        assert body["error"]["message"]
        assert body["error"]["remediation"]
    return body


# -- operations ---------------------------------------------------------------------------


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return {"echo": dict(params)}


def partial_then_wait(params: Mapping[str, Any], task: TaskContext) -> str:
    """Publish progress and a partial result, then wait (cooperatively) to be stopped."""
    task.update_progress(0.5)
    task.partial_result = {"frames_done": 3}
    task.wait_cancelled(30)
    return "stopped"


class FailFirst:
    """Raises ValueError on each task's first attempt, succeeds on the next."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> dict[str, int]:
        with self._lock:
            self.calls[task.task_id] = calls = self.calls.get(task.task_id, 0) + 1
        if calls == 1:
            raise ValueError("first attempt fails")
        return {"calls": calls}


def with_dependencies(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return {"deps": dict(task.dependency_results)}


class Recorder:
    """Records the order operations ran in (by params["name"])."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> str:
        self.order.append(params["name"])
        return params["name"]


# -- fixtures -----------------------------------------------------------------------------


@dataclass
class Api:
    url: str
    manager: TaskManager
    client: httpx.Client  # sends alice's token
    fail_first: FailFirst
    recorder: Recorder

    def create(self, body: Mapping[str, Any], **kwargs: Any) -> str:
        answer = envelope(self.client.post("/v1/tasks", json=body, **kwargs), 202)
        task_id: str = answer["data"]["task_id"]
        return task_id

    def status(self, task_id: str) -> dict[str, Any]:
        data: dict[str, Any] = envelope(self.client.get(f"/v1/tasks/{task_id}"), 200)["data"]
        return data

    def wait(self, task_id: str) -> dict[str, Any]:
        return self.manager.wait(task_id, timeout=WAIT)


@pytest.fixture
def make_api(make_manager: Callable[..., TaskManager]) -> Iterator[Callable[..., Api]]:
    """Services on their own managers; stopped (before their managers) after the test."""
    with ExitStack() as stack:

        def make(
            *, tokens_: TokenStore | None = None, max_body_bytes: int | None = None, **options: Any
        ) -> Api:
            options.setdefault("num_workers", 4)
            manager = make_manager(**options)
            fail_first, recorder = FailFirst(), Recorder()
            manager.register_operation("echo", echo)
            manager.register_operation("partial", partial_then_wait)
            manager.register_operation("fail_first", fail_first)
            manager.register_operation("with_deps", with_dependencies)
            manager.register_operation("record", recorder)
            manager.register_operation("pecho", process_ops.echo)
            config = ServiceConfig(tokens=tokens_ if tokens_ is not None else tokens())
            if max_body_bytes is not None:
                config = ServiceConfig(tokens=config.tokens, max_body_bytes=max_body_bytes)
            service = stack.enter_context(running_service(manager, config))
            client = stack.enter_context(
                httpx.Client(base_url=service.url, headers=bearer(ALICE_TOKEN), timeout=WAIT)
            )
            return Api(service.url, manager, client, fail_first, recorder)

        yield make


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def gates(make_api: Callable[..., Api]) -> Iterator[Callable[[Api], tuple[str, Gate]]]:
    """Gate operations registered on a service's manager; all released after the test
    (before the services and managers stop)."""
    made: list[Gate] = []

    def new(api: Api) -> tuple[str, Gate]:
        gate = Gate(result={"gate": len(made)})
        name = f"gate{len(made)}"
        api.manager.register_operation(name, gate)
        made.append(gate)
        return name, gate

    yield new
    for gate in made:
        gate.release()


# -- create -------------------------------------------------------------------------------


def test_create_answers_202_with_the_task_id_and_links(api: Api) -> None:
    body = envelope(api.client.post("/v1/tasks", json={"operation": "echo"}), 202)
    task_id = body["data"]["task_id"]
    assert str(uuid.UUID(task_id)) == task_id
    assert body["data"]["status"] == "pending"
    assert body["data"]["links"] == {
        "self": f"/v1/tasks/{task_id}",
        "events": f"/v1/tasks/{task_id}/events",
        "cancel": f"/v1/tasks/{task_id}/cancel",
        "resume": f"/v1/tasks/{task_id}/resume",
    }
    assert api.wait(task_id)["status"] == "completed"


def test_the_named_operation_runs_with_the_params(api: Api) -> None:
    params = {"scene": 7, "title": "Ünïcode", "nested": {"list": [1, 2.5, None, True]}}
    task_id = api.create({"operation": "echo", "params": params})
    api.wait(task_id)
    status = api.status(task_id)
    assert status["status"] == "completed"
    assert status["result"] == {"echo": params}
    assert status["operation"] == "echo"
    assert status["user"] == "alice"
    assert status["task_id"] == task_id
    assert status["attempt"] == 1
    assert status["progress"] == 1.0


def test_a_timeout_ends_the_task_with_timeout_and_its_partial_result(api: Api) -> None:
    task_id = api.create({"operation": "partial", "timeout": 0.3})
    assert api.wait(task_id)["status"] == "failed"
    status = api.status(task_id)
    assert status["timeout"] == 0.3
    assert status["error"]["code"] == "TIMEOUT"
    assert status["error"]["details"]["timeout_seconds"] == 0.3
    assert status["error"]["details"]["partial_result"] == {"frames_done": 3}
    assert status["partial_result"] == {"frames_done": 3}
    assert status["progress"] == 0.5


def test_a_retry_policy_runs_a_second_attempt(api: Api) -> None:
    retry = {"max_attempts": 2, "backoff": 0, "jitter": False, "retry_on": ["ValueError"]}
    task_id = api.create({"operation": "fail_first", "retry": retry})
    api.wait(task_id)
    status = api.status(task_id)
    assert status["status"] == "completed", status
    assert status["attempt"] == 2
    assert status["result"] == {"calls": 2}
    assert api.fail_first.calls[task_id] == 2


def test_without_a_retry_policy_the_first_failure_is_final(api: Api) -> None:
    task_id = api.create({"operation": "fail_first"})
    api.wait(task_id)
    status = api.status(task_id)
    assert status["status"] == "failed"
    assert status["attempt"] == 1
    assert status["error"]["code"] == "INTERNAL_ERROR"
    assert status["error"]["details"]["exception_type"] == "ValueError"


def test_retry_on_names_another_exception_so_no_retry(api: Api) -> None:
    retry = {"max_attempts": 3, "backoff": 0, "jitter": False, "retry_on": ["KeyError"]}
    task_id = api.create({"operation": "fail_first", "retry": retry})
    api.wait(task_id)
    assert api.status(task_id)["attempt"] == 1
    assert api.fail_first.calls[task_id] == 1


def test_priority_decides_which_pending_task_runs_first(
    make_api: Callable[..., Api], gates: Callable[[Api], tuple[str, Gate]]
) -> None:
    api = make_api(num_workers=1)
    gate_name, gate = gates(api)
    blocker = api.create({"operation": gate_name})
    gate.wait_entered()
    low = api.create({"operation": "record", "params": {"name": "low"}, "priority": "low"})
    normal = api.create({"operation": "record", "params": {"name": "normal"}})
    critical = api.create(
        {"operation": "record", "params": {"name": "critical"}, "priority": "critical"}
    )
    high = api.create({"operation": "record", "params": {"name": "high"}, "priority": "high"})
    assert api.status(critical)["priority"] == "critical"
    assert api.status(low)["priority"] == "low"
    gate.release()
    for task_id in (blocker, low, normal, critical, high):
        assert api.wait(task_id)["status"] == "completed"
    assert api.recorder.order == ["critical", "high", "normal", "low"]


def test_a_delay_keeps_the_task_pending_until_it_is_due(api: Api) -> None:
    task_id = api.create({"operation": "echo", "delay": 0.4})
    status = api.wait(task_id)
    assert status["status"] == "completed"
    created = datetime.fromisoformat(status["created_at"])
    started = datetime.fromisoformat(status["started_at"])
    assert started - created >= timedelta(seconds=0.35)


def test_a_long_delay_is_scheduled_and_cancellable(api: Api) -> None:
    task_id = api.create({"operation": "echo", "delay": 3600})
    status = api.status(task_id)
    assert status["status"] == "pending"
    due = datetime.fromisoformat(status["scheduled_for"])
    created = datetime.fromisoformat(status["created_at"])
    assert abs((due - created) - timedelta(hours=1)) < timedelta(seconds=1)
    envelope(api.client.post(f"/v1/tasks/{task_id}/cancel"), 200)


def test_run_at_schedules_the_task_for_that_time(api: Api) -> None:
    run_at = datetime.now(UTC) + timedelta(days=2)
    task_id = api.create({"operation": "echo", "run_at": run_at.isoformat()})
    status = api.status(task_id)
    assert status["status"] == "pending"
    assert abs(datetime.fromisoformat(status["scheduled_for"]) - run_at) < timedelta(milliseconds=1)
    soon = datetime.now(timezone(timedelta(hours=-5))) + timedelta(seconds=0.3)
    soon_id = api.create({"operation": "echo", "run_at": soon.isoformat()})
    ran = api.wait(soon_id)
    assert ran["status"] == "completed"
    assert datetime.fromisoformat(ran["started_at"]) >= soon - timedelta(milliseconds=50)


def test_run_at_without_a_time_zone_and_both_delay_and_run_at_are_refused(api: Api) -> None:
    naive = envelope(
        api.client.post("/v1/tasks", json={"operation": "echo", "run_at": "2030-01-01T00:00:00"}),
        400,
        "VALIDATION_ERROR",
    )
    assert "naive" in naive["error"]["message"] or "zone" in naive["error"]["message"]
    envelope(
        api.client.post(
            "/v1/tasks",
            json={"operation": "echo", "delay": 1, "run_at": "2030-01-01T00:00:00+00:00"},
        ),
        400,
        "VALIDATION_ERROR",
    )


def test_a_run_at_at_the_end_of_time_never_breaks_the_listing(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks", json={"operation": "echo", "run_at": "9999-12-31T23:00:00-12:00"}
    )
    assert response.status_code in (202, 400), response.text
    if response.status_code == 202:
        task_id = response.json()["data"]["task_id"]
        envelope(api.client.get(f"/v1/tasks/{task_id}"), 200)
    envelope(api.client.get("/v1/tasks"), 200)
    envelope(api.client.get("/v1/tasks", headers=bearer(ADMIN_TOKEN)), 200)


def test_depends_on_waits_for_the_dependency_and_passes_its_result(
    api: Api, gates: Callable[[Api], tuple[str, Gate]]
) -> None:
    gate_name, gate = gates(api)
    first = api.create({"operation": gate_name})
    gate.wait_entered()
    second = api.create({"operation": "with_deps", "depends_on": [first]})
    status = api.status(second)
    assert status["status"] == "pending"
    assert status["depends_on"] == [first]
    gate.release()
    assert api.wait(second)["status"] == "completed"
    assert api.status(second)["result"] == {"deps": {first: {"gate": 0}}}


def test_depends_on_an_unknown_task_is_refused(api: Api) -> None:
    body = envelope(
        api.client.post("/v1/tasks", json={"operation": "echo", "depends_on": [str(uuid.uuid4())]}),
        400,
        "VALIDATION_ERROR",
    )
    assert "depends_on" in body["error"]["message"]


def test_isolation_process_runs_the_operation_in_a_child_process(api: Api) -> None:
    task_id = api.create({"operation": "pecho", "isolation": "process", "params": {"a": 1}})
    status = api.wait(task_id)
    assert status["status"] == "completed", status
    assert status["isolation"] == "process"
    assert status["result"]["echo"] == {"a": 1}
    assert status["result"]["pid"] != os.getpid()
    thread_id = api.create({"operation": "pecho", "isolation": "thread"})
    assert api.wait(thread_id)["result"]["pid"] == os.getpid()


def test_resource_limits_need_process_isolation(api: Api) -> None:
    body = envelope(
        api.client.post("/v1/tasks", json={"operation": "echo", "memory_limit_mb": 512}),
        400,
        "VALIDATION_ERROR",
    )
    assert "isolation" in body["error"]["message"]


def test_isolation_ray_without_a_ray_back_end_is_a_400_naming_the_fix(api: Api) -> None:
    """Found by the schema fuzz test: it was a 500. The service was started without
    --ray-address/--ray-local, so the request asks for what it does not offer."""
    created = api.manager.get_stats()["total_tasks"]
    body = envelope(
        api.client.post("/v1/tasks", json={"operation": "echo", "isolation": "ray"}),
        400,
        "VALIDATION_ERROR",
    )
    assert "no Ray back-end" in body["error"]["message"]
    assert body["error"]["details"]["field"] == "isolation"
    assert "--ray-address" in body["error"]["remediation"]
    assert api.manager.get_stats()["total_tasks"] == created  # nothing was queued


# -- status and cancel --------------------------------------------------------------------


def test_status_of_a_running_task(api: Api, gates: Callable[[Api], tuple[str, Gate]]) -> None:
    gate_name, gate = gates(api)
    task_id = api.create({"operation": gate_name, "priority": "high", "timeout": 60})
    gate.wait_entered()
    status = api.status(task_id)
    assert status["status"] == "running"
    assert status["priority"] == "high"
    assert status["timeout"] == 60
    assert status["started_at"] is not None
    assert status["ended_at"] is None
    assert "result" not in status


def test_cancel_a_running_task_then_409_once_it_has_ended(
    api: Api, gates: Callable[[Api], tuple[str, Gate]]
) -> None:
    gate_name, gate = gates(api)
    task_id = api.create({"operation": gate_name})
    gate.wait_entered()
    body = envelope(api.client.post(f"/v1/tasks/{task_id}/cancel"), 200)
    assert body["data"] == {"task_id": task_id, "cancelled": True}
    assert api.status(task_id)["status"] == "cancelled"
    gate.release()
    assert api.wait(task_id)["status"] == "cancelled"
    again = envelope(api.client.post(f"/v1/tasks/{task_id}/cancel"), 409, "CONFLICT")
    assert again["error"]["details"]["current_status"] == "cancelled"
    assert again["error"]["details"]["task_id"] == task_id


def test_cancel_a_pending_task_and_it_never_runs(api: Api) -> None:
    task_id = api.create({"operation": "record", "params": {"name": "x"}, "delay": 3600})
    envelope(api.client.post(f"/v1/tasks/{task_id}/cancel"), 200)
    status = api.wait(task_id)
    assert status["status"] == "cancelled"
    assert status["error"]["code"] == "CANCELLED"
    assert api.recorder.order == []


def test_cancel_a_completed_task_is_409_with_its_status(api: Api) -> None:
    task_id = api.create({"operation": "echo"})
    api.wait(task_id)
    body = envelope(api.client.post(f"/v1/tasks/{task_id}/cancel"), 409, "CONFLICT")
    assert body["error"]["details"]["current_status"] == "completed"
    assert api.status(task_id)["status"] == "completed"


@pytest.mark.parametrize(
    "task_id",
    [
        str(uuid.uuid4()),
        "nope",
        "12345",
        str(uuid.uuid4()).upper(),
        "{" + str(uuid.uuid4()) + "}",
        "x" * 500,
        "%00",
        "ünï",
    ],
    ids=["unknown", "word", "digits", "upper", "braces", "long", "nul", "unicode"],
)
def test_unknown_and_malformed_ids_are_404(api: Api, task_id: str) -> None:
    path = f"/v1/tasks/{task_id}"
    status = envelope(api.client.get(path), 404, "NOT_FOUND")
    assert len(status["error"]["details"]["task_id"]) <= 64
    envelope(api.client.post(f"{path}/cancel"), 404, "NOT_FOUND")


# -- listing ------------------------------------------------------------------------------


def page_through(api: Api, **params: Any) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        data = envelope(api.client.get("/v1/tasks", params=query), 200)["data"]
        assert data["count"] == len(data["tasks"])
        pages.append(data["tasks"])
        cursor = data["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


def test_pagination_gives_every_task_once_in_creation_order(api: Api) -> None:
    created = [api.create({"operation": "echo", "params": {"i": i}}) for i in range(25)]
    pages = page_through(api, limit=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    listed = [task["task_id"] for page in pages for task in page]
    assert listed == created
    everything = envelope(api.client.get("/v1/tasks", params={"limit": 1000}), 200)["data"]
    assert [t["task_id"] for t in everything["tasks"]] == created
    assert everything["next_cursor"] is None


def test_pagination_is_stable_while_tasks_change_state(
    make_api: Callable[..., Api], gates: Callable[[Api], tuple[str, Gate]]
) -> None:
    api = make_api(num_workers=1)
    gate_name, gate = gates(api)
    created = [api.create({"operation": gate_name})]
    gate.wait_entered()
    created += [api.create({"operation": "echo", "params": {"i": i}}) for i in range(24)]
    first = envelope(api.client.get("/v1/tasks", params={"limit": 10}), 200)["data"]
    assert {t["status"] for t in first["tasks"][1:]} == {"pending"}
    gate.release()  # every task now runs and completes between the pages
    for task_id in created:
        api.wait(task_id)
    listed = [t["task_id"] for t in first["tasks"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        data = envelope(api.client.get("/v1/tasks", params={"limit": 10, "cursor": cursor}), 200)[
            "data"
        ]
        assert {t["status"] for t in data["tasks"]} == {"completed"}
        listed += [t["task_id"] for t in data["tasks"]]
        cursor = data["next_cursor"]
    assert listed == created


def test_tasks_created_at_the_same_instant_are_listed_in_creation_order(
    make_api: Callable[..., Api],
) -> None:
    api = make_api(clock=ManualClock())
    created = [api.create({"operation": "echo", "delay": 60}) for _ in range(12)]
    listed = [t["task_id"] for page in page_through(api, limit=5) for t in page]
    assert sorted(listed) == sorted(created)
    assert listed == created


def test_status_filter(api: Api, gates: Callable[[Api], tuple[str, Gate]]) -> None:
    gate_name, gate = gates(api)
    done = [api.create({"operation": "echo"}) for _ in range(3)]
    for task_id in done:
        api.wait(task_id)
    pending = [api.create({"operation": "echo", "delay": 3600}) for _ in range(2)]
    running = api.create({"operation": gate_name})
    gate.wait_entered()
    cancelled = api.create({"operation": "echo", "delay": 3600})
    envelope(api.client.post(f"/v1/tasks/{cancelled}/cancel"), 200)

    def listed(status: str) -> list[str]:
        pages = page_through(api, status=status, limit=2)
        tasks = [t for page in pages for t in page]
        assert {t["status"] for t in tasks} <= {status}
        return [t["task_id"] for t in tasks]

    assert listed("completed") == done
    assert listed("pending") == pending
    assert listed("running") == [running]
    assert listed("cancelled") == [cancelled]
    assert listed("failed") == []


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 5000},
        {"limit": -1},
        {"limit": "ten"},
        {"status": "bogus"},
        {"cursor": "not-a-cursor!"},
        {"cursor": "eyJhIjoxfQ"},  # base64 of {"a":1}: JSON, but not a cursor
        {"cursor": "WzEsMl0"},  # base64 of [1,2]: not strings
        {"cursor": "é"},
        {"cursor": "x" * 600},
    ],
    ids=str,
)
def test_bad_listing_queries_are_400(api: Api, query: dict[str, Any]) -> None:
    envelope(api.client.get("/v1/tasks", params=query), 400, "VALIDATION_ERROR")


def test_limit_bounds_are_accepted(api: Api) -> None:
    for limit in (1, 1000):
        data = envelope(api.client.get("/v1/tasks", params={"limit": limit}), 200)["data"]
        assert data["tasks"] == []
        assert data["next_cursor"] is None


# -- stats, rpc, healthz ------------------------------------------------------------------


def test_stats(api: Api) -> None:
    before = envelope(api.client.get("/v1/stats"), 200)["data"]
    assert before["num_workers"] == 4
    assert before["accepting_tasks"] is True
    task_id = api.create({"operation": "echo"})
    api.wait(task_id)
    after = envelope(api.client.get("/v1/stats"), 200)["data"]
    assert after["lifetime_stats"]["total_created"] == before["lifetime_stats"]["total_created"] + 1
    assert after["status_counts"]["completed"] == before["status_counts"]["completed"] + 1
    assert after["total_tasks"] == before["total_tasks"] + 1


def test_rpc_task_status_cancel_list_and_stats(
    api: Api, gates: Callable[[Api], tuple[str, Gate]]
) -> None:
    gate_name, gate = gates(api)
    task_id = api.create({"operation": gate_name})
    gate.wait_entered()
    rpc = "/v1/rpc/storycore.task."
    status = envelope(api.client.post(rpc + "status", json={"task_id": task_id}), 200)["data"]
    assert status["task_id"] == task_id
    assert status["status"] == "running"
    listing = envelope(api.client.post(rpc + "list", json={"status": "running"}), 200)["data"]
    assert [t["task_id"] for t in listing["tasks"]] == [task_id]
    assert listing["count"] == 1
    assert envelope(api.client.post(rpc + "list"), 200)["data"]["count"] == 1
    cancelled = envelope(api.client.post(rpc + "cancel", json={"task_id": task_id}), 200)
    assert cancelled["data"]["cancelled"] is True
    gate.release()
    api.wait(task_id)
    conflict = envelope(api.client.post(rpc + "cancel", json={"task_id": task_id}), 409, "CONFLICT")
    assert conflict["error"]["details"]["current_status"] == "cancelled"
    stats = envelope(api.client.post(rpc + "stats", json={}), 200)["data"]
    assert stats["lifetime_stats"]["total_cancelled"] == 1
    envelope(api.client.post(rpc + "status", json={"task_id": str(uuid.uuid4())}), 404, "NOT_FOUND")
    # A malformed id names no task: NOT_FOUND, as StoryCore's router answers it.
    envelope(api.client.post(rpc + "status", json={"task_id": "nope"}), 404, "NOT_FOUND")
    envelope(api.client.post(rpc + "status", json={}), 400, "VALIDATION_ERROR")
    envelope(api.client.post(rpc + "list", json={"limit": "x"}), 400, "VALIDATION_ERROR")


def test_rpc_group_status_and_cancel(api: Api) -> None:
    group_id = api.manager.create_group(
        [
            {"operation": "echo", "user": "alice"},
            {"operation": "echo", "user": "alice", "delay": 3600},
        ]
    )
    rpc = "/v1/rpc/storycore.group."
    status = envelope(api.client.post(rpc + "status", json={"group_id": group_id}), 200)["data"]
    assert status["group_id"] == group_id
    assert status["total"] == 2
    cancelled = envelope(api.client.post(rpc + "cancel", json={"group_id": group_id}), 200)
    assert cancelled["data"] == {"group_id": group_id, "cancelled": 1}
    unknown = str(uuid.uuid4())
    envelope(api.client.post(rpc + "status", json={"group_id": unknown}), 404, "NOT_FOUND")
    envelope(api.client.post(rpc + "cancel", json={"group_id": unknown}), 404, "NOT_FOUND")


@pytest.mark.parametrize("endpoint", ["storycore.task.nope", "nope", "storycore.task.status.x"])
def test_rpc_unknown_endpoint_is_404(api: Api, endpoint: str) -> None:
    body = envelope(api.client.post(f"/v1/rpc/{endpoint}", json={}), 404, "NOT_FOUND")
    for known in RPC_ENDPOINTS:
        assert known in body["error"]["message"]


@pytest.mark.parametrize("content", [b"[1, 2]", b'"x"', b"42", b"{bad", b"null"])
def test_rpc_params_that_are_not_an_object(api: Api, content: bytes) -> None:
    response = api.client.post(
        "/v1/rpc/storycore.task.stats",
        content=content,
        headers={"content-type": "application/json"},
    )
    if content == b"null":  # no params at all: the endpoint's defaults
        envelope(response, 200)
    else:
        envelope(response, 400, "VALIDATION_ERROR")


def test_healthz_needs_no_token(api: Api) -> None:
    with httpx.Client(base_url=api.url) as anonymous:
        body = envelope(anonymous.get("/healthz"), 200)
    assert body["data"] == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/v1/nope"), ("GET", "/v1/tasks/a/b/c"), ("GET", "/v2/tasks")],
)
def test_unknown_route_is_a_404_envelope(api: Api, method: str, path: str) -> None:
    body = envelope(api.client.request(method, path), 404, "NOT_FOUND")
    assert path in body["error"]["message"]


def test_a_wrong_method_is_an_error_envelope_not_a_500(api: Api) -> None:
    response = api.client.delete("/v1/tasks")
    assert response.status_code in (400, 405)
    envelope(response, response.status_code, "VALIDATION_ERROR")


# -- bad input ----------------------------------------------------------------------------

JSON = {"content-type": "application/json"}

BAD_BODIES: list[tuple[str, bytes, dict[str, str]]] = [
    ("malformed json", b'{"operation": "echo",', JSON),
    ("not json at all", b"operation=echo", JSON),
    ("json array", b'["echo"]', JSON),
    ("json string", b'"echo"', JSON),
    ("json null", b"null", JSON),
    ("empty body", b"", JSON),
    ("invalid utf-8", b'{"operation": "\xff\xfe"}', JSON),
    ("unknown field", b'{"operation": "echo", "bogus": 1}', JSON),
    ("unknown retry field", b'{"operation": "echo", "retry": {"tries": 2}}', JSON),
    ("missing operation", b'{"params": {}}', JSON),
    ("empty operation", b'{"operation": ""}', JSON),
    ("operation not a string", b'{"operation": 5}', JSON),
    ("timeout abc", b'{"operation": "echo", "timeout": "abc"}', JSON),
    ("timeout negative", b'{"operation": "echo", "timeout": -1}', JSON),
    ("timeout zero", b'{"operation": "echo", "timeout": 0}', JSON),
    ("timeout nan", b'{"operation": "echo", "timeout": NaN}', JSON),
    ("timeout infinite", b'{"operation": "echo", "timeout": Infinity}', JSON),
    ("priority urgent", b'{"operation": "echo", "priority": "urgent"}', JSON),
    ("priority number", b'{"operation": "echo", "priority": 3}', JSON),
    ("params a list", b'{"operation": "echo", "params": [1, 2]}', JSON),
    ("params a string", b'{"operation": "echo", "params": "x"}', JSON),
    ("delay negative", b'{"operation": "echo", "delay": -5}', JSON),
    ("run_at not a time", b'{"operation": "echo", "run_at": "tomorrow"}', JSON),
    ("isolation bogus", b'{"operation": "echo", "isolation": "vm"}', JSON),
    ("depends_on a string", b'{"operation": "echo", "depends_on": "x"}', JSON),
    ("depends_on malformed", b'{"operation": "echo", "depends_on": ["x"]}', JSON),
    ("retry zero attempts", b'{"operation": "echo", "retry": {"max_attempts": 0}}', JSON),
    ("retry_on empty name", b'{"operation": "echo", "retry": {"retry_on": [""]}}', JSON),
    ("unknown operation", b'{"operation": "no.such.op"}', JSON),
    ("callback without secret", b'{"operation": "echo", "callback_url": "http://x/"}', JSON),
    ("missing content-type", b'{"operation": "echo"}', {}),
    ("text/plain", b'{"operation": "echo"}', {"content-type": "text/plain"}),
    ("form", b"operation=echo", {"content-type": "application/x-www-form-urlencoded"}),
]


@pytest.mark.parametrize(
    ("content", "headers"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_bad_create_input_is_a_400_validation_error(
    api: Api, content: bytes, headers: dict[str, str]
) -> None:
    response = api.client.post("/v1/tasks", content=content, headers=headers)
    body = envelope(response, 400, "VALIDATION_ERROR")
    assert 'File "' not in response.text
    assert api.manager.get_stats()["lifetime_stats"]["total_created"] == 0
    assert isinstance(body["error"]["details"], dict)


def test_validation_errors_name_the_field(api: Api) -> None:
    body = envelope(
        api.client.post("/v1/tasks", json={"operation": "echo", "timeout": "abc"}),
        400,
        "VALIDATION_ERROR",
    )
    assert "timeout" in body["error"]["message"]
    assert body["error"]["details"]["problems"][0]["location"] == "body.timeout"
    unknown = envelope(
        api.client.post("/v1/tasks", json={"operation": "no.such.op"}), 400, "VALIDATION_ERROR"
    )
    assert "no.such.op" in unknown["error"]["message"]


def test_odd_but_valid_json_params_do_not_break_the_service(api: Api) -> None:
    response = api.client.post(
        "/v1/tasks",
        content=b'{"operation": "echo", "params": {"n": NaN, "big": 1e999, "deep": [[[[]]]]}}',
        headers=JSON,
    )
    task_id = envelope(response, 202)["data"]["task_id"]
    api.wait(task_id)
    result = api.status(task_id)["result"]["echo"]
    assert result["deep"] == [[[[]]]]
    assert isinstance(result["n"], str)  # a NaN is not JSON: the envelope says so in text


# -- body limit ---------------------------------------------------------------------------


def padded_body(size: int) -> bytes:
    """A valid create body of exactly ``size`` bytes."""
    head = b'{"operation": "echo", "params": {"pad": "'
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def chunks(body: bytes, size: int = 256) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
def small_api(make_api: Callable[..., Api]) -> Api:
    return make_api(max_body_bytes=1024)


def test_a_body_over_the_limit_is_refused_by_its_length(small_api: Api) -> None:
    response = small_api.client.post("/v1/tasks", content=padded_body(2048), headers=JSON)
    body = envelope(response, 400, "VALIDATION_ERROR")
    assert body["error"]["details"]["max_body_bytes"] == 1024
    assert "1024" in body["error"]["message"]
    assert small_api.manager.get_stats()["lifetime_stats"]["total_created"] == 0
    rpc = small_api.client.post(
        "/v1/rpc/storycore.task.stats", content=b" " * 2048 + b"{}", headers=JSON
    )
    envelope(rpc, 400, "VALIDATION_ERROR")


def test_a_chunked_body_over_the_limit_is_refused(small_api: Api) -> None:
    response = small_api.client.post("/v1/tasks", content=chunks(padded_body(2048)), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    envelope(response, 400, "VALIDATION_ERROR")
    assert small_api.manager.get_stats()["lifetime_stats"]["total_created"] == 0


def test_a_chunked_body_over_the_limit_is_refused_saying_why(small_api: Api) -> None:
    response = small_api.client.post("/v1/tasks", content=chunks(padded_body(2048)), headers=JSON)
    body = envelope(response, 400, "VALIDATION_ERROR")
    assert body["error"]["details"].get("max_body_bytes") == 1024


def test_a_body_at_the_limit_is_accepted_declared_or_chunked(small_api: Api) -> None:
    exact = padded_body(1024)
    assert len(exact) == 1024
    declared = small_api.client.post("/v1/tasks", content=exact, headers=JSON)
    streamed = small_api.client.post("/v1/tasks", content=chunks(exact, 100), headers=JSON)
    for response in (declared, streamed):
        task_id = envelope(response, 202)["data"]["task_id"]
        assert small_api.wait(task_id)["status"] == "completed"
    envelope(
        small_api.client.post("/v1/tasks", content=padded_body(1025), headers=JSON),
        400,
        "VALIDATION_ERROR",
    )


def test_the_service_keeps_serving_after_refusing_a_body(small_api: Api) -> None:
    for _ in range(3):
        envelope(
            small_api.client.post("/v1/tasks", content=padded_body(4096), headers=JSON),
            400,
            "VALIDATION_ERROR",
        )
        envelope(
            small_api.client.post("/v1/tasks", content=chunks(padded_body(4096)), headers=JSON),
            400,
            "VALIDATION_ERROR",
        )
    small_api.create({"operation": "echo"})


# -- request ids, shutdown ----------------------------------------------------------------


def test_every_response_echoes_x_request_id(small_api: Api) -> None:
    api = small_api
    task_id = api.create({"operation": "echo"})
    api.wait(task_id)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/tasks", {"json": {"operation": "echo"}}),
        ("GET", f"/v1/tasks/{task_id}", {}),
        ("POST", f"/v1/tasks/{task_id}/cancel", {}),  # 409
        ("GET", f"/v1/tasks/{uuid.uuid4()}", {}),  # 404
        ("GET", "/v1/tasks", {}),
        ("GET", "/v1/tasks", {"params": {"limit": 0}}),  # 400
        ("GET", "/v1/stats", {}),
        ("POST", "/v1/rpc/storycore.task.stats", {"json": {}}),
        ("POST", "/v1/rpc/nope", {"json": {}}),  # 404
        ("GET", "/healthz", {}),
        ("GET", "/no/such/route", {}),  # 404
        ("POST", "/v1/tasks", {"content": b"{bad", "headers": JSON}),  # 400
        ("POST", "/v1/tasks", {"content": padded_body(2048), "headers": JSON}),  # too big
        ("GET", "/v1/stats", {"headers": {"Authorization": "Bearer wrong"}}),  # 401
    ]
    for index, (method, path, kwargs) in enumerate(requests):
        request_id = f"req-{index}-{uuid.uuid4()}"
        headers = {**kwargs.pop("headers", {}), "X-Request-ID": request_id}
        response = api.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 500, (method, path, response.text)
        assert "Traceback" not in response.text
        assert response.json()["metadata"]["request_id"] == request_id, (method, path)
        anonymous_id = api.client.request(method, path, **kwargs).json()["metadata"]["request_id"]
        assert anonymous_id
        assert anonymous_id != request_id


def test_a_generated_request_id_is_unique_and_a_long_one_is_cut(api: Api) -> None:
    ids = {envelope(api.client.get("/v1/stats"), 200)["metadata"]["request_id"] for _ in range(5)}
    assert len(ids) == 5
    long_id = "r" * 1000
    echoed = envelope(api.client.get("/v1/stats", headers={"X-Request-ID": long_id}), 200)
    assert echoed["metadata"]["request_id"] == long_id[:128]


def test_a_shut_down_manager_answers_503(api: Api) -> None:
    task_id = api.create({"operation": "echo"})
    api.wait(task_id)
    api.manager.shutdown(wait=True)
    envelope(api.client.post("/v1/tasks", json={"operation": "echo"}), 503, "SERVICE_UNAVAILABLE")
    with httpx.Client(base_url=api.url) as anonymous:
        envelope(anonymous.get("/healthz"), 503, "SERVICE_UNAVAILABLE")
    assert api.status(task_id)["status"] == "completed"  # queries answer from the records
