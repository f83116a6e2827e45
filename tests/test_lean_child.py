"""The child process's task context matches the thread one: ``task.stop_reason``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests import lean_child_ops

MakeManager = Callable[..., TaskManager]


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_stop_reason_is_a_stop_reason_in_each_isolation(
    make_manager: MakeManager, isolation: str, tmp_path: Path
) -> None:
    """A cancelled operation sees ``task.stop_reason`` as a StopReason with ``.value``,
    in thread and in process isolation alike."""
    manager = make_manager(num_workers=1, isolation=isolation)
    task_id = manager.create_task(
        lean_child_ops.record_stop_reason, {"out": str(tmp_path / "seen.json")}
    )
    assert wait_until(lambda: manager.get_task_status(task_id)["progress"] == 0.5, timeout=20.0)
    assert manager.cancel_task(task_id) is True
    expected = {"type": "StopReason", "value": "cancel_requested"}
    seen = tmp_path / "seen.json"
    assert wait_until(seen.exists, timeout=20.0)
    assert json.loads(seen.read_text()) == expected
