"""pytest fixtures for testing operations under storycore-tasks (loaded by the
``pytest11`` entry point whenever the package is installed).

* ``manual_clock``: a :class:`~storycore_tasks.testing.ManualClock`.
* ``task_manager``: a :class:`~storycore_tasks.TaskManager`, shut down after the test;
  the test fails if it left a thread, an actor or a child process behind. It runs on
  ``manual_clock`` when the test asks for that fixture too. Options come from the
  marker ``@pytest.mark.task_manager(num_workers=2, isolation="process", ...)``.
* ``captured_lifecycle``: a :class:`~storycore_tasks.testing.LifecycleCapture` of the
  test's structlog events.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.testing import ResourceSnapshot, leaks_since
from storycore_tasks.manager import TaskManager
from storycore_tasks.testing import LifecycleCapture, ManualClock

__all__ = ["captured_lifecycle", "manual_clock", "task_manager"]

_LEAK_GRACE_SECONDS = 5.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "task_manager(**options): TaskManager arguments for the task_manager fixture",
    )


@pytest.fixture
def manual_clock() -> ManualClock:
    """Virtual time: ``manual_clock.advance(seconds)``, or ``testing.advance(manager,
    seconds)`` to also wait until the manager has recorded what fell due."""
    return ManualClock()


@pytest.fixture
def task_manager(request: pytest.FixtureRequest) -> Iterator[TaskManager]:
    """A TaskManager shut down after the test, with a leak check."""
    marker = request.node.get_closest_marker("task_manager")
    options = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError(
            "@pytest.mark.task_manager takes keyword arguments only (TaskManager options)"
        )
    if "clock" not in options and "manual_clock" in request.fixturenames:
        options["clock"] = request.getfixturevalue("manual_clock")
    before = ResourceSnapshot.take()
    manager = TaskManager(**options)
    try:
        yield manager
    finally:
        manager.shutdown(wait=True, cancel_pending=True, timeout=30)
    leaks = leaks_since(before, grace_seconds=_LEAK_GRACE_SECONDS)
    if leaks is not None:
        pytest.fail(f"the test left resources behind after the task manager shut down: {leaks}")


@pytest.fixture
def captured_lifecycle() -> Iterator[LifecycleCapture]:
    """The structlog events of this test, from every thread."""
    with LifecycleCapture() as capture:
        yield capture
