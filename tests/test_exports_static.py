"""What a static tool sees of the public face is exactly each namespace's ``__all__``:
mypy --strict (which does not re-export an imported name unless ``__all__`` lists it)
accepts importing every listed name, and refuses a building block that moved to
``actors.lowlevel``."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest

import actors
from tests.type_check import mypy_strict

NAMESPACES = ["actors", "actors.lowlevel", "storycore_tasks"]
MOVED_TO_LOWLEVEL = ["Dispatcher", "PooledActor", "TaskSpec", "TimerHandle", "TimerService"]


def _mypy(tmp_path: Path, cache: Path, source: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "exports_check.py"
    script.write_text(source, encoding="utf-8")
    return mypy_strict(str(script), cwd=tmp_path, cache_dir=cache)


def test_static_tools_see_every_exported_name(tmp_path: Path, mypy_cache: Path) -> None:
    """Importing each namespace's whole ``__all__`` type-checks strictly: no name is
    exported at run time that a type checker cannot see."""
    lines = []
    for namespace in NAMESPACES:
        names = importlib.import_module(namespace).__all__
        lines.append(f"from {namespace} import {', '.join(names)}  # noqa")
        lines.append(f"print({', '.join(names)})")
    done = _mypy(tmp_path, mypy_cache, "\n".join(lines) + "\n")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", MOVED_TO_LOWLEVEL)
def test_building_blocks_are_not_on_the_everyday_face(name: str) -> None:
    """The runtime's building blocks live in actors.lowlevel, not in actors.__all__."""
    lowlevel = importlib.import_module("actors.lowlevel")
    assert name in lowlevel.__all__
    assert name not in actors.__all__


def test_a_type_checker_refuses_a_moved_building_block(tmp_path: Path, mypy_cache: Path) -> None:
    """The converse, checked by the tool itself: a building block that moved to
    ``actors.lowlevel`` is not reachable through ``actors`` for mypy either."""
    done = _mypy(tmp_path, mypy_cache, "from actors import TimerService\nprint(TimerService)\n")
    assert done.returncode != 0
    assert "TimerService" in done.stdout
