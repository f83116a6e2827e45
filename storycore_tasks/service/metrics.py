"""Prometheus metrics of the service (TO BE WRITTEN: interface only)."""

from __future__ import annotations

from fastapi import APIRouter

from storycore_tasks.manager import TaskManager

__all__ = ["ServiceMetrics", "router"]

router = APIRouter()


class ServiceMetrics:
    def __init__(self, manager: TaskManager) -> None:
        self._manager = manager

    def close(self) -> None:
        """Stop listening."""
