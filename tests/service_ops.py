"""Operations for the CLI's tests of the HTTP service (``--operations
tests.service_ops:OPERATIONS``, or ``tests.service_ops:shout`` for one function).

None of them blocks longer than ``RELEASE_TIMEOUT`` unless it is cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors import TaskContext

RELEASE_TIMEOUT = 30.0


def echo(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Return the params it was given."""
    return dict(params)


def steps(params: Mapping[str, Any], task: TaskContext) -> dict[str, int]:
    """``params["steps"]`` steps of ``params["seconds"]`` each, reporting progress."""
    count = int(params.get("steps", 4))
    for step in range(1, count + 1):
        if task.wait_cancelled(float(params.get("seconds", 0.01))):
            return {"steps": step - 1}
        task.update_progress(step / count)
    return {"steps": count}


def hold(params: Mapping[str, Any], task: TaskContext) -> str:
    """Run until cancelled (at most RELEASE_TIMEOUT seconds), at 50 %."""
    task.update_progress(0.5)
    task.wait_cancelled(RELEASE_TIMEOUT)
    return "released"


def boom(params: Mapping[str, Any], task: TaskContext) -> None:
    """Fail with a ValueError."""
    raise ValueError("boom")


def shout(params: Mapping[str, Any], task: TaskContext) -> str:
    """Upper-case ``params["text"]`` (registered alone, as ``shout``)."""
    return str(params["text"]).upper()


OPERATIONS = {"echo": echo, "steps": steps, "hold": hold, "boom": boom}

NOT_OPERATIONS = 42  # neither a mapping nor a function
