"""How a Ray attempt on the host (``RayAttempt``) reads an answer that its node said it
sent on the host channel, without a cluster: its back-end is a stand-in (``Link``, with
a real asyncio loop on a thread of its own, as the bridge's), its worker actor too
(``Events``), and Ray's answers and the channel's messages are the calls the bridge
would make, made on that loop.

What it relies on: the node returned (its answer on the channel) and the answer never
came, within ``CATCH_UP_SECONDS`` or because the node's connection broke: the attempt
ends ``WORKER_CRASHED`` saying the answer was lost; the answer came: it ends with it,
once, and its wait for it is cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from actors._execution import ray_attempt
from actors._execution.published import Published
from actors._execution.ray_attempt import RayAttempt
from actors._outcome import Completed, Crashed, Outcome
from tests.channel_host import BOUND, on_loop
from tests.collector import collecting
from tests.records import make_spec


class Link:
    """The back-end as an attempt sees it (``RayLink``): the bridge's loop is real, the
    rest is noted."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._keys = itertools.count(1)
        self.posted: list[tuple[Any, ...]] = []
        self.unwatched: list[Any] = []

    def on_loop(self, call: Callable[[], Any]) -> Any:
        return on_loop(self.loop, call)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(BOUND)
        self.loop.close()

    # -- RayLink -----------------------------------------------------------------------

    closed = False

    def call_soon(self, call: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(call)

    def watch(self, ref: Any, attempt: RayAttempt) -> None:
        pass

    def hint(self, ref: Any) -> None:
        pass

    def unwatch(self, ref: Any) -> None:
        self.unwatched.append(ref)

    def new_key(self) -> int:
        return next(self._keys)

    def submit(self, spec: Any, work: bytes, key: int) -> Any:
        return f"ref-{key}"

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value)

    def listen(self, key: int, attempt: RayAttempt) -> None:
        pass

    def post(self, message: tuple[Any, ...]) -> None:
        self.posted.append(message)

    def forget(self, key: int) -> None:
        pass

    def cancel(self, ref: Any, *, force: bool) -> None:
        pass

    def exceptions(self) -> Any:
        raise AssertionError("no Ray error in these tests")

    def count_progress(self) -> None:
        pass

    def attempt_over(self, attempt: RayAttempt) -> None:
        pass


class Events:
    """The worker actor as an attempt sees it (``AttemptEvents``): its ends, noted."""

    published: Published | None = None

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.outcomes: list[Outcome] = []

    def started(self, placement: Mapping[str, Any] | None = None) -> None:
        pass

    def confirm_start(self, *, wait: bool = True) -> Outcome | None:
        return None

    def confirm_start_soon(self, answer: Callable[[], None]) -> bool:
        return True

    def ended(self, outcome: Outcome) -> None:
        with self.changed:
            self.outcomes.append(outcome)
            self.changed.notify_all()

    def wait_ended(self) -> Outcome:
        with self.changed:
            assert self.changed.wait_for(lambda: self.outcomes, BOUND)
            return self.outcomes[0]


@pytest.fixture
def link() -> Iterator[Link]:
    made = Link()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def attempt(link: Link, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RayAttempt, Events]]:
    monkeypatch.setattr(ray_attempt, "CATCH_UP_SECONDS", 0.05)
    events = Events()
    with collecting() as registry:
        made = RayAttempt(make_spec("t1"), registry, events, link)
        link.on_loop(made.begin)
        link.on_loop(lambda: made.on_started(123, "node-a"))
        yield made, events


def said_sent(link: Link, made: RayAttempt) -> asyncio.TimerHandle:
    """Ray's answer: the node returned, its answer on the channel; the attempt's wait
    for it."""
    link.on_loop(lambda: made.ray_answered(None, None))
    late = made._late
    assert late is not None
    return late


def test_an_answer_said_sent_that_never_comes_is_a_lost_answer(
    link: Link, attempt: tuple[RayAttempt, Events]
) -> None:
    made, events = attempt
    said_sent(link, made)
    outcome = events.wait_ended()
    assert isinstance(outcome, Crashed)
    assert outcome.node_id == "node-a"
    assert "answer was lost" in str(outcome.ray_error)


def test_an_answer_that_comes_ends_the_attempt_once_and_its_wait_is_cancelled(
    link: Link, attempt: tuple[RayAttempt, Events]
) -> None:
    made, events = attempt
    late = said_sent(link, made)
    link.on_loop(lambda: made.on_answer(("completed", pickle.dumps(5), 0, None)))
    assert events.wait_ended() == Completed(5)
    assert late.cancelled()
    assert link.on_loop(lambda: len(events.outcomes)) == 1


def test_a_connection_lost_after_the_answer_was_said_sent_is_a_lost_answer(
    link: Link, attempt: tuple[RayAttempt, Events]
) -> None:
    made, events = attempt
    late = said_sent(link, made)
    link.on_loop(lambda: made.on_lost("the host's channel broke: reset"))
    outcome = events.wait_ended()
    assert isinstance(outcome, Crashed)
    assert "the host's channel broke: reset" in str(outcome.ray_error)
    assert late.cancelled()  # the ended attempt is not held for the wait


def test_a_connection_lost_first_then_the_answer_said_sent_ends_it_at_once(
    link: Link, attempt: tuple[RayAttempt, Events]
) -> None:
    made, events = attempt
    link.on_loop(lambda: made.on_lost("the host's channel broke: reset"))
    link.on_loop(lambda: made.ray_answered(None, None))
    outcome = link.on_loop(lambda: list(events.outcomes))
    assert len(outcome) == 1
    assert isinstance(outcome[0], Crashed)
    assert made._late is None  # no wait was armed
