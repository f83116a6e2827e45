"""A host that test_hardening_process kills: a process-mode TaskManager running one task.

Run as ``python -m tests.process_host`` from the repository root. It runs
``process_ops.progress_forever`` in a child, prints ``CHILD_PID SLEEP_PID`` (the child
running the task, and the ``sleep`` the task started) as one line on standard output once
the task has published them, then blocks until it is killed. With ``--blocked`` it runs
``process_ops.pid_then_sleep`` instead (blocked in C, silent on the channel) and prints
``CHILD_PID None``. Library log lines go nowhere,
so whatever reaches standard error came from a child.
"""

from __future__ import annotations

import sys
import threading

import structlog

from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests import process_ops


def main() -> int:
    structlog.configure(
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    manager = TaskManager(num_workers=1, isolation="process")
    blocked = "--blocked" in sys.argv[1:]
    operation = process_ops.pid_then_sleep if blocked else process_ops.progress_forever
    task_id = manager.create_task(operation)

    def published() -> bool:
        status = manager.get_task_status(task_id)
        return status is not None and "partial_result" in status

    if not wait_until(published, timeout=60):
        print("error the task published nothing", flush=True)
        return 3
    status = manager.get_task_status(task_id)
    assert status is not None
    partial = status["partial_result"]
    print(f"{partial['pid']} {partial['sleep']}", flush=True)
    threading.Event().wait()  # until killed
    return 0


if __name__ == "__main__":
    sys.exit(main())
