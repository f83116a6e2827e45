"""The host process test_long_work kills: ``python -m tests.render_host DBPATH LOG``.

It opens a TaskManager on the SQLite file, creates one render of 1,000 frames (the
operation is named and ``retry_on_interrupt``), prints the task's id and SIGKILLs itself
(from inside the operation) right after rendering frame 600, before its checkpoint.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from storycore_tasks import NamedOperation, TaskManager
from tests import long_ops

OPERATIONS = {"render": NamedOperation(long_ops.render, retry_on_interrupt=True)}
FRAMES = 1000
KILL_AT = 600


def main() -> None:
    database, log = sys.argv[1], sys.argv[2]
    manager = TaskManager(num_workers=1, store=Path(database), operations=OPERATIONS)
    params = {"log": log, "frames": FRAMES, "kill_at": KILL_AT, "kill_pid": os.getpid()}
    task_id = manager.create_task("render", params)
    print(task_id, flush=True)
    manager.wait(task_id, timeout=120)  # never returns: the operation kills this process
    time.sleep(60)


if __name__ == "__main__":
    main()
