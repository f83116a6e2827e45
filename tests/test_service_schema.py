"""The service's OpenAPI document, and schemathesis against the live server: generated
requests (valid and invalid) must never get a server error, and every answer must match
the documented status codes and schemas."""

from __future__ import annotations

import re
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing
import httpx
import hypothesis
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests import process_ops, service_harness
from tests.service_harness import running_service

WAIT = 15.0
TOKEN = "schema-user-token"
ADMIN_TOKEN = "schema-admin-token"
EXAMPLES = 25  # per operation and generation mode

CORE_OPERATIONS = {
    ("GET", "/healthz"),
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/{task_id}"),
    ("POST", "/v1/tasks/{task_id}/cancel"),
    ("GET", "/v1/stats"),
    ("POST", "/v1/rpc/{endpoint}"),
}
UNDOCUMENTED = frozenset(
    {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/", "/static/{name}"}
)
"""Routes that are not part of the API and so not in its OpenAPI document: the document
itself, its viewers, and the dashboard's page and files."""

RPC_ENDPOINTS = [
    "storycore.task.status",
    "storycore.task.cancel",
    "storycore.task.list",
    "storycore.task.stats",
    "storycore.group.status",
    "storycore.group.cancel",
]
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def streams(path: str) -> bool:
    """Event streams never end: schemathesis would wait on them forever."""
    return path.endswith("/events")


@dataclass
class Live:
    url: str
    manager: TaskManager
    app: FastAPI
    task_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)


@pytest.fixture
def live(
    make_manager: Callable[..., TaskManager], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Live]:
    apps: list[FastAPI] = []
    real_create_app = service_harness.create_app

    def capturing(manager: TaskManager, config: ServiceConfig) -> FastAPI:
        apps.append(real_create_app(manager, config))
        return apps[-1]

    monkeypatch.setattr(service_harness, "create_app", capturing)
    manager = make_manager(num_workers=4, stop_grace=0.5)
    # a module-level function, so that isolation="process" can run it too
    manager.register_operation("echo", process_ops.echo)
    tokens = TokenStore(
        [
            (hash_token(TOKEN), Principal("schema", "user")),
            (hash_token(ADMIN_TOKEN), Principal("ops", "admin")),
        ]
    )
    with running_service(manager, ServiceConfig(tokens=tokens)) as service:
        live = Live(service.url, manager, apps[-1])
        live.task_ids += [manager.create_task("echo", {"i": i}, user="schema") for i in range(3)]
        live.task_ids.append(manager.create_task("echo", {}, user="schema", delay=3600))
        live.task_ids.append(manager.create_task("echo", {}, user="someone-else"))
        live.group_ids.append(
            manager.create_group([{"operation": "echo", "user": "schema", "delay": 3600}] * 2)
        )
        yield live


