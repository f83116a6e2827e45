"""Shared fixtures: every test is checked for leaked threads and actors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from actors import ManualClock
from actors.testing import assert_no_leaks
from storycore_tasks import TaskManager

# The shared scenarios assert in helper modules: pytest explains their failures too.
pytest.register_assert_rewrite("tests.stall_scenario")


@pytest.fixture(scope="session", autouse=True)
def _empty_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The library writes nothing outside the paths its user chose, $HOME included: the
    session (and every process a test starts) runs with an empty $HOME, which must still
    be empty at the end."""
    home = tmp_path_factory.mktemp("home")
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield home
    finally:
        if previous is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = previous
    written = sorted(str(path.relative_to(home)) for path in home.rglob("*"))
    assert written == [], f"the session wrote under $HOME: {written}"


@pytest.fixture(autouse=True)
def _quiet_structlog() -> Iterator[None]:
    """Lifecycle events go nowhere unless a test captures them (capture_logs still sees
    every level, debug included)."""
    structlog.configure(
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _no_leaked_threads_or_actors() -> Iterator[None]:
    """Invariant 6: whatever a test starts, it leaves no thread and no actor behind."""
    with assert_no_leaks():
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The few tests marked ``starts_first`` go first (the rest keep their order): with
    two workers, one that met a minutes-long test last would run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("starts_first") is None)


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for every type check of the session (see tests/type_check.py)."""
    return tmp_path_factory.mktemp("mypy_cache")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_manager() -> Iterator[Callable[..., TaskManager]]:
    """Build TaskManagers that are shut down (waiting) at the end of the test."""
    managers: list[TaskManager] = []

    def make(**kwargs: Any) -> TaskManager:
        manager = TaskManager(**kwargs)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown(wait=True, cancel_pending=True, timeout=30)


# The Ray cluster tests run only in the PID namespace of their own that
# tests/test_ray_cluster.py starts (it sets this variable): collected directly, Ray's
# processes could outlive the run or meet another cluster of the machine.
collect_ignore = [] if os.environ.get("STORYCORE_RAY_NESTED") == "1" else ["ray_cluster"]
