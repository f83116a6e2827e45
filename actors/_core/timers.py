"""The timer service: one thread, one heap of deadlines, an injectable clock.

A fired timer is a message told to an actor; the service never runs user code. With a
:class:`~actors.ManualClock` the thread sleeps until the clock is advanced, and
:meth:`TimerService.tick` fires what is due in the advancing thread, so tests see
exact virtual times.

A tick that fails (a bug, or a test's injected fault) does not kill the service: it is
restarted in place (see ``actors._core.restarts``): the heap is rebuilt from the armed
handles, the due timers not yet told are armed again, and the restart is counted.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors._clock import Clock, blocking_timeout
from actors.logs import library_logger

__all__ = ["TimerHandle", "TimerService", "TimerStatistics"]

_log = library_logger("actors.timers")


class TimerHandle:
    """One armed deadline. Cancel it with :meth:`TimerService.cancel`."""

    __slots__ = ("armed", "deadline", "message", "seq", "target")

    def __init__(self, deadline: float, seq: int, target: pykka.ActorRef[Any], message: Any):
        self.deadline = deadline
        self.seq = seq
        self.target = target
        self.message = message
        self.armed = True  # False once fired or cancelled

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def __repr__(self) -> str:
        state = "armed" if self.armed else "disarmed"
        return f"<TimerHandle {state} deadline={self.deadline!r} message={self.message!r}>"


@dataclass(frozen=True, slots=True)
class TimerStatistics:
    """A snapshot of the timer service, for tests and ``get_stats``."""

    armed: int
    scheduled_total: int
    fired_total: int
    cancelled_total: int
    undeliverable_total: int
    restarts: int = 0


class TimerService:
    """Fires messages at actors when their deadlines pass."""

    # Cancelled handles stay in the heap until popped (O(1) cancel); when they outnumber
    # the live ones past this floor, the heap is rebuilt so memory stays bounded.
    _COMPACT_FLOOR = 1024

    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "actors-timers",
        on_restart: Callable[[BaseException], object] | None = None,
    ) -> None:
        self._clock = clock
        self._on_restart = on_restart  # told every failure the service recovered from
        self._fault: Exception | None = None  # a test's injected fault, for the next tick
        self._restarts = 0
        self._name = name
        # guards the heap and the counters; the busiest paths (arm, cancel) take the lock
        # itself, a C call, where the condition's `with` is two Python calls
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._fire_lock = threading.Lock()  # one tick at a time, pop to last tell
        self._heap: list[TimerHandle] = []
        self._seq = itertools.count()
        self._cancelled_in_heap = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._unsubscribe = clock.subscribe(self._on_clock_jump)
        self._scheduled_total = 0
        self._fired_total = 0
        self._cancelled_total = 0
        self._undeliverable_total = 0

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError(f"{self._name} is already started")
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread; armed timers are dropped. Idempotent."""
        self._unsubscribe()
        with self._cond:
            self._stopping = True
            dropped = len(self._heap) - self._cancelled_in_heap
            for handle in self._heap:
                handle.armed = False  # dropped: a later cancel() must not count it
            self._heap.clear()
            self._cancelled_in_heap = 0
            self._cond.notify_all()
            thread = self._thread
        if dropped:
            _log.debug("timers.dropped_on_stop", count=dropped)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- scheduling ------------------------------------------------------------------

    def schedule_at(
        self, deadline: float, target: pykka.ActorRef[Any], message: Any
    ) -> TimerHandle:
        """Tell ``message`` to ``target`` once ``clock.monotonic() >= deadline``."""
        # acquire/release, not ``with``: half the cost of the call (measured), and a task
        # with a timeout arms and cancels one timer.
        lock = self._lock
        lock.acquire()
        try:
            if self._stopping:
                raise RuntimeError(f"{self._name} is stopped; no timer can be armed")
            handle = TimerHandle(deadline, next(self._seq), target, message)
            heapq.heappush(self._heap, handle)
            self._scheduled_total += 1
            if self._heap[0] is handle:
                self._cond.notify()
        finally:
            lock.release()
        return handle

    def schedule_after(
        self, delay_seconds: float, target: pykka.ActorRef[Any], message: Any
    ) -> TimerHandle:
        return self.schedule_at(self._clock.monotonic() + delay_seconds, target, message)

    def cancel(self, handle: TimerHandle) -> bool:
        """Disarm ``handle``. Returns False if it had already fired or been cancelled."""
        lock = self._lock  # see schedule_at
        lock.acquire()
        try:
            if not handle.armed:
                return False
            handle.armed = False
            self._cancelled_total += 1
            self._cancelled_in_heap += 1
            live = len(self._heap) - self._cancelled_in_heap
            if self._cancelled_in_heap > max(self._COMPACT_FLOOR, live):
                self._heap = [h for h in self._heap if h.armed]
                heapq.heapify(self._heap)
                self._cancelled_in_heap = 0
        finally:
            lock.release()
        return True

    # -- firing ------------------------------------------------------------------------

    def tick(self) -> int:
        """Fire every timer whose deadline has passed; returns how many fired.

        Popping and telling happen under one lock, so when a tick returns, every timer
        that was due at its start has been told, even one that a concurrent tick (the
        timer thread's) popped: that is what makes ``ManualClock.advance`` exact.
        """
        with self._fire_lock:
            due: list[TimerHandle] = []
            with self._cond:
                if self._fault is not None:
                    fault, self._fault = self._fault, None
                    raise fault
                now = self._clock.monotonic()
                while self._heap and self._heap[0].deadline <= now:
                    handle = heapq.heappop(self._heap)
                    if not handle.armed:
                        self._cancelled_in_heap -= 1
                        continue
                    handle.armed = False  # a fired timer cannot be cancelled any more
                    due.append(handle)
                self._fired_total += len(due)
            undeliverable = 0
            for index, handle in enumerate(due):
                try:
                    handle.target.tell(handle.message)
                except pykka.ActorDeadError:
                    # The target stopped first (shutdown); nothing waits on this message.
                    undeliverable += 1
                except Exception:
                    self._rearm(due[index + 1 :])  # not told yet: they fire next tick
                    raise
            if undeliverable:
                with self._cond:
                    self._undeliverable_total += undeliverable
        return len(due)

    def statistics(self) -> TimerStatistics:
        with self._cond:
            return TimerStatistics(
                armed=len(self._heap) - self._cancelled_in_heap,
                scheduled_total=self._scheduled_total,
                fired_total=self._fired_total,
                cancelled_total=self._cancelled_total,
                undeliverable_total=self._undeliverable_total,
                restarts=self._restarts,
            )

    # -- failures ----------------------------------------------------------------------

    def inject_fault(self, error: Exception) -> None:
        """Make the next tick fail with ``error`` (testing the restart), and tick soon."""
        with self._cond:
            self._fault = error
            self._cond.notify()

    def _rearm(self, handles: list[TimerHandle]) -> None:
        with self._cond:
            for handle in handles:
                handle.armed = True
                heapq.heappush(self._heap, handle)
            self._fired_total -= len(handles)

    def _restart(self, error: Exception) -> None:
        """A tick failed: rebuild the heap from the armed handles and carry on."""
        with self._cond:
            self._heap = [h for h in self._heap if h.armed]
            heapq.heapify(self._heap)
            self._cancelled_in_heap = 0
            self._restarts += 1
            self._cond.notify()
        if self._on_restart is not None:
            self._on_restart(error)
        else:
            _log.warning("actor.restarted", actor="timers", error=repr(error))

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception as exc:
            try:
                self._restart(exc)
            except Exception as failure:  # the service goes on; the failure is said
                _log.error("timers.restart_failed", error=repr(failure), cause=repr(exc))

    def _on_clock_jump(self) -> None:
        self._safe_tick()
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            self._safe_tick()
            with self._cond:
                if self._stopping:
                    return
                timeout: float | None = None
                if self._heap:
                    deadline = self._heap[0].deadline
                    if deadline <= self._clock.monotonic():
                        # Armed (already due) after this thread's tick: its notify came
                        # before this wait, so go round again instead of missing it.
                        continue
                    timeout = self._clock.seconds_until(deadline)
                if timeout is None or timeout > 0:
                    # A deadline decades away (a stored start time) is woken early and
                    # re-read, not an OverflowError that stops this thread.
                    self._cond.wait(blocking_timeout(timeout))
