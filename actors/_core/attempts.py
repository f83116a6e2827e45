"""The attempts that hold a slot, and the stop ladder's rule: plain state the supervisor
owns (tested directly in tests/test_attempts.py).

An attempt holds its slot from the moment its worker is spawned until its back-end
reports that it has really ended; one that is stopping (timed out or cancelled) is
terminal in the registry already, but still holds its slot, so a stuck operation can
never multiply threads or processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pykka

from actors._core.messages import Interrupt, Kill
from actors._core.timers import TimerHandle
from actors._enums import Isolation
from actors._execution.backend import ExecutionBackend
from actors._execution.published import Published
from actors._execution.start_gate import StartGate
from actors._outcome import StopReason
from actors._records import TaskSpec

__all__ = [
    "ASYNC_SLOTS",
    "INTERRUPT_REPEAT_SECONDS",
    "RAY_SLOTS",
    "SLOT_POOL_OF",
    "WORKER_SLOTS",
    "ActiveAttempt",
    "ActiveAttempts",
    "next_forced_step",
    "slot_pool",
]

WORKER_SLOTS = "workers"
"""The slot pool of thread and process attempts (``num_workers`` / ``concurrency``)."""
ASYNC_SLOTS = "async"
"""The slot pool of coroutine attempts on the event loop (``async_concurrency``)."""


RAY_SLOTS = "ray"
"""The slot pool of Ray attempts (the Ray back-end's ``max_in_flight``)."""


SLOT_POOL_OF: Mapping[Isolation | None, str] = MappingProxyType(
    {
        None: WORKER_SLOTS,
        Isolation.THREAD: WORKER_SLOTS,
        Isolation.PROCESS: WORKER_SLOTS,
        Isolation.ASYNC: ASYNC_SLOTS,
        Isolation.RAY: RAY_SLOTS,
    }
)
"""Whose slots an attempt of each isolation holds: coroutines and Ray attempts have their
own (neither holds a host thread). A lookup where the hot path asks (see slot_pool)."""


def slot_pool(isolation: Isolation | None) -> str:
    """Whose slots an attempt of this isolation holds (:data:`SLOT_POOL_OF`)."""
    return SLOT_POOL_OF[isolation]


INTERRUPT_REPEAT_SECONDS = 0.1
"""How often a back-end that cannot kill (threads) is interrupted again while stopping."""


@dataclass(slots=True)
class ActiveAttempt:
    spec: TaskSpec
    worker: pykka.ActorRef[Any]
    backend: ExecutionBackend
    # The one timer a task has armed: its timeout while it runs, then the next step of
    # its stop ladder while it is stopping.
    timer: TimerHandle | None
    # Started where it runs: recorded running, its deadline armed. A back-end whose
    # start is its hand-over starts at once; another says so (AttemptStarted) if the
    # task has a deadline to arm, and its gate tells otherwise.
    started: bool = False
    # A back-end that starts later passes this gate, which a stop closes first.
    gate: StartGate | None = None
    injected: str | None = None  # the fault injected into this attempt (a test's)
    attempt: int = 1
    stopping: StopReason | None = None
    forced_steps: int = 0  # interrupts and kills sent while stopping
    # Timed out with a retry due at this wall-clock time: the next attempt is queued
    # once this one's operation has really returned (its slot is still held).
    retry_at: float | None = None
    trial: bool = False  # the half-open circuit breaker's trial task
    # What the operation publishes (shared with its context): the supervisor reads its
    # latest sign of life and checkpoint there, without a message.
    published: Published | None = None
    # The heartbeat deadline's timer (heartbeat_timeout), armed when it started; one
    # timer that re-arms itself at the time left after the latest sign of life.
    watch: TimerHandle | None = None
    alive_since: float = 0.0  # monotonic: when the attempt started
    # resume_task of this (ended, still stopping) task: its next attempt, queued once
    # this one's operation has really returned.
    resumed: TaskSpec | None = None


def next_forced_step(
    forced_steps: int, *, stop_grace: float, kill_ends_attempt: bool
) -> tuple[type[Interrupt] | type[Kill], float]:
    """The stop ladder after the cooperative flag, one function: the step due now (the
    first forced one interrupts, every later one kills) and how long until the next.
    A back-end that can kill waits another ``stop_grace`` before each kill (SIGTERM, then
    SIGKILL); one that cannot (threads, where a kill is another interrupt) repeats every
    ``INTERRUPT_REPEAT_SECONDS`` until the operation has left."""
    step: type[Interrupt] | type[Kill] = Interrupt if forced_steps == 0 else Kill
    if kill_ends_attempt:
        return step, max(stop_grace, INTERRUPT_REPEAT_SECONDS)
    return step, INTERRUPT_REPEAT_SECONDS


class ActiveAttempts:
    """Every attempt holding a slot, by task id, and how many of them are stopping, in
    all and per slot pool (:func:`slot_pool` of its isolation)."""

    __slots__ = ("_by_id", "_held", "_stopping", "_stopping_in", "held_in")

    def __init__(self) -> None:
        self._by_id: dict[str, ActiveAttempt] = {}
        self._stopping = 0
        self._held: dict[str, int] = {}  # slots held per pool, stopping ones included
        self._stopping_in: dict[str, int] = {}
        # Read-only and live: slots held per pool, for the dispatcher's hot path (a
        # lookup, not a call of held()).
        self.held_in: Mapping[str, int] = MappingProxyType(self._held)

    def held(self, pool: str) -> int:
        """Slots of ``pool`` held, by running and stopping attempts."""
        return self._held.get(pool, 0)

    def stopping_in(self, pool: str) -> int:
        return self._stopping_in.get(pool, 0)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._by_id

    def __iter__(self) -> Iterator[ActiveAttempt]:
        return iter(list(self._by_id.values()))

    @property
    def running(self) -> int:
        return len(self._by_id) - self._stopping

    @property
    def stopping(self) -> int:
        return self._stopping

    def add(self, attempt: ActiveAttempt) -> None:
        task_id = attempt.spec.task_id
        if task_id in self._by_id:
            raise ValueError(f"task {task_id} already has an attempt holding a slot")
        self._by_id[task_id] = attempt
        pool = SLOT_POOL_OF[attempt.spec.options.isolation]
        self._held[pool] = self._held.get(pool, 0) + 1

    def get(self, task_id: str) -> ActiveAttempt | None:
        return self._by_id.get(task_id)

    def stop(self, attempt: ActiveAttempt, reason: StopReason) -> None:
        """The attempt is asked to stop: it keeps its slot until it has ended."""
        if attempt.stopping is None:
            self._stopping += 1
            pool = slot_pool(attempt.spec.options.isolation)
            self._stopping_in[pool] = self._stopping_in.get(pool, 0) + 1
        attempt.stopping = reason

    def end(self, task_id: str) -> ActiveAttempt | None:
        """The attempt has really ended: its slot is free."""
        attempt = self._by_id.pop(task_id, None)
        if attempt is None:
            return None
        pool = SLOT_POOL_OF[attempt.spec.options.isolation]
        self._held[pool] -= 1
        if attempt.stopping is not None:
            self._stopping -= 1
            self._stopping_in[pool] -= 1
        return attempt
