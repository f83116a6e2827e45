"""A host that test_child_signals sends Ctrl-C to: process-mode tasks, each in a new child.

Run as ``python -m tests.sigint_host COUNT`` from the repository root, in a process group
of its own (the test's stand-in for a terminal's foreground group). It handles SIGINT
itself (it counts them, as a service that decides what a Ctrl-C means would), prints
``ready`` once its first task is done, then runs COUNT more no-op tasks with
``max_tasks_per_child=1``, so that children keep starting while SIGINTs arrive, and
prints ``done COMPLETED SIGINTS`` (ignoring SIGINT from then on). Library log lines go
nowhere, so whatever reaches standard error came from a child.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

import structlog

from storycore_tasks import TaskManager
from tests import process_ops

BOUND = 60.0  # seconds: an upper bound for a loaded machine


def main() -> int:
    structlog.configure(
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    count = int(sys.argv[1])
    received = 0

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1

    signal.signal(signal.SIGINT, on_sigint)
    completed = 0
    with TaskManager(num_workers=2, isolation="process", max_tasks_per_child=1) as manager:
        first = manager.wait(manager.create_task(process_ops.getpid), timeout=BOUND)
        print("ready", flush=True)
        ids = [manager.create_task(process_ops.getpid) for _ in range(count)]
        statuses = [manager.wait(task_id, timeout=BOUND) for task_id in [*ids]]
        failed = [s for s in [first, *statuses] if s["status"] != "completed"]
        completed = count + 1 - len(failed)
        for status in failed[:3]:
            print(f"failed {status.get('error')}", flush=True)
    # Ignored from here on: the interpreter's exit puts a Python handler back to the
    # default, and a SIGINT of the storm arriving then would end the host by it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"done {completed} {received}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
