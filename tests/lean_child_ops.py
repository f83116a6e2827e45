"""Operations for tests/test_lean_child.py, importable by a child process."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from actors import TaskContext


def record_stop_reason(params: Mapping[str, Any], task: TaskContext) -> None:
    """Wait for the cancel, then write the type and value of ``task.stop_reason`` to
    ``params["out"]`` (a cancelled task's later partial results are not recorded)."""
    task.update_progress(0.5)
    task.wait_cancelled(30.0)
    reason = task.stop_reason
    seen = {"type": type(reason).__name__, "value": getattr(reason, "value", None)}
    partial_path = params["out"] + ".part"
    with open(partial_path, "w") as out:
        json.dump(seen, out)
    os.replace(partial_path, params["out"])  # the reader never sees half a file


def loaded_modules(params: Mapping[str, Any], task: TaskContext) -> list[str]:
    """The names of every module loaded in the process running the operation."""
    return sorted(sys.modules)
