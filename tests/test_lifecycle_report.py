"""``LifecycleReport``, tested directly: each step of a task writes its lifecycle log
line and, while someone listens, tells its event, with the same facts (a plain pykka
actor stands in for the notifier)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from structlog.testing import capture_logs

from actors._core.lifecycle_report import LifecycleReport
from actors._core.notifier import TaskEvent
from actors._core.outbox import EventOutbox
from actors._enums import TaskStatus
from actors._outcome import Completed
from actors._records import TaskRecord
from tests.collector import collecting, told
from tests.records import make_record


@pytest.fixture
def collector() -> Iterator[pykka.ActorRef[Any]]:
    with collecting() as ref:
        yield ref


def _told(collector: pykka.ActorRef[Any]) -> list[TaskEvent]:
    return told(collector)


def _report(collector: pykka.ActorRef[Any], *, listening: bool) -> LifecycleReport:
    event = threading.Event()
    if listening:
        event.set()
    return LifecycleReport(EventOutbox(collector, event, durable=False))


def _completed(task_id: str) -> TaskRecord:
    record = make_record(task_id)
    record.status = TaskStatus.COMPLETED
    record.outcome = Completed(None)
    record.started_at, record.ended_at = 1.0, 1.25
    return record


def test_every_step_logs_and_tells_the_same_facts(collector: pykka.ActorRef[Any]) -> None:
    report = _report(collector, listening=True)
    record = make_record("t")
    with capture_logs() as logs:
        report.created(record)
        report.started(record, None)
        report.progress(record, 0.5)
        report.retry_scheduled(record, 9.0, "ValueError")
        report.resumed(record)
        report.ended(_completed("t"))
    assert [entry["event"] for entry in logs] == [
        "task.created",
        "task.started",
        "task.progress",
        "task.retry_scheduled",
        "task.resumed",
        "task.completed",
    ]
    assert all(entry["task_id"] == "t" for entry in logs)
    events = _told(collector)
    assert [(e.kind, e.task_id) for e in events] == [
        ("created", "t"),
        ("started", "t"),
        ("progress", "t"),
        ("retry_scheduled", "t"),
        ("retry_scheduled", "t"),  # a resume reads as a retry scheduled now
        ("completed", "t"),
    ]
    created, _, progress, retry, resumed, ended = (e.data for e in events)
    assert created["operation"] == logs[0]["operation"] == "tests.noop"
    assert progress == {"progress": 0.5}
    assert retry == {"attempt": record.attempt, "next_attempt_at": 9.0, "error": "ValueError"}
    assert resumed["error"] == "resumed"
    assert resumed["next_attempt_at"] is None
    assert ended == {"status": "completed", "outcome": "Completed", "duration_ms": 250.0}


def test_an_injected_fault_is_said_in_the_log_and_the_event_stays_a_start(
    collector: pykka.ActorRef[Any],
) -> None:
    report = _report(collector, listening=True)
    with capture_logs() as logs:
        report.started(make_record("t"), "crash")
    assert [entry["event"] for entry in logs] == ["fault.injected", "task.started"]
    assert logs[1]["injected_fault"] == "crash"
    assert [e.kind for e in _told(collector)] == ["started"]


def test_without_a_listener_only_the_log_is_written(collector: pykka.ActorRef[Any]) -> None:
    report = _report(collector, listening=False)
    with capture_logs() as logs:
        report.created(make_record("t"))
        report.ended(_completed("t"))
    assert [entry["event"] for entry in logs] == ["task.created", "task.completed"]
    assert _told(collector) == []
