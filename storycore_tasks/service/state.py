"""The running service's parts, as ``app.state.service``: its manager and configuration,
its event log, its metrics and its webhook sender. Routers that need one part read it
from there themselves, so no module of the service imports this one but the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from storycore_tasks.manager import TaskManager
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.events import EventLog
from storycore_tasks.service.metrics import ServiceMetrics
from storycore_tasks.service.webhooks import WebhookSender

__all__ = ["ServiceState", "get_state"]


@dataclass(slots=True)
class ServiceState:
    """The running service's parts; ``app.state.service``."""

    manager: TaskManager
    config: ServiceConfig
    events: EventLog
    metrics: ServiceMetrics
    webhooks: WebhookSender | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop what the service started (never the manager it was given)."""
        while self.closers:
            self.closers.pop()()


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state
