"""The endpoint router and the task endpoints, driven against a real TaskManager."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from actors import QueueFullError, TaskContext
from storycore_tasks import (
    APIResponse,
    APIRouter,
    RequestContext,
    TaskManager,
    register_task_endpoints,
)
from storycore_tasks.errors import REMEDIATION_BY_CODE, ErrorCodes

MakeManager = Callable[..., TaskManager]

STATUS = "storycore.task.status"
CANCEL = "storycore.task.cancel"
LIST = "storycore.task.list"
STATS = "storycore.task.stats"
RESUME = "storycore.task.resume"
ALL_PATHS = [
    "storycore.group.cancel",
    "storycore.group.status",
    CANCEL,
    LIST,
    RESUME,
    STATS,
    STATUS,
]

WAIT_SECONDS = 10.0
"""Upper bound for every barrier; a healthy run never gets near it."""


# -- helpers ---------------------------------------------------------------------------


def router_for(manager: TaskManager) -> APIRouter:
    router = APIRouter()
    register_task_endpoints(router, manager)
    return router


def double(params: Mapping[str, Any], task: TaskContext) -> int:
    value: int = params["x"]
    return value * 2


def returning(value: Any) -> Callable[[Mapping[str, Any], TaskContext], Any]:
    def operation(params: Mapping[str, Any], task: TaskContext) -> Any:
        return value

    return operation


def boom(params: Mapping[str, Any], task: TaskContext) -> None:
    raise ValueError("bad frame")


def validation_error(message: str, **details: Any) -> dict[str, Any]:
    return {
        "code": "VALIDATION_ERROR",
        "message": message,
        "details": details,
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.VALIDATION_ERROR],
    }


def task_id_type_error(got: str) -> dict[str, Any]:
    return validation_error(
        f"task_id is required and must be a non-empty string (got {got})", field="task_id"
    )


def not_found(task_id: str) -> dict[str, Any]:
    return {
        "code": "NOT_FOUND",
        "message": f"Task {task_id} not found",
        "details": {"task_id": task_id},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.NOT_FOUND],
    }


def error_of(response: APIResponse) -> dict[str, Any]:
    assert response.error is not None, f"expected an error, got {response.to_dict()}"
    return response.error.to_dict()


@contextmanager
def blocked_worker(manager: TaskManager) -> Iterator[str]:
    """Occupy a worker with an operation that runs until the block exits (always released)."""
    started = threading.Event()
    release = threading.Event()

    def hold(params: Mapping[str, Any], task: TaskContext) -> str:
        started.set()
        release.wait(WAIT_SECONDS)
        return "released"

    blocker = manager.create_task(hold)
    try:
        assert started.wait(WAIT_SECONDS), "the blocking operation never started"
        yield blocker
    finally:
        release.set()
    assert manager.wait(blocker, timeout=WAIT_SECONDS)["status"] == "completed"


class Frame:
    """A result object the JSON encoder does not know."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"Frame({self.index})"


# -- storycore.task.status ---------------------------------------------------------------


def test_status_of_a_completed_task_is_the_full_status_dict(make_manager: MakeManager) -> None:
    """GET status answers success with exactly the manager's status dict, result included."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    task_id = manager.create_task(double, {"x": 21}, user="ana")
    final = manager.wait(task_id, timeout=WAIT_SECONDS)

    response = router.route_request(STATUS, "GET", {"task_id": task_id})

    assert response.status == "success"
    assert response.error is None
    assert response.http_status == 200
    assert final == response.data
    expected_keys = {
        "task_id",
        "status",
        "attempt",
        "progress",
        "priority",
        "isolation",
        "operation",
        "params",
        "user",
        "timeout",
        "created_at",
        "updated_at",
        "started_at",
        "ended_at",
        "scheduled_for",
        "next_attempt_at",
        "depends_on",
        "group_id",
        "resources",
        "heartbeat_timeout",
        "last_heartbeat_at",
        "checkpoint",
        "checkpointed_at",
        "resources_held",
        "waiting_for",
        "result",
    }
    assert expected_keys == set(response.data)
    assert task_id == response.data["task_id"]
    assert response.data["status"] == "completed"
    assert response.data["result"] == 42
    assert response.data["progress"] == 1.0
    assert response.data["priority"] == "normal"
    assert response.data["user"] == "ana"
    assert response.data["params"] == {"x": 21}


def test_status_of_a_failed_task_carries_the_error_dict(make_manager: MakeManager) -> None:
    """A failed task's status answers success; its data holds the INTERNAL_ERROR dict."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    task_id = manager.create_task(boom)
    manager.wait(task_id, timeout=WAIT_SECONDS)

    data = router.route_request(STATUS, "GET", {"task_id": task_id}).to_dict()["data"]

    assert data["status"] == "failed"
    assert {
        "code": "INTERNAL_ERROR",
        "message": "Operation raised ValueError: bad frame",
        "details": {"exception_type": "ValueError", "exception_message": "bad frame"},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.INTERNAL_ERROR],
    } == data["error"]


