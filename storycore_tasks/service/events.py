"""Live task events over Server-Sent Events (TO BE WRITTEN: interface only)."""

from __future__ import annotations

from fastapi import APIRouter

from storycore_tasks.manager import TaskManager

__all__ = ["EventLog", "router"]

router = APIRouter()


class EventLog:
    """Every task event the manager emits, kept per task (the last ``history`` of each)
    for streams to replay from ``Last-Event-ID``."""

    def __init__(self, manager: TaskManager, *, history: int) -> None:
        self._manager = manager
        self._history = history

    def close(self) -> None:
        """Stop listening (the manager is not shut down)."""
