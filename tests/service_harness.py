"""A real HTTP service on a free loopback port, for the service's tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.service.app import create_app
from storycore_tasks.service.deps import ServiceConfig

START_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunningService:
    url: str  # "http://127.0.0.1:<port>"
    manager: TaskManager


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_service(manager: TaskManager, config: ServiceConfig) -> Iterator[RunningService]:
    """Serve ``create_app(manager, config)`` with uvicorn on a thread until the block
    ends; the manager is not shut down here (its owner does that)."""
    app = create_app(manager, config)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        if not wait_until(lambda: server.started or not thread.is_alive(), timeout=START_TIMEOUT):
            raise RuntimeError(f"the service did not start on port {port} in {START_TIMEOUT} s")
        if not server.started:
            raise RuntimeError(f"the service failed to start on port {port}")
        yield RunningService(f"http://127.0.0.1:{port}", manager)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
