"""serve_in_thread waits on the server's own start-up signal, not on a poll.

The server sets an event when its start-up has finished, listening or not; the caller
wakes on it, so a server that cannot bind is reported at once as a failed start, and
one that starts is answering when the block is entered.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable

import pytest

from storycore_tasks import TaskManager
from storycore_tasks.service.app import create_app
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.server import ServeError, serve_in_thread

# Far longer than any start-up: a failure must not cost the whole timeout.
GENEROUS_TIMEOUT = 60.0


def test_a_started_server_answers_inside_the_block(
    make_manager: Callable[..., TaskManager],
) -> None:
    """Once the block is entered the service answers on its URL (start-up has finished)."""
    app = create_app(make_manager(), ServiceConfig(tokens=None))
    with serve_in_thread(app, start_timeout=GENEROUS_TIMEOUT) as served:
        assert served.server.started
        with urllib.request.urlopen(f"{served.url}/v1/whoami", timeout=10.0) as answer:
            assert answer.status == 200


def test_a_port_in_use_is_a_failed_start_reported_without_waiting_out_the_timeout(
    make_manager: Callable[..., TaskManager],
) -> None:
    """A server that cannot bind ends its start-up; the caller is woken by that and gets
    ServeError "failed to start", not a wait for the timeout and "did not start"."""
    app = create_app(make_manager(), ServiceConfig(tokens=None))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        began = time.monotonic()
        with (
            pytest.raises(ServeError, match="failed to start"),
            serve_in_thread(app, port=port, start_timeout=GENEROUS_TIMEOUT, log_level="critical"),
        ):
            pass
        assert time.monotonic() - began < GENEROUS_TIMEOUT / 2
