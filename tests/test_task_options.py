"""``TaskOptions``: every per-task option declared once, each checked on its own, and an
unknown option named with the list of known ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from actors import Isolation, RetryPolicy, TaskOptions, TaskPriority, UnknownOptionError
from actors._options import options_of
from storycore_tasks import TaskManager
from storycore_tasks.service.deps import ServiceConfig
from tests.service_harness import running_service

BAD_VALUES: dict[str, list[Any]] = {
    "user": [5, b"alice"],
    "timeout": ["5", True, -1, 0, float("nan"), float("inf")],
    "priority": ["urgent", 99, 1.5],
    "isolation": ["fork", 3],
    "memory_limit_mb": ["512", 0, -5, float("inf"), True],
    "cpu_time_limit": ["1", 0, float("nan")],
    "heartbeat_timeout": ["1", 0, -1, float("inf"), True],
    "delay": ["1", -1, float("inf")],
    "run_at": ["2030-01-01", datetime(2030, 1, 1)],  # naive on purpose
    "retry": [3, {"max_attempts": 3}],
    "depends_on": ["abc", 5, [5], [""]],
    "group_id": [7],
    "resources": [
        ["gpu"],
        "gpu=1",
        {"gpu": 0},
        {"gpu": -1},
        {"gpu": float("nan")},
        {"gpu": True},
        {"gpu": "1"},
        {"": 1},
        {"9gpu": 1},
        {1: 1},
    ],
}


def test_every_option_is_declared_with_a_kind_and_a_doc() -> None:
    """The declaration is the one list: each field has an Option with a kind, a doc
    and a check, and every bad-value case here names a declared option."""
    declared = options_of()
    assert [o.name for o in declared] == [f.name for f in dataclasses.fields(TaskOptions)]
    for o in declared:
        assert o.doc
        assert o.kind
    assert set(BAD_VALUES) == {o.name for o in declared}


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, values in BAD_VALUES.items() for v in values]
)
def test_a_bad_value_is_refused_naming_the_option(name: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=name):
        TaskOptions(**{name: value})


def test_good_values_are_normalised() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    options = TaskOptions(
        user="alice",
        timeout=5,
        priority="high",
        isolation="process",
        memory_limit_mb=256,
        cpu_time_limit=2,
        delay=0,
        run_at=at,
        retry=RetryPolicy(max_attempts=2),
        depends_on=["a", "b", "a"],
        group_id="g",
    )
    assert options.timeout == 5.0
    assert isinstance(options.timeout, float)
    assert options.priority is TaskPriority.HIGH
    assert options.isolation is Isolation.PROCESS
    assert options.depends_on == ("a", "b")  # a repeated id is one dependency
    assert options.run_at == at


def test_an_unknown_option_is_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownOptionError) as refused:
        TaskOptions.from_mapping({"timeot": 5, "timeout": 1}, where="tasks[2]")
    message = str(refused.value)
    assert message.startswith("tasks[2]: unknown task option 'timeot'; the options are ")
    for o in options_of():
        assert o.name in message
    assert refused.value.names == ["timeot"]


def test_options_are_frozen() -> None:
    options = TaskOptions(timeout=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 2  # type: ignore[misc]
    assert options.replace(timeout=2).timeout == 2.0
    with pytest.raises(TypeError, match="timeout"):
        options.replace(timeout="2")


def test_where_each_option_appears() -> None:
    """What the store keeps, the HTTP API offers and the CLI's submit has, from the
    declaration (delay and run_at resolve into a stored start time)."""
    assert {o.name for o in options_of(stored=False)} == {"delay", "run_at"}
    assert {o.name for o in options_of(http=False)} == {"user", "group_id"}
    assert "timeout" in {o.name for o in options_of(cli=True)}


# -- the options at the entry points ------------------------------------------------------


def _echo(params: Any, task: Any) -> dict[str, Any]:
    return dict(params)


def test_create_group_names_an_unknown_option_and_lists_the_known_ones(
    make_manager: Callable[..., TaskManager],
) -> None:
    """create_group's items are checked against TaskOptions: an unknown key is named,
    with every option (and operation, params) listed; nothing is created."""
    manager = make_manager(num_workers=1)
    with pytest.raises(UnknownOptionError) as refused:
        manager.create_group([{"operation": _echo}, {"operation": _echo, "timeot": 5}])
    message = str(refused.value)
    assert message.startswith("tasks[1]: unknown task option 'timeot'; the options are ")
    for name in ("operation", "params", "timeout", "priority", "depends_on"):
        assert name in message
    assert "group_id" not in refused.value.known  # the group sets it
    assert manager.list_tasks() == []


def test_the_runtime_refuses_an_unknown_option_by_name(
    make_manager: Callable[..., TaskManager],
) -> None:
    manager = make_manager(num_workers=1)
    with pytest.raises(UnknownOptionError, match="unknown task option 'prority'"):
        manager.runtime.submit(_echo, {}, prority="high")


def test_an_option_error_from_create_task_names_the_option(
    make_manager: Callable[..., TaskManager],
) -> None:
    """create_task keeps its StoryCore signature and checks through TaskOptions."""
    manager = make_manager(num_workers=1)
    with pytest.raises(TypeError, match="depends_on must be a list of task ids"):
        manager.create_task(_echo, depends_on="abc")
    with pytest.raises(ValueError, match="priority"):
        manager.create_task(_echo, priority="urgent")
    task_id = manager.create_task(_echo, {"n": 1}, priority="high", timeout=5)
    assert manager.wait(task_id, timeout=15)["priority"] == "high"


def test_http_names_an_unknown_field_and_lists_the_known_ones(
    make_manager: Callable[..., TaskManager],
) -> None:
    """Over HTTP an unknown field of the task (or of its retry policy) is a
    VALIDATION_ERROR that names it and lists the fields at that place."""
    manager = make_manager(num_workers=1)
    manager.register_operation("echo", _echo)
    with (
        running_service(manager, ServiceConfig(tokens=None)) as live,
        httpx.Client(base_url=live.url, timeout=15) as client,
    ):
        top = client.post("/v1/tasks", json={"operation": "echo", "timeot": 5})
        nested = client.post(
            "/v1/tasks", json={"operation": "echo", "retry": {"max_attempts": 2, "tries": 3}}
        )
    assert top.status_code == 400
    problem = top.json()["error"]["details"]["problems"][0]
    assert problem["location"] == "body.timeot"
    assert problem["problem"].startswith("unknown field 'timeot'; the fields are ")
    for name in ("timeout", "priority", "depends_on", "operation"):
        assert name in problem["problem"]
    assert nested.status_code == 400
    nested_problem = nested.json()["error"]["details"]["problems"][0]
    assert nested_problem["location"] == "body.retry.tries"
    assert "max_attempts" in nested_problem["problem"]
    assert "backoff" in nested_problem["problem"]


def test_the_http_request_model_is_derived_from_the_declaration() -> None:
    """POST /v1/tasks's model has one field per option the HTTP API offers, described by
    the option's doc, besides the request's own fields; no option it does not offer."""
    from storycore_tasks.service.app import CreateTaskRequest

    schema = CreateTaskRequest.model_json_schema()
    offered = {o.name for o in options_of(http=True)}
    assert set(schema["properties"]) == offered | {
        "operation",
        "params",
        "callback_url",
        "callback_on_progress",
    }
    for declared in options_of(http=True):
        assert schema["properties"][declared.name]["description"].startswith(declared.doc)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["operation"]
