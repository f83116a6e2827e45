"""Why a runtime refuses new work, and how it stops itself.

A runtime refuses what it is asked to start once it is shut down, or once it has given
up (its own parts failed more often than the restart intensity allows, or its
supervisor failed). The error says which, and what the refusal means for the call
(``consequence``). Giving up stops the runtime from a thread of its own: the failing
part's thread must not wait for its own shutdown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from actors._errors import RuntimeClosedError
from actors.logs import library_logger

__all__ = ["closed_error", "stop_in_background"]

_log = library_logger("actors.registry")


def closed_error(gave_up_reason: str | None, consequence: str) -> RuntimeClosedError:
    """The error of a call a closed runtime refuses: given up (``gave_up_reason``), or
    shut down (None)."""
    if gave_up_reason is not None:
        return RuntimeClosedError(
            f"the task manager stopped itself because {gave_up_reason}; {consequence}"
        )
    return RuntimeClosedError(f"the task manager is shut down; {consequence}")


def stop_in_background(shutdown: Callable[[], None], reason: str) -> threading.Thread:
    """Run ``shutdown`` on a daemon thread of its own (started, and returned); a failure
    of it (already shutting down, or an actor is gone) is logged with ``reason``."""

    def stop() -> None:
        try:
            shutdown()
        except Exception as exc:
            _log.error("manager.stop_failed", reason=reason, error=repr(exc))

    thread = threading.Thread(target=stop, name="actors-give-up", daemon=True)
    thread.start()
    return thread
