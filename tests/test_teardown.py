"""Teardown: the runtime's parts stop in their order once the drain is over; its step is
readable while a step blocks (what a shutdown timeout names); a failing step stops the
rest and is kept."""

from __future__ import annotations

import threading

from actors._core.teardown import Teardown

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
