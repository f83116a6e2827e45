"""Loggers for library code: structlog when the host configured it, else stdlib logging.

structlog's unconfigured default prints every event, debug included, to standard
output, which is rude for a library embedded in someone else's process. So each event
goes through structlog only once the process has configured structlog (the host did, or
it called ``storycore_tasks.logging.configure``); until then it goes to the standard
library logger of the same name, which follows the host's ``logging`` setup and, with
none, shows only warnings and errors on standard error. Either way nothing is
configured on import.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ["LibraryLogger", "library_logger"]


class LibraryLogger:
    """A logger whose destination is decided per event (see the module docstring)."""

    __slots__ = ("_name", "_stdlib", "_structlog", "dropped_events")

    def __init__(self, name: str) -> None:
        self._name = name
        self.dropped_events = 0  # events whose emission raised (a closed pipe, a bad handler)
        self._structlog: Any = structlog.get_logger(name)
        self._stdlib: Any = structlog.wrap_logger(
            logging.getLogger(name),
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.processors.format_exc_info,
                structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
        )

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        # Logging must never break the runtime: an actor whose handler raised would stop,
        # so a failed emission (a closed stdout, a broken processor) is counted, not raised.
        try:
            target = self._structlog if structlog.is_configured() else self._stdlib
            getattr(target, level)(event, **fields)
        except Exception:
            self.dropped_events += 1

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit("exception", event, fields)

    def __repr__(self) -> str:
        return f"<LibraryLogger {self._name}>"


def library_logger(name: str) -> LibraryLogger:
    return LibraryLogger(name)