def test_status_of_an_unknown_well_formed_id_is_not_found(make_manager: MakeManager) -> None:
    """A UUID the manager never issued answers NOT_FOUND (404) naming the id."""
    router = router_for(make_manager(num_workers=1))
    task_id = str(uuid.uuid4())

    response = router.route_request(STATUS, "GET", {"task_id": task_id})

    assert response.status == "error"
    assert response.http_status == 404
    assert not_found(task_id) == error_of(response)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, task_id_type_error("missing"), id="missing"),
        pytest.param({"task_id": None}, task_id_type_error("missing"), id="none"),
        pytest.param({"task_id": ""}, task_id_type_error("str ''"), id="empty"),
        pytest.param({"task_id": "   "}, task_id_type_error("str '   '"), id="whitespace"),
        pytest.param({"task_id": 5}, task_id_type_error("int 5"), id="int"),
        pytest.param({"task_id": ["a"]}, task_id_type_error("list ['a']"), id="list"),
    ],
)
@pytest.mark.parametrize(("path", "method"), [(STATUS, "GET"), (CANCEL, "POST")])
def test_a_bad_task_id_is_a_validation_error(
    make_manager: MakeManager,
    path: str,
    method: str,
    params: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    """A missing, empty, blank or non-string task_id answers VALIDATION_ERROR (400)."""
    router = router_for(make_manager(num_workers=1))

    response = router.route_request(path, method, params)

    assert response.status == "error"
    assert response.http_status == 400
    assert expected == error_of(response)


# -- storycore.task.cancel ---------------------------------------------------------------


def test_cancel_of_a_pending_task_answers_the_storycore_shape(make_manager: MakeManager) -> None:
    """POST cancel of a pending task answers exactly StoryCore's dict; the task reads cancelled."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    ran = threading.Event()

    def must_not_run(params: Mapping[str, Any], task: TaskContext) -> None:
        ran.set()

    with blocked_worker(manager):
        task_id = manager.create_task(must_not_run)
        assert manager.get_task_status(task_id)["status"] == "pending"  # type: ignore[index]

        response = router.route_request(CANCEL, "POST", {"task_id": task_id})

        assert response.status == "success"
        assert response.http_status == 200
        assert {
            "task_id": task_id,
            "cancelled": True,
            "message": "Task cancellation requested",
        } == response.data
        status = router.route_request(STATUS, "GET", {"task_id": task_id}).data
        assert status["status"] == "cancelled"

    assert manager.wait(task_id, timeout=WAIT_SECONDS)["status"] == "cancelled"
    assert not ran.is_set()


def test_cancel_of_a_finished_task_is_a_conflict(make_manager: MakeManager) -> None:
    """POST cancel of a completed task answers CONFLICT (409) with details.current_status."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    task_id = manager.create_task(double, {"x": 1})
    manager.wait(task_id, timeout=WAIT_SECONDS)

    response = router.route_request(CANCEL, "POST", {"task_id": task_id})

    assert response.http_status == 409
    assert {
        "code": "CONFLICT",
        "message": f"Task {task_id} cannot be cancelled: it is already completed",
        "details": {"task_id": task_id, "current_status": "completed"},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.CONFLICT],
    } == error_of(response)
    assert manager.get_task_status(task_id)["status"] == "completed"  # type: ignore[index]


