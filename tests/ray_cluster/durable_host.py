"""A host the durable-store test kills with SIGKILL once its Ray task has started:
``python -m tests.ray_cluster.durable_host ADDRESS DB MARKER``. It exits (status 1,
saying how) only if the task ends before the kill."""

from __future__ import annotations

import sys
from pathlib import Path

from storycore_tasks import RayBackend, TaskManager
from tests.ray_cluster import ops

if __name__ == "__main__":
    address, db, marker = sys.argv[1:4]
    manager = TaskManager(store=Path(db), ray=RayBackend(address=address))
    task_id = manager.create_task(ops.mark_and_sleep, {"marker": marker}, isolation="ray")
    print("TASK", task_id, flush=True)
    # Killed while it runs. Should the task end first (its attempt never ran, say), the
    # host says how and exits, so the test fails at once with the reason, never hangs.
    status = manager.wait(task_id, timeout=3600)
    print("ENDED", status["status"], status.get("error"), flush=True)
    manager.shutdown(wait=True, timeout=30)
    sys.exit(1)
