"""A host the durable-store test kills with SIGKILL once its Ray task has started:
``python -m tests.ray_cluster.durable_host ADDRESS DB MARKER``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from storycore_tasks import RayBackend, TaskManager
from tests.ray_cluster import ops

if __name__ == "__main__":
    address, db, marker = sys.argv[1:4]
    manager = TaskManager(store=Path(db), ray=RayBackend(address=address))
    task_id = manager.create_task(ops.mark_and_sleep, {"marker": marker}, isolation="ray")
    print("TASK", task_id, flush=True)
    time.sleep(3600)  # until killed
