"""Production modules never import the test kit, pytest or hypothesis.

The test kit (``actors.testing``, ``storycore_tasks.testing``, the pytest plugin) may
import anything; every other module of ``actors`` and ``storycore_tasks`` is walked
with ``ast`` (imports inside functions and under ``TYPE_CHECKING`` included) and must
import none of it, so an installed service needs no test dependency and runs no test code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "storycore_tasks")
TEST_KIT = {"actors.testing", "storycore_tasks.testing", "storycore_tasks.pytest_plugin"}
FORBIDDEN = (*sorted(TEST_KIT), "pytest", "_pytest", "hypothesis")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _production_modules() -> list[Path]:
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    return [p for p in paths if _module_name(p) not in TEST_KIT]


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names, ``from x import y`` as x and x.y."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN)


def test_the_walk_sees_the_packages_and_the_kit() -> None:
    """The walk covers real modules, and would catch the kit's own imports (its check
    is not vacuous)."""
    modules = {_module_name(p) for p in _production_modules()}
    assert {"actors._core.runtime", "storycore_tasks.service.server", "actors"} <= modules
    assert not modules & TEST_KIT
    plugin = ROOT / "storycore_tasks" / "pytest_plugin.py"
    assert any(_forbidden(name) for name in _imported(plugin))


@pytest.mark.parametrize("path", _production_modules(), ids=_module_name)
def test_production_module_imports_no_test_kit(path: Path) -> None:
    """A production module imports neither the test kit nor pytest or hypothesis."""
    bad = sorted(name for name in _imported(path) if _forbidden(name))
    assert not bad, f"{_module_name(path)} imports {bad}: production code must not"
