"""Opt-in logging setup. Importing the library never configures logging.

The library logs through structlog with the task id bound to every lifecycle event. A
host that already configures structlog needs nothing from here; one that does not can
call :func:`configure` once at start-up, before creating a ``TaskManager``.
"""

from __future__ import annotations

import logging as _stdlib_logging
import sys
from typing import Any, TextIO

import structlog

__all__ = ["LEVELS", "configure"]

LEVELS = ("debug", "info", "warning", "error", "critical")


def configure(
    *, json: bool = False, level: str | int = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the whole process: JSON lines or console output.

    Args:
        json: one JSON object per line (for log shippers) instead of coloured console text.
        level: the lowest level emitted (``"debug"`` shows coalesced ``task.progress``).
        stream: where lines go; standard error by default.
    """
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
        numeric = _stdlib_logging.getLevelNamesMapping()[level.upper()]
    elif isinstance(level, int) and not isinstance(level, bool):
        numeric = level
    else:
        raise TypeError(f"level must be a level name or number, got {type(level).__name__}")
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(sort_keys=False, default=repr),
        ]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
