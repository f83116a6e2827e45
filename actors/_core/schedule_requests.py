"""What ``schedule_every`` asks the supervisor: its arguments checked once, and the
spec maker each tick calls.

A schedule's task arguments are checked when it is made, as ``submit`` checks them,
so a bad one is refused at once rather than at every tick. Each tick then builds a
new task from them on the supervisor's thread: its own id, the next seq (shared with
``submit``, so schedules and submissions keep one order) and its own copy of the
params. The options that place a task in time or among others (``delay``, ``run_at``,
``depends_on``, ``group_id``) make no sense for a recurring task and are refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from actors._clock import Clock
from actors._core.messages import AddSchedule
from actors._core.submission import SpecMaker
from actors._execution.api import AnyOperation
from actors._ids import new_id
from actors._records import TaskSpec
from actors.validation import check_seconds

__all__ = ["REFUSED_OPTIONS", "schedule_request"]

REFUSED_OPTIONS = ("delay", "run_at", "depends_on", "group_id")


def schedule_request(
    specs: SpecMaker,
    seq: Iterator[int],
    clock: Clock,
    interval: float,
    operation: AnyOperation | str,
    params: Mapping[str, Any] | None,
    first_in: float | None,
    options: Mapping[str, Any],
) -> AddSchedule:
    """The supervisor's message for a new schedule: every ``interval`` seconds, the
    first ``first_in`` seconds from now (None: one interval). Raises what ``submit``
    raises for the task arguments, and :class:`TypeError` for a refused option."""
    every = check_seconds("interval", interval) or 0.0
    first = every if first_in is None else check_seconds("first_in", first_in, allow_zero=True)
    for name in REFUSED_OPTIONS:
        if name in options:
            raise TypeError(f"schedule_every does not take {name!r}")
    fields = specs.fields(operation, params, **options)

    def make_spec() -> TaskSpec:  # runs on the supervisor's thread, at each tick
        spec_fields = dict(fields)
        # Each run gets its own params, as each create_task does.
        spec_fields["params"] = dict(fields["params"])
        return TaskSpec(
            task_id=new_id(),
            seq=next(seq),
            created_at=clock.time(),
            **spec_fields,
        )

    schedule_id = f"schedule-{new_id()}"
    return AddSchedule(schedule_id, every, first or 0.0, make_spec, fields["operation_name"])
