"""Long work on a Ray node, as in a child process: checkpoints reach the host's records
(with a durable store the operation waits for the commit, answered on the host channel),
a retry resumes from the latest one, and signs of life feed ``heartbeat_timeout``. The
operations are tests/long_ops.py's, which the thread and process tests run too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from actors import ManualClock, RetryPolicy
from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests import long_ops, stall_scenario

MakeManager = Callable[..., TaskManager]
WAIT = 60.0


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_a_node_offers_checkpoint_heartbeat_and_resume_from(
    ray_manager: MakeManager, tmp_path: Path, durable: bool
) -> None:
    """The same members, with the same types, as in thread and process isolation: a state
    that is not JSON is refused on the node with a TypeError naming its type; the status
    shows the checkpoint as JSON reads it back, its time and the last sign of life."""
    manager = ray_manager(store=tmp_path / "tasks.db" if durable else None)
    status = manager.wait(manager.create_task(long_ops.members, isolation="ray"), timeout=WAIT)
    assert long_ops.members_seen(status) == long_ops.MEMBERS_SEEN, status


def test_a_retry_on_a_node_resumes_from_the_latest_committed_checkpoint(
    ray_manager: MakeManager, tmp_path: Path
) -> None:
    """With a durable store each of the first attempt's four checkpoints returned only once
    committed; the attempt then fails, and the retry starts at step 4, its resume_from."""
    manager = ray_manager(store=tmp_path / "tasks.db")
    retry = RetryPolicy(max_attempts=2, backoff=0.001, jitter=False)
    task_id = manager.create_task(
        long_ops.count_then_fail_once, {"steps": 10, "fail_at": 4}, isolation="ray", retry=retry
    )
    status = manager.wait(task_id, timeout=WAIT)
    assert (status["status"], status["attempt"], status["result"]) == (
        "completed",
        2,
        {"started_at": 4},
    )
    assert status["checkpoint"] == {"next": 10}
    assert [e["code"] for e in status["attempt_errors"]] == ["INTERNAL_ERROR"]


def test_a_silent_node_stalls_and_a_beating_one_does_not(ray_manager: MakeManager) -> None:
    """The manager's default heartbeat_timeout applies to Ray tasks, and a node's signs of
    life reach the host's watch: a task beating every millisecond is still running two
    timeouts later (each advance waits until its beats are seen at the time reached); a
    silent one fails STALLED after 5 s of silence with its checkpoint, and returned."""
    clock = ManualClock()
    manager = ray_manager(clock=clock, heartbeat_timeout=5.0)
    running = stall_scenario.a_silent_task_stalls_and_a_beating_one_does_not(
        manager, clock, WAIT, isolation="ray"
    )
    assert running["heartbeat_timeout"] == 5.0  # the manager's default

    def both_ended_on_their_nodes() -> bool:  # the stops were cooperative: no clock needed
        ray_stats = manager.get_stats()["ray"]
        return ray_stats["running"] == 0 and ray_stats["stopping"] == 0

    assert wait_until(both_ended_on_their_nodes, timeout=WAIT)
