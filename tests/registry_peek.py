"""What a test reads of the registry actor's own state (there is no public view of it):
the actor itself, and whether a ``wait`` caller is blocked on a task."""

from __future__ import annotations

from typing import Any

from storycore_tasks import TaskManager


def registry_actor(manager: TaskManager) -> Any:
    registry = manager.runtime._registry._actor_weakref()
    assert registry is not None
    return registry


def watched(manager: TaskManager, task_id: str) -> bool:
    """Whether a ``wait`` caller is registered on ``task_id`` in the registry (read from
    the actor's state: there is no public count of blocked waiters)."""
    return bool(registry_actor(manager)._waiters.get(task_id))
