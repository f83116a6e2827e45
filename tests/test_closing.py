"""How a closed runtime refuses work and stops itself: the error says whether it was
shut down or gave up (with the reason) and what the refusal means; stopping itself
runs on a thread of its own and a failing stop is logged, not raised."""

from __future__ import annotations

import threading

from structlog.testing import capture_logs

from actors._core.closing import closed_error, stop_in_background
from actors._errors import RuntimeClosedError

WAIT = 10.0


def test_a_shut_down_runtime_says_so_and_the_consequence() -> None:
    """No give-up reason: the error says it is shut down, then the consequence."""
    error = closed_error(None, "it accepts no new task; create a new one")
    assert isinstance(error, RuntimeClosedError)
    assert str(error) == ("the task manager is shut down; it accepts no new task; create a new one")


def test_a_runtime_that_gave_up_names_its_reason() -> None:
    """A give-up reason is named in the error, before the consequence."""
    error = closed_error("the registry failed 4 times in 60.0 s", "it schedules nothing")
    assert str(error) == (
        "the task manager stopped itself because the registry failed 4 times in 60.0 s; "
        "it schedules nothing"
    )


def test_stopping_runs_on_a_thread_of_its_own() -> None:
    """The shutdown runs on another (daemon) thread, not the caller's."""
    ran_on: list[threading.Thread] = []
    done = threading.Event()

    def shutdown() -> None:
        ran_on.append(threading.current_thread())
        done.set()

    thread = stop_in_background(shutdown, "the supervisor failed")
    assert done.wait(WAIT)
    thread.join(WAIT)
    assert ran_on == [thread]
    assert thread is not threading.current_thread()
    assert (thread.daemon, thread.name) == (True, "actors-give-up")


def test_a_failing_stop_is_logged_with_the_reason() -> None:
    """A shutdown that raises (already shutting down) is logged, with the reason."""

    def shutdown() -> None:
        raise RuntimeError("already shutting down")

    with capture_logs() as logs:
        stop_in_background(shutdown, "the supervisor failed").join(WAIT)
    assert [(log["event"], log["reason"]) for log in logs] == [
        ("manager.stop_failed", "the supervisor failed")
    ]
    assert "already shutting down" in logs[0]["error"]