def test_cancel_of_an_unknown_id_is_not_found(make_manager: MakeManager) -> None:
    """POST cancel of a UUID the manager never issued answers NOT_FOUND (404)."""
    router = router_for(make_manager(num_workers=1))
    task_id = str(uuid.uuid4())

    response = router.route_request(CANCEL, "POST", {"task_id": task_id})

    assert response.http_status == 404
    assert not_found(task_id) == error_of(response)


# -- routing -------------------------------------------------------------------------------


def test_the_task_endpoints_are_registered(make_manager: MakeManager) -> None:
    """register_task_endpoints serves status, list and stats by GET and cancel and resume
    by POST, and a group's status by GET and its cancellation by POST."""
    router = router_for(make_manager(num_workers=1))

    assert router.endpoints() == [
        ("storycore.group.cancel", "POST"),
        ("storycore.group.status", "GET"),
        (CANCEL, "POST"),
        (LIST, "GET"),
        (RESUME, "POST"),
        (STATS, "GET"),
        (STATUS, "GET"),
    ]


@pytest.mark.parametrize("path", ["storycore.task.nope", "", None, 42])
def test_an_unknown_endpoint_is_not_found(make_manager: MakeManager, path: Any) -> None:
    """An unknown path (or a non-string one) answers NOT_FOUND listing the served paths."""
    router = router_for(make_manager(num_workers=1))

    response = router.route_request(path, "GET", {})

    assert response.http_status == 404
    assert {
        "code": "NOT_FOUND",
        "message": f"no endpoint {path!r}",
        "details": {
            "path": path if isinstance(path, str) else repr(path),
            "available": ALL_PATHS,
        },
        "remediation": "Use one of the endpoints listed in details.available.",
    } == error_of(response)


@pytest.mark.parametrize(
    ("path", "method", "allowed"),
    [
        (STATUS, "POST", ["GET"]),
        (STATUS, "DELETE", ["GET"]),
        (CANCEL, "GET", ["POST"]),
        (LIST, "FETCH", ["GET"]),
        (STATS, None, ["GET"]),
    ],
)
def test_a_wrong_method_is_a_validation_error(
    make_manager: MakeManager, path: str, method: Any, allowed: list[str]
) -> None:
    """A method the endpoint does not serve answers VALIDATION_ERROR with allowed_methods."""
    router = router_for(make_manager(num_workers=1))

    response = router.route_request(path, method, {"task_id": str(uuid.uuid4())})

    assert response.http_status == 400
    error = error_of(response)
    assert error["code"] == "VALIDATION_ERROR"
    assert {"allowed_methods": allowed} == error["details"]
    assert (
        f"{path} does not accept method {method!r}; use {' or '.join(allowed)}" == error["message"]
    )


def test_the_method_is_case_insensitive(make_manager: MakeManager) -> None:
    """'get' reaches the GET handler: methods are normalised to upper case."""
    router = router_for(make_manager(num_workers=1))

    response = router.route_request(STATS, "get")

    assert response.status == "success"


@pytest.mark.parametrize(
    "params", [["task_id"], "task_id=x", 7, ("a", "b")], ids=["list", "str", "int", "tuple"]
)
def test_params_that_are_not_a_mapping_are_a_validation_error(
    make_manager: MakeManager, params: Any
) -> None:
    """Params that are not a mapping answer VALIDATION_ERROR naming the type received."""
    router = router_for(make_manager(num_workers=1))

    response = router.route_request(STATUS, "GET", params)

    assert response.http_status == 400
    assert validation_error(
        f"params must be an object of named parameters, got {type(params).__name__}"
    ) == error_of(response)


def test_params_none_means_no_params(make_manager: MakeManager) -> None:
    """params=None is an empty request: stats answers, status asks for the task_id."""
    router = router_for(make_manager(num_workers=1))

    assert router.route_request(STATS, "GET", None).status == "success"
    assert task_id_type_error("missing") == error_of(router.route_request(STATUS, "GET", None))


def test_registering_the_same_path_and_method_twice_raises() -> None:
    """register refuses a second handler for the same (path, method), whatever the case."""
    router = APIRouter()
    router.register("x.y", "GET", lambda params, context: 1)

    with pytest.raises(ValueError, match=r"^GET x\.y is already registered$"):
        router.register("x.y", "GET", lambda params, context: 2)
    with pytest.raises(ValueError, match=r"^GET x\.y is already registered$"):
        router.register("x.y", "get", lambda params, context: 3)
    assert router.endpoints() == [("x.y", "GET")]


