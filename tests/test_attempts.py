"""ActiveAttempts and the stop ladder's rule: the slots held (stopping ones included) and
which forced step is due when, as plain state."""

from __future__ import annotations

from typing import Any

import pytest

from actors import Isolation, StopReason
from actors._core.attempts import (
    ASYNC_SLOTS,
    INTERRUPT_REPEAT_SECONDS,
    RAY_SLOTS,
    SLOT_POOL_OF,
    WORKER_SLOTS,
    ActiveAttempt,
    ActiveAttempts,
    next_forced_step,
    slot_pool,
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


def test_every_isolation_has_its_slot_pool() -> None:
    """Threads and processes share the workers' slots; coroutines and Ray attempts have
    their own; an isolation not resolved yet (None) counts as the workers'."""
    expected = {
        Isolation.THREAD: WORKER_SLOTS,
        Isolation.PROCESS: WORKER_SLOTS,
        Isolation.ASYNC: ASYNC_SLOTS,
        Isolation.RAY: RAY_SLOTS,
        None: WORKER_SLOTS,
    }
    assert set(SLOT_POOL_OF) == set(Isolation) | {None}
    for isolation, pool in expected.items():
        assert SLOT_POOL_OF[isolation] == slot_pool(isolation) == pool


def test_held_in_is_a_live_read_only_view_that_agrees_with_held() -> None:
    """The dispatcher reads held_in instead of calling held(): it follows each add, stop
    and end, per pool, and cannot be written through."""
    attempts = ActiveAttempts()
    view = attempts.held_in
    assert view.get(WORKER_SLOTS, 0) == attempts.held(WORKER_SLOTS) == 0
    first, second = _attempt("a"), _attempt("b")
    attempts.add(first)
    attempts.add(second)
    assert view[WORKER_SLOTS] == attempts.held(WORKER_SLOTS) == 2
    attempts.stop(first, StopReason.TIMEOUT)
    assert view[WORKER_SLOTS] == 2  # a stopping attempt keeps its slot
    attempts.end("a")
    assert view[WORKER_SLOTS] == attempts.held(WORKER_SLOTS) == 1
    assert view.get(ASYNC_SLOTS, 0) == attempts.held(ASYNC_SLOTS) == 0
    with pytest.raises(TypeError):
        view[WORKER_SLOTS] = 0  # type: ignore[index]
