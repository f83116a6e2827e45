"""The async back-end's watchdog: a thread that notices when the event loop is held up
by synchronous work in a coroutine, and names the task that holds it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from actors.logs import library_logger

__all__ = ["LoopWatchdog"]

_log = library_logger("actors.worker")


class LoopWatchdog:
    """Detects a blocked event loop: the loop beats every ``interval`` seconds; a
    :meth:`tick` that finds the last beat more than ``threshold`` seconds old reports
    the stall once, naming the task the loop is running (``task.loop_blocked``), or, when
    the loop is in no task, as lag that no coroutine caused (``loop.lagged``). The
    watchdog's thread is ``while running: tick(); wait()``, so tests call :meth:`tick`
    directly."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        threshold: float,
        task_id_of: Callable[[asyncio.Task[Any] | None], str | None],
        on_blocked: Callable[[float], None],
        on_lagged: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loop = loop
        self.threshold = threshold
        self.interval = threshold / 2
        self._task_id_of = task_id_of
        self._on_blocked = on_blocked
        self._on_lagged = on_lagged or (lambda lag: None)
        self._clock = clock
        self._last_beat = clock()
        # The stall being seen, as reported: "lagged" (in no coroutine), "blocked".
        self._stalled: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """On the loop: record a beat, and the next one ``interval`` from now."""
        self._last_beat = self._clock()
        if not self._stop.is_set():
            self._loop.call_later(self.interval, self.beat)

    def tick(self, now: float) -> float | None:
        """Check the loop's lag at ``now``; returns the lag when it reported a stall."""
        lag = now - self._last_beat
        if lag <= self.threshold:
            self._stalled = None
            return None
        if self._stalled == "blocked":
            return None  # this stall is reported already
        task = asyncio.current_task(self._loop)
        if task is None:
            if self._stalled == "lagged":
                return None
            # The loop was not in a coroutine: between callbacks (many hand-overs at
            # once), or waiting for the GIL while other threads ran Python. Late, but
            # not blocked by anyone's coroutine (if one is found blocking later in this
            # stall, it is reported then).
            self._stalled = "lagged"
            self._on_lagged(lag)
            _log.info("loop.lagged", lag_seconds=round(lag, 3), threshold_seconds=self.threshold)
            return lag
        self._stalled = "blocked"
        task_id = self._task_id_of(task)
        self._on_blocked(lag)
        _log.warning(
            "task.loop_blocked",
            task_id=task_id,
            lag_seconds=round(lag, 3),
            threshold_seconds=self.threshold,
            asyncio_task=None if task is None else task.get_name(),
            detail=(
                "a coroutine ran synchronous work on the event loop (time.sleep, CPU-bound "
                "code, a blocking call) and held up every other coroutine: await instead, "
                "or use a plain function with isolation='thread' or 'process'"
            ),
        )
        return lag

    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._watch, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick(self._clock())
