"""Named operations: the functions a runtime can find again after a restart.

A function cannot be stored; its name can. A task created by name records the name, and
a runtime that reopens a durable store finds the function again by that name, in the
operations registered with it (before or after it opened the store).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from actors._errors import UnknownOperationError
from actors._execution.api import AnyOperation

__all__ = ["NamedOperation", "OperationEntry", "OperationRegistry", "check_operation_name"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,199}")


@dataclass(frozen=True, slots=True)
class OperationEntry:
    name: str
    function: AnyOperation
    # Safe to run again from the start when the process died while it ran.
    retry_on_interrupt: bool = False


@dataclass(frozen=True, slots=True)
class NamedOperation:
    """A function with its registration options, for ``operations={name: ...}`` (where a
    bare function means the defaults)."""

    function: AnyOperation
    retry_on_interrupt: bool = False


def check_operation_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"an operation name must be a str, got {type(name).__name__}")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid operation name {name!r}: use 1 to 200 letters, digits, '_', '.', ':' "
            "or '-', not starting with a punctuation mark (e.g. 'storycore.video.render')"
        )
    return name


class OperationRegistry:
    """Thread-safe map of operation names to functions. Registering a name twice with
    the same function (and flags) is a no-op; with another one it is refused."""

    def __init__(self) -> None:
        self._entries: dict[str, OperationEntry] = {}
        self._lock = threading.Lock()

    def register(self, name: str, function: AnyOperation, *, retry_on_interrupt: bool) -> bool:
        """Register; True if the name is new, False if it was already registered alike."""
        name = check_operation_name(name)
        if not callable(function):
            raise TypeError(
                f"operation {name!r} must be a callable taking (params, task), got "
                f"{type(function).__name__}"
            )
        if not isinstance(retry_on_interrupt, bool):
            raise TypeError(
                f"retry_on_interrupt must be a bool, got {type(retry_on_interrupt).__name__}"
            )
        entry = OperationEntry(name, function, retry_on_interrupt)
        with self._lock:
            existing = self._entries.get(name)
            if existing is None:
                self._entries[name] = entry
                return True
        if existing == entry:
            return False
        raise ValueError(
            f"operation {name!r} is already registered with {existing.function!r} "
            f"(retry_on_interrupt={existing.retry_on_interrupt}); pick another name"
        )

    def register_all(self, operations: object) -> None:
        """Register ``{name: function or NamedOperation}``."""
        if not isinstance(operations, Mapping):
            raise TypeError(
                f"operations must map names to functions, got {type(operations).__name__}"
            )
        for name, value in operations.items():
            if isinstance(value, NamedOperation):
                self.register(name, value.function, retry_on_interrupt=value.retry_on_interrupt)
            else:
                self.register(name, value, retry_on_interrupt=False)

    def get(self, name: str) -> OperationEntry | None:
        return self._entries.get(name)

    def resolve(self, name: str) -> OperationEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownOperationError(name, self.names())
        return entry

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)
