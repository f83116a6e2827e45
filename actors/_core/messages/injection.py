"""The fault-injection kit's message, which both the registry and the supervisor handle
(see actors._core.restarts)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "InjectFault",
]


@dataclass(frozen=True, slots=True)
class InjectFault:
    """Make the registry fail (raise ``error``) while handling the next message of type
    ``message_type`` (one of several, given a tuple; about task ``task_id``, when
    given), or at once when ``message_type`` is None. Several can be armed at once. For
    testing the registry's restart."""

    error: Exception
    message_type: type | tuple[type, ...] | None = None
    task_id: str | None = None
