"""``StatsReader``, tested directly: a snapshot puts the registry's and the supervisor's
answers together with what the parts read without a message, each read when the
snapshot is made; a stopped supervisor reads its capacities and nothing running."""

from __future__ import annotations

from typing import Any

from actors import ManualClock
from actors._core.restarts import SelfHealing
from actors._core.stats import RuntimeStats, StatsReader
from actors._core.supervisor import SupervisorStats
from actors._core.table import TaskTable
from actors._core.timers import TimerService
from actors._execution.async_backend import LoopStats
from actors._execution.faults import FaultPlan
from actors._execution.processes import ProcessPoolStats
from actors._storage.store import MemoryStore

_LOOP = LoopStats(
    running=False,
    coroutines=0,
    started_total=0,
    loop_blocked_total=0,
    cancellations_ignored_total=0,
    max_lag_seconds=0.0,
)


def _reader(**overrides: Any) -> StatsReader:
    clock = ManualClock()
    healing = SelfHealing(max_restarts=3, window=60.0, clock=clock, give_up=lambda reason: None)
    sources: dict[str, Any] = {
        "capacity": 4,
        "async_capacity": 100,
        "timers": TimerService(clock).statistics,  # never started: nothing armed
        "processes": lambda: ProcessPoolStats(
            children=0, idle=0, started_total=0, replaced_total=0
        ),
        "store": MemoryStore().statistics,
        "operations": dict,
        "restarts": healing.snapshot,
        "injected_faults": lambda: FaultPlan().injected_total,
        "loop": lambda: _LOOP,
    }
    sources.update(overrides)
    return StatsReader(**sources)


def test_a_stopped_supervisor_reads_its_capacities_and_nothing_running() -> None:
    """The capacities the reader was given; nothing pending, running, stopping, admitted."""
    stopped = _reader().stopped_supervisor()
    assert stopped == SupervisorStats(
        capacity=4, pending=0, running=0, stopping=0, admitting=False, async_capacity=100
    )


def test_a_snapshot_holds_both_answers_and_what_the_parts_read() -> None:
    """The table and supervisor answers as given; ``awaiting_operation`` is the
    supervisor's ``awaiting``; the rest comes from each part's own reader."""
    table = TaskTable().stats()
    supervisor = SupervisorStats(
        capacity=4, pending=2, running=1, stopping=0, admitting=True, awaiting=3
    )
    breakers = {"render": {"state": "open", "failures": 5}}
    stats = _reader(operations=lambda: breakers, injected_faults=lambda: 7).around(
        table, supervisor
    )
    assert isinstance(stats, RuntimeStats)
    assert (stats.table, stats.supervisor, stats.awaiting_operation) == (table, supervisor, 3)
    assert (stats.operations, stats.injected_faults, stats.loop) == (breakers, 7, _LOOP)
    assert stats.store.kind == MemoryStore().statistics().kind
    assert stats.timers.armed == 0
    assert (
        stats.restarts
        == SelfHealing(
            max_restarts=3, window=60.0, clock=ManualClock(), give_up=lambda reason: None
        ).snapshot()
    )


def test_each_part_is_read_when_the_snapshot_is_made() -> None:
    """Nothing is cached by the reader: a part whose numbers change reads the new ones."""
    counts = iter([1, 2])
    reader = _reader(injected_faults=lambda: next(counts))
    table = TaskTable().stats()
    supervisor = reader.stopped_supervisor()
    first = reader.around(table, supervisor).injected_faults
    second = reader.around(table, supervisor).injected_faults
    assert (first, second) == (1, 2)