def test_registering_the_task_endpoints_twice_raises(make_manager: MakeManager) -> None:
    """register_task_endpoints on a router that already has them raises ValueError."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)

    with pytest.raises(ValueError, match="already registered"):
        register_task_endpoints(router, manager)


@pytest.mark.parametrize("method", ["FETCH", "", None, 1])
def test_registering_a_bad_method_raises(method: Any) -> None:
    """register refuses a method that is not GET, POST, PUT, PATCH or DELETE."""
    router = APIRouter()

    expected = r"^method must be one of DELETE, GET, PATCH, POST, PUT, got "
    with pytest.raises(ValueError, match=expected):
        router.register("x.y", method, lambda params, context: 1)
    assert router.endpoints() == []


def test_registering_a_bad_path_or_handler_raises() -> None:
    """register refuses an empty path (ValueError) and a non-callable handler (TypeError)."""
    router = APIRouter()

    with pytest.raises(ValueError, match="path must be a non-empty string"):
        router.register("", "GET", lambda params, context: 1)
    with pytest.raises(TypeError, match=r"^handler must be callable, got int$"):
        router.register("x.y", "GET", 1)  # type: ignore[arg-type]
    assert router.endpoints() == []


def test_a_handler_raising_maps_through_error_from_exception() -> None:
    """A handler's typed error maps to its code; an unexpected one becomes INTERNAL_ERROR."""
    router = APIRouter()

    def full(params: Mapping[str, Any], context: RequestContext) -> Any:
        raise QueueFullError(3)

    def broken(params: Mapping[str, Any], context: RequestContext) -> Any:
        raise RuntimeError("kaput")

    router.register("full", "POST", full)
    router.register("broken", "GET", broken)

    full_response = router.route_request("full", "POST")
    broken_response = router.route_request("broken", "GET")

    assert full_response.http_status == 503
    assert error_of(full_response)["code"] == "SERVICE_UNAVAILABLE"
    assert error_of(full_response)["details"] == {"max_pending": 3}
    assert broken_response.http_status == 500
    assert {
        "code": "INTERNAL_ERROR",
        "message": "RuntimeError: kaput",
        "details": {"exception_type": "RuntimeError"},
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.INTERNAL_ERROR],
    } == error_of(broken_response)


# -- storycore.task.list -----------------------------------------------------------------


def test_list_without_a_filter_returns_every_task(make_manager: MakeManager) -> None:
    """GET list with no params answers every retained task, in creation order, with a count."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    ids = [manager.create_task(double, {"x": i}) for i in range(3)]
    finals = [manager.wait(task_id, timeout=WAIT_SECONDS) for task_id in ids]

    response = router.route_request(LIST, "GET")

    assert response.status == "success"
    assert {"tasks": finals, "count": 3} == response.data


def test_list_filters_by_status_and_honours_limit(make_manager: MakeManager) -> None:
    """GET list with status returns only tasks in that state; limit caps how many."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    done = [manager.create_task(double, {"x": i}) for i in range(3)]
    failed = manager.create_task(boom)
    for task_id in [*done, failed]:
        manager.wait(task_id, timeout=WAIT_SECONDS)

    completed = router.route_request(LIST, "GET", {"status": "completed"}).data
    failures = router.route_request(LIST, "GET", {"status": "failed"}).data
    limited = router.route_request(LIST, "GET", {"status": "completed", "limit": 2}).data
    none = router.route_request(LIST, "GET", {"limit": 0}).data
    cancelled = router.route_request(LIST, "GET", {"status": "cancelled"}).data

    assert done == [t["task_id"] for t in completed["tasks"]]
    assert completed["count"] == 3
    assert [failed] == [t["task_id"] for t in failures["tasks"]]
    assert failures["count"] == 1
    assert done[:2] == [t["task_id"] for t in limited["tasks"]]
    assert limited["count"] == 2
    assert none == {"tasks": [], "count": 0}
    assert cancelled == {"tasks": [], "count": 0}


