"""``EventOutbox``, tested directly with a plain pykka actor standing in for the notifier:
who is told what, and when (at once, or after the commit that covers the fact)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors._core.outbox import EventOutbox
from actors._records import TaskRecord
from tests.collector import WAIT, Collector, collecting, told
from tests.records import make_record


@pytest.fixture
def collector() -> Iterator[pykka.ActorRef[Any]]:
    with collecting() as ref:
        yield ref


def _told(collector: pykka.ActorRef[Any]) -> list[tuple[str, str]]:
    return [(event.kind, event.task_id) for event in told(collector)]


def _record(task_id: str) -> TaskRecord:
    return make_record(task_id)


def _listening() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def test_nobody_listens_without_a_notifier_or_before_a_subscription(
    collector: pykka.ActorRef[Any],
) -> None:
    assert EventOutbox(None, _listening(), durable=False).listened() is False
    listening = threading.Event()
    outbox = EventOutbox(collector, listening, durable=False)
    assert outbox.listened() is False
    listening.set()
    assert outbox.listened() is True


def test_with_the_memory_store_a_fact_is_told_at_once(collector: pykka.ActorRef[Any]) -> None:
    outbox = EventOutbox(collector, _listening(), durable=False)
    outbox.emit("created", _record("t"))
    assert len(outbox) == 0
    assert _told(collector) == [("created", "t")]


def test_a_durable_fact_waits_for_its_commit_but_progress_does_not(
    collector: pykka.ActorRef[Any],
) -> None:
    """A state fact is held until the release after its commit; progress (``now``) is
    told at once; the release tells the held facts in order, once."""
    outbox = EventOutbox(collector, _listening(), durable=True)
    outbox.emit("created", _record("a"))
    outbox.emit("progress", _record("a"), now=True)
    outbox.emit("started", _record("a"))
    assert len(outbox) == 2
    assert _told(collector) == [("progress", "a")]
    outbox.release()
    outbox.release()  # nothing held: tells nothing twice
    assert _told(collector) == [("progress", "a"), ("created", "a"), ("started", "a")]


def test_the_facts_of_a_refused_record_are_never_told(collector: pykka.ActorRef[Any]) -> None:
    outbox = EventOutbox(collector, _listening(), durable=True)
    outbox.emit("created", _record("bad"))
    outbox.emit("created", _record("good"))
    outbox.release({"bad": "cannot be encoded"})
    assert _told(collector) == [("created", "good")]
    assert len(outbox) == 0


def test_a_stopped_notifier_is_not_an_error() -> None:
    ref = Collector.start()
    ref.stop(timeout=WAIT)
    outbox = EventOutbox(ref, _listening(), durable=True)
    outbox.emit("created", _record("t"), now=True)
    outbox.emit("started", _record("t"))
    outbox.release()
    assert len(outbox) == 0
