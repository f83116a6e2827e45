"""LoopInbox: calls put from many threads all run on the loop, each thread's in order,
with one wake-up of the loop per burst; a failing call does not stop the ones after it;
a closed loop takes a late call without raising."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator

import pytest

from actors._execution.loop_inbox import LoopInbox

BOUND = 10.0  # seconds: an upper bound for a loaded machine, never a duration we expect


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    thread = threading.Thread(target=made.run_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.call_soon_threadsafe(made.stop)
        thread.join(BOUND)
        made.close()


@pytest.mark.parametrize("round_number", range(20))
def test_every_call_runs_on_the_loop_in_each_threads_order(
    loop: asyncio.AbstractEventLoop, round_number: int
) -> None:
    inbox = LoopInbox(loop)
    threads_count, per_thread = 4, 500
    ran: list[tuple[int, int]] = []
    wrong_thread: list[int] = []
    loop_thread: list[int] = []
    loop.call_soon_threadsafe(lambda: loop_thread.append(threading.get_ident()))
    done = threading.Event()

    def call(sender: int, number: int) -> None:
        if threading.get_ident() != loop_thread[0]:
            wrong_thread.append(sender)
        ran.append((sender, number))
        if len(ran) == threads_count * per_thread:
            done.set()

    def send(sender: int) -> None:
        for number in range(per_thread):
            inbox.put(functools.partial(call, sender, number))

    senders = [threading.Thread(target=send, args=(i,)) for i in range(threads_count)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(BOUND)
    assert done.wait(BOUND), len(ran)
    assert not wrong_thread
    for sender_id in range(threads_count):
        assert [n for s, n in ran if s == sender_id] == list(range(per_thread))


def test_a_burst_wakes_the_loop_once(loop: asyncio.AbstractEventLoop) -> None:
    inbox = LoopInbox(loop)
    gate = threading.Event()
    loop.call_soon_threadsafe(gate.wait, BOUND)  # the loop is busy while the burst comes
    wakes: list[int] = []
    real = loop.call_soon_threadsafe

    def counting(callback: object, *args: object) -> asyncio.Handle:
        wakes.append(1)
        return real(callback, *args)  # type: ignore[arg-type]

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
    ran: list[int] = []
    done = threading.Event()
    try:
        for number in range(100):
            inbox.put(functools.partial(ran.append, number))
        inbox.put(done.set)
        gate.set()
        assert done.wait(BOUND)
    finally:
        del loop.call_soon_threadsafe
    assert ran == list(range(100))
    assert wakes == [1]


def test_a_failing_call_does_not_stop_the_rest(loop: asyncio.AbstractEventLoop) -> None:
    failures: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: failures.append(context["exception"]))
    inbox = LoopInbox(loop)
    ran: list[str] = []
    done = threading.Event()
    gate = threading.Event()
    loop.call_soon_threadsafe(gate.wait, BOUND)  # so that all three are one burst

    def fails() -> None:
        raise RuntimeError("boom")

    inbox.put(lambda: ran.append("before"))
    inbox.put(fails)
    inbox.put(lambda: ran.append("after"))
    inbox.put(done.set)
    gate.set()
    assert done.wait(BOUND)
    assert ran == ["before", "after"]
    assert [str(failure) for failure in failures] == ["boom"]


def test_a_closed_loop_takes_a_late_call_without_raising() -> None:
    closed = asyncio.new_event_loop()
    closed.close()
    inbox = LoopInbox(closed)
    inbox.put(lambda: None)  # nothing left to run it, and no error for the caller
    inbox.put(lambda: None)
