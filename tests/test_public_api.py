"""The public surface: curated exports, one direction of dependency, strict typing."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import actors
import storycore_tasks
from tests.type_check import mypy_strict

PACKAGES = [actors, storycore_tasks]
ISSUE_EXPORTS = {
    "TaskManager",
    "TaskStatus",
    "TaskPriority",
    "ErrorCodes",
    "ErrorDetails",
    "APIRouter",
    "APIResponse",
    "ResponseMetadata",
    "RequestContext",
    "register_task_endpoints",
}
ACTORS_DIR = Path(actors.__file__).parent
PROJECT_ROOT = ACTORS_DIR.parent


def _actors_modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(actors.__path__, actors.__name__ + ".")
    )


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_exported_name_resolves(package: ModuleType) -> None:
    """Every name in a package's __all__ resolves with getattr."""
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert missing == []


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_no_private_name_is_exported(package: ModuleType) -> None:
    """No name in a package's __all__ starts with an underscore, and none is listed twice."""
    assert [name for name in package.__all__ if name.startswith("_")] == []
    assert len(set(package.__all__)) == len(package.__all__)


def test_storycore_tasks_exports_the_issue_api() -> None:
    """storycore_tasks exports every name the issue's Public API section requires."""
    assert sorted(ISSUE_EXPORTS - set(storycore_tasks.__all__)) == []


@pytest.mark.parametrize("module_name", _actors_modules())
def test_every_actors_module_has_a_resolving_all(module_name: str) -> None:
    """Every module under actors/ declares __all__, and each of its names resolves."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{module_name} has no __all__"
    assert [name for name in exported if not hasattr(module, name)] == []


def test_actors_never_imports_storycore_tasks() -> None:
    """No module in actors/ imports storycore_tasks (one direction of dependency)."""
    offenders: list[str] = []
    paths = sorted(ACTORS_DIR.rglob("*.py"))
    assert (
        len(paths) == len(_actors_modules()) + 1
    )  # the modules (a folder's is its __init__.py) plus actors/__init__.py
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            offenders += [
                f"{path.name}:{node.lineno} imports {target}"
                for target in targets
                if target == "storycore_tasks" or target.startswith("storycore_tasks.")
            ]
    assert offenders == []


def _lazy_face() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """From actors/__init__.py's source: the TYPE_CHECKING re-exports (name -> module),
    the lazy map ``_EXPORTS`` (name -> module) and ``__all__``."""
    tree = ast.parse((ACTORS_DIR / "__init__.py").read_text(encoding="utf-8"))
    static: dict[str, str] = {}
    lazy: dict[str, str] = {}
    exported: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                assert statement.module is not None
                for alias in statement.names:
                    # "X as X": an explicit re-export for mypy --strict and pyright.
                    assert alias.asname == alias.name, ast.unparse(statement)
                    assert alias.name not in static, alias.name
                    static[alias.name] = statement.module
        elif isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "_EXPORTS":
            assert node.value is not None
            lazy = ast.literal_eval(node.value)
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__all__":
            exported = ast.literal_eval(node.value)
    return static, lazy, exported


def test_the_lazy_map_the_static_block_and_all_name_the_same_set() -> None:
    """actors/__init__.py spells its public names three times: the TYPE_CHECKING block
    (static tools), the lazy map (run time) and ``__all__``. They are the same set, and
    the block and the map take each name from the same module."""
    static, lazy, exported = _lazy_face()
    assert sorted(exported) == sorted(set(exported))
    assert sorted(static) == sorted(exported)
    assert sorted(lazy) == sorted(exported)
    assert {name: module for name, module in static.items() if lazy[name] != module} == {}
    assert exported == actors.__all__


def test_the_lazy_names_are_the_objects_of_their_modules() -> None:
    """Each lazily imported name is the very object its module defines, dir() lists
    every one, and an unknown name is an AttributeError that names it."""
    _, lazy, _ = _lazy_face()
    for name, module in lazy.items():
        assert getattr(actors, name) is getattr(importlib.import_module(module), name), name
    assert set(actors.__all__) <= set(dir(actors))
    with pytest.raises(AttributeError, match="no attribute 'TimerService'"):
        _ = actors.TimerService


_IMPORT_PROBE = """
import sys
import {statement}
heavy = ("pykka", "structlog", "sqlite3", "actors._core", "actors._storage")
print(" ".join(name for name in heavy if name in sys.modules))
"""


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        pytest.param("actors", "", id="import-actors"),
        pytest.param("actors._execution.child", "", id="import-the-child-module"),
        pytest.param("actors; actors.TaskStatus", "", id="a-leaf-name"),
    ],
)
def test_importing_actors_imports_no_runtime(statement: str, expected: str) -> None:
    """``import actors`` (and the child's own module) imports neither pykka, structlog,
    sqlite3 nor the runtime's packages: the public names load on first use."""
    code = _IMPORT_PROBE.format(statement=statement)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == expected


def test_a_runtime_name_imports_what_the_runtime_needs() -> None:
    """``from actors import TaskRuntime`` imports the runtime (pykka, structlog) and
    gives the class itself."""
    code = (
        "import sys\n"
        "from actors import TaskRuntime\n"
        "from actors._core.runtime import TaskRuntime as Defined\n"
        "assert TaskRuntime is Defined\n"
        "print('pykka' in sys.modules, 'structlog' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_package_ships_py_typed(package: ModuleType) -> None:
    """Both packages ship a py.typed marker, so their users' type checkers read them."""
    assert (Path(package.__file__ or "").parent / "py.typed").is_file()


_USER_SCRIPT = '''
"""A StoryCore-style user of the public API, typed as a user would type it."""

from collections.abc import Mapping
from typing import Any

from storycore_tasks import (
    ErrorCodes,
    TaskContext,
    TaskManager,
    TaskPriority,
    TaskStatus,
)


def render(params: Mapping[str, Any], task: TaskContext) -> dict[str, int]:
    frames = int(params["frames"])
    for frame in range(frames):
        if task.is_cancelled():
            break
        task.update_progress((frame + 1) / frames)
        task.partial_result = {"frames_rendered": frame + 1}
    return {"frames_rendered": frames}


def run() -> int:
    with TaskManager(num_workers=2, default_timeout=30.0) as manager:
        task_id: str = manager.create_task(
            render, {"frames": 3}, user="demo", timeout=10.0, priority=TaskPriority.HIGH
        )
        status: dict[str, Any] | None = manager.get_task_status(task_id)
        if status is not None and status["status"] == TaskStatus.RUNNING.value:
            pass
        final: dict[str, Any] = manager.wait(task_id, timeout=10)
        cancelled: bool = manager.cancel_task(task_id)
        stats: dict[str, Any] = manager.get_stats()
        code: str = ErrorCodes.TIMEOUT
        print(final["status"], cancelled, stats["total_tasks"], code)
    return 0
'''


def test_public_api_type_checks_strictly_from_a_users_side(
    tmp_path: Path, mypy_cache: Path
) -> None:
    """A user script typed against the public API passes mypy --strict."""
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(_USER_SCRIPT), encoding="utf-8")
    done = mypy_strict(str(script), cwd=tmp_path, cache_dir=mypy_cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found in 1 source file")
