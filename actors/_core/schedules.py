"""``Schedules``: the recurring schedules of one supervisor, as plain state.

Each schedule ticks at a fixed rate (the next tick is one interval after the last was
due, however late it was handled), remembers the last task it created (so two runs of
one schedule never overlap) and counts its runs and skipped ticks. The supervisor owns
it and decides what a tick does; timers are opaque handles here, so it is tested
directly on plain numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from actors._records import TaskSpec

__all__ = ["Schedule", "Schedules"]

H = TypeVar("H")  # the handle of a schedule's next-tick timer


@dataclass(slots=True)
class Schedule(Generic[H]):
    schedule_id: str
    interval: float
    make_spec: Callable[[], TaskSpec]
    operation: str
    due: float  # monotonic time of the next tick
    timer: H | None = None
    last_task: str | None = None
    runs: int = 0
    skipped: int = 0

    def statistics(self, now: float) -> dict[str, object]:
        return {
            "interval": self.interval,
            "runs": self.runs,
            "skipped": self.skipped,
            "last_task_id": self.last_task,
            "next_run_in": max(self.due - now, 0.0),
        }


class Schedules(Generic[H]):
    """Schedules by id; the owner arms and cancels their timers."""

    def __init__(self) -> None:
        self._by_id: dict[str, Schedule[H]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Schedule[H]]:
        return iter(list(self._by_id.values()))

    def add(
        self,
        schedule_id: str,
        interval: float,
        make_spec: Callable[[], TaskSpec],
        operation: str,
        *,
        first_due: float,
    ) -> Schedule[H]:
        if schedule_id in self._by_id:
            raise ValueError(f"schedule {schedule_id} exists already")
        schedule: Schedule[H] = Schedule(schedule_id, interval, make_spec, operation, first_due)
        self._by_id[schedule_id] = schedule
        return schedule

    def advance(self, schedule_id: str) -> Schedule[H] | None:
        """A tick of ``schedule_id`` came: move its next tick one interval on (fixed
        rate) and return it; None for a schedule dropped meanwhile."""
        schedule = self._by_id.get(schedule_id)
        if schedule is not None:
            schedule.due += schedule.interval
        return schedule

    def drop(self, schedule_id: str) -> Schedule[H] | None:
        """Remove a schedule; returns it (its timer is the owner's to cancel)."""
        return self._by_id.pop(schedule_id, None)

    def statistics(self, now: float) -> dict[str, dict[str, object]]:
        return {s.schedule_id: s.statistics(now) for s in self._by_id.values()}
