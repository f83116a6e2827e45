"""Argument checks shared by the public entry points of both packages. Each error names the fix."""

from __future__ import annotations

import math
import pickle
import sys
from typing import Any

from actors._enums import Isolation, TaskPriority

__all__ = [
    "check_count",
    "check_fraction",
    "check_isolation",
    "check_picklable",
    "check_positive_number",
    "check_priority",
    "check_seconds",
    "check_text",
    "lone_surrogate",
]


MAX_SECONDS = 10 * 365 * 86_400.0
"""The longest duration any argument in seconds may be (ten years): every delay,
timeout, interval and age is a moment that must stay a datetime, a timer deadline and a
blocking wait, and longer ones are typing mistakes. ``None`` means no limit where one is
optional."""


_REAL = (int, float)


def check_seconds(
    name: str,
    value: Any,
    *,
    allow_none: bool = False,
    allow_zero: bool = False,
    maximum: float = MAX_SECONDS,
) -> float | None:
    """A duration in seconds: a finite real number, > 0 (or >= 0 with ``allow_zero``),
    at most ``maximum`` (ten years unless said)."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be a number of seconds, got None")
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value):
        hint = "; pass None for no limit" if allow_none else ""
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}{hint}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    if value > maximum:
        hint = "; pass None for no limit" if allow_none else ""
        limit = f"{maximum:g} seconds ({_spoken(maximum)})"
        raise ValueError(f"{name} must be at most {limit}, got {value!r}{hint}")
    return float(value)


def _spoken(seconds: float) -> str:
    days = seconds / 86_400
    return f"{days / 365:g} years" if days >= 365 else f"{days:g} days"


def check_count(name: str, value: Any, *, minimum: int = 1, maximum: int = sys.maxsize) -> int:
    """An int from ``minimum`` to ``maximum`` (``sys.maxsize`` unless said: a count the
    runtime can hold, slice and compare as a machine int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
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


def check_positive_number(name: str, value: Any, *, maximum: float = math.inf) -> float:
    """A finite real number > 0 (a size, a count of megabytes), at most ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum:g}, got {value!r}")
    return float(value)


def check_isolation(value: Any) -> Isolation:
    """``"thread"``, ``"process"``, ``"async"`` or ``"ray"`` (or an :class:`Isolation`)."""
    if isinstance(value, Isolation):
        return value
    if isinstance(value, str):
        try:
            return Isolation(value.lower())
        except ValueError:
            pass
    raise ValueError(f"unknown isolation {value!r}; use 'thread', 'process', 'async' or 'ray'")


def check_picklable(operation: Any, operation_name: str, params: Any) -> None:
    """Process isolation sends the operation and its params to a child: both must pickle.

    Raises TypeError naming the culprit (the operation, or the params key).
    """
    try:
        pickle.dumps(operation, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"operation {operation_name!r} cannot be pickled for process isolation ({exc}); "
            "define it as a module-level function (not a lambda, a local function or a "
            "bound method of an unpicklable object)"
        ) from None
    for key, value in dict(params or {}).items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"params[{key!r}] ({type(value).__name__}) cannot be pickled for process "
                f"isolation ({exc}); pass plain data (numbers, strings, lists, dicts) instead"
            ) from None


def check_fraction(fraction: Any) -> float:
    """A progress fraction: a real number from 0.0 to 1.0."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(
            f"update_progress expects a number from 0.0 to 1.0, got {type(fraction).__name__}"
        )
    if not (0.0 <= fraction <= 1.0) or math.isnan(fraction):
        raise ValueError(
            f"update_progress expects a fraction from 0.0 to 1.0, got {fraction!r}; "
            "divide steps done by total steps"
        )
    return float(fraction)


# -- text that must be storable (the store and the service carry it as UTF-8) --------------


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text``, escaped for a message (``'\\udcff'``), or
    None when ``text`` is valid Unicode. ``os.fsdecode(b"\\xff")`` makes them; neither
    UTF-8 nor SQLite can carry them."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return text[exc.start : exc.end].encode("utf-8", "backslashreplace").decode()
    return None


def check_text(name: str, value: str) -> str:
    """A str that is valid Unicode: no lone surrogate (see :func:`lone_surrogate`)."""
    bad = lone_surrogate(value)
    if bad is not None:
        raise ValueError(
            f"{name} contains {bad!r}, a lone surrogate, which is not valid Unicode and "
            "cannot be stored or sent; pass text, e.g. "
            "os.fsencode(name).decode('utf-8', 'backslashreplace')"
        )
    return value
