"""Subscriptions (lifecycle events delivered as TaskEvents) and recurring schedules.

Subscribers are synchronised on the queues their callbacks fill (``get(timeout=...)``),
or by shutting the manager down: teardown stops the registry, then the notifier, then
each subscriber actor after the events already queued for it, so once ``shutdown``
returns every event has been delivered. Schedules run on a ManualClock: ``advance`` tells
each due ScheduleTick to the supervisor before it returns, so a following ``get_stats``
(which asks the supervisor) sees the tick handled, and the tick's next one re-armed (see
``advance``); ``settle`` then covers the registry.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

from actors import (
    ManualClock,
    RetryPolicy,
    RuntimeClosedError,
    SqliteStore,
    TaskContext,
    TaskEvent,
    UnknownOperationError,
)
from actors._records import TaskRecord
from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests.gates import Gate, settle

MakeManager = Callable[..., TaskManager]

BOUND = 10.0  # seconds: an upper bound for a loaded machine, never a duration we expect


class Events:
    """A subscription callback that queues every TaskEvent it is called with."""

    def __init__(self) -> None:
        self.queue: queue.Queue[TaskEvent] = queue.Queue()

    def __call__(self, event: TaskEvent) -> None:
        self.queue.put(event)

    def next(self) -> TaskEvent:
        return self.queue.get(timeout=BOUND)

    def take(self, count: int) -> list[TaskEvent]:
        return [self.next() for _ in range(count)]

    def until(self, task_id: str, kind: str) -> list[TaskEvent]:
        """Every event up to and including ``kind`` of ``task_id``."""
        seen = [self.next()]
        while (seen[-1].task_id, seen[-1].kind) != (task_id, kind):
            seen.append(self.next())
        return seen

    def drain(self) -> list[TaskEvent]:
        """Whatever has arrived so far (after a shutdown: everything)."""
        drained: list[TaskEvent] = []
        while True:
            try:
                drained.append(self.queue.get_nowait())
            except queue.Empty:
                return drained


def kinds_by_task(events: Iterable[TaskEvent]) -> dict[str, list[str]]:
    by_task: dict[str, list[str]] = {}
    for event in events:
        by_task.setdefault(event.task_id, []).append(event.kind)
    return by_task


def double(params: Mapping[str, Any], task: TaskContext) -> int:
    return int(params["x"]) * 2


def boom(params: Mapping[str, Any], task: TaskContext) -> None:
    raise ValueError("no frames to render")


class Flaky:
    """Raises ConnectionError on the first ``failures`` calls, then returns ``result``."""

    def __init__(self, failures: int = 1, result: Any = "ok") -> None:
        self.failures = failures
        self.result = result
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        with self._lock:
            self.calls += 1
            number = self.calls
        if number <= self.failures:
            raise ConnectionError(f"attempt {number}")
        return self.result


class Recorder:
    """An operation that queues its task id (so a test can wait for each run)."""

    def __init__(self, result: Any = "ran") -> None:
        self.result = result
        self.runs: queue.Queue[str] = queue.Queue()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        self.runs.put(task.task_id)
        return self.result

    def next_run(self) -> str:
        return self.runs.get(timeout=BOUND)


def schedule_stats(manager: TaskManager, schedule_id: str) -> dict[str, Any]:
    stats: dict[str, Any] = manager.get_stats()["schedules"][schedule_id]
    return stats


def total_tasks(manager: TaskManager) -> int:
    settle(manager)
    return int(manager.get_stats()["total_tasks"])


def advance(manager: TaskManager, clock: ManualClock, seconds: float) -> None:
    """Move the clock, then wait until the supervisor has handled the ticks that fired
    (each re-arming its schedule's next one, so the next advance finds it armed)."""
    clock.advance(seconds)
    manager.runtime.schedules()


def log_events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


# -- subscriptions: what a subscriber sees ------------------------------------------------


def test_a_callback_sees_one_tasks_lifecycle_in_order_with_its_data(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """created, started, one progress event per update the registry handled, completed:
    in that order, each with the task id, the (virtual) time and its own fields."""
    manager = make_manager(num_workers=1, clock=clock)
    proceed: queue.Queue[None] = queue.Queue()

    def render(params: Mapping[str, Any], task: TaskContext) -> str:
        for fraction in (0.25, 0.5, 0.75):
            task.update_progress(fraction)
            proceed.get(timeout=BOUND)  # the test saw this progress event
        return "rendered"

    manager.register_operation("story.render", render)
    events = Events()
    manager.subscribe(events)
    start = clock.time()
    task_id = manager.create_task("story.render", {"scene": 1}, user="alice", priority="high")

    created = events.next()
    assert (created.kind, created.task_id, created.at) == ("created", task_id, start)
    assert dict(created.data) == {
        "operation": "story.render",
        "priority": "high",
        "user": "alice",
        "group_id": None,
    }
    started = events.next()
    assert (started.kind, started.task_id, started.at) == ("started", task_id, start)
    assert dict(started.data) == {"attempt": 1, "operation": "story.render"}

    for fraction in (0.25, 0.5, 0.75):
        progress = events.next()
        assert (progress.kind, progress.task_id) == ("progress", task_id)
        assert dict(progress.data) == {"progress": fraction}
        assert progress.at == clock.time()
        if fraction == 0.5:
            clock.advance(2.0)  # the task has run 2 s when it completes
        proceed.put(None)

    completed = events.next()
    assert (completed.kind, completed.task_id, completed.at) == ("completed", task_id, start + 2)
    assert dict(completed.data) == {
        "status": "completed",
        "outcome": "Completed",
        "duration_ms": 2000.0,
    }
    assert manager.wait(task_id, timeout=BOUND)["result"] == "rendered"

    manager.shutdown(wait=True, timeout=BOUND)
    assert events.drain() == []  # nothing else was emitted for it


def test_failed_and_cancelled_tasks_end_with_their_own_terminal_event(
    make_manager: MakeManager,
) -> None:
    """A raising task ends with ``failed``, a task cancelled while running with
    ``cancelled`` (its late result emits nothing more), a task cancelled while pending
    with ``cancelled`` and no ``started``."""
    manager = make_manager(num_workers=1)
    events = Events()
    manager.subscribe(events)

    failing = manager.create_task(boom)
    assert manager.wait(failing, timeout=BOUND)["status"] == "failed"
    gate = Gate()
    running = manager.create_task(gate)
    gate.wait_entered()
    waiting = manager.create_task(double, {"x": 1})
    assert manager.cancel_task(waiting)
    assert manager.cancel_task(running)
    everything = events.until(running, "cancelled")
    gate.release()  # its result arrives after the task is terminal: kept, not announced
    manager.shutdown(wait=True, timeout=BOUND)

    everything += events.drain()
    by_task = kinds_by_task(everything)
    assert by_task[failing] == ["created", "started", "failed"]
    assert by_task[running] == ["created", "started", "cancelled"]
    assert by_task[waiting] == ["created", "cancelled"]
    terminal = {e.task_id: dict(e.data) for e in everything if e.kind in ("failed", "cancelled")}
    assert terminal[failing]["outcome"] == "Raised"
    assert terminal[running]["outcome"] == "Cancelled"
    assert terminal[waiting]["outcome"] == "Cancelled"


def test_a_retried_task_reports_retry_scheduled_between_its_attempts(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Attempt 1 fails: retry_scheduled (attempt 1, next_attempt_at = failure time + the
    backoff, the error); the second attempt starts as attempt 2 only when the backoff
    has passed, and completes."""
    manager = make_manager(num_workers=1, clock=clock)
    events = Events()
    manager.subscribe(events)
    op = Flaky(failures=1)
    policy = RetryPolicy(max_attempts=2, backoff=5.0, jitter=False)
    task_id = manager.create_task(op, retry=policy)

    first = events.take(3)
    assert [e.kind for e in first] == ["created", "started", "retry_scheduled"]
    assert first[1].data["attempt"] == 1
    retry = first[2]
    assert retry.task_id == task_id
    assert dict(retry.data) == {
        "attempt": 1,
        "next_attempt_at": clock.time() + 5.0,
        "error": "ConnectionError",
    }

    settle(manager)  # the supervisor has armed the retry's timer
    clock.advance(4.5)
    settle(manager)
    assert events.queue.empty()
    assert op.calls == 1
    clock.advance(0.5)
    second = events.take(2)
    assert [(e.kind, e.task_id) for e in second] == [("started", task_id), ("completed", task_id)]
    assert second[0].data["attempt"] == 2
    assert manager.wait(task_id, timeout=BOUND)["attempt"] == 2


# -- subscriptions: filters and bad arguments ---------------------------------------------


def test_filters_by_task_and_by_event_kind(make_manager: MakeManager) -> None:
    """task_id= gets only that task's events; events= only the named kinds, with the
    ``terminal`` and ``retry`` aliases, a single name as a string and the ``task.``
    prefix all accepted."""
    manager = make_manager(num_workers=1)
    everything = Events()
    terminal = Events()
    lifecycle = Events()
    retries = Events()
    completed = Events()
    progress = Events()
    manager.subscribe(everything)
    manager.subscribe(terminal, events=["terminal"])
    manager.subscribe(lifecycle, events=["created", "started"])
    manager.subscribe(retries, events=["retry"])
    manager.subscribe(completed, events=["task.completed"])
    manager.subscribe(progress, events="progress")

    def stepping(params: Mapping[str, Any], task: TaskContext) -> str:
        task.update_progress(0.5)
        return "stepped"

    gate = Gate()
    blocker = manager.create_task(gate)  # holds the one worker while we subscribe by id
    gate.wait_entered()
    stepped = manager.create_task(stepping)
    flaky = manager.create_task(
        Flaky(failures=1), retry=RetryPolicy(max_attempts=2, backoff=0.0, jitter=False)
    )
    settle(manager)  # its "created" has gone to the notifier (create_task only tells it)
    only_stepped = Events()
    manager.subscribe(only_stepped, task_id=stepped)
    gate.release()
    for task_id in (blocker, stepped, flaky):
        assert manager.wait(task_id, timeout=BOUND)["status"] == "completed"
    manager.shutdown(wait=True, timeout=BOUND)

    assert kinds_by_task(everything.drain()) == {
        blocker: ["created", "started", "completed"],
        stepped: ["created", "started", "progress", "completed"],
        flaky: ["created", "started", "retry_scheduled", "started", "completed"],
    }
    assert kinds_by_task(terminal.drain()) == {
        blocker: ["completed"],
        stepped: ["completed"],
        flaky: ["completed"],
    }
    assert kinds_by_task(lifecycle.drain()) == {
        blocker: ["created", "started"],
        stepped: ["created", "started"],
        flaky: ["created", "started", "started"],
    }
    assert [(e.task_id, e.kind, e.data["attempt"]) for e in retries.drain()] == [
        (flaky, "retry_scheduled", 1)
    ]
    assert [(e.task_id, e.kind) for e in completed.drain()] == [
        (blocker, "completed"),
        (stepped, "completed"),
        (flaky, "completed"),
    ]
    assert [(e.task_id, e.data["progress"]) for e in progress.drain()] == [(stepped, 0.5)]
    # Subscribed once the task existed (its "created" had gone): the rest of it, only it.
    assert [(e.task_id, e.kind) for e in only_stepped.drain()] == [
        (stepped, "started"),
        (stepped, "progress"),
        (stepped, "completed"),
    ]


def test_bad_subscriptions_are_refused(make_manager: MakeManager) -> None:
    """An unknown event name is a ValueError that lists the choices; a target that is
    neither callable nor an actor ref, a non-string event or task id a TypeError."""
    manager = make_manager(num_workers=1)
    with pytest.raises(ValueError, match="unknown event 'finished'") as refused:
        manager.subscribe(Events(), events=["created", "finished"])
    for choice in (
        "cancelled",
        "completed",
        "created",
        "failed",
        "progress",
        "retry",
        "retry_scheduled",
        "started",
        "terminal",
    ):
        assert choice in str(refused.value)
    with pytest.raises(ValueError, match="unknown event"):
        manager.subscribe(Events(), events=["task.terminal.now"])
    with pytest.raises(TypeError, match="callable"):
        manager.subscribe(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        manager.subscribe("https://hooks.example/task")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event names"):
        manager.subscribe(Events(), events=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="task_id"):
        manager.subscribe(Events(), task_id=7)  # type: ignore[arg-type]

    # The refused ones left nothing registered (and no subscriber actor: the leak
    # check); a good subscription works as usual.
    events = Events()
    manager.subscribe(events, events="terminal")
    task_id = manager.create_task(double, {"x": 2})
    assert manager.wait(task_id, timeout=BOUND)["result"] == 4
    manager.shutdown(wait=True, timeout=BOUND)
    assert [(e.kind, e.task_id) for e in events.drain()] == [("completed", task_id)]


# -- subscriptions: ordering and isolation ------------------------------------------------


def test_each_tasks_events_stay_in_order_under_concurrency(make_manager: MakeManager) -> None:
    """50 tasks on 4 workers, each reporting progress five times: for every task,
    created, started, progress..., completed, the progress never going back and its last
    value the last one reported."""
    manager = make_manager(num_workers=4)
    events = Events()
    manager.subscribe(events)

    def stepping(params: Mapping[str, Any], task: TaskContext) -> int:
        for step in range(1, 6):
            task.update_progress(step / 5)
        return int(params["n"])

    task_ids = [manager.create_task(stepping, {"n": n}) for n in range(50)]
    for n, task_id in enumerate(task_ids):
        assert manager.wait(task_id, timeout=BOUND)["result"] == n
    manager.shutdown(wait=True, timeout=BOUND)

    by_task: dict[str, list[TaskEvent]] = {}
    for event in events.drain():
        by_task.setdefault(event.task_id, []).append(event)
    assert set(by_task) == set(task_ids)
    for task_id in task_ids:
        sequence = by_task[task_id]
        kinds = [e.kind for e in sequence]
        assert kinds[:2] == ["created", "started"], kinds
        assert kinds[-1] == "completed", kinds
        assert set(kinds[2:-1]) == {"progress"}, kinds
        values = [e.data["progress"] for e in sequence[2:-1]]
        assert values == sorted(values)
        assert values[-1] == 1.0


def test_a_slow_callback_delays_neither_other_subscribers_nor_the_manager(
    make_manager: MakeManager,
) -> None:
    """While one callback is stuck on its first event, another subscriber gets every
    event, tasks complete and ``wait`` returns; the slow one then catches up, in order."""
    manager = make_manager(num_workers=2)
    unblock = threading.Event()
    slow_seen: queue.Queue[TaskEvent] = queue.Queue()

    def slow(event: TaskEvent) -> None:
        slow_seen.put(event)
        unblock.wait(BOUND)

    fast = Events()
    manager.subscribe(slow)
    manager.subscribe(fast)
    try:
        task_ids = [manager.create_task(double, {"x": n}) for n in range(5)]
        first = slow_seen.get(timeout=BOUND)  # the slow one is now stuck in this call
        assert (first.kind, first.task_id) == ("created", task_ids[0])
        for task_id in task_ids:
            assert manager.wait(task_id, timeout=BOUND)["status"] == "completed"
        fast_events = fast.take(15)
        assert {e.task_id for e in fast_events if e.kind == "completed"} == set(task_ids)
        assert slow_seen.empty()  # still blocked in its first call
    finally:
        unblock.set()
    manager.shutdown(wait=True, timeout=BOUND)
    slow_events = [first, *(slow_seen.get_nowait() for _ in range(slow_seen.qsize()))]
    assert kinds_by_task(slow_events) == kinds_by_task(fast_events)


def test_a_raising_callback_is_logged_and_keeps_receiving(make_manager: MakeManager) -> None:
    """Each exception of a callback is logged as subscription.callback_failed (with the
    subscription id, the task and the event); the callback still gets the next events and
    the other subscribers are unaffected."""
    called = Events()
    good = Events()

    def raising(event: TaskEvent) -> None:
        called(event)
        raise RuntimeError(f"cannot handle {event.kind}")

    with capture_logs() as logs:
        manager = make_manager(num_workers=1)
        bad_id = manager.subscribe(raising)
        good_id = manager.subscribe(good)
        task_id = manager.create_task(double, {"x": 3})
        assert manager.wait(task_id, timeout=BOUND)["result"] == 6
        manager.shutdown(wait=True, timeout=BOUND)  # every event delivered (and logged)

    assert bad_id != good_id
    failures = log_events(logs, "subscription.callback_failed")
    assert [
        (f["subscription_id"], f["task_id"], f["task_event"], f["error"], f["log_level"])
        for f in failures
    ] == [
        (bad_id, task_id, kind, f"RuntimeError: cannot handle {kind}", "warning")
        for kind in ("created", "started", "completed")
    ]
    assert [e.kind for e in called.drain()] == ["created", "started", "completed"]
    assert [e.kind for e in good.drain()] == ["created", "started", "completed"]


class Collector(pykka.ThreadingActor):
    """An integration's own actor: it is told each TaskEvent as a message."""

    def __init__(self, sink: queue.Queue[Any]) -> None:
        super().__init__()
        self.sink = sink

    def on_receive(self, message: Any) -> Any:
        self.sink.put(message)
        return None


def test_an_actor_ref_subscription_is_told_task_events_in_order(
    make_manager: MakeManager,
) -> None:
    """A pykka actor ref passed to subscribe receives TaskEvent messages, in order; when
    that actor stops, the manager and the other subscribers carry on."""
    manager = make_manager(num_workers=1)
    sink: queue.Queue[Any] = queue.Queue()
    collector = Collector.start(sink)
    try:
        manager.subscribe(collector, events=["created", "started", "terminal"])
        witness = Events()
        manager.subscribe(witness, events="terminal")
        task_id = manager.create_task(double, {"x": 4})
        received = [sink.get(timeout=BOUND) for _ in range(3)]
        assert all(isinstance(message, TaskEvent) for message in received)
        assert [(m.kind, m.task_id) for m in received] == [
            ("created", task_id),
            ("started", task_id),
            ("completed", task_id),
        ]
    finally:
        collector.stop(block=True, timeout=BOUND)

    # Its actor is gone without unsubscribing: the notifier does not trip over it.
    later = manager.create_task(double, {"x": 5})
    assert manager.wait(later, timeout=BOUND)["result"] == 10
    assert [(e.kind, e.task_id) for e in witness.until(later, "completed")] == [
        ("completed", task_id),
        ("completed", later),
    ]
    assert sink.empty()


def test_unsubscribe_stops_the_events_and_answers_whether_it_existed(
    make_manager: MakeManager,
) -> None:
    """unsubscribe is True, then False; a task created afterwards reaches a second
    subscriber but never the removed one; subscribing again after everyone left works;
    after shutdown unsubscribe is False and subscribe raises RuntimeClosedError."""
    manager = make_manager(num_workers=1)
    leaving = Events()
    witness = Events()
    leaving_id = manager.subscribe(leaving)
    witness_id = manager.subscribe(witness)

    first = manager.create_task(double, {"x": 1})
    assert [e.kind for e in leaving.take(3)] == ["created", "started", "completed"]
    assert manager.unsubscribe(leaving_id) is True
    assert manager.unsubscribe(leaving_id) is False
    assert manager.unsubscribe("sub-999") is False
    assert manager.unsubscribe(42) is False  # type: ignore[arg-type]

    second = manager.create_task(double, {"x": 2})
    seen = witness.until(second, "completed")
    assert kinds_by_task(seen) == {
        first: ["created", "started", "completed"],
        second: ["created", "started", "completed"],
    }
    assert leaving.queue.empty()

    # The last subscription leaving silences the registry; a new one wakes it again.
    assert manager.unsubscribe(witness_id) is True
    manager.wait(manager.create_task(double, {"x": 3}), timeout=BOUND)
    again = Events()
    again_id = manager.subscribe(again)
    fourth = manager.create_task(double, {"x": 4})
    assert [(e.kind, e.task_id) for e in again.take(3)] == [
        ("created", fourth),
        ("started", fourth),
        ("completed", fourth),
    ]

    manager.shutdown(wait=True, timeout=BOUND)
    assert leaving.drain() == []
    assert witness.drain() == []
    assert manager.unsubscribe(again_id) is False
    with pytest.raises(RuntimeClosedError):
        manager.subscribe(Events())


def test_a_callback_can_unsubscribe_itself(make_manager: MakeManager) -> None:
    """A one-shot subscriber unsubscribes from its callback when its task ends: that
    returns True at once (the stop is queued behind the current event)."""
    manager = make_manager(num_workers=1, ask_timeout=0.5)
    answers: queue.Queue[tuple[object, float]] = queue.Queue()
    subscription: dict[str, str] = {}

    def one_shot(event: TaskEvent) -> None:
        started = time.monotonic()
        try:
            answer: object = manager.unsubscribe(subscription["id"])
        except Exception as exc:  # reported through the queue, not raised in the actor
            answer = exc
        answers.put((answer, time.monotonic() - started))

    subscription["id"] = manager.subscribe(one_shot, events="terminal")
    manager.wait(manager.create_task(double, {"x": 1}), timeout=BOUND)
    answer, took = answers.get(timeout=BOUND)
    assert answer is True
    assert took < 0.25


# -- subscriptions: the event object and the durable store --------------------------------


def test_task_event_to_dict_has_the_structlog_shape(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """to_dict(): ``event`` is ``task.<kind>``, then task_id, at and the event's own
    fields; a TaskEvent is frozen."""
    event = TaskEvent("completed", "t-1", 12.5, {"outcome": "Completed", "duration_ms": 3.0})
    assert event.to_dict() == {
        "event": "task.completed",
        "task_id": "t-1",
        "at": 12.5,
        "outcome": "Completed",
        "duration_ms": 3.0,
    }
    assert TaskEvent("created", "t-2", 1.0).to_dict() == {
        "event": "task.created",
        "task_id": "t-2",
        "at": 1.0,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind = "failed"  # type: ignore[misc]

    manager = make_manager(num_workers=1, clock=clock)
    events = Events()
    manager.subscribe(events, events=["started"])
    task_id = manager.create_task(double, {"x": 1})
    assert events.next().to_dict() == {
        "event": "task.started",
        "task_id": task_id,
        "at": clock.time(),
        "attempt": 1,
        "operation": double.__module__ + "." + double.__qualname__,
    }


def test_events_arrive_with_a_durable_store(make_manager: MakeManager, tmp_path: Path) -> None:
    """With a SQLite store (given as a path) a named task's created, started, progress
    and completed events all arrive, in order."""
    proceed = threading.Event()

    def render(params: Mapping[str, Any], task: TaskContext) -> str:
        task.update_progress(0.5)
        proceed.wait(BOUND)
        return "rendered"

    manager = make_manager(
        num_workers=1, store=tmp_path / "tasks.db", operations={"story.render": render}
    )
    events = Events()
    manager.subscribe(events)
    task_id = manager.create_task("story.render", {"scene": 1})
    first = events.take(3)
    assert [(e.kind, e.task_id) for e in first] == [
        ("created", task_id),
        ("started", task_id),
        ("progress", task_id),
    ]
    assert first[0].data["operation"] == "story.render"
    proceed.set()
    last = events.next()
    assert (last.kind, last.task_id, last.data["outcome"]) == ("completed", task_id, "Completed")
    assert manager.wait(task_id, timeout=BOUND)["result"] == "rendered"


class RecordingStore(SqliteStore):
    """A SQLite store that remembers each status it has committed for each task."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._facts_lock = threading.Lock()
        self._facts: dict[str, set[str]] = {}

    def write(self, records: Iterable[TaskRecord], deleted: Iterable[TaskRecord]) -> None:
        records = list(records)
        facts = [(record.task_id, record.status.value) for record in records]
        super().write(records, deleted)
        with self._facts_lock:
            for task_id, status in facts:
                self._facts.setdefault(task_id, set()).add(status)

    def committed(self, task_id: str) -> set[str]:
        with self._facts_lock:
            return set(self._facts.get(task_id, ()))


def test_durable_events_are_sent_after_the_commit(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    """With a durable store the fact each event reports is already committed when the
    subscriber is called: created (the task is in the store, in whatever state the
    commit that covered it found it), started (running: the operation waits for that
    commit), terminal (its final status)."""
    store = RecordingStore(tmp_path / "tasks.db")
    checked: queue.Queue[tuple[str, str, bool]] = queue.Queue()

    def check(event: TaskEvent) -> None:
        committed = store.committed(event.task_id)
        if event.kind == "created":
            ok = bool(committed)
        elif event.kind == "started":
            ok = "running" in committed
        else:
            ok = event.kind in committed
        checked.put((event.task_id, event.kind, ok))

    manager = make_manager(num_workers=1, store=store, operations={"story.render": double})
    manager.subscribe(check)
    task_ids = [manager.create_task("story.render", {"x": n}) for n in range(3)]
    failed = manager.create_task(boom)
    for task_id in [*task_ids, failed]:
        manager.wait(task_id, timeout=BOUND)
    manager.shutdown(wait=True, timeout=BOUND)

    seen = [checked.get_nowait() for _ in range(checked.qsize())]
    assert len(seen) == 12
    assert all(committed for _, _, committed in seen), seen
    assert kinds_by_task((TaskEvent(kind, task_id, 0.0) for task_id, kind, _ in seen)) == {
        **{task_id: ["created", "started", "completed"] for task_id in task_ids},
        failed: ["created", "started", "failed"],
    }


# -- schedules ----------------------------------------------------------------------------


def test_a_schedule_creates_one_new_task_per_interval(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Nothing before the first interval (9.9 s: no call, no task); one task at 10 s,
    another (a new id) at 20 s; the stats follow runs, the last task and the next run."""
    manager = make_manager(num_workers=2, clock=clock)
    op = Recorder()
    schedule_id = manager.schedule_every(10, op, {"scene": 1})
    assert schedule_id.startswith("schedule-")
    assert schedule_stats(manager, schedule_id) == {
        "interval": 10.0,
        "runs": 0,
        "skipped": 0,
        "last_task_id": None,
        "next_run_in": 10.0,
    }

    advance(manager, clock, 9.9)
    assert total_tasks(manager) == 0
    assert op.runs.empty()
    assert schedule_stats(manager, schedule_id)["next_run_in"] == pytest.approx(0.1)

    advance(manager, clock, 0.1)
    first = op.next_run()
    assert manager.wait(first, timeout=BOUND)["result"] == "ran"
    stats = schedule_stats(manager, schedule_id)
    assert (stats["runs"], stats["last_task_id"], stats["next_run_in"]) == (1, first, 10.0)

    advance(manager, clock, 9.9)
    assert total_tasks(manager) == 1
    advance(manager, clock, 0.1)
    second = op.next_run()
    assert second != first
    assert manager.wait(second, timeout=BOUND)["status"] == "completed"
    stats = schedule_stats(manager, schedule_id)
    assert (stats["runs"], stats["skipped"], stats["last_task_id"]) == (2, 0, second)
    assert total_tasks(manager) == 2
    assert op.runs.empty()


def test_one_big_advance_fires_every_missed_tick_at_a_fixed_rate(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """From 0, advancing 25 s at once fires the tick due at 10 (a run) and the one due at
    20 (skipped: that run is still going), and no more; the next is due at 30 (fixed
    rate: one interval after the last due time, not after the advance)."""
    manager = make_manager(num_workers=2, clock=clock)
    gate = Gate()
    schedule_id = manager.schedule_every(10, gate)
    clock.advance(25)
    gate.wait_entered()

    def both_ticks_handled() -> bool:
        stats = schedule_stats(manager, schedule_id)
        return bool(stats["runs"] + stats["skipped"] == 2)

    assert wait_until(both_ticks_handled, timeout=BOUND)
    stats = schedule_stats(manager, schedule_id)
    assert (stats["runs"], stats["skipped"], stats["next_run_in"]) == (1, 1, 5.0)
    assert total_tasks(manager) == 1

    gate.release()
    manager.wait(stats["last_task_id"], timeout=BOUND)
    advance(manager, clock, 5)
    stats = schedule_stats(manager, schedule_id)
    assert (stats["runs"], stats["skipped"], stats["next_run_in"]) == (2, 1, 10.0)
    manager.wait(stats["last_task_id"], timeout=BOUND)
    assert gate.calls == 2


def test_first_in_sets_the_first_run(make_manager: MakeManager, clock: ManualClock) -> None:
    """first_in=0 runs at once, without the clock moving; first_in=3 runs at 3 s, then
    every interval after that (13 s)."""
    manager = make_manager(num_workers=2, clock=clock)
    now_op = Recorder()
    later_op = Recorder()
    now_id = manager.schedule_every(10, now_op, first_in=0)
    first_now = now_op.next_run()  # the clock has not moved
    assert clock.monotonic() == 0.0
    manager.wait(first_now, timeout=BOUND)
    assert schedule_stats(manager, now_id)["next_run_in"] == 10.0

    later_id = manager.schedule_every(10, later_op, first_in=3)
    advance(manager, clock, 2.9)
    assert schedule_stats(manager, later_id)["runs"] == 0
    advance(manager, clock, 0.1)
    manager.wait(later_op.next_run(), timeout=BOUND)
    assert schedule_stats(manager, later_id)["next_run_in"] == 10.0

    advance(manager, clock, 7)  # 10 s: the first schedule's second run only
    manager.wait(now_op.next_run(), timeout=BOUND)
    assert (schedule_stats(manager, now_id)["runs"], schedule_stats(manager, later_id)["runs"]) == (
        2,
        1,
    )
    advance(manager, clock, 3)  # 13 s: the second schedule's second run
    manager.wait(later_op.next_run(), timeout=BOUND)
    assert schedule_stats(manager, later_id)["runs"] == 2
    assert now_op.runs.empty()
    assert later_op.runs.empty()


def test_a_tick_is_skipped_while_the_last_run_is_still_running(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Never two runs of one schedule at once: ticks while the last run is running are
    skipped, counted and logged (last_run_unfinished); after it ends the next tick runs."""
    manager = make_manager(num_workers=4, clock=clock)
    gate = Gate()
    with capture_logs() as logs:
        schedule_id = manager.schedule_every(10, gate)
        advance(manager, clock, 10)
        gate.wait_entered()
        first = schedule_stats(manager, schedule_id)["last_task_id"]
        advance(manager, clock, 10)
        advance(manager, clock, 10)
        stats = schedule_stats(manager, schedule_id)
        assert (stats["runs"], stats["skipped"], stats["last_task_id"]) == (1, 2, first)
        assert total_tasks(manager) == 1
        assert gate.calls == 1

        gate.release()
        assert manager.wait(first, timeout=BOUND)["status"] == "completed"
        advance(manager, clock, 10)
        stats = schedule_stats(manager, schedule_id)
        assert (stats["runs"], stats["skipped"]) == (2, 2)
        assert stats["last_task_id"] != first
        manager.wait(stats["last_task_id"], timeout=BOUND)
    assert gate.calls == 2
    skipped = log_events(logs, "schedule.tick_skipped")
    assert [(s["schedule_id"], s["reason"], s["last"]) for s in skipped] == [
        (schedule_id, "last_run_unfinished", first),
        (schedule_id, "last_run_unfinished", first),
    ]


def test_a_tick_is_skipped_while_the_last_run_still_waits_for_a_worker(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A last run still pending (every worker busy) counts as unfinished too."""
    manager = make_manager(num_workers=1, clock=clock)
    blocker = Gate()
    blocker_id = manager.create_task(blocker)
    blocker.wait_entered()
    op = Recorder()
    schedule_id = manager.schedule_every(10, op)
    advance(manager, clock, 10)
    waiting = schedule_stats(manager, schedule_id)["last_task_id"]
    status = manager.get_task_status(waiting)
    assert status is not None
    assert status["status"] == "pending"
    advance(manager, clock, 10)
    stats = schedule_stats(manager, schedule_id)
    assert (stats["runs"], stats["skipped"], stats["last_task_id"]) == (1, 1, waiting)

    blocker.release()
    manager.wait(blocker_id, timeout=BOUND)
    assert op.next_run() == waiting
    manager.wait(waiting, timeout=BOUND)
    advance(manager, clock, 10)
    assert schedule_stats(manager, schedule_id)["runs"] == 2
    manager.wait(op.next_run(), timeout=BOUND)


def test_a_tick_is_skipped_when_the_queue_is_full(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """With max_pending tasks already waiting, a tick is skipped (queue_full) instead of
    failing; once there is room the next tick runs."""
    manager = make_manager(num_workers=1, max_pending=1, clock=clock)
    blocker = Gate()
    blocker_id = manager.create_task(blocker)
    blocker.wait_entered()
    filler = manager.create_task(double, {"x": 1})  # the one pending place
    op = Recorder()
    with capture_logs() as logs:
        schedule_id = manager.schedule_every(10, op)
        advance(manager, clock, 10)
        stats = schedule_stats(manager, schedule_id)
    assert (stats["runs"], stats["skipped"], stats["last_task_id"]) == (0, 1, None)
    assert [s["reason"] for s in log_events(logs, "schedule.tick_skipped")] == ["queue_full"]

    blocker.release()
    for task_id in (blocker_id, filler):
        manager.wait(task_id, timeout=BOUND)
    advance(manager, clock, 10)
    assert schedule_stats(manager, schedule_id)["runs"] == 1
    manager.wait(op.next_run(), timeout=BOUND)


def test_a_schedules_tasks_carry_its_options(make_manager: MakeManager, clock: ManualClock) -> None:
    """priority, timeout, user and retry reach every task a schedule creates; without a
    timeout the manager's default_timeout applies."""
    manager = make_manager(num_workers=2, clock=clock, default_timeout=60)
    flaky = Flaky(failures=1, result={"frames": 24})
    manager.register_operation("story.flaky", flaky)
    retries = Events()
    manager.subscribe(retries, events="retry")
    schedule_id = manager.schedule_every(
        10,
        "story.flaky",
        {"scene": 2},
        priority="high",
        timeout=30,
        user="alice",
        retry=RetryPolicy(max_attempts=2, backoff=1.0, jitter=False),
    )
    plain_op = Recorder()
    plain_id = manager.schedule_every(10, plain_op)

    advance(manager, clock, 10)
    task_id = schedule_stats(manager, schedule_id)["last_task_id"]
    retry = retries.next()  # its first attempt failed: the schedule's policy retries it
    assert (retry.task_id, retry.data["attempt"]) == (task_id, 1)
    settle(manager)
    advance(manager, clock, 1.0)
    done = manager.wait(task_id, timeout=BOUND)
    assert done["status"] == "completed"
    assert done["result"] == {"frames": 24}
    assert done["attempt"] == 2
    assert (done["priority"], done["timeout"], done["user"], done["operation"]) == (
        "high",
        30.0,
        "alice",
        "story.flaky",
    )

    plain = manager.wait(plain_op.next_run(), timeout=BOUND)
    assert plain["task_id"] == schedule_stats(manager, plain_id)["last_task_id"]
    assert (plain["priority"], plain["timeout"], plain["user"]) == ("normal", 60.0, None)


def test_each_scheduled_run_gets_its_own_params(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A run that mutates its params (as create_task's tasks may: each has its own copy)
    does not change what the schedule's next run receives."""
    manager = make_manager(num_workers=1, clock=clock)
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    def counting(params: Mapping[str, Any], task: TaskContext) -> None:
        received.put(dict(params))
        params["runs"] = params.get("runs", 0) + 1  # type: ignore[index]

    schedule_id = manager.schedule_every(10, counting, {"scene": 1})
    for _ in range(2):
        advance(manager, clock, 10)
        manager.wait(schedule_stats(manager, schedule_id)["last_task_id"], timeout=BOUND)
    assert [received.get(timeout=BOUND) for _ in range(2)] == [{"scene": 1}, {"scene": 1}]


def test_cancel_schedule_stops_new_runs_but_not_the_running_one(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """cancel_schedule is True, then False (and False for an unknown or non-string id);
    no task is created after it; the task it had started carries on to completion."""
    manager = make_manager(num_workers=2, clock=clock)
    gate = Gate(result="finished anyway")
    schedule_id = manager.schedule_every(10, gate)
    advance(manager, clock, 10)
    gate.wait_entered()
    running = schedule_stats(manager, schedule_id)["last_task_id"]

    assert manager.cancel_schedule(schedule_id) is True
    assert manager.cancel_schedule(schedule_id) is False
    assert manager.cancel_schedule("schedule-unknown") is False
    assert manager.cancel_schedule(7) is False  # type: ignore[arg-type]
    assert manager.get_stats()["schedules"] == {}

    advance(manager, clock, 10)
    advance(manager, clock, 30)
    assert total_tasks(manager) == 1
    gate.release()
    done = manager.wait(running, timeout=BOUND)
    assert (done["status"], done["result"]) == ("completed", "finished anyway")
    advance(manager, clock, 10)
    assert total_tasks(manager) == 1
    assert gate.calls == 1


def test_invalid_schedules_are_refused(make_manager: MakeManager, clock: ManualClock) -> None:
    """A bad interval or first_in is a ValueError (TypeError if not a number); delay,
    run_at, depends_on, group_id and unknown options a TypeError; an unknown operation
    name a ValueError. None of them leaves a schedule behind."""
    manager = make_manager(num_workers=1, clock=clock)
    for interval in (0, -1, -0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="interval"):
            manager.schedule_every(interval, double)
    with pytest.raises(TypeError, match="interval"):
        manager.schedule_every("10", double)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first_in"):
        manager.schedule_every(10, double, first_in=-1)
    refused: dict[str, Any] = {"delay": 5, "run_at": None, "depends_on": ["x"], "group_id": "g"}
    for option, value in refused.items():
        with pytest.raises(TypeError, match=option):
            manager.schedule_every(10, double, **{option: value})
    with pytest.raises(TypeError):
        manager.schedule_every(10, double, colour="blue")
    with pytest.raises(ValueError, match="priority"):
        manager.schedule_every(10, double, priority="urgent")
    with pytest.raises(UnknownOperationError):
        manager.schedule_every(10, "story.nothing")
    with pytest.raises(ValueError, match=r"story\.nothing"):
        manager.schedule_every(10, "story.nothing")
    assert manager.get_stats()["schedules"] == {}
    advance(manager, clock, 100)
    assert total_tasks(manager) == 0


def test_shutdown_drops_schedules(make_manager: MakeManager, clock: ManualClock) -> None:
    """Once shutdown has begun, no schedule creates a task (it waits only for the run
    already going); afterwards schedules are gone and schedule_every is refused."""
    manager = make_manager(num_workers=1, clock=clock)
    gate = Gate()
    schedule_id = manager.schedule_every(10, gate)
    advance(manager, clock, 10)
    gate.wait_entered()

    manager.shutdown(wait=False)
    stats = manager.get_stats()
    assert (stats["accepting_tasks"], stats["schedules"]) == (False, {})
    advance(manager, clock, 10)
    advance(manager, clock, 10)
    assert total_tasks(manager) == 1
    assert manager.cancel_schedule(schedule_id) is False

    gate.release()
    manager.shutdown(wait=True, timeout=BOUND)
    assert manager.get_stats()["total_tasks"] == 1
    assert manager.get_stats()["schedules"] == {}
    assert gate.calls == 1
    with pytest.raises(RuntimeClosedError):
        manager.schedule_every(10, double)


def test_shutdown_does_not_wait_for_the_next_tick(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A schedule whose next tick is an hour away does not hold up shutdown (on a clock
    that never moves, waiting for it would be a TimeoutError)."""
    manager = make_manager(num_workers=1, clock=clock)
    op = Recorder()
    manager.schedule_every(3600, op)
    manager.shutdown(wait=True, timeout=5)
    assert op.runs.empty()
    assert manager.get_stats()["total_tasks"] == 0


def test_a_tick_is_skipped_while_the_operations_breaker_is_open(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Two failures within the window trip the operation's breaker (max_failures=1): the
    ticks during its cool-down are skipped (operation_unavailable) and create nothing;
    the first tick after the cool-down runs again."""
    manager = make_manager(num_workers=1, clock=clock, max_failures=1, failure_window=100)
    manager.register_operation("story.fragile", boom)
    with capture_logs() as logs:
        schedule_id = manager.schedule_every(10, "story.fragile")
        for _ in range(2):  # 10 s and 20 s: two failures, the breaker opens until 120 s
            advance(manager, clock, 10)
            task_id = schedule_stats(manager, schedule_id)["last_task_id"]
            assert manager.wait(task_id, timeout=BOUND)["status"] == "failed"
        assert manager.get_stats()["operations"]["story.fragile"]["state"] == "open"

        for _ in range(9):  # 30 s .. 110 s
            advance(manager, clock, 10)
        stats = schedule_stats(manager, schedule_id)
        assert (stats["runs"], stats["skipped"], stats["last_task_id"]) == (2, 9, task_id)
        assert total_tasks(manager) == 2

        advance(manager, clock, 10)  # 120 s: the cool-down is over, a trial run is created
        stats = schedule_stats(manager, schedule_id)
        assert (stats["runs"], stats["skipped"]) == (3, 9)
        assert stats["last_task_id"] != task_id
        assert manager.wait(stats["last_task_id"], timeout=BOUND)["status"] == "failed"
    reasons = [s["reason"] for s in log_events(logs, "schedule.tick_skipped")]
    assert reasons == ["operation_unavailable"] * 9
