"""Hardening of the HTTP service (issue 14), over real HTTP against uvicorn on loopback.

One test per finding: a bad count cannot use up the manager's restart budget (1), no
token reaches the access log (6), far-off moments are refused (12), ``/static/`` serves
only what is shipped (13, 14), authentication comes before the body (15), no bare
redirect (20), and number fields take numbers only (21). Every error answer is an
envelope with a code and a remedy.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import httpx
import pytest

from actors import TaskContext
from storycore_tasks import TaskManager
from storycore_tasks.service import dashboard
from storycore_tasks.service.deps import ServiceConfig
from tests.service_harness import running_service
from tests.test_service_api import ADMIN_TOKEN, ALICE_TOKEN, bearer, envelope, tokens
from tests.test_service_auth import PUBLIC_ROUTES, endpoints

WAIT = 15.0  # seconds any wait may take before the test fails (never slept)


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    return {"echo": dict(params)}


@dataclass
class Live:
    url: str
    manager: TaskManager
    app: Any
    anonymous: httpx.Client  # sends no token
    alice: httpx.Client  # sends alice's token


@pytest.fixture
def make_live(make_manager: Callable[..., TaskManager]) -> Iterator[Callable[..., Live]]:
    """Services on their own managers, stopped (before their managers) after the test."""
    with ExitStack() as stack:

        def make(*, log_level: str = "warning") -> Live:
            manager = make_manager(num_workers=2)
            manager.register_operation("echo", echo)
            service = stack.enter_context(
                running_service(manager, ServiceConfig(tokens=tokens()), log_level=log_level)
            )
            anonymous = stack.enter_context(httpx.Client(base_url=service.url, timeout=WAIT))
            alice = stack.enter_context(
                httpx.Client(base_url=service.url, headers=bearer(ALICE_TOKEN), timeout=WAIT)
            )
            return Live(service.url, manager, service.app, anonymous, alice)

        yield make


@pytest.fixture
def live(make_live: Callable[..., Live]) -> Live:
    return make_live()


class Captured(logging.Handler):
    """The formatted messages a logger emits (after its filters ran)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class UvicornLogs:
    """What uvicorn's access and error loggers emit once :meth:`attach` is called (after
    the server started: uvicorn's logging configuration replaces their handlers)."""

    def __init__(self) -> None:
        self.handlers = {name: Captured() for name in ("uvicorn.access", "uvicorn.error")}

    def attach(self) -> None:
        for name, handler in self.handlers.items():
            logging.getLogger(name).addHandler(handler)

    def detach(self) -> None:
        for name, handler in self.handlers.items():
            logging.getLogger(name).removeHandler(handler)

    def __getitem__(self, name: str) -> Captured:
        return self.handlers[name]


@pytest.fixture
def captured_uvicorn() -> Iterator[UvicornLogs]:
    logs = UvicornLogs()
    yield logs
    logs.detach()


# -- 1: a bad count is refused, and cannot stop the manager --------------------------------


def test_a_list_limit_past_a_machine_int_is_a_validation_error_and_restarts_nothing(
    live: Live,
) -> None:
    """limit = 2**63 (and other bad limits) is VALIDATION_ERROR naming the limit, every
    time; many in a row leave /healthz up and the manager's restart count at 0."""
    live.manager.create_task("echo", {"n": 1}, user="alice")
    for limit in [2**63, 2**63 + 1, 10**30, -1, "5", True, 1.5] * 3:
        answer = live.alice.post("/v1/rpc/storycore.task.list", json={"limit": limit})
        body = envelope(answer, 400, "VALIDATION_ERROR")
        assert "limit" in body["error"]["message"], body
    limit_max = 2**63 - 1  # the largest a machine int holds is still a fine limit
    answer = live.alice.post("/v1/rpc/storycore.task.list", json={"limit": limit_max})
    assert envelope(answer, 200)["data"]["count"] == 1
    assert envelope(live.anonymous.get("/healthz"), 200)["data"] == {"status": "ok"}
    restarts = live.manager.get_stats()["restarts"]
    assert (restarts["total"], restarts["gave_up"]) == (0, None)
    assert live.manager.runtime.closed is False


