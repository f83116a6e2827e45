"""A process whose thread task was interrupted by the stop ladder, and which then runs a
profiler and a tracer: test_interrupt_aftermath runs it as ``python -m
tests.interrupted_host`` from the repository root (a process of its own, because a
thread that loops for ever cannot be stopped).

It prints ``interrupted: N`` (the interrupts the operation saw), then ``profiled`` and
``traced`` as each call returns in a new thread within ``BOUND`` seconds (``hung``
otherwise), and exits without waiting for a hung thread.
"""

from __future__ import annotations

import cProfile
import os
import sys
import threading
from typing import Any

import structlog

from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests.spinner import Spinner

BOUND = 20.0  # seconds: an upper bound for a loaded machine


def called(name: str, body: Any) -> str:
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(BOUND)
    return "hung" if thread.is_alive() else name


def square(number: int) -> int:
    return number * number


def profiled() -> None:
    profile = cProfile.Profile()
    profile.enable()
    square(3)
    profile.disable()


def traced() -> None:
    sys.settrace(lambda frame, event, arg: None)
    square(3)
    sys.settrace(None)


def main() -> None:
    structlog.configure(
        processors=[],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    spinner = Spinner()
    manager = TaskManager(num_workers=1, stop_grace=0.05)
    manager.create_task(spinner, timeout=0.05)
    assert spinner.entered.wait(BOUND)
    assert spinner.left.wait(BOUND)
    # The back-end has let go of the operation's thread once its slot is free.
    assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=BOUND)
    print(f"interrupted: {spinner.interrupts_seen}", flush=True)
    print(called("profiled", profiled), flush=True)
    print(called("traced", traced), flush=True)
    os._exit(0)  # a hung thread would keep the interpreter from exiting


if __name__ == "__main__":
    main()