def test_list_of_pending_tasks_is_in_run_order(make_manager: MakeManager) -> None:
    """GET list status=pending answers the waiting tasks in the order they will run."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)

    with blocked_worker(manager) as blocker:
        low = manager.create_task(double, {"x": 1}, priority="low")
        high = manager.create_task(double, {"x": 2}, priority="high")
        normal = manager.create_task(double, {"x": 3})

        pending = router.route_request(LIST, "GET", {"status": "pending"}).data
        running = router.route_request(LIST, "GET", {"status": "running"}).data

        assert [high, normal, low] == [t["task_id"] for t in pending["tasks"]]
        assert [blocker] == [t["task_id"] for t in running["tasks"]]

    for task_id in (low, high, normal):
        manager.wait(task_id, timeout=WAIT_SECONDS)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"status": "bogus"},
            "unknown status 'bogus'; use one of pending, running, completed, failed, cancelled",
        ),
        (
            {"status": 3},
            "unknown status 3; use one of pending, running, completed, failed, cancelled",
        ),
        ({"limit": -1}, "limit must be >= 0, got -1"),
        ({"limit": "3"}, "limit must be an int, got str"),
        ({"limit": 2.0}, "limit must be an int, got float"),
        ({"limit": True}, "limit must be an int, got bool"),
    ],
    ids=["unknown-status", "int-status", "negative-limit", "str-limit", "float-limit", "bool"],
)
def test_list_with_a_bad_status_or_limit_is_a_validation_error(
    make_manager: MakeManager, params: dict[str, Any], message: str
) -> None:
    """GET list with an unknown status or a limit that is not an int >= 0 is VALIDATION_ERROR."""
    router = router_for(make_manager(num_workers=1))

    response = router.route_request(LIST, "GET", params)

    assert response.http_status == 400
    assert validation_error(message) == error_of(response)


# -- storycore.task.stats ----------------------------------------------------------------


def test_stats_reports_counts_of_the_tasks_run(make_manager: MakeManager) -> None:
    """GET stats answers the manager's stats: totals, per-status and lifetime counts."""
    manager = make_manager(num_workers=2)
    router = router_for(manager)
    ids = [manager.create_task(double, {"x": i}, priority="high") for i in range(2)]
    ids.append(manager.create_task(boom))
    for task_id in ids:
        manager.wait(task_id, timeout=WAIT_SECONDS)

    response = router.route_request(STATS, "GET")

    assert response.status == "success"
    data = response.data
    assert {
        "total_tasks",
        "queue_size",
        "num_workers",
        "running",
        "stopping",
        "scheduled",
        "held",
        "accepting_tasks",
        "resources",
        "status_counts",
        "priority_counts",
        "lifetime_stats",
        "timers",
        "process_pool",
        "operations",
        "schedules",
        "store",
        "restarts",
        "injected_faults",
        "async_concurrency",
        "async",
        "ray",
    } == set(data)
    assert data["ray"] == {"max_in_flight": 0, "running": 0, "stopping": 0}  # no Ray back-end
    assert data["total_tasks"] == 3
    assert data["queue_size"] == 0
    assert data["num_workers"] == 2
    assert True is data["accepting_tasks"]
    assert data["status_counts"] == {
        "pending": 0,
        "running": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
    }
    assert data["priority_counts"] == {"low": 0, "normal": 1, "high": 2, "critical": 0}
    assert data["lifetime_stats"] == {
        "total_created": 3,
        "total_completed": 2,
        "total_failed": 1,
        "total_cancelled": 0,
        "total_timed_out": 0,
        "total_stalled": 0,
    }
    assert data == json.loads(json.dumps(response.to_dict(), allow_nan=False))["data"]


# -- the envelope --------------------------------------------------------------------------


def test_a_success_envelope_has_storycore_shape(make_manager: MakeManager) -> None:
    """to_dict is StoryCore's envelope: status, data, error, metadata with its four keys."""
    router = router_for(make_manager(num_workers=1))

    envelope = router.route_request(STATS, "GET").to_dict()

    assert list(envelope) == ["status", "data", "error", "metadata"]
    assert envelope["status"] == "success"
    assert envelope["error"] is None
    metadata = envelope["metadata"]
    assert list(metadata) == ["request_id", "timestamp", "duration_ms", "api_version"]
    assert metadata["api_version"] == "v1"
    assert str(uuid.UUID(metadata["request_id"])) == metadata["request_id"]
    timestamp = datetime.fromisoformat(metadata["timestamp"])
    assert timestamp.utcoffset().total_seconds() == 0.0  # type: ignore[union-attr]
    assert isinstance(metadata["duration_ms"], float)
    assert metadata["duration_ms"] >= 0.0


