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

# structlog's configuration object, read attribute by attribute to tell a dropped debug or
# info event without a call into structlog (get_config builds a dict per call; a dropped
# event cost five calls, the runtime's largest per-task cost after the actors' messages).
# It is not public API: if a structlog release renames it, every event takes the public
# path in _emit, which decides the same way.
_CONFIG: Any = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
if not all(
    hasattr(_CONFIG, name)
    for name in (
        "is_configured",
        "default_processors",
        "default_wrapper_class",
        "logger_factory",
        "default_context_class",
    )
):
    _CONFIG = None

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
}


class LibraryLogger:
    """A logger whose destination is decided per event (see the module docstring)."""

    __slots__ = ("_cache", "_name", "_stdlib", "_stdlib_target", "dropped_events")

    def __init__(self, name: str) -> None:
        self._name = name
        self.dropped_events = 0  # events whose emission raised (a closed pipe, a bad handler)
        # structlog's lazy proxy would assemble a new bound logger (and call the logger
        # factory) on every event; the bound logger is kept until the configuration
        # changes, in one tuple (replaced whole, so threads never see half of an update):
        # (processors, wrapper class, logger factory, context class, the bound logger,
        # the levels it drops).
        self._cache: tuple[Any, Any, Any, Any, Any, frozenset[str]] | None = None
        self._stdlib_target = logging.getLogger(name)
        self._stdlib: Any = structlog.wrap_logger(
            self._stdlib_target,
            processors=[
                structlog.processors.format_exc_info,
                structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
        )

    def _structlog_logger(self) -> tuple[Any, frozenset[str]]:
        """The bound logger for structlog's current configuration, and the levels it
        drops. Runs for every event, filtered ones included: identity checks only (a
        generator over the configuration made a dropped debug event cost about 2 µs)."""
        config = structlog.get_config()
        processors = config["processors"]
        wrapper = config["wrapper_class"]
        factory = config["logger_factory"]
        context = config["context_class"]
        cache = self._cache
        if (
            cache is None
            or cache[0] is not processors
            or cache[1] is not wrapper
            or cache[2] is not factory
            or cache[3] is not context
        ):
            bound = structlog.get_logger(self._name).bind()
            # A filtering bound logger (make_filtering_bound_logger) says which levels it
            # drops; those events then return before their fields are passed on.
            is_enabled_for = getattr(bound, "is_enabled_for", None)
            dropped = frozenset(
                name
                for name, number in _LEVELS.items()
                if callable(is_enabled_for) and not is_enabled_for(number)
            )
            cache = (processors, wrapper, factory, context, bound, dropped)
            self._cache = cache
        return cache[4], cache[5]

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        # Logging must never break the runtime: an actor whose handler raised would stop,
        # so a failed emission (a closed stdout, a broken processor) is counted, not raised.
        try:
            if structlog.is_configured():
                target, dropped = self._structlog_logger()
                if level in dropped:
                    return
            elif self._stdlib_target.isEnabledFor(_LEVELS[level]):
                target = self._stdlib
            else:
                return
            getattr(target, level)(event, **fields)
        except Exception:
            self.dropped_events += 1

    def drops(self, level: str) -> bool:
        """Whether structlog's configuration, unchanged since the last event, drops this
        level: attribute reads only. False when in doubt (then the event decides). For a
        caller whose event's fields cost more than this check."""
        cache = self._cache
        config = _CONFIG
        return (
            cache is not None
            and config is not None
            and config.is_configured
            and level in cache[5]
            and cache[0] is config.default_processors
            and cache[1] is config.default_wrapper_class
            and cache[2] is config.logger_factory
            and cache[3] is config.default_context_class
        )

    def debug(self, event: str, **fields: Any) -> None:
        if not self.drops("debug"):
            self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        if not self.drops("info"):
            self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit("exception", event, fields)

    def __repr__(self) -> str:
        return f"<LibraryLogger {self._name}>"


_LOGGERS: dict[str, LibraryLogger] = {}


def library_logger(name: str) -> LibraryLogger:
    """The library's logger named ``name``: one per name, so the modules that log under
    one name (the registry's lifecycle lines come from three) share its
    ``dropped_events``."""
    found = _LOGGERS.get(name)
    if found is None:
        found = _LOGGERS.setdefault(name, LibraryLogger(name))  # atomic: one wins
    return found
