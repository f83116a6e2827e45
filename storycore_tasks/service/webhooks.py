"""Signed webhooks on task events (TO BE WRITTEN: interface only)."""

from __future__ import annotations

from storycore_tasks.manager import TaskManager

__all__ = ["WebhookSender"]


class WebhookSender:
    def __init__(
        self,
        manager: TaskManager,
        *,
        secret: str,
        allowed_hosts: tuple[str, ...] | None,
        retry_seconds: float,
        timeout: float,
    ) -> None:
        self._manager = manager

    def check_url(self, url: str) -> None:
        """Raise ValueError naming the problem unless ``url`` may receive webhooks."""

    def register(self, task_id: str, url: str, progress: bool) -> None:
        """Send ``task_id``'s events to ``url`` (terminal; progress too if asked)."""

    def close(self) -> None:
        """Stop sending (deliveries in flight are abandoned)."""
