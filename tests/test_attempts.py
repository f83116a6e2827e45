"""ActiveAttempts and the stop ladder's rule: the slots held (stopping ones included) and
which forced step is due when, as plain state."""

from __future__ import annotations

from typing import Any

import pytest

from actors import StopReason
from actors._core.attempts import (
    INTERRUPT_REPEAT_SECONDS,
    ActiveAttempt,
    ActiveAttempts,
    next_forced_step,
)
from actors._core.messages import Interrupt, Kill
from tests.records import make_spec


def _attempt(task_id: str) -> ActiveAttempt:
    worker: Any = None  # never told anything here
    backend: Any = None
    return ActiveAttempt(make_spec(task_id), worker, backend, None)


def test_a_stopping_attempt_keeps_its_slot_until_it_ends() -> None:
    """Stopping moves an attempt from running to stopping, once however often it is
    asked; only its end frees the slot."""
    attempts = ActiveAttempts()
    first, second = _attempt("a"), _attempt("b")
    attempts.add(first)
    attempts.add(second)
    assert (len(attempts), attempts.running, attempts.stopping) == (2, 2, 0)
    attempts.stop(first, StopReason.TIMEOUT)
    attempts.stop(first, StopReason.CANCEL_REQUESTED)
    assert (len(attempts), attempts.running, attempts.stopping) == (2, 1, 1)
    assert first.stopping is StopReason.CANCEL_REQUESTED
    assert attempts.end("a") is first
    assert (len(attempts), attempts.running, attempts.stopping, "a" in attempts) == (
        1,
        1,
        0,
        False,
    )
    assert attempts.end("a") is None  # a second end finds nothing and changes nothing
    assert (attempts.running, attempts.stopping) == (1, 0)


def test_one_attempt_per_task_holds_a_slot() -> None:
    """A second attempt of a task while the first holds its slot is a bug, refused."""
    attempts = ActiveAttempts()
    attempts.add(_attempt("a"))
    with pytest.raises(ValueError, match="already has an attempt"):
        attempts.add(_attempt("a"))


@pytest.mark.parametrize("stop_grace", [0.0, 0.05, 2.0])
def test_the_ladder_interrupts_then_kills(stop_grace: float) -> None:
    """First forced step: interrupt; every later one: kill. A back-end that can kill
    waits a stop grace (at least the repeat) between steps; threads repeat quickly."""
    steps = [next_forced_step(n, stop_grace=stop_grace, kill_ends_attempt=True) for n in range(3)]
    wait = max(stop_grace, INTERRUPT_REPEAT_SECONDS)
    assert steps == [(Interrupt, wait), (Kill, wait), (Kill, wait)]
    threads = [
        next_forced_step(n, stop_grace=stop_grace, kill_ends_attempt=False) for n in range(3)
    ]
    repeat = INTERRUPT_REPEAT_SECONDS
    assert threads == [(Interrupt, repeat), (Kill, repeat), (Kill, repeat)]
