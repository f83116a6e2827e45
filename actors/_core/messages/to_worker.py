"""The supervisor's stop-ladder steps to a worker, in the order they come."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from actors._outcome import StopReason

__all__ = [
    "WORKER_MESSAGES",
    "Interrupt",
    "Kill",
    "Stop",
    "WorkerMessage",
]


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason


@dataclass(frozen=True, slots=True)
class Interrupt:
    """The first forced step of the stop ladder (the stop grace has passed): the
    attempt's ``interrupt`` (TaskInterrupted in a thread, SIGTERM to a child)."""

    reason: StopReason


@dataclass(frozen=True, slots=True)
class Kill:
    """Every later step: the attempt's ``kill`` (SIGKILL of a child and its processes;
    a thread is interrupted again)."""

    reason: StopReason


WorkerMessage = Stop | Interrupt | Kill
"""The supervisor's stop-ladder steps to a worker, in the order they come."""

WORKER_MESSAGES: tuple[type, ...] = get_args(WorkerMessage)
