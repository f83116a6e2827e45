"""The host's end of the Ray back-end's host channel without Ray, for tests: a
``HostChannel`` on an asyncio loop of its own thread, and ``Peer``, an attempt as the
channel sees it (what its node told it, in order)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from actors._execution.ray_channel import HostChannel

SECRET = b"s" * 32
BOUND = 10.0  # seconds: an upper bound for a loaded machine, never a duration we expect


class Peer:
    """An attempt as the channel sees it: what it was told, in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[Any, ...]] = []
        self.changed = threading.Condition()

    def _note(self, item: tuple[Any, ...]) -> None:
        with self.changed:
            self.heard.append(item)
            self.changed.notify_all()

    def on_started(self, worker_pid: int, node_id: str) -> None:
        self._note(("started", worker_pid, node_id))

    def on_progress(self, fields: tuple[Any, ...]) -> None:
        self._note(("progress", *fields))

    def on_answer(self, answer: tuple[Any, ...]) -> None:
        self._note(("answer", *answer))

    def on_ending(self) -> None:
        self._note(("ending",))

    def on_lost(self, why: str) -> None:
        self._note(("lost", why))

    def wait_for(self, count: int) -> list[tuple[Any, ...]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.heard) >= count, BOUND), self.heard
            return list(self.heard)


class Host:
    """A HostChannel on its own loop thread; ``call`` runs a function on the loop."""

    def __init__(self, secret: bytes = SECRET) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.channel = HostChannel(secret)
        opening = asyncio.run_coroutine_threadsafe(self.channel.open("127.0.0.1", 0), self.loop)
        self.host, self.port = opening.result(BOUND)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return on_loop(self.loop, lambda: function(*args))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.channel.close(), self.loop).result(BOUND)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(BOUND)
        self.loop.close()


def on_loop(loop: asyncio.AbstractEventLoop, call: Callable[[], Any]) -> Any:
    """``call()`` run on ``loop`` (running on another thread); what it returned."""

    async def run() -> Any:
        return call()

    return asyncio.run_coroutine_threadsafe(run(), loop).result(BOUND)