# -- 6: the access log never shows a token -------------------------------------------------


def test_the_access_log_shows_no_access_token_at_the_default_level(
    make_live: Callable[..., Live], captured_uvicorn: UvicornLogs
) -> None:
    """The event stream's ?access_token= (and any token-like query parameter) is written
    REDACTED to uvicorn's access log at the level `serve` runs it (info); the rest of
    the request line is kept."""
    live = make_live(log_level="info")
    captured_uvicorn.attach()
    task_id = live.manager.create_task("echo", {}, user="alice")
    live.manager.wait(task_id, timeout=WAIT)
    stream = live.anonymous.get(
        f"/v1/tasks/{task_id}/events", params={"access_token": ALICE_TOKEN, "x": "kept"}
    )
    assert stream.status_code == 200  # the token in the URL did authenticate
    assert "event: status" in stream.text or "data:" in stream.text
    live.anonymous.get("/v1/stats", params={"token": ADMIN_TOKEN, "api_key": "k3y-v4lue"})
    access = captured_uvicorn["uvicorn.access"].messages
    lines = [m for m in access if f"/v1/tasks/{task_id}/events" in m or "/v1/stats" in m]
    assert len(lines) == 2, access
    everything = "\n".join(access + captured_uvicorn["uvicorn.error"].messages)
    for secret in (ALICE_TOKEN, ADMIN_TOKEN, "k3y-v4lue"):
        assert secret not in everything
    assert "access_token=REDACTED" in lines[0], lines[0]
    assert "x=kept" in lines[0], lines[0]
    assert "?token=REDACTED" in lines[1], lines[1]
    assert "api_key=REDACTED" in lines[1], lines[1]


# -- 12: a moment past what can be shown is refused ----------------------------------------


def test_a_run_at_decades_away_is_a_validation_error_and_listings_keep_working(
    live: Live,
) -> None:
    """run_at beyond the ten-year bound is VALIDATION_ERROR naming run_at; a task at
    the edge of it is listed by its owner and by an admin."""
    far = (datetime.now(UTC) + timedelta(days=365 * 30)).isoformat()
    body = envelope(
        live.alice.post("/v1/tasks", json={"operation": "echo", "run_at": far}),
        400,
        "VALIDATION_ERROR",
    )
    assert "run_at" in body["error"]["message"]
    near_edge = (datetime.now(UTC) + timedelta(days=365 * 9)).isoformat()
    answer = live.alice.post("/v1/tasks", json={"operation": "echo", "run_at": near_edge})
    task_id = envelope(answer, 202)["data"]["task_id"]
    listed = envelope(live.alice.get("/v1/tasks"), 200)["data"]["tasks"]
    assert [t["task_id"] for t in listed] == [task_id]
    assert listed[0]["scheduled_for"].startswith(near_edge[:10])
    admin = httpx.get(f"{live.url}/v1/tasks", headers=bearer(ADMIN_TOKEN), timeout=WAIT)
    assert envelope(admin, 200)["data"]["count"] == 1


# -- 13 and 14: /static/ serves what is shipped, nothing else -------------------------------


def test_static_serves_exactly_the_shipped_files_and_keeps_no_name_it_is_asked_for(
    live: Live,
) -> None:
    """The served set is the package's static files, read once; any other name (a
    thousand made-up ones, anonymously) is a NOT_FOUND envelope and adds nothing."""
    folder = resources.files("storycore_tasks.service").joinpath("static")
    shipped = {entry.name for entry in folder.iterdir() if entry.is_file()}
    assert {"dashboard.html", "dashboard.js", "dashboard.css"} <= shipped
    assert set(dashboard._FILES) == shipped
    for name in sorted(shipped):
        answer = live.anonymous.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert answer.content == folder.joinpath(name).read_bytes()
    before = dict(dashboard._FILES)
    for i in range(1000):
        answer = live.anonymous.get(f"/static/made-up-{i}.js")
        envelope(answer, 404, "NOT_FOUND")
    assert dict(dashboard._FILES) == before
    assert not hasattr(dashboard._static, "cache_info")  # no per-name cache behind it


