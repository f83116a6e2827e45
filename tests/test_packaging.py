"""The distribution holds every package of the tree: an installed (not editable) copy
must import each module the tests import from the checkout."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

import actors

PROJECT_ROOT = Path(actors.__file__).parent.parent


def _tree_packages() -> set[str]:
    found = set()
    for top in ("actors", "storycore_tasks"):
        for init in (PROJECT_ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(PROJECT_ROOT).parts))
    return found


def test_the_packages_setuptools_ships_are_every_package_of_the_tree() -> None:
    """pyproject.toml's package selection, as setuptools reads it, is exactly the tree's
    packages (a new folder such as actors/_core is shipped without another edit)."""
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools_config = config["tool"]["setuptools"]
    listed = setuptools_config.get("packages")
    if isinstance(listed, list):
        shipped = set(listed)
    else:
        options = setuptools_config["packages"]["find"]
        shipped = set(find_packages(str(PROJECT_ROOT), include=options["include"]))
    assert shipped == _tree_packages()
    assert {"actors._core", "actors._execution", "actors._storage"} <= shipped
