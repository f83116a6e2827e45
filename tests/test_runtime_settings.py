"""RuntimeSettings: a runtime's arguments checked once into one frozen record; the first
bad argument is refused by name, before any thread starts."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from actors import Isolation, MemoryStore, SystemClock
from actors._core.settings import RuntimeSettings

DEFAULTS: dict[str, Any] = {
    "concurrency": 4,
    "max_pending": 100,
    "max_task_age": 3600.0,
    "cleanup_interval": 300.0,
    "clock": None,
    "ask_timeout": 30.0,
    "stop_grace": 2.0,
    "isolation": "thread",
    "max_tasks_per_child": 100,
    "memory_limit_mb": None,
    "cpu_time_limit": None,
    "store": None,
    "retry": None,
    "max_failures": None,
    "failure_window": 60.0,
    "cooldown": None,
    "max_restarts": 3,
    "restart_window": 60.0,
}


def test_defaults_become_a_frozen_record_with_a_clock_and_a_store() -> None:
    """No clock or store given: a system clock and a memory store; the record is frozen."""
    settings = RuntimeSettings.checked(**DEFAULTS)
    assert isinstance(settings.clock, SystemClock)
    assert isinstance(settings.store, MemoryStore)
    assert (settings.isolation, settings.operation_limits) == (Isolation.THREAD, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.concurrency = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("concurrency", 0, ValueError),
        ("stop_grace", -1.0, ValueError),
        ("isolation", "fiber", ValueError),
        ("max_tasks_per_child", 0, ValueError),
        ("memory_limit_mb", -5, ValueError),
        ("clock", object(), TypeError),
        ("store", "tasks.db", TypeError),
        ("retry", 3, TypeError),
        ("max_restarts", -1, ValueError),
    ],
)
def test_a_bad_argument_is_named(name: str, value: object, error: type[Exception]) -> None:
    """Each bad argument raises its typed error naming the argument, and starts nothing."""
    before = threading.active_count()
    with pytest.raises(error, match=name.split("_")[0]):
        RuntimeSettings.checked(**{**DEFAULTS, name: value})
    assert threading.active_count() == before


def test_the_first_bad_argument_in_order_is_the_one_reported() -> None:
    """Two bad arguments: the one TaskRuntime takes first is named."""
    with pytest.raises(ValueError, match="concurrency"):
        RuntimeSettings.checked(**{**DEFAULTS, "concurrency": 0, "max_restarts": -1})
