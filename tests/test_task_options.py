"""``TaskOptions``: every per-task option declared once, each checked on its own, and an
unknown option named with the list of known ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from actors import Isolation, RetryPolicy, TaskPriority
from actors._options import TaskOptions, UnknownOptionError, options_of

BAD_VALUES: dict[str, list[Any]] = {
    "user": [5, b"alice"],
    "timeout": ["5", True, -1, 0, float("nan"), float("inf")],
    "priority": ["urgent", 99, 1.5],
    "isolation": ["fork", 3],
    "memory_limit_mb": ["512", 0, -5, float("inf"), True],
    "cpu_time_limit": ["1", 0, float("nan")],
    "delay": ["1", -1, float("inf")],
    "run_at": ["2030-01-01", datetime(2030, 1, 1)],  # naive on purpose
    "retry": [3, {"max_attempts": 3}],
    "depends_on": ["abc", 5, [5], [""]],
    "group_id": [7],
}


def test_every_option_is_declared_with_a_kind_and_a_doc() -> None:
    """The declaration is the one list: each field has an Option with a kind, a doc
    and a check, and every bad-value case here names a declared option."""
    declared = options_of()
    assert [o.name for o in declared] == [f.name for f in dataclasses.fields(TaskOptions)]
    for o in declared:
        assert o.doc
        assert o.kind
    assert set(BAD_VALUES) == {o.name for o in declared}


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, values in BAD_VALUES.items() for v in values]
)
def test_a_bad_value_is_refused_naming_the_option(name: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=name):
        TaskOptions(**{name: value})


def test_good_values_are_normalised() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    options = TaskOptions(
        user="alice",
        timeout=5,
        priority="high",
        isolation="process",
        memory_limit_mb=256,
        cpu_time_limit=2,
        delay=0,
        run_at=at,
        retry=RetryPolicy(max_attempts=2),
        depends_on=["a", "b", "a"],
        group_id="g",
    )
    assert options.timeout == 5.0
    assert isinstance(options.timeout, float)
    assert options.priority is TaskPriority.HIGH
    assert options.isolation is Isolation.PROCESS
    assert options.depends_on == ("a", "b")  # a repeated id is one dependency
    assert options.run_at == at


def test_an_unknown_option_is_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownOptionError) as refused:
        TaskOptions.from_mapping({"timeot": 5, "timeout": 1}, where="tasks[2]")
    message = str(refused.value)
    assert message.startswith("tasks[2]: unknown task option 'timeot'; the options are ")
    for o in options_of():
        assert o.name in message
    assert refused.value.names == ["timeot"]


def test_options_are_frozen() -> None:
    options = TaskOptions(timeout=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 2  # type: ignore[misc]
    assert options.replace(timeout=2).timeout == 2.0
    with pytest.raises(TypeError, match="timeout"):
        options.replace(timeout="2")


def test_where_each_option_appears() -> None:
    """What the store keeps, the HTTP API offers and the CLI's submit has, from the
    declaration (delay and run_at resolve into a stored start time)."""
    assert {o.name for o in options_of(stored=False)} == {"delay", "run_at"}
    assert {o.name for o in options_of(http=False)} == {"user", "group_id"}
    assert "timeout" in {o.name for o in options_of(cli=True)}
