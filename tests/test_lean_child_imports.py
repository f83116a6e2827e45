"""A pool child imports only what running an operation needs: never pykka, structlog,
sqlite3, nor the runtime's own packages (``actors._core``, ``actors._storage``).

Real process tasks on a fresh manager each (so a fresh child), whose operation returns
``sorted(sys.modules)`` as the child sees it, for the three kinds of operation a child
is sent: a plain function, a registered ``NamedOperation``, and an operation wrapped in
the fault injector's ``InjectedOperation``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors import NamedOperation
from storycore_tasks import TaskManager
from tests import lean_child_ops

MakeManager = Callable[..., TaskManager]

BOUND = 30.0  # seconds: an upper bound for a loaded machine, never a duration we expect
NAME = "lean.loaded_modules"
HEAVY = ("pykka", "structlog", "sqlite3", "_sqlite3")
RUNTIME_PACKAGES = ("actors._core", "actors._storage")


def _child_modules(manager: TaskManager, operation: object) -> list[str]:
    status = manager.wait(manager.create_task(operation), timeout=BOUND)  # type: ignore[arg-type]
    assert status["status"] == "completed", status
    modules = status["result"]
    assert isinstance(modules, list)
    assert "tests.lean_child_ops" in modules  # it ran in a child that imported the op
    return modules


def _offenders(modules: list[str]) -> list[str]:
    return [
        name
        for name in modules
        if name in HEAVY
        or any(name == package or name.startswith(package + ".") for package in RUNTIME_PACKAGES)
    ]


@pytest.mark.parametrize("kind", ["function", "named", "fault-injected"])
def test_a_child_imports_no_runtime(make_manager: MakeManager, kind: str) -> None:
    """Whatever kind of operation it is sent, the child that runs it has imported
    neither pykka, structlog, sqlite3 nor actors._core / actors._storage."""
    operations = {NAME: NamedOperation(lean_child_ops.loaded_modules)}
    manager = make_manager(num_workers=1, isolation="process", operations=operations)
    operation: object = lean_child_ops.loaded_modules
    if kind != "function":
        operation = NAME
    if kind == "fault-injected":
        # A zero-second delay, then the operation itself: its InjectedOperation (and the
        # operation side of faults with it, not the host's plan) is unpickled in the child.
        manager.faults.delay(0.0, operation=NAME)
    modules = _child_modules(manager, operation)
    assert _offenders(modules) == []
    if kind == "fault-injected":
        assert "actors._execution.injected" in modules
        assert "actors._execution.faults" not in modules
        assert manager.faults.injected_total == 1
