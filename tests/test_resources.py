"""``Resources``, the per-task ``resources`` option: one immutable, checked map of names
to amounts, kept by the store, offered over HTTP and by the CLI's submit; and the host's
resource slots (``TaskManager(resources=...)``) that hold them: a request the host can
never give is refused at create_task naming the resource (nothing else disturbed), and
the map's own checks hold on every surface. The ledger's rule is tested directly in
tests/test_resource_slots.py, the slots at work in tests/test_resource_scheduling.py."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
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
from tests.test_cli_guidance import ROOT, _run, _serving, _wait_for_end

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


def test_a_task_asking_for_undeclared_resources_is_refused_and_others_are_not_disturbed(
    make_manager: Callable[..., TaskManager],
) -> None:
    """A manager that declares no resources refuses any request, naming the resource and
    the fix; no task is created for it, and tasks before and after it run as usual."""
    manager = make_manager(num_workers=1)
    before = manager.create_task(_echo, {"n": 1})
    with pytest.raises(ResourcesUnavailableError, match="'gpu' is not declared") as caught:
        manager.create_task(_echo, {"n": 2}, resources={"gpu": 1, "vram_gb": 24})
    assert caught.value.resource == "gpu"
    assert "TaskManager(resources=" in str(caught.value)
    after = manager.create_task(_echo, {"n": 3})
    assert manager.wait(before, timeout=WAIT)["result"] == {"n": 1}
    assert manager.wait(after, timeout=WAIT)["result"] == {"n": 3}
    assert manager.get_stats()["total_tasks"] == 2
    assert manager.get_stats()["resources"] is None


def test_a_request_the_host_can_never_give_is_refused_naming_the_capacity(
    make_manager: Callable[..., TaskManager],
) -> None:
    """With resources declared, an undeclared name, more than the capacity, or part of a
    GPU is refused at create_task (the message names the capacity); a request that fits
    runs and its status shows the option."""
    manager = make_manager(num_workers=1, resources={"gpu": 2, "vram_gb": 80})
    with pytest.raises(ResourcesUnavailableError, match="capacity of 80") as caught:
        manager.create_task(_echo, resources={"gpu": 1, "vram_gb": 96})
    assert caught.value.resource == "vram_gb"
    with pytest.raises(ResourcesUnavailableError, match=r"'tpu' is not declared.*gpu=2"):
        manager.create_task(_echo, resources={"tpu": 1})
    with pytest.raises(ResourcesUnavailableError, match="whole devices"):
        manager.create_task(_echo, resources={"gpu": 0.5})
    fits = manager.create_task(_echo, {"n": 1}, resources={"gpu": 2, "vram_gb": 80})
    done = manager.wait(fits, timeout=WAIT)
    assert (done["result"], done["resources"]) == ({"n": 1}, {"gpu": 2.0, "vram_gb": 80.0})
    assert done["resources_held"] is None  # given back once the attempt ended
    assert manager.get_stats()["total_tasks"] == 1


@pytest.mark.parametrize(
    ("capacity", "problem", "error"),
    [
        ({"gpu": 1.5}, "counts whole devices", ValueError),
        ({"gpu": 0}, "finite number > 0", ValueError),
        ({"bad name": 1}, "must start with a letter", ValueError),
        (["gpu"], "mapping of resource names", TypeError),
    ],
)
def test_a_bad_capacity_is_refused_before_anything_starts(
    capacity: Any, problem: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=problem):
        TaskManager(resources=capacity)


def test_over_http_a_request_for_resources_is_checked_and_shown(
    make_manager: Callable[..., TaskManager],
) -> None:
    """POST /v1/tasks takes ``resources`` as a JSON object: a bad amount is refused by
    the model, an undeclared resource or one over the capacity by the manager, each a
    400 VALIDATION_ERROR naming it; one that fits is created, and its status (and the
    page of tasks) shows what it asked for and, after it ran, that it holds nothing."""
    manager = make_manager(num_workers=1, resources={"gpu": 1})
    manager.register_operation("echo", _echo)
    with (
        running_service(manager, ServiceConfig(tokens=None)) as live,
        httpx.Client(base_url=live.url, timeout=WAIT) as client,
    ):
        bad_amount = client.post("/v1/tasks", json={"operation": "echo", "resources": {"gpu": 0}})
        undeclared = client.post("/v1/tasks", json={"operation": "echo", "resources": {"tpu": 1}})
        too_much = client.post("/v1/tasks", json={"operation": "echo", "resources": {"gpu": 2}})
        created = client.post("/v1/tasks", json={"operation": "echo", "resources": {"gpu": 1}})
        assert created.status_code == 202, created.text
        task_id = created.json()["data"]["task_id"]
        manager.wait(task_id, timeout=WAIT)
        status = client.get(f"/v1/tasks/{task_id}").json()["data"]
        page = client.get("/v1/tasks").json()["data"]["tasks"]
        stats = manager.get_stats()["resources"]
    assert bad_amount.status_code == 400
    assert "gpu" in bad_amount.text
    for refused, text in ((undeclared, "'tpu' is not declared"), (too_much, "capacity of 1")):
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert text in error["message"]
    assert (status["resources"], status["resources_held"], status["waiting_for"]) == (
        {"gpu": 1.0},
        None,
        None,
    )
    assert [t["resources"] for t in page] == [{"gpu": 1.0}]
    assert stats["capacity"] == {"gpu": 1.0}
    assert stats["in_use"] == {"gpu": 0.0}
    assert manager.get_stats()["total_tasks"] == 1


def test_serve_declares_resources_and_submit_asks_for_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``serve --resources gpu=1`` (a real service process) is the manager's capacity:
    ``submit --resources gpu=1`` creates a task whose status shows the request and what
    it holds, ``--resources gpu=2`` is refused (exit 1) naming the capacity; a bad
    capacity stops ``serve`` before it starts, with the manager's message."""
    with _serving(
        *("--db", str(tmp_path / "t.db"), "--operations", "tests.service_ops:OPERATIONS"),
        *("--resources", "gpu=1"),
        cwd=ROOT,
    ) as served:
        assert main(["submit", "echo", "--resources", "gpu=1", "--url", served.url]) == 0
        task_id = capsys.readouterr().out.strip()
        with httpx.Client(base_url=served.url, timeout=WAIT) as client:
            ended = _wait_for_end(client, task_id)
        assert (ended["status"], ended["resources"]) == ("completed", {"gpu": 1.0})
        assert main(["status", task_id, "--json", "--url", served.url]) == 0
        assert json.loads(capsys.readouterr().out)["resources_held"] is None
        assert main(["submit", "echo", "--resources", "gpu=2", "--url", served.url]) == 1
        assert "capacity of 1" in capsys.readouterr().err
    bad = _run("serve", "--no-auth", "--port", "0", "--db", str(tmp_path / "u.db"),
               "--resources", "gpu=1.5")  # fmt: skip
    assert bad.returncode == 1
    assert "counts whole devices" in bad.stderr


def test_the_cli_refuses_a_bad_resources_flag_before_sending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``submit --resources`` is checked by the option's own declaration: a bad form is
    a usage error naming the item (exit 2), and nothing is sent (no service runs)."""
    with pytest.raises(SystemExit) as exited:
        main(["submit", "echo", "--resources", "gpu=none"])
    assert exited.value.code == 2
    assert "'gpu' must be a number" in capsys.readouterr().err
