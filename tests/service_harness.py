"""A real HTTP service on a free loopback port, for the service's tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from storycore_tasks import TaskManager
from storycore_tasks.service.app import create_app
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.server import serve_in_thread

START_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunningService:
    url: str  # "http://127.0.0.1:<port>"
    manager: TaskManager
    app: FastAPI | None = None  # the very app served


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_service(
    manager: TaskManager, config: ServiceConfig, *, log_level: str = "warning"
) -> Iterator[RunningService]:
    """Serve ``create_app(manager, config)`` on a thread until the block ends; the
    manager is not shut down here (its owner does that). ``log_level`` "info" turns
    uvicorn's access log on."""
    app = create_app(manager, config)
    with serve_in_thread(app, start_timeout=START_TIMEOUT, log_level=log_level) as served:
        yield RunningService(served.url, manager, app)
