"""What the dashboard's task detail and header read from the service: the status dict's
``params`` and ``attempt_errors``, ``GET /v1/whoami``, and the page's icon."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from actors import RetryPolicy, TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests.service_harness import running_service

WAIT = 15.0
ALICE_TOKEN = "alice-status-token"
ADMIN_TOKEN = "ops-status-token"


def _echo(params: Mapping[str, Any], task: TaskContext) -> Any:
    return dict(params)


def test_status_carries_the_params(make_manager: Callable[..., TaskManager]) -> None:
    """The status dict holds the params the task was created with (the detail view's
    "params"), from the Python API and over HTTP alike."""
    manager = make_manager(num_workers=1)
    manager.register_operation("echo", _echo)
    params = {"scene": 3, "tags": ["a", "<b>"], "nested": {"fps": 24}}
    task_id = manager.create_task("echo", params)
    assert manager.wait(task_id, timeout=WAIT)["params"] == params
    bare = manager.create_task("echo")
    assert manager.wait(bare, timeout=WAIT)["params"] == {}
    with running_service(manager, ServiceConfig(tokens=None)) as running:
        answer = httpx.get(f"{running.url}/v1/tasks/{task_id}", timeout=WAIT)
        listed = httpx.get(f"{running.url}/v1/tasks", timeout=WAIT)
    assert answer.json()["data"]["params"] == params
    assert {t["task_id"]: t["params"] for t in listed.json()["data"]["tasks"]} == {
        task_id: params,
        bare: {},
    }


def test_earlier_attempts_errors_survive_a_completed_retry(
    make_manager: Callable[..., TaskManager],
) -> None:
    """A task that failed, was retried and completed still says how its earlier attempts
    ended (``attempt_errors``, numbered from 1); a task never retried has no such key."""
    manager = make_manager(num_workers=1)
    manager.register_operation("echo", _echo)
    manager.faults.raise_error(ValueError("frame 3 is corrupt"), operation="echo", times=1)
    retry = RetryPolicy(max_attempts=2, backoff=0.0, jitter=False)
    task_id = manager.create_task("echo", {"x": 1}, retry=retry)
    done = manager.wait(task_id, timeout=WAIT)
    assert done["status"] == "completed"
    assert done["attempt"] == 2
    assert "error" not in done
    assert done["attempt_errors"] == [
        {"attempt": 1, "code": "INTERNAL_ERROR", "message": done["attempt_errors"][0]["message"]}
    ]
    assert "frame 3 is corrupt" in done["attempt_errors"][0]["message"]
    once = manager.create_task("echo")
    assert "attempt_errors" not in manager.wait(once, timeout=WAIT)


def test_whoami_names_the_tokens_principal(make_manager: Callable[..., TaskManager]) -> None:
    """GET /v1/whoami answers the token's user and role (what the dashboard shows as
    signed in), and 401 without a valid token."""
    tokens = TokenStore(
        [
            (hash_token(ALICE_TOKEN), Principal("alice", "user")),
            (hash_token(ADMIN_TOKEN), Principal("ops", "admin")),
        ]
    )
    manager = make_manager(num_workers=1)
    with running_service(manager, ServiceConfig(tokens=tokens)) as running:
        client = httpx.Client(base_url=running.url, timeout=WAIT)
        with client:
            alice = client.get("/v1/whoami", headers={"Authorization": f"Bearer {ALICE_TOKEN}"})
            admin = client.get("/v1/whoami", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            nobody = client.get("/v1/whoami")
            wrong = client.get("/v1/whoami", headers={"Authorization": "Bearer nope"})
    assert alice.status_code == 200
    assert alice.json()["data"] == {"user": "alice", "role": "user", "authentication": True}
    assert admin.json()["data"] == {"user": "ops", "role": "admin", "authentication": True}
    assert (nobody.status_code, wrong.status_code) == (401, 401)
    assert nobody.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"


def test_whoami_without_auth(make_manager: Callable[..., TaskManager]) -> None:
    """With --no-auth every caller is the local admin, and whoami says authentication is
    off (the page then asks for no token)."""
    with running_service(make_manager(num_workers=1), ServiceConfig(tokens=None)) as running:
        answer = httpx.get(f"{running.url}/v1/whoami", timeout=WAIT)
    assert answer.status_code == 200
    assert answer.json()["data"] == {"user": "local", "role": "admin", "authentication": False}


def test_favicon_is_served_as_svg(make_manager: Callable[..., TaskManager]) -> None:
    """The page's icon (/static/favicon.svg, linked from the page) is served as SVG with
    the page's headers, and is an SVG document with no script."""
    with running_service(make_manager(num_workers=1), ServiceConfig(tokens=None)) as running:
        page = httpx.get(f"{running.url}/", timeout=WAIT).text
        icon = httpx.get(f"{running.url}/static/favicon.svg", timeout=WAIT)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.headers["x-content-type-options"] == "nosniff"
    assert icon.text.lstrip().startswith("<svg")
    assert "<script" not in icon.text.lower()
