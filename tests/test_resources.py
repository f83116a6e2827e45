"""``Resources``, the per-task ``resources`` option: one immutable, checked map of names
to amounts, kept by the store, offered over HTTP and by the CLI's submit. Until a place
an operation runs holds resources, a task that asks for some is refused with an error
naming the resource (never run as if it held them), and nothing else is disturbed."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import Resources, ResourcesUnavailableError, TaskContext, TaskOptions
from storycore_tasks import TaskManager
from storycore_tasks.cli import main
from storycore_tasks.service.deps import ServiceConfig
from tests.service_harness import running_service

WAIT = 15.0

_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True)
_amounts = st.floats(min_value=1e-6, max_value=1e12) | st.integers(1, 10**6)


def _echo(params: Mapping[str, Any], task: TaskContext) -> Any:
    return dict(params)


@given(st.dictionaries(_names, _amounts, max_size=8))
def test_equal_maps_are_equal_hash_alike_and_survive_pickle(amounts: dict[str, Any]) -> None:
    """A map made from the same items in any order is equal (to a dict too), hashes alike
    and pickles back to itself; amounts read back as floats."""
    forward = Resources(amounts)
    backward = Resources(dict(reversed(list(amounts.items()))))
    assert forward == backward == {name: float(amount) for name, amount in amounts.items()}
    assert hash(forward) == hash(backward)
    assert pickle.loads(pickle.dumps(forward)) == forward
    assert all(type(value) is float for value in forward.values())
    assert list(forward) == sorted(amounts)


def test_the_cli_form_parses_to_the_same_map() -> None:
    assert Resources.parse("vram_gb=24, gpu=1") == Resources(gpu=1, vram_gb=24)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("gpu", "NAME=AMOUNT"),
        ("gpu=", "NAME=AMOUNT"),
        ("=1", "NAME=AMOUNT"),
        ("gpu=one", "'gpu' must be a number"),
        ("gpu=0", "finite number > 0"),
        ("gpu=1,,vram=2", "NAME=AMOUNT"),
    ],
)
def test_a_bad_cli_form_names_the_item(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Resources.parse(text)


def test_too_many_names_or_too_much_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 64 resources"):
        Resources({f"r{i}": 1 for i in range(65)})
    with pytest.raises(ValueError, match="at most 1e"):
        Resources(gpu=1e13)


def test_the_option_keeps_a_map_and_an_empty_one_asks_for_nothing() -> None:
    """``resources={}`` is no request (None); a dict becomes an immutable Resources."""
    assert TaskOptions(resources={}).resources is None
    options = TaskOptions(resources={"gpu": 2})
    assert isinstance(options.resources, Resources)
    assert options.resources == {"gpu": 2.0}
    with pytest.raises(TypeError):
        options.resources["gpu"] = 3  # type: ignore[index]


def test_a_task_asking_for_resources_is_refused_and_others_are_not_disturbed(
    make_manager: Callable[..., TaskManager],
) -> None:
    """The refusal names the resource and says what to do; no task is created for it,
    and a task created before and after it runs as usual."""
    manager = make_manager(num_workers=1)
    before = manager.create_task(_echo, {"n": 1})
    with pytest.raises(ResourcesUnavailableError, match="'gpu' is not declared") as caught:
        manager.create_task(_echo, {"n": 2}, resources={"gpu": 1, "vram_gb": 24})
    assert caught.value.resource == "gpu"
    after = manager.create_task(_echo, {"n": 3})
    assert manager.wait(before, timeout=WAIT)["result"] == {"n": 1}
    assert manager.wait(after, timeout=WAIT)["result"] == {"n": 3}
    assert manager.get_stats()["total_tasks"] == 2


def test_over_http_a_request_for_resources_is_a_validation_error(
    make_manager: Callable[..., TaskManager],
) -> None:
    """POST /v1/tasks takes ``resources`` as a JSON object: a bad amount is refused by
    the model, an undeclared resource by the manager, each a 400 naming it."""
    manager = make_manager(num_workers=1)
    manager.register_operation("echo", _echo)
    with (
        running_service(manager, ServiceConfig(tokens=None)) as live,
        httpx.Client(base_url=live.url, timeout=WAIT) as client,
    ):
        bad_amount = client.post("/v1/tasks", json={"operation": "echo", "resources": {"gpu": 0}})
        undeclared = client.post("/v1/tasks", json={"operation": "echo", "resources": {"gpu": 1}})
    assert bad_amount.status_code == 400
    assert "gpu" in bad_amount.text
    assert undeclared.status_code == 400
    error = undeclared.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "'gpu' is not declared" in error["message"]
    assert manager.get_stats()["total_tasks"] == 0


def test_the_cli_refuses_a_bad_resources_flag_before_sending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``submit --resources`` is checked by the option's own declaration: a bad form is
    a usage error naming the item (exit 2), and nothing is sent (no service runs)."""
    with pytest.raises(SystemExit) as exited:
        main(["submit", "echo", "--resources", "gpu=none"])
    assert exited.value.code == 2
    assert "'gpu' must be a number" in capsys.readouterr().err