def test_an_error_envelope_has_storycore_shape(make_manager: MakeManager) -> None:
    """An error envelope has data None and the ErrorDetails dict under error."""
    router = router_for(make_manager(num_workers=1))
    context = RequestContext(request_id="req-7")

    envelope = router.route_request(STATUS, "GET", {}, context).to_dict()

    assert {
        "status": "error",
        "data": None,
        "error": task_id_type_error("missing"),
        "metadata": envelope["metadata"],
    } == envelope
    assert envelope["metadata"]["request_id"] == "req-7"


def test_the_request_id_of_the_context_is_echoed(make_manager: MakeManager) -> None:
    """metadata.request_id is the RequestContext's request_id, on success and on error."""
    router = router_for(make_manager(num_workers=1))
    context = RequestContext(request_id="req-42", user="ana")

    ok = router.route_request(STATS, "GET", {}, context)
    bad = router.route_request("nope", "GET", {}, context)

    assert ok.metadata.request_id == "req-42"
    assert bad.metadata.request_id == "req-42"
    assert ok.to_dict()["metadata"]["request_id"] == "req-42"


def test_the_router_api_version_is_reported(make_manager: MakeManager) -> None:
    """metadata.api_version is the version the router was built with."""
    manager = make_manager(num_workers=1)
    router = APIRouter(api_version="v2")
    register_task_endpoints(router, manager)

    assert router.route_request(STATS, "GET").to_dict()["metadata"]["api_version"] == "v2"
    assert router.route_request("nope", "GET").to_dict()["metadata"]["api_version"] == "v2"


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        pytest.param(Frame(3), "Frame(3)", id="custom-object"),
        pytest.param((1, "a"), [1, "a"], id="tuple"),
        pytest.param({7}, [7], id="set"),
        pytest.param(float("nan"), "nan", id="nan"),
        pytest.param(float("inf"), "inf", id="inf"),
        pytest.param({1: (Frame(1), {2})}, {"1": ["Frame(1)", [2]]}, id="nested"),
        pytest.param(b"raw", "b'raw'", id="bytes"),
    ],
)
def test_to_dict_is_json_serialisable_for_any_result(
    make_manager: MakeManager, result: Any, expected: Any
) -> None:
    """A status envelope json.dumps cleanly (strict JSON) whatever the task returned."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    task_id = manager.create_task(returning(result))
    manager.wait(task_id, timeout=WAIT_SECONDS)

    envelope = router.route_request(STATUS, "GET", {"task_id": task_id}).to_dict()
    text = json.dumps(envelope, allow_nan=False)

    assert expected == json.loads(text)["data"]["result"]


def test_to_dict_is_json_serialisable_for_a_self_referencing_result(
    make_manager: MakeManager,
) -> None:
    """to_dict promises json.dumps always succeeds, even for a result that contains itself."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    task_id = manager.create_task(returning(cyclic))
    manager.wait(task_id, timeout=WAIT_SECONDS)

    response = router.route_request(STATUS, "GET", {"task_id": task_id})
    text = json.dumps(response.to_dict(), allow_nan=False)

    assert json.loads(text)["data"]["result"][0] == 1


def test_a_timed_out_task_reports_a_json_safe_partial_result(make_manager: MakeManager) -> None:
    """A TIMEOUT error's partial_result goes through the envelope as plain JSON."""
    manager = make_manager(num_workers=1)
    router = router_for(manager)

    def slow(params: Mapping[str, Any], task: TaskContext) -> str:
        task.partial_result = {"frames": (1, 2), "seen": {Frame(0)}}
        task.wait_cancelled(WAIT_SECONDS)
        return "late"

    task_id = manager.create_task(slow, timeout=0.1)
    assert manager.wait(task_id, timeout=WAIT_SECONDS)["status"] == "failed"

    envelope = router.route_request(STATUS, "GET", {"task_id": task_id}).to_dict()
    decoded = json.loads(json.dumps(envelope, allow_nan=False))

    assert {
        "code": "TIMEOUT",
        "message": "Operation exceeded timeout of 0.1 seconds",
        "details": {
            "timeout_seconds": 0.1,
            "partial_result": {"frames": [1, 2], "seen": ["Frame(0)"]},
        },
        "remediation": REMEDIATION_BY_CODE[ErrorCodes.TIMEOUT],
    } == decoded["data"]["error"]


