"""``Drain``: the supervisor's shutdown as plain state (tested directly in
tests/test_drain.py): whether it still admits tasks, what becomes of a pending task it
stops for, and the event set once nothing is left to run.

Shutdown stops admission at once. What cannot start any more is taken out of its place
(``shutdown_drain.drain_for_shutdown``) and recorded here: cancelled, or, with a durable
store, left pending for the next runtime that opens it. The drain is over when no
attempt holds a slot and no pending task the drain waits for is left
(``shutdown_drain.nothing_left_to_run``); the runtime's teardown waits for
:attr:`Drain.drained`.

Why a separate object: "a task the runtime stops for is cancelled, or kept for the next
runtime with a durable store" and "drained means nothing is left to run" are rules of
their own, read by every handler that may end the drain; the supervisor only says when
to look.
"""

from __future__ import annotations

import threading
from typing import Any

import pykka

from actors._clock import Clock
from actors._core.admission import AdmissionGate
from actors._core.attempts import ActiveAttempts
from actors._core.messages import Finish
from actors._core.pending import PendingQueue
from actors._core.resource_slots import ResourceSlots
from actors._core.shutdown_drain import drain_for_shutdown, nothing_left_to_run
from actors._core.timers import TimerHandle, TimerService
from actors._outcome import Cancelled, StopReason
from actors._records import TaskSpec

__all__ = ["Drain"]


class Drain:
    """Admission open until :meth:`begin`; then :attr:`drained` is set by the first
    :meth:`check` that finds nothing left to run. Tells the registry the end of each
    task it cancels."""

    __slots__ = (
        "_active",
        "_admission",
        "_clock",
        "_durable",
        "_queue",
        "_registry",
        "_slots",
        "_timers",
        "admitting",
        "drained",
    )

    def __init__(
        self,
        *,
        registry: pykka.ActorRef[Any],
        clock: Clock,
        admission: AdmissionGate,
        queue: PendingQueue[TimerHandle],
        slots: ResourceSlots[TaskSpec],
        active: ActiveAttempts,
        timers: TimerService,
        durable: bool,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._admission = admission
        self._queue = queue
        self._slots = slots
        self._active = active
        self._timers = timers
        self._durable = durable
        self.admitting = True  # False once shutdown has begun
        self.drained = threading.Event()

    def begin(self, *, cancel_pending: bool) -> threading.Event:
        """Shutdown: stop admitting, and take out what it does not wait for (see
        ``drain_for_shutdown``), each cancelled or abandoned. Returns :attr:`drained`
        (not looked at yet: see :meth:`check`)."""
        self.admitting = False
        drain = drain_for_shutdown(
            self._queue,
            self._slots,
            self._timers,
            cancel_pending=cancel_pending,
            durable=self._durable,
        )
        for spec in drain.cancelled:
            self._admission.leave()
            self._finish(spec.task_id)
        for record in drain.cancelled_awaiting:
            self._finish(record.task_id)
        for spec in drain.abandoned:
            self.abandon(spec)
        return self.drained

    def abandon(self, spec: TaskSpec) -> None:
        """A pending task the runtime stops for (shutdown): cancelled, or with a durable
        store left pending, for the next runtime."""
        self._admission.leave()
        if not self._durable:
            self._finish(spec.task_id)

    def check(self) -> None:
        """Set :attr:`drained` once shutdown has begun and nothing is left to run."""
        if (
            not self.admitting
            and not self._active
            and nothing_left_to_run(self._queue, self._slots)
        ):
            self.drained.set()

    def _finish(self, task_id: str) -> None:
        self._registry.tell(Finish(task_id, Cancelled(StopReason.SHUTDOWN), self._clock.time()))
