"""A fixed pool of named threads that run submitted callables, FIFO, without futures.

``concurrent.futures.ThreadPoolExecutor`` builds a Future (with its own Condition) per
submission; the runtime never reads those futures, and at two submissions per task the
cost shows. This pool is a C ``SimpleQueue`` and N threads. Callables must not raise:
one that does (with any exception) is logged and the thread carries on.

Threads are daemon threads: a host that exits without ``shutdown()`` is not held
hostage by an operation that never returns (``shutdown(wait=True)`` is how to wait).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from actors.logs import library_logger

__all__ = ["ThreadPool"]

_log = library_logger("actors.threadpool")
_STOP = None


class ThreadPool:
    def __init__(self, threads: int, *, name: str) -> None:
        if threads < 1:
            raise ValueError(f"a thread pool needs at least one thread, got {threads}")
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._unfinished = 0  # submitted callables not yet returned
        self._stopping = False  # the stop sentinels are queued
        self._threads = tuple(
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(threads)
        )
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return self._threads

    def owns_current_thread(self) -> bool:
        return threading.current_thread() in self._threads

    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on a pool thread.

        After ``shutdown`` only the pool's own threads may submit (a callable queueing
        its continuation, as a pooled actor's turn does); others get RuntimeError.
        """
        with self._lock:
            if self._closed and (self._stopping or not self.owns_current_thread()):
                raise RuntimeError("the thread pool is shut down; nothing more can run on it")
            self._unfinished += 1
            self._queue.put(fn)

    def shutdown(self, *, wait: bool = True) -> None:
        """Run what was submitted (and what that submits in turn), then stop the
        threads. Idempotent."""
        with self._lock:
            self._closed = True
            self._stop_if_idle()
        if wait:
            current = threading.current_thread()
            for thread in self._threads:
                if thread is not current:
                    thread.join()

    def _stop_if_idle(self) -> None:
        # Called with the lock held.
        if self._closed and not self._stopping and self._unfinished == 0:
            self._stopping = True
            for _ in self._threads:
                self._queue.put(_STOP)

    def _run(self) -> None:
        get = self._queue.get
        while True:
            fn = get()
            if fn is _STOP:
                return
            try:
                fn()
            except BaseException:
                # Not even a stray BaseException (an asynchronous TaskInterrupted that
                # arrived late) may end a pool thread: the pool would shrink for good.
                _log.exception("threadpool.callable_failed", callable=repr(fn))
            finally:
                with self._lock:
                    self._unfinished -= 1
                    self._stop_if_idle()
