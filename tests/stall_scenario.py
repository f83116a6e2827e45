"""One scenario for every back-end that runs an operation away from the host's threads
(a child process, a Ray node): the operation's signs of life reach the host's heartbeat
watch, on a manual clock."""

from __future__ import annotations

from typing import Any

from actors import ManualClock
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.errors import iso_utc
from storycore_tasks.testing import advance
from tests import long_ops


def a_silent_task_stalls_and_a_beating_one_does_not(
    manager: TaskManager, clock: ManualClock, wait: float, **options: Any
) -> dict[str, Any]:
    """A task beating every millisecond is still running two 5 s heartbeat timeouts later
    (each advance waits until its beats are seen at the time reached); a silent one fails
    STALLED after 5 s of silence with its checkpoint. The beating one is then cancelled.
    ``options``: the two tasks' (their heartbeat timeout must come to 5 s). Returns the
    beating task's status while it still ran."""
    beating = manager.create_task(long_ops.beats_until_stopped, **options)
    silent = manager.create_task(long_ops.silent_after_checkpoint, **options)

    def seen_at(task_id: str, key: str, at: float) -> bool:
        found = manager.get_task_status(task_id)
        return found is not None and found[key] == iso_utc(at)

    assert wait_until(lambda: seen_at(silent, "checkpointed_at", clock.time()), timeout=wait)
    for _ in range(5):  # to t=12.5: past two heartbeat timeouts
        assert wait_until(lambda: seen_at(beating, "last_heartbeat_at", clock.time()), timeout=wait)
        advance(manager, 2.5)
    status = manager.get_task_status(beating)
    assert status is not None
    assert status["status"] == "running", status
    stalled = manager.wait(silent, timeout=wait)
    error = stalled["error"]
    assert (error["code"], error["details"]["silent_seconds"]) == ("STALLED", 5.0)
    assert error["details"]["checkpoint"]["at"] == "start"
    assert manager.cancel_task(beating)
    assert manager.wait(beating, timeout=wait)["status"] == "cancelled"
    assert manager.get_stats()["lifetime_stats"]["total_stalled"] == 1
    return status
