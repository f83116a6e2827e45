"""SpecMaker: a submission's arguments become a spec's fields, each option checked once by
its declaration and the runtime's defaults resolved here (isolation, limits, retry, the
start time, the operation's name, the params as the store keeps them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from actors import Isolation, ManualClock, RetryPolicy, UnknownOptionError
from actors._core.submission import SpecMaker
from actors._operations import OperationRegistry


def echo(params: Any, task: Any) -> Any:
    return params


def _maker(clock: ManualClock, **overrides: Any) -> SpecMaker:
    settings: dict[str, Any] = {
        "operations": OperationRegistry(),
        "clock": clock,
        "durable": False,
        "isolation": Isolation.THREAD,
        "limits": (512.0, 30.0),
        "retry": RetryPolicy(max_attempts=3),
    }
    settings.update(overrides)
    return SpecMaker(**settings)


def test_the_runtime_defaults_are_resolved_into_the_options() -> None:
    """No isolation or retry given: the runtime's; a thread task carries no limits; a
    process task carries the runtime's; delay and run_at are cleared once resolved."""
    clock = ManualClock()
    maker = _maker(clock)
    thread = maker.fields(echo, {"a": 1})["options"]
    process = maker.fields(echo, {"a": 1}, isolation="process")["options"]
    assert (thread.isolation, thread.memory_limit_mb, thread.retry) == (
        Isolation.THREAD,
        None,
        RetryPolicy(max_attempts=3),
    )
    assert (process.isolation, process.memory_limit_mb, process.cpu_time_limit) == (
        Isolation.PROCESS,
        512.0,
        30.0,
    )
    assert (process.delay, process.run_at) == (None, None)


def test_a_delay_or_run_at_becomes_the_start_time_on_the_clock() -> None:
    """delay is seconds from the injected clock's now; run_at its timestamp; a past run_at
    or a zero delay is at once (None)."""
    clock = ManualClock(start_time=1_000_000.0)
    maker = _maker(clock)
    assert maker.fields(echo, delay=5.0)["not_before"] == 1_000_005.0
    assert maker.fields(echo, delay=0)["not_before"] is None
    future = datetime.fromtimestamp(1_000_060.0, tz=UTC)
    assert maker.fields(echo, run_at=future)["not_before"] == 1_000_060.0
    assert maker.fields(echo, run_at=datetime.fromtimestamp(5.0, tz=UTC))["not_before"] is None
    with pytest.raises(ValueError, match="delay or run_at, not both"):
        maker.fields(echo, delay=1.0, run_at=future)


def test_limits_on_a_thread_task_and_an_unknown_option_are_refused_by_name() -> None:
    """A limit needs a process; an unknown option is named with the known ones."""
    maker = _maker(ManualClock())
    with pytest.raises(ValueError, match="isolation='process'"):
        maker.fields(echo, memory_limit_mb=64)
    with pytest.raises(UnknownOptionError, match="'colour'"):
        maker.fields(echo, colour="blue")


def test_a_durable_runtime_keeps_the_params_as_json_and_names_the_operation() -> None:
    """With a durable store the params are normalised to what the store reads back, with
    their JSON text; a plain function is named by its qualified name."""
    maker = _maker(ManualClock(), durable=True)
    fields = maker.fields(echo, {"t": (1, 2)})
    assert (fields["params"], fields["params_json"]) == ({"t": [1, 2]}, '{"t":[1,2]}')
    assert fields["operation_name"] == "tests.test_spec_maker.echo"
    assert fields["named"] is False


def test_tasks_given_the_same_options_share_one_immutable_object() -> None:
    """Equal option values resolve once and are shared (TaskOptions is frozen); a value
    equal but of another type is checked on its own (True never passes as 1); an
    unhashable value is resolved each time, correctly."""
    maker = _maker(ManualClock())
    first = maker.fields(echo, timeout=5.0, priority="high")["options"]
    second = maker.fields(echo, timeout=5.0, priority="high")["options"]
    assert first is second
    assert maker.fields(echo, timeout=5, priority="high")["options"] is not first
    assert maker.fields(echo, timeout=1)["options"].timeout == 1  # True == 1, hash alike
    with pytest.raises(TypeError, match="timeout"):
        maker.fields(echo, timeout=True)
    listed = maker.fields(echo, depends_on=["a", "b"])["options"]
    again = maker.fields(echo, depends_on=["a", "b"])["options"]
    assert (listed.depends_on, again.depends_on, listed is again) == (("a", "b"), ("a", "b"), False)


class _AsyncCallable:
    async def __call__(self, params: Any, task: Any) -> None:
        return None


class _PlainCallable:
    def __call__(self, params: Any, task: Any) -> None:
        return None

    async def method(self, params: Any, task: Any) -> None:
        return None


def test_a_coroutine_operation_is_told_apart_from_a_plain_one() -> None:
    """The fast path for plain functions answers as the general one would, and every
    other kind of callable is still recognised."""
    import functools

    from actors._core.submission import is_coroutine_operation

    async def coroutine(params: Any, task: Any) -> None:
        return None

    def plain(params: Any, task: Any) -> None:
        return None

    cases: list[tuple[Any, bool]] = [
        (coroutine, True),
        (plain, False),
        (lambda params, task: None, False),
        (functools.partial(coroutine, {}), True),
        (functools.partial(plain, {}), False),
        (_AsyncCallable(), True),
        (_PlainCallable(), False),
        (_PlainCallable().method, True),
        (len, False),
    ]
    assert [is_coroutine_operation(op) for op, _ in cases] == [want for _, want in cases]
