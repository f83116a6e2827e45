"""Failure facts: how an operation ended, as the runtime saw it.

The runtime records facts ("timed out after 5.0 s with this partial result", "raised
ValueError"); the StoryCore layer turns them into error codes and remediation texts.
"""

from __future__ import annotations

import signal as signal_module
from dataclasses import dataclass, field
from typing import Any

from actors._enums import StopReason
from actors._exception_facts import exception_facts, exception_name

__all__ = [
    "Cancelled",
    "Completed",
    "Crashed",
    "DependencyFailed",
    "Interrupted",
    "Outcome",
    "Raised",
    "ResourceExhausted",
    "ResultNotStorable",
    "Stalled",
    "StopReason",
    "TimedOut",
    "exception_name",
]


@dataclass(frozen=True, slots=True)
class Completed:
    """The operation returned ``result``.

    ``result_json``: its JSON text, when the operation's thread already encoded it for a
    durable store (so the registry does not encode it again)."""

    result: Any
    result_json: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Raised:
    """The operation raised; ``exception_type`` is the qualified class name."""

    exception_type: str
    message: str
    traceback: str
    # The qualified names of the exception's classes, most derived first: a retry
    # policy matches on them, across a process boundary, without the class itself.
    exception_mro: tuple[str, ...] = ()

    @classmethod
    def from_exception(cls, exc: BaseException) -> Raised:
        exception_type, message, trace, mro = exception_facts(exc)
        return cls(
            exception_type=exception_type,
            message=message,
            traceback=trace,
            exception_mro=mro,
        )


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The deadline passed while the operation ran.

    The registry fills in the partial result it holds when it records the timeout, so
    the fact carries the latest value the operation had published.
    """

    timeout_seconds: float
    partial_result: Any = None
    has_partial_result: bool = False
    # The latest checkpoint the registry held (``task.checkpoint``), filled in likewise.
    checkpoint: Any = None
    has_checkpoint: bool = False


@dataclass(frozen=True, slots=True)
class Stalled:
    """The operation showed no sign of life (progress, a partial result, a checkpoint,
    ``task.heartbeat()``) for ``heartbeat_timeout`` seconds while it ran.

    ``silent_seconds`` is how long it had been silent when the supervisor stopped it;
    the registry fills in the latest progress, partial result and checkpoint it holds
    when it records the stall, as it does for a timeout.
    """

    heartbeat_timeout: float
    silent_seconds: float
    progress: float = 0.0
    partial_result: Any = None
    has_partial_result: bool = False
    checkpoint: Any = None
    has_checkpoint: bool = False


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The task was cancelled before it could finish."""

    reason: StopReason


@dataclass(frozen=True, slots=True)
class Crashed:
    """The child process running the operation died: ``exit_code`` when it exited
    (``os._exit(3)``), ``signal`` when a signal killed it (a segfault, SIGKILL). Or the
    host ended it: ``reason`` says why (its channel to the host was corrupted). On Ray
    (which reports no exit code or signal): ``node_id`` of the node it ran on and
    ``ray_error``, Ray's error (a worker that died, a node removed)."""

    exit_code: int | None
    signal: int | None
    reason: str | None = None
    node_id: str | None = None
    ray_error: str | None = None

    @property
    def signal_name(self) -> str | None:
        if self.signal is None:
            return None
        try:
            return signal_module.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"


@dataclass(frozen=True, slots=True)
class ResourceExhausted:
    """The operation went past a resource limit of its child process."""

    limit: str  # "memory_limit_mb", "cpu_time_limit", or "node_memory" (Ray's OOM kill)
    value: float
    message: str


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The process running the runtime stopped (a crash, ``kill -9``) before the task
    ended; a runtime that reopened its durable store found it unfinished. Or (``cause``
    ``"registry_restarted"``) the registry failed on this task's message and restarted.

    ``was_running``: it had started (attempt ``attempt``); otherwise it was pending, and
    its operation was a plain function, which a new process cannot find again.
    ``last_seen_at`` is the task's last recorded change, ``recovered_at`` when the new
    runtime found it. ``cause`` ``"ray_unavailable"``: the host lost its Ray cluster while
    the attempt was in flight.
    """

    was_running: bool
    attempt: int
    last_seen_at: float
    recovered_at: float
    # "process_stopped": found unfinished by a new runtime; "registry_restarted": the
    # registry failed while handling this task's message, and ended it when it restarted.
    cause: str = "process_stopped"


@dataclass(frozen=True, slots=True)
class ResultNotStorable:
    """The operation returned a value the durable store cannot keep (not JSON)."""

    type_name: str
    message: str


@dataclass(frozen=True, slots=True)
class DependencyFailed:
    """A task this one depended on failed or was cancelled (``dependency_status``), so
    this one was cancelled without running."""

    dependency_id: str
    dependency_status: str


Outcome = (
    Completed
    | Raised
    | TimedOut
    | Stalled
    | Cancelled
    | Crashed
    | ResourceExhausted
    | Interrupted
    | ResultNotStorable
    | DependencyFailed
)
