"""``RuntimeStats``: one frozen snapshot of a runtime, and the reader that makes it.

Two parts of a snapshot need an answer from an actor (the registry's table, the
supervisor's slots and queue); everything else is read from the parts themselves,
without a message. The reader puts the two answers and the rest together, for the
blocking facade and the awaitable one alike, and says what a stopped supervisor's
statistics read (nothing runs or waits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from actors._core.supervisor import SupervisorStats
from actors._core.table import TableStats
from actors._core.timers import TimerStatistics
from actors._execution.async_backend import LoopStats
from actors._execution.processes import ProcessPoolStats
from actors._storage.store import StoreStats

__all__ = ["RuntimeStats", "StatsReader"]


@dataclass(frozen=True, slots=True)
class RuntimeStats:
    table: TableStats
    supervisor: SupervisorStats
    timers: TimerStatistics
    processes: ProcessPoolStats
    store: StoreStats
    # Pending tasks recovered from the store whose operation is not registered yet.
    awaiting_operation: int = 0
    # Circuit breakers, per operation that has one: state, recent failures, trips.
    operations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Restarts of the runtime's own parts (registry, timers), and whether it gave up.
    restarts: Mapping[str, Any] = field(default_factory=dict)
    injected_faults: int = 0  # operation runs a test's fault plan changed
    # The event loop of coroutine operations (None: a runtime built without it).
    loop: LoopStats | None = None


class StatsReader:
    """Reads the parts that answer without a message, each through its own reader
    (a part's ``statistics`` or ``snapshot``), at the moment a snapshot is made."""

    __slots__ = (
        "_async_capacity",
        "_capacity",
        "_injected_faults",
        "_loop",
        "_operations",
        "_processes",
        "_restarts",
        "_store",
        "_timers",
    )

    def __init__(
        self,
        *,
        capacity: int,
        async_capacity: int,
        timers: Callable[[], TimerStatistics],
        processes: Callable[[], ProcessPoolStats],
        store: Callable[[], StoreStats],
        operations: Callable[[], Mapping[str, Mapping[str, Any]]],
        restarts: Callable[[], Mapping[str, Any]],
        injected_faults: Callable[[], int],
        loop: Callable[[], LoopStats | None],
    ) -> None:
        self._capacity = capacity
        self._async_capacity = async_capacity
        self._timers = timers
        self._processes = processes
        self._store = store
        self._operations = operations
        self._restarts = restarts
        self._injected_faults = injected_faults
        self._loop = loop

    def stopped_supervisor(self) -> SupervisorStats:
        """What a stopped supervisor's statistics read: its capacities; nothing runs,
        waits or is admitted."""
        return SupervisorStats(
            capacity=self._capacity,
            pending=0,
            running=0,
            stopping=0,
            admitting=False,
            async_capacity=self._async_capacity,
        )

    def around(self, table: TableStats, supervisor: SupervisorStats) -> RuntimeStats:
        """The runtime's statistics around the registry's and the supervisor's answers
        (the rest read now)."""
        processes = self._processes()
        return RuntimeStats(
            table=table,
            supervisor=supervisor,
            timers=self._timers(),
            processes=processes,
            store=self._store(),
            awaiting_operation=supervisor.awaiting,
            operations=self._operations(),
            restarts=self._restarts(),
            injected_faults=self._injected_faults(),
            loop=self._loop(),
        )