@pytest.mark.parametrize(
    "name",
    [
        "a" * 300 + ".js",
        "b" * 5000 + ".css",
        "%2e%2e%2fapp.py",
        "..%2f..%2fpyproject.toml",
        "dashboard.js%00.css",
        "DASHBOARD.JS",
        "dashboard.js.map",
        "__init__.py",
    ],
)
def test_an_anonymous_odd_static_name_is_a_404_envelope_with_nothing_logged(
    live: Live, captured_uvicorn: UvicornLogs, name: str
) -> None:
    """A long or strange name under /static/ is NOT_FOUND (never 500), and uvicorn logs
    no error or traceback for it."""
    captured_uvicorn.attach()
    answer = live.anonymous.get(f"/static/{name}")
    body = envelope(answer, 404, "NOT_FOUND")
    assert len(body["error"]["message"]) < 200
    assert live.anonymous.get("/static/dashboard.js").status_code == 200  # still served
    assert captured_uvicorn["uvicorn.error"].messages == []


def test_an_unexpected_error_is_one_500_envelope_and_keeps_the_connection(
    live: Live, captured_uvicorn: UvicornLogs
) -> None:
    """An exception no handler takes (a route with a bug: one is added to the served
    app for this test) is an INTERNAL_ERROR envelope; uvicorn logs no second
    traceback, and the client's keep-alive connection stays usable (Starlette's
    last-resort handler re-raised to the server, which dropped it)."""

    def buggy() -> None:
        raise RuntimeError("a bug")

    live.app.add_api_route("/v1/buggy", buggy)
    captured_uvicorn.attach()
    for _ in range(3):  # on one keep-alive connection
        body = envelope(live.alice.get("/v1/buggy"), 500, "INTERNAL_ERROR")
        assert body["error"]["details"] == {"exception_type": "RuntimeError"}
        assert envelope(live.alice.get("/v1/stats"), 200)["data"]["total_tasks"] == 0
    assert captured_uvicorn["uvicorn.error"].messages == []


# -- 15: authentication before the body ------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{bad", b"", b"[1,2", b'{"operation": 5}', b"\xff\xfe", b'{"operation": "echo", "x": 1}'],
)
def test_every_authenticated_route_answers_401_before_it_reads_the_body(
    live: Live, body: bytes
) -> None:
    """Without a token, a malformed or invalid body on any protected route is 401
    AUTHENTICATION_REQUIRED (never 400, which would answer for an anonymous caller);
    with a token the same body is a VALIDATION_ERROR."""
    task_id = live.manager.create_task("echo", {}, user="alice")
    protected = [e for e in endpoints(live.app) if e.template not in PUBLIC_ROUTES]
    posts = [e for e in protected if e.method == "POST"]
    assert {e.template for e in posts} >= {"/v1/tasks", "/v1/rpc/{endpoint}"}
    headers = {"content-type": "application/json"}
    for endpoint in protected:
        answer = live.anonymous.request(
            endpoint.method, endpoint.path(task_id), content=body, headers=headers
        )
        assert answer.status_code == 401, (endpoint, answer.text)
        envelope(answer, 401, "AUTHENTICATION_REQUIRED")
        assert answer.headers["www-authenticate"].startswith("Bearer")
    created = live.alice.post("/v1/tasks", content=body, headers=headers)
    envelope(created, 400, "VALIDATION_ERROR")
    assert len(live.manager.list_tasks()) == 1  # nothing was created by any of them


