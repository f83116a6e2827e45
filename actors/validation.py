"""Argument checks shared by the public entry points of both packages. Each error names the fix."""

from __future__ import annotations

import math
from typing import Any

from actors._records import TaskPriority

__all__ = ["check_count", "check_priority", "check_seconds"]


def check_seconds(
    name: str, value: Any, *, allow_none: bool = False, allow_zero: bool = False
) -> float | None:
    """A duration in seconds: a finite real number, > 0 (or >= 0 with ``allow_zero``)."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be a number of seconds, got None")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value):
        hint = "; pass None for no limit" if allow_none else ""
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}{hint}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    return float(value)


def check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_priority(value: Any) -> TaskPriority:
    """A :class:`TaskPriority`, its int value, or its name in any case ("high")."""
    if isinstance(value, TaskPriority):
        return value
    if isinstance(value, str):
        try:
            return TaskPriority[value.upper()]
        except KeyError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return TaskPriority(value)
        except ValueError:
            pass
    choices = ", ".join(f"TaskPriority.{p.name}" for p in sorted(TaskPriority, reverse=True))
    raise ValueError(f"unknown priority {value!r}; use one of {choices}")
