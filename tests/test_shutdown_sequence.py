"""ShutdownSequence, tested directly with stand-in parts: closed under the submission
lock before the drain, one teardown for every caller, refusals read from the same
state, and a bounded wait that says what the teardown waits for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors._core.shutdown_sequence import ShutdownSequence
from actors._core.supervisor_stats import SupervisorStats
from actors._errors import RuntimeClosedError

WAIT = 10.0  # seconds any real wait below may take before the test fails


class Healing:
    gave_up_reason: str | None = None


class Parts:
    """What the sequence is given: the lock, the drain it asks for, the steps it runs."""

    def __init__(self) -> None:
        self.submit_lock = threading.Lock()
        self.healing = Healing()
        self.drained = threading.Event()
        self.drains: list[bool] = []
        self.ran: list[str] = []
        self.release = threading.Event()  # the "actors" step waits for it
        self.in_operation = False

    def drain(self, cancel_pending: bool) -> threading.Event:
        assert self.submit_lock.acquire(blocking=False)  # closed first, lock released
        self.submit_lock.release()
        self.drains.append(cancel_pending)
        return self.drained

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        def actors() -> None:
            self.ran.append("actors")
            assert self.release.wait(WAIT)

        return [("actors", actors), ("threads", lambda: self.ran.append("threads"))]

    def sequence(self) -> ShutdownSequence:
        healing: Any = self.healing
        return ShutdownSequence(
            submit_lock=self.submit_lock,
            healing=healing,
            drain=self.drain,
            steps=self.steps,
            in_operation=lambda: self.in_operation,
            running=lambda: ["r1"],
            supervisor=lambda: SupervisorStats(
                capacity=1, pending=2, running=1, stopping=0, admitting=False
            ),
            subscription=lambda: "sub-1",
        )


@pytest.fixture
def parts() -> Iterator[Parts]:
    made = Parts()
    yield made
    made.drained.set()  # every teardown thread the test started can end
    made.release.set()


def test_open_until_run_then_closed_and_refusing(parts: Parts) -> None:
    """Before shutdown nothing is refused; after it every call is, saying so."""
    sequence = parts.sequence()
    assert (sequence.closed, sequence.refusing, sequence.refusal("x")) == (False, False, None)
    parts.drained.set()
    parts.release.set()
    sequence.run(wait=True, cancel_pending=False, timeout=WAIT)
    error = sequence.refusal("it accepts no new task")
    assert sequence.closed
    assert isinstance(error, RuntimeClosedError)
    assert str(error) == "the task manager is shut down; it accepts no new task"
    assert parts.ran == ["actors", "threads"]


def test_a_runtime_that_gave_up_refuses_before_it_is_closed(parts: Parts) -> None:
    """Given up: refusing at once, and the error says why."""
    sequence = parts.sequence()
    parts.healing.gave_up_reason = "the registry failed 4 times"
    assert (sequence.closed, sequence.refusing) == (False, True)
    assert "stopped itself because the registry failed 4 times" in str(
        sequence.closed_error("nothing more will happen")
    )


def test_every_caller_waits_for_the_one_teardown(parts: Parts) -> None:
    """A second call neither drains again nor starts a second teardown."""
    sequence = parts.sequence()
    sequence.run(wait=False, cancel_pending=True, timeout=None)
    sequence.run(wait=False, cancel_pending=False, timeout=None)
    assert parts.drains == [True]
    parts.drained.set()
    parts.release.set()
    sequence.run(wait=True, cancel_pending=False, timeout=WAIT)
    assert (parts.drains, parts.ran) == ([True], ["actors", "threads"])


def test_a_wait_that_runs_out_says_what_the_teardown_waits_for(parts: Parts) -> None:
    """Still draining: the message names the running tasks and the supervisor's count;
    the teardown carries on, and a later wait sees it end."""
    sequence = parts.sequence()
    with pytest.raises(TimeoutError) as raised:
        sequence.run(wait=True, cancel_pending=False, timeout=0.0)
    assert "operations to return (running: ['r1']" in str(raised.value)
    assert "pending still to run: 2" in str(raised.value)
    parts.drained.set()
    parts.release.set()
    sequence.run(wait=True, cancel_pending=False, timeout=WAIT)


def test_a_wait_from_inside_an_operation_is_refused_before_anything_happens(
    parts: Parts,
) -> None:
    """It would wait for itself: RuntimeError, and the runtime is not even closed."""
    parts.in_operation = True
    sequence = parts.sequence()
    with pytest.raises(RuntimeError, match="from inside an operation"):
        sequence.run(wait=True, cancel_pending=False, timeout=None)
    assert (sequence.closed, parts.drains) == (False, [])


def test_a_failed_step_is_raised_to_the_waiting_caller(parts: Parts) -> None:
    """A step that raises: the wait raises RuntimeError from it."""

    def failing() -> list[tuple[str, Callable[[], None]]]:
        def boom() -> None:
            raise OSError("disk gone")

        return [("actors", boom)]

    parts.steps = failing  # type: ignore[method-assign]
    sequence = parts.sequence()
    parts.drained.set()
    with pytest.raises(RuntimeError, match="shutdown failed") as raised:
        sequence.run(wait=True, cancel_pending=False, timeout=WAIT)
    assert isinstance(raised.value.__cause__, OSError)