# -- 20: no bare redirects; every framework answer is an envelope ------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/tasks//", 404, "NOT_FOUND"),
        ("GET", "/v1/tasks/", 404, "NOT_FOUND"),
        ("GET", "/v1/stats/", 404, "NOT_FOUND"),
        ("POST", "/v1/tasks/", 404, "NOT_FOUND"),
        ("GET", "/healthz/", 404, "NOT_FOUND"),
        ("GET", "//v1/tasks", 404, "NOT_FOUND"),
        ("GET", "/nothing/here", 404, "NOT_FOUND"),
        ("DELETE", "/v1/tasks", 400, "VALIDATION_ERROR"),
        ("PUT", "/healthz", 400, "VALIDATION_ERROR"),
    ],
)
def test_a_path_or_method_that_is_not_a_route_answers_an_envelope_never_a_redirect(
    live: Live, method: str, path: str, status: int, code: str
) -> None:
    """A trailing slash, a doubled slash or an unknown path is a NOT_FOUND envelope and
    a wrong method a VALIDATION_ERROR one that names it: never a bare 307."""
    answer = live.alice.request(method, path, follow_redirects=False)
    assert answer.status_code != 307, answer.headers
    assert "location" not in answer.headers
    body = envelope(answer, status, code)
    assert method in body["error"]["message"]


# -- 21: numbers are numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"timeout": "5"}, "body.timeout"),
        ({"timeout": True}, "body.timeout"),
        ({"delay": "0"}, "body.delay"),
        ({"delay": False}, "body.delay"),
        ({"memory_limit_mb": "64", "isolation": "process"}, "body.memory_limit_mb"),
        ({"cpu_time_limit": True, "isolation": "process"}, "body.cpu_time_limit"),
        ({"retry": {"max_attempts": "3"}}, "body.retry.max_attempts"),
        ({"retry": {"max_attempts": True}}, "body.retry.max_attempts"),
        ({"retry": {"max_attempts": 2.0}}, "body.retry.max_attempts"),
        ({"retry": {"backoff": "1"}}, "body.retry.backoff"),
        ({"retry": {"jitter": 1}}, "body.retry.jitter"),
        ({"retry": {"jitter": "true"}}, "body.retry.jitter"),
        ({"callback_on_progress": 0}, "body.callback_on_progress"),
        ({"operation": 5}, "body.operation"),
        ({"depends_on": [5]}, "body.depends_on.0"),
        ({"run_at": 1_900_000_000}, "body.run_at"),
        ({"run_at": True}, "body.run_at"),
    ],
)
def test_a_number_bool_or_string_field_takes_only_its_own_json_type(
    live: Live, fields: dict[str, Any], location: str
) -> None:
    """ "5" is not a number, true is not 1, 2.0 is not an int: VALIDATION_ERROR naming
    the field, and no task is created."""
    answer = live.alice.post("/v1/tasks", json={"operation": "echo", **fields})
    body = envelope(answer, 400, "VALIDATION_ERROR")
    locations = [p["location"] for p in body["error"]["details"]["problems"]]
    assert location in locations, body
    assert location in body["error"]["message"] or locations[0] != location
    assert live.manager.list_tasks() == []


def test_the_same_fields_with_their_own_types_are_accepted(live: Live) -> None:
    """The strict request model still takes every field in its JSON type (an int where
    a number is asked, an ISO-8601 string for run_at)."""
    soon = (datetime.now(UTC) + timedelta(seconds=0.01)).isoformat()
    body = {
        "operation": "echo",
        "params": {"k": string.ascii_letters},
        "timeout": 5,
        "delay": 0.0,
        "priority": "high",
        "retry": {"max_attempts": 2, "backoff": 0, "max_backoff": 1, "jitter": False},
        "callback_on_progress": False,
        "run_at": soon,
    }
    answer = live.alice.post("/v1/tasks", json={k: v for k, v in body.items() if k != "delay"})
    task_id = envelope(answer, 202)["data"]["task_id"]
    assert live.manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    answer = live.alice.post("/v1/tasks", json={k: v for k, v in body.items() if k != "run_at"})
    task_id = envelope(answer, 202)["data"]["task_id"]
    assert live.manager.wait(task_id, timeout=WAIT)["result"] == {"echo": body["params"]}
