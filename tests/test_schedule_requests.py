"""``schedule_request``, tested directly: a schedule's arguments are checked once, when
it is made; each tick's spec is a new task (its own id, the next shared seq, its own
params, the clock's time); the options that place a task in time or among others are
refused by name."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from actors import ManualClock
from actors._core.schedule_requests import REFUSED_OPTIONS, schedule_request
from actors._core.submission import SpecMaker
from actors._enums import Isolation
from actors._operations import OperationRegistry


def render(params: Any, task: Any) -> None:
    return None


def _specs(clock: ManualClock) -> SpecMaker:
    operations = OperationRegistry()
    operations.register("render", render, retry_on_interrupt=False)
    return SpecMaker(
        operations=operations,
        clock=clock,
        durable=False,
        isolation=Isolation.THREAD,
        limits=(None, None),
        retry=None,
    )


def test_the_message_carries_the_interval_the_first_tick_and_the_operation() -> None:
    """``first_in`` None means one interval; the operation is named by its name."""
    clock = ManualClock()
    default = schedule_request(
        _specs(clock), itertools.count(), clock, 30.0, "render", None, None, {}
    )
    sooner = schedule_request(_specs(clock), itertools.count(), clock, 30.0, "render", None, 0, {})
    assert (default.interval, default.first_in, default.operation) == (30.0, 30.0, "render")
    assert sooner.first_in == 0.0
    assert default.schedule_id.startswith("schedule-")
    assert default.schedule_id != sooner.schedule_id


def test_each_tick_is_a_new_task_with_its_own_params_and_the_next_seq() -> None:
    """Two ticks: two ids, consecutive seqs from the shared counter, equal but distinct
    params, created at the clock's time of each tick."""
    clock = ManualClock()
    seq = itertools.count(7)
    message = schedule_request(
        _specs(clock), seq, clock, 10.0, "render", {"frames": [1, 2]}, None, {"priority": "high"}
    )
    first = message.make_spec()
    clock.advance(10.0)
    second = message.make_spec()
    assert first.task_id != second.task_id
    assert (first.seq, second.seq, next(seq)) == (7, 8, 9)
    assert first.params == second.params == {"frames": [1, 2]}
    assert first.params is not second.params
    assert second.created_at - first.created_at == 10.0
    assert first.options == second.options


@pytest.mark.parametrize("name", REFUSED_OPTIONS)
def test_the_options_that_place_a_task_are_refused_by_name(name: str) -> None:
    """delay, run_at, depends_on and group_id make no sense for a recurring task."""
    clock = ManualClock()
    with pytest.raises(TypeError, match=f"schedule_every does not take '{name}'"):
        schedule_request(
            _specs(clock), itertools.count(), clock, 10.0, "render", None, None, {name: None}
        )


@pytest.mark.parametrize(
    ("interval", "first_in", "refusal"),
    [
        (0.0, None, "interval must be > 0 seconds"),
        (-1.0, None, "interval must be > 0 seconds"),
        (10.0, -1.0, "first_in must be >= 0 seconds"),
    ],
    ids=str,
)
def test_a_bad_interval_or_first_tick_is_refused(
    interval: float, first_in: float | None, refusal: str
) -> None:
    """The interval must be positive; the first tick may be now but not in the past."""
    clock = ManualClock()
    with pytest.raises(ValueError, match=refusal):
        schedule_request(
            _specs(clock), itertools.count(), clock, interval, "render", None, first_in, {}
        )


def test_a_bad_task_argument_is_refused_when_the_schedule_is_made() -> None:
    """The task arguments are checked as submit checks them: an unknown option is
    refused at once, not at a tick."""
    clock = ManualClock()
    with pytest.raises(TypeError, match="colour"):
        schedule_request(
            _specs(clock), itertools.count(), clock, 10.0, "render", None, None, {"colour": 1}
        )
