"""Teardown: the runtime's parts stop in their order once the drain is over; its step is
readable while a step blocks (what a shutdown timeout names); a failing step stops the
rest and is kept; what a shutdown that has not finished waits for, in words."""

from __future__ import annotations

import threading
from typing import Any

from actors._core.supervisor import SupervisorStats
from actors._core.teardown import Teardown, describe_wait

WAIT = 10.0


def test_the_steps_wait_for_the_drain_then_run_in_order() -> None:
    """Nothing runs before the drain is over; then every step, in its order."""
    ran: list[str] = []
    drained = threading.Event()
    teardown = Teardown([(name, lambda name=name: ran.append(name)) for name in "abc"])
    teardown.start(drained)
    assert (teardown.join(0.05), teardown.step, ran) == (False, "drain", [])
    drained.set()
    assert teardown.join(WAIT)
    assert (ran, teardown.step, teardown.error) == (["a", "b", "c"], "c", None)


def test_the_step_that_blocks_is_the_one_named() -> None:
    """While a step blocks, ``step`` names it and ``join`` times out."""
    entered, release = threading.Event(), threading.Event()

    def blocking() -> None:
        entered.set()
        release.wait(WAIT)

    drained = threading.Event()
    drained.set()
    teardown = Teardown(
        [("actors", lambda: None), ("subscribers", blocking), ("threads", lambda: None)]
    )
    teardown.start(drained)
    assert entered.wait(WAIT)
    assert (teardown.join(0.05), teardown.step) == (False, "subscribers")
    release.set()
    assert teardown.join(WAIT)
    assert teardown.step == "threads"


def test_a_failing_step_stops_the_rest_and_is_kept() -> None:
    """A step that raises ends the teardown there; the error is kept for shutdown()."""
    ran: list[str] = []
    error = RuntimeError("the registry would not stop")

    def failing() -> None:
        raise error

    drained = threading.Event()
    drained.set()
    teardown = Teardown([("actors", failing), ("threads", lambda: ran.append("threads"))])
    teardown.start(drained)
    assert teardown.join(WAIT)
    assert (teardown.error, teardown.step, ran) == (error, "actors", [])


def _describe(step: str, stopping: str | None = None) -> str:
    supervisor = SupervisorStats(capacity=2, pending=3, running=1, stopping=1, admitting=False)
    return describe_wait(
        step,
        running=lambda: ["t-1"],
        supervisor=lambda: supervisor,
        subscription=lambda: stopping,
    )


def test_a_wait_in_the_drain_names_what_still_runs_and_waits() -> None:
    """In the drain: the running ids, how many stop but have not returned, and how many
    are pending still."""
    assert _describe("drain") == (
        "operations to return (running: ['t-1']; timed out or cancelled but not yet "
        "returned: 1; pending still to run: 3)"
    )


def test_a_wait_for_a_subscriber_names_the_subscription_and_the_fix() -> None:
    """In the subscribers step: the subscription whose callback blocks, and the fix."""
    described = _describe("subscribers", stopping="sub-9")
    assert described.startswith("the callback of subscription sub-9 to return")
    assert "unsubscribe before shutting down" in described


def test_a_wait_in_the_last_steps_says_every_operation_has_ended() -> None:
    """The actors and threads steps come after every operation has ended; nothing is
    read for them (the readers would raise)."""

    def unread() -> Any:
        raise AssertionError("read for a step it does not explain")

    def describe(step: str) -> str:
        return describe_wait(step, running=unread, supervisor=unread, subscription=unread)

    assert describe("actors") == "the runtime's actors to stop (every operation has ended)"
    assert describe("threads") == "the runtime's threads to stop (every operation has ended)"