def test_an_error_envelope_is_json_serialisable_with_odd_details() -> None:
    """The error part of to_dict is made JSON-safe too (details holding a tuple and a NaN)."""
    router = APIRouter()

    def picky(params: Mapping[str, Any], context: RequestContext) -> Any:
        from storycore_tasks.errors import ErrorDetails
        from storycore_tasks.router import APIError

        raise APIError(
            ErrorDetails.of(ErrorCodes.VALIDATION_ERROR, "nope", shape=(1, 2), ratio=float("nan"))
        )

    router.register("picky", "GET", picky)

    decoded = json.loads(
        json.dumps(router.route_request("picky", "GET").to_dict(), allow_nan=False)
    )

    assert decoded["error"]["details"] == {"shape": [1, 2], "ratio": "nan"}


@pytest.mark.parametrize(
    ("path", "method", "params", "expected_status"),
    [
        (STATS, "GET", {}, 200),
        (STATUS, "GET", {}, 400),
        (STATUS, "POST", {}, 400),
        (STATUS, "GET", {"task_id": "00000000-0000-0000-0000-000000000000"}, 404),
        ("nope", "GET", {}, 404),
    ],
)
def test_http_status_follows_the_error_code(
    make_manager: MakeManager,
    path: str,
    method: str,
    params: dict[str, Any],
    expected_status: int,
) -> None:
    """http_status is 200 for success, else the HTTP mapping of the error code."""
    router = router_for(make_manager(num_workers=1))

    assert expected_status == router.route_request(path, method, params).http_status


# -- bad requests leave other tasks alone --------------------------------------------------


def test_a_burst_of_bad_requests_never_disturbs_running_tasks(make_manager: MakeManager) -> None:
    """Bad requests answer errors while queued and running tasks all finish with their results."""
    manager = make_manager(num_workers=2)
    router = router_for(manager)
    gate = threading.Event()

    def gated_double(params: Mapping[str, Any], task: TaskContext) -> int:
        gate.wait(WAIT_SECONDS)
        value: int = params["x"]
        return value * 2

    ids = [manager.create_task(gated_double, {"x": i}) for i in range(6)]
    bad_requests: list[tuple[Any, Any, Any]] = [
        (STATUS, "GET", {}),
        (STATUS, "GET", {"task_id": ""}),
        (STATUS, "GET", {"task_id": "  "}),
        (STATUS, "GET", {"task_id": 1}),
        (STATUS, "GET", {"task_id": None}),
        (STATUS, "GET", {"task_id": ids[0][:-1]}),
        (STATUS, "GET", {"task_id": ids[0].upper() + "x"}),
        (STATUS, "POST", {"task_id": ids[0]}),
        (CANCEL, "POST", {"task_id": ids[1] + " "}),
        (CANCEL, "POST", {"task_id": [ids[1]]}),
        (CANCEL, "POST", {"task_id": str(uuid.uuid4())}),
        (CANCEL, "GET", {"task_id": ids[2]}),
        (CANCEL, "POST", [("task_id", ids[3])]),
        (LIST, "GET", {"status": "done"}),
        (LIST, "GET", {"limit": -5}),
        (LIST, "GET", {"limit": "all"}),
        ("storycore.task.delete", "POST", {"task_id": ids[4]}),
        (None, None, None),
    ]
    try:
        responses = [router.route_request(*request) for request in bad_requests * 5]
    finally:
        gate.set()

    assert ["error"] * len(responses) == [r.status for r in responses]
    finals = [manager.wait(task_id, timeout=WAIT_SECONDS) for task_id in ids]
    assert [f["status"] for f in finals] == ["completed"] * 6
    assert [f["result"] for f in finals] == [0, 2, 4, 6, 8, 10]
    assert manager.get_stats()["lifetime_stats"] == {
        "total_created": 6,
        "total_completed": 6,
        "total_failed": 0,
        "total_cancelled": 0,
        "total_timed_out": 0,
        "total_stalled": 0,
    }
