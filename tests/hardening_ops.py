"""Module-level operations for the hardening tests' process-isolated tasks (a child
imports them by name)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors import TaskContext


def progress_then_wait_cancelled(params: Mapping[str, Any], task: TaskContext) -> bool:
    """Report progress 0.5, then wait for the cancel with ``params["timeout"]``."""
    task.update_progress(0.5)
    return task.wait_cancelled(params["timeout"])