def openapi(live: Live) -> dict[str, Any]:
    response = httpx.get(f"{live.url}/openapi.json", timeout=WAIT)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def served(app: FastAPI) -> dict[str, set[str]]:
    """Path -> methods of every route the app serves (included routers flattened)."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(iterate(app.routes)) if iterate is not None else list(app.routes)
    paths: dict[str, set[str]] = {}
    for route in routes:
        methods = getattr(route, "methods", None)
        assert methods, f"a route without methods (a mount? a websocket?): {route!r}"
        paths.setdefault(route.path, set()).update(m for m in methods if m != "HEAD")
    return paths


# -- the document -------------------------------------------------------------------------


def test_the_openapi_document_lists_every_route(live: Live) -> None:
    document = openapi(live)
    assert document["openapi"].startswith("3.")
    documented = {
        path: {method.upper() for method in operations}
        for path, operations in document["paths"].items()
    }
    routes = served(live.app)
    assert {(m, p) for p, methods in documented.items() for m in methods} >= CORE_OPERATIONS
    for path, methods in routes.items():
        if path in UNDOCUMENTED:
            assert path not in documented
            continue
        assert documented.get(path) == methods, f"{path} {methods} is not in the document"
    for path in documented:
        assert path in routes, f"the document lists {path}, which nothing serves"


def test_the_document_describes_the_envelope_and_the_error_answers(live: Live) -> None:
    document = openapi(live)
    envelope = document["components"]["schemas"]["Envelope"]
    assert set(envelope["properties"]) == {"status", "data", "error", "metadata"}
    assert set(envelope["required"]) >= {"status", "metadata"}
    for path, method in (
        ("/v1/tasks", "post"),
        ("/v1/tasks/{task_id}", "get"),
        ("/v1/tasks/{task_id}/cancel", "post"),
        ("/v1/rpc/{endpoint}", "post"),
    ):
        answers = document["paths"][path][method]["responses"]
        assert {"400", "401", "404", "409", "503"} <= set(answers), (path, answers)
        schema = answers["404"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Envelope"}
    assert "202" in document["paths"]["/v1/tasks"]["post"]["responses"]
    create = document["components"]["schemas"]["CreateTaskRequest"]
    assert create["additionalProperties"] is False
    assert create["required"] == ["operation"]


# -- schemathesis -------------------------------------------------------------------------


@dataclass
class Run:
    examples: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def steer(case: Any, data: st.DataObject, live: Live) -> None:
    """Make some generated positive cases hit real things: a registered operation, an
    existing task or group, a known RPC endpoint (else nearly everything is a 404); a
    quarter of the creates and of the RPC cases are exactly what they take (with only
    generated bodies steered, 25 cases of one of them held no success in about one run
    in 25)."""
    body = case.body
    if isinstance(body, dict) and "operation" in body and data.draw(st.booleans()):
        if data.draw(st.booleans()):  # the least a create takes
            case.body = body = {
                "operation": "echo",
                "params": {"n": data.draw(st.integers(0, 1000))},
            }
        body["operation"] = "echo"
        for key in ("depends_on", "callback_url"):
            if data.draw(st.booleans()):
                body.pop(key, None)
    parameters = case.path_parameters or {}
    if "task_id" in parameters and data.draw(st.booleans()):
        parameters["task_id"] = data.draw(st.sampled_from(live.task_ids))
    if "endpoint" in parameters and data.draw(st.booleans()):
        endpoint = parameters["endpoint"] = data.draw(st.sampled_from(RPC_ENDPOINTS))
        if data.draw(st.booleans()):
            case.body = rpc_params(endpoint, data, live)
        elif isinstance(body, dict) and data.draw(st.booleans()):
            body["task_id"] = data.draw(st.sampled_from(live.task_ids))
            body["group_id"] = data.draw(st.sampled_from(live.group_ids))


def rpc_params(endpoint: str, data: st.DataObject, live: Live) -> dict[str, str]:
    """The params ``endpoint`` takes, naming a live task or group."""
    if endpoint.startswith("storycore.group."):
        return {"group_id": data.draw(st.sampled_from(live.group_ids))}
    if endpoint in ("storycore.task.status", "storycore.task.cancel"):
        return {"task_id": data.draw(st.sampled_from(live.task_ids))}
    return {}


def fuzz(live: Live, mode: GenerationMode, headers: dict[str, str]) -> dict[str, Run]:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json", timeout=WAIT)
    runs: dict[str, Run] = {}
    with requests.Session() as session:

        def checker(operation: Any, run: Run) -> Callable[[], None]:
            @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                verbosity=hypothesis.Verbosity.quiet,
            )
            def check(case: Any, data: st.DataObject) -> None:
                run.examples += 1
                if mode is GenerationMode.POSITIVE:
                    steer(case, data, live)
                response = case.call_and_validate(
                    base_url=live.url,
                    session=session,
                    headers=headers,
                    checks=CHECKS,
                    timeout=WAIT,
                )
                run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1

            return check

        for result in schema.get_all_operations():
            operation = result.ok()
            if streams(operation.path):
                continue
            run = runs[operation.label] = Run()
            try:
                checker(operation, run)()
            except Unsatisfiable:
                # nothing of this operation can be made invalid (no parameters, or free-
                # form strings only): there is no negative case to send
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # every failure is reported, not only the first
                run.failures.append("".join(traceback.format_exception_only(exc))[:3000])
    return runs


def assert_clean(runs: dict[str, Run]) -> None:
    failures = {label: run.failures for label, run in runs.items() if run.failures}
    assert not failures, "\n\n".join(f"{label}:\n" + "\n".join(f) for label, f in failures.items())
    labels = {tuple(label.split(" ", 1)) for label in runs}
    assert labels >= CORE_OPERATIONS


def test_schemathesis_valid_requests(live: Live) -> None:
    runs = fuzz(live, GenerationMode.POSITIVE, {"Authorization": f"Bearer {TOKEN}"})
    assert_clean(runs)
    assert runs["POST /v1/tasks"].examples >= EXAMPLES // 2
    # the steering made real calls succeed, so the success answers were checked too
    assert 202 in runs["POST /v1/tasks"].statuses
    assert 200 in runs["GET /v1/tasks/{task_id}"].statuses
    assert 200 in runs["POST /v1/rpc/{endpoint}"].statuses
    assert 200 in runs["GET /v1/tasks"].statuses
    assert runs["GET /v1/stats"].statuses == {200: runs["GET /v1/stats"].examples}


def test_schemathesis_invalid_requests(live: Live) -> None:
    runs = fuzz(live, GenerationMode.NEGATIVE, {"Authorization": f"Bearer {TOKEN}"})
    assert_clean(runs)
    create = runs["POST /v1/tasks"]
    assert create.examples >= EXAMPLES // 2
    assert set(create.statuses) == {400}, create.statuses


def test_schemathesis_as_admin_and_without_a_token(live: Live) -> None:
    assert_clean(fuzz(live, GenerationMode.POSITIVE, {"Authorization": f"Bearer {ADMIN_TOKEN}"}))
    anonymous = fuzz(live, GenerationMode.POSITIVE, {})
    assert_clean(anonymous)
    for label, run in anonymous.items():
        if label != "GET /healthz":
            assert set(run.statuses) <= {401, 404}, (label, run.statuses)
            assert 401 in run.statuses or run.examples == 0, (label, run.statuses)


def test_a_documented_path_parameter_is_any_string(live: Live) -> None:
    """Sanity check of what schemathesis sends: the path templates take free text, which
    the service answers with a 404 envelope (never a 500) whatever it is."""
    document = openapi(live)
    template = next(p for p in document["paths"] if p.startswith("/v1/tasks/{"))
    assert re.fullmatch(r"/v1/tasks/\{task_id\}", template)
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for task_id in ("%20", "..", "a" * 300, str(uuid.uuid4()), "%F0%9F%98%80"):
            response = client.get(f"/v1/tasks/{task_id}")
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "NOT_FOUND"
