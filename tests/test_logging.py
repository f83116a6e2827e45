"""Logging: structlog lifecycle events with the task id bound, and the opt-in setup.

Every test that captures events enters ``capture_logs`` before its manager exists and
shuts the manager down inside the capture, so no runtime thread logs into a
configuration that is being restored.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from structlog.typing import EventDict

from actors import ManualClock, TaskContext
from actors.logs import library_logger
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.logging import configure

MakeManager = Callable[..., TaskManager]


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Whatever a test configures, structlog is back to its defaults afterwards."""
    yield
    structlog.reset_defaults()


def _task_events(logs: list[EventDict], task_id: str) -> list[str]:
    """The ``task.*`` event names logged for one task, in order."""
    return [
        e["event"]
        for e in logs
        if e.get("task_id") == task_id and str(e["event"]).startswith("task.")
    ]


def _only(logs: list[EventDict], event: str, task_id: str | None = None) -> EventDict:
    """The single entry named ``event`` (for ``task_id`` if given)."""
    found = [
        e for e in logs if e["event"] == event and (task_id is None or e.get("task_id") == task_id)
    ]
    assert len(found) == 1, f"expected one {event!r}, got {found}"
    return found[0]


def _status(manager: TaskManager, task_id: str) -> str:
    """The task's status string (a registry round trip)."""
    status = manager.get_task_status(task_id)
    assert status is not None
    return str(status["status"])


def _is_duration(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _blocking_op(
    started: threading.Event, release: threading.Event
) -> Callable[[Mapping[str, Any], TaskContext], str]:
    def op(params: Mapping[str, Any], task: TaskContext) -> str:
        started.set()
        release.wait(10)
        return "late"

    return op


def test_completed_task_logs_created_started_completed(make_manager: MakeManager) -> None:
    """A completed task logs task.created, task.started, task.completed, each with its id."""
    with capture_logs() as logs:
        manager = make_manager(num_workers=2)
        task_id = manager.create_task(lambda params, task: 42)
        assert manager.wait(task_id, timeout=10)["status"] == "completed"
        manager.shutdown(wait=True, timeout=30)

    assert _task_events(logs, task_id) == ["task.created", "task.started", "task.completed"]
    created = _only(logs, "task.created", task_id)
    assert created["priority"] == "normal"
    assert created["log_level"] == "info"
    completed = _only(logs, "task.completed", task_id)
    assert _is_duration(completed["duration_ms"])
    assert completed["log_level"] == "info"


def test_completed_duration_is_measured_in_clock_time(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """task.completed's duration_ms is the clock time from start to return, in ms."""
    started, release = threading.Event(), threading.Event()
    with capture_logs() as logs:
        manager = make_manager(num_workers=1, clock=clock)
        try:
            task_id = manager.create_task(_blocking_op(started, release))
            assert started.wait(10)
            clock.advance(2.5)
            release.set()
            assert manager.wait(task_id, timeout=10)["status"] == "completed"
        finally:
            release.set()
            manager.shutdown(wait=True, timeout=30)

    assert _only(logs, "task.completed", task_id)["duration_ms"] == 2500.0


def test_raising_operation_logs_task_failed(make_manager: MakeManager) -> None:
    """An operation that raises logs task.failed with exception_type, message, duration_ms."""

    def boom(params: Mapping[str, Any], task: TaskContext) -> None:
        raise ValueError("bad frame")

    with capture_logs() as logs:
        manager = make_manager(num_workers=1)
        task_id = manager.create_task(boom)
        assert manager.wait(task_id, timeout=10)["status"] == "failed"
        manager.shutdown(wait=True, timeout=30)

    assert _task_events(logs, task_id) == ["task.created", "task.started", "task.failed"]
    failed = _only(logs, "task.failed", task_id)
    assert failed["exception_type"] == "ValueError"
    assert failed["error"] == "bad frame"
    assert failed["log_level"] == "warning"
    assert _is_duration(failed["duration_ms"])


def test_timeout_logs_task_timed_out_at_the_deadline(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A task past its deadline logs task.timed_out (warning) with the timeout and duration."""
    started, release = threading.Event(), threading.Event()
    with capture_logs() as logs:
        manager = make_manager(num_workers=1, clock=clock)
        try:
            task_id = manager.create_task(_blocking_op(started, release), timeout=5.0)
            assert started.wait(10)
            clock.advance(5.0)
            assert manager.wait(task_id, timeout=10)["status"] == "failed"
            # Logged while the operation is still blocked: reported at the deadline.
            timed_out = _only(logs, "task.timed_out", task_id)
        finally:
            release.set()
            manager.shutdown(wait=True, timeout=30)

    assert timed_out["log_level"] == "warning"
    assert timed_out["timeout_seconds"] == 5.0
    assert timed_out["duration_ms"] == 5000.0
    assert False is timed_out["has_partial_result"]
    assert _task_events(logs, task_id) == [
        "task.created",
        "task.started",
        "task.timed_out",
        "task.late_result_kept",
    ]


def test_cancel_of_running_task_logs_cancel_requested_and_cancelled(
    make_manager: MakeManager,
) -> None:
    """Cancelling a running task logs task.cancel_requested then task.cancelled (reason)."""
    started = threading.Event()

    def op(params: Mapping[str, Any], task: TaskContext) -> None:
        started.set()
        task.wait_cancelled(10)

    with capture_logs() as logs:
        manager = make_manager(num_workers=1)
        task_id = manager.create_task(op)
        assert started.wait(10)
        # Barrier through the registry: task.started is logged before the cancel.
        assert _status(manager, task_id) == "running"
        assert manager.cancel_task(task_id)
        assert manager.wait(task_id, timeout=10)["status"] == "cancelled"
        manager.shutdown(wait=True, timeout=30)

    assert _task_events(logs, task_id) == [
        "task.created",
        "task.started",
        "task.cancel_requested",
        "task.cancelled",
        "task.late_result_kept",
    ]
    assert _only(logs, "task.cancel_requested", task_id)["state"] == "running"
    cancelled = _only(logs, "task.cancelled", task_id)
    assert cancelled["reason"] == "cancel_requested"
    assert _is_duration(cancelled["duration_ms"])


def test_cancel_of_pending_task_logs_cancelled_without_start(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A task cancelled while pending logs cancel_requested and cancelled, never started."""
    started, release = threading.Event(), threading.Event()
    with capture_logs() as logs:
        manager = make_manager(num_workers=1, clock=clock)
        try:
            blocker = manager.create_task(_blocking_op(started, release))
            assert started.wait(10)
            task_id = manager.create_task(lambda params, task: None)
            # Barrier through the registry: task.created is logged before the cancel.
            assert _status(manager, task_id) == "pending"
            clock.advance(1.25)
            assert manager.cancel_task(task_id)
            assert manager.wait(task_id, timeout=10)["status"] == "cancelled"
        finally:
            release.set()
            manager.shutdown(wait=True, timeout=30)

    assert _task_events(logs, task_id) == [
        "task.created",
        "task.cancel_requested",
        "task.cancelled",
    ]
    assert _only(logs, "task.cancel_requested", task_id)["state"] == "pending"
    cancelled = _only(logs, "task.cancelled", task_id)
    assert cancelled["reason"] == "cancel_requested"
    # Never started: measured from creation.
    assert cancelled["duration_ms"] == 1250.0
    assert _status(manager, blocker) == "completed"


def test_a_tasks_first_event_is_task_created_even_when_cancelled_at_once(
    make_manager: MakeManager,
) -> None:
    """The lifecycle log is in lifecycle order: no event of a task precedes task.created."""
    started, release = threading.Event(), threading.Event()
    rounds = 200
    with capture_logs() as logs:
        manager = make_manager(num_workers=1)
        try:
            manager.create_task(_blocking_op(started, release))
            assert started.wait(10)
            ids = []
            for _ in range(rounds):
                task_id = manager.create_task(lambda params, task: None)
                assert manager.cancel_task(task_id)  # pending: the only worker is busy
                ids.append(task_id)
        finally:
            release.set()
            manager.shutdown(wait=True, timeout=30)

    out_of_order = {
        task_id: events
        for task_id in ids
        if (events := _task_events(logs, task_id))[0] != "task.created"
    }
    assert out_of_order == {}
    expected = ["task.created", "task.cancel_requested", "task.cancelled"]
    assert [_task_events(logs, task_id) for task_id in ids] == [expected] * rounds


def test_every_terminal_event_carries_duration_ms(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Each terminal event (completed, failed, timed out, cancelled) carries duration_ms."""
    started, release = threading.Event(), threading.Event()

    def boom(params: Mapping[str, Any], task: TaskContext) -> None:
        raise RuntimeError("no")

    with capture_logs() as logs:
        manager = make_manager(num_workers=1, clock=clock)
        try:
            ok = manager.create_task(lambda params, task: 1)
            failed = manager.create_task(boom)
            assert manager.wait(ok, timeout=10)["status"] == "completed"
            assert manager.wait(failed, timeout=10)["status"] == "failed"
            slow = manager.create_task(_blocking_op(started, release), timeout=3.0)
            assert started.wait(10)
            cancelled = manager.create_task(lambda params, task: None)
            stuck = manager.create_task(lambda params, task: None)
            assert manager.cancel_task(cancelled)
            clock.advance(3.0)
            assert manager.wait(slow, timeout=10)["status"] == "failed"
            # The timed-out operation still holds its slot; the next one waits for it.
            release.set()
            assert manager.wait(stuck, timeout=10)["status"] == "completed"
        finally:
            release.set()
            manager.shutdown(wait=True, timeout=30)

    terminal = {"task.completed", "task.failed", "task.timed_out", "task.cancelled"}
    entries = [e for e in logs if e["event"] in terminal]
    assert {
        ("task.completed", ok),
        ("task.failed", failed),
        ("task.timed_out", slow),
        ("task.cancelled", cancelled),
        ("task.completed", stuck),
    } == {(e["event"], e["task_id"]) for e in entries}
    assert len(entries) == 5
    assert [e for e in entries if not _is_duration(e.get("duration_ms"))] == []


def test_worker_spawned_and_stopped_once_per_task(make_manager: MakeManager) -> None:
    """worker.spawned and worker.stopped are logged exactly once per task, with its id."""
    with capture_logs() as logs:
        manager = make_manager(num_workers=2)
        ids = [manager.create_task(lambda params, task: None) for _ in range(5)]
        for task_id in ids:
            assert manager.wait(task_id, timeout=10)["status"] == "completed"
        # worker.stopped comes after the task is terminal: wait for it.
        assert wait_until(
            lambda: sum(e["event"] == "worker.stopped" for e in logs) == 5, timeout=10
        )
        manager.shutdown(wait=True, timeout=30)

    spawned = Counter(e["task_id"] for e in logs if e["event"] == "worker.spawned")
    stopped = Counter(e["task_id"] for e in logs if e["event"] == "worker.stopped")
    assert dict.fromkeys(ids, 1) == dict(spawned)
    assert dict.fromkeys(ids, 1) == dict(stopped)


def test_supervisor_started_and_stopped_once_per_manager(make_manager: MakeManager) -> None:
    """Each manager logs supervisor.started once and, after shutdown, supervisor.stopped once."""
    with capture_logs() as logs:
        first = make_manager(num_workers=1)
        second = make_manager(num_workers=3)
        assert sum(e["event"] == "supervisor.started" for e in logs) == 2
        assert sum(e["event"] == "supervisor.stopped" for e in logs) == 0
        first.shutdown(wait=True, timeout=30)
        assert sum(e["event"] == "supervisor.stopped" for e in logs) == 1
        second.shutdown(wait=True, timeout=30)
        second.shutdown(wait=True, timeout=30)  # idempotent: no second event

    assert sorted(e["capacity"] for e in logs if e["event"] == "supervisor.started") == [1, 3]
    assert sum(e["event"] == "supervisor.stopped" for e in logs) == 2


def test_progress_events_are_debug_and_coalesced(make_manager: MakeManager) -> None:
    """task.progress is a debug event, coalesced: far fewer events than update_progress calls."""
    calls = 100_000

    def tight(params: Mapping[str, Any], task: TaskContext) -> int:
        for step in range(1, calls + 1):
            task.update_progress(step / calls)
        return calls

    with capture_logs() as logs:
        manager = make_manager(num_workers=1)
        task_id = manager.create_task(tight)
        status = manager.wait(task_id, timeout=30)
        manager.shutdown(wait=True, timeout=30)

    assert status["status"] == "completed"
    assert status["progress"] == 1.0
    progress = [e for e in logs if e["event"] == "task.progress"]
    assert 1 <= len(progress) < calls
    assert {"debug"} == {e["log_level"] for e in progress}
    assert {task_id} == {e["task_id"] for e in progress}
    assert progress[-1]["progress"] == 1.0


_IMPORT_CHECK = """
import json, logging, pkgutil, importlib
root = logging.getLogger()
level_before = root.level
import structlog
import storycore_tasks, actors
for package in (actors, storycore_tasks):
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
print(json.dumps({
    "structlog_configured": structlog.is_configured(),
    "root_handlers": [repr(h) for h in root.handlers],
    "level_before": level_before,
    "level_after": root.level,
}))
"""


def test_importing_the_library_configures_no_logging() -> None:
    """Importing storycore_tasks and actors (every module) leaves structlog and stdlib alone."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_CHECK],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert False is report["structlog_configured"]
    assert report["root_handlers"] == []
    assert report["level_before"] == report["level_after"]


def test_configure_json_emits_json_lines_with_task_id(make_manager: MakeManager) -> None:
    """configure(json=True) makes every event one JSON line; task events carry task_id."""
    stream = io.StringIO()
    configure(json=True, level="info", stream=stream)
    manager = make_manager(num_workers=1)
    task_id = manager.create_task(lambda params, task: "ok")
    assert manager.wait(task_id, timeout=10)["status"] == "completed"
    manager.shutdown(wait=True, timeout=30)

    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert [r for r in records if "event" not in r] == []
    assert [r["event"] for r in records if r.get("task_id") == task_id] == [
        "task.created",
        "task.started",
        "task.completed",
    ]
    assert {"info"} == {r["level"] for r in records}
    # info filters out the debug worker events.
    assert [r for r in records if r["event"].startswith("worker.")] == []


def test_configure_warning_keeps_only_timeouts_and_failures(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """level="warning" drops info events but keeps task.timed_out and task.failed."""
    stream = io.StringIO()
    configure(json=True, level="warning", stream=stream)
    started, release = threading.Event(), threading.Event()

    def boom(params: Mapping[str, Any], task: TaskContext) -> None:
        raise KeyError("scene")

    manager = make_manager(num_workers=2, clock=clock)
    try:
        ok = manager.create_task(lambda params, task: 1)
        failed = manager.create_task(boom)
        assert manager.wait(ok, timeout=10)["status"] == "completed"
        assert manager.wait(failed, timeout=10)["status"] == "failed"
        slow = manager.create_task(_blocking_op(started, release), timeout=2.0)
        assert started.wait(10)
        clock.advance(2.0)
        assert manager.wait(slow, timeout=10)["status"] == "failed"
    finally:
        release.set()
        manager.shutdown(wait=True, timeout=30)

    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    assert [("task.failed", failed), ("task.timed_out", slow)] == sorted(
        (r["event"], r["task_id"]) for r in records
    )
    assert {"warning"} == {r["level"] for r in records}


def test_configure_rejects_unknown_level_name() -> None:
    """configure with an unknown level name raises ValueError naming the choices."""
    before = structlog.get_config()
    with pytest.raises(ValueError, match="unknown log level 'verbose'"):
        configure(level="verbose")
    assert structlog.get_config() == before


@pytest.mark.parametrize("level", [None, 1.5, True, b"info", ["info"]])
def test_configure_rejects_non_str_non_int_level(level: Any) -> None:
    """configure with a level that is neither a name nor an int raises TypeError."""
    before = structlog.get_config()
    with pytest.raises(TypeError, match="level must be a level name or number"):
        configure(level=level)
    assert structlog.get_config() == before


def test_levels_a_filtering_logger_drops_are_skipped_and_come_back_when_reconfigured() -> None:
    """LibraryLogger with a filtering bound logger: events below its level never reach the
    processors; after structlog is configured again (a lower level), they do."""
    import logging as stdlib_logging

    seen: list[str] = []

    def collect(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event["event"])
        raise structlog.DropEvent

    log = library_logger("tests.levels")
    try:
        structlog.configure(
            processors=[collect],
            wrapper_class=structlog.make_filtering_bound_logger(stdlib_logging.WARNING),
        )
        log.info("below")
        log.warning("at")
        structlog.configure(
            processors=[collect],
            wrapper_class=structlog.make_filtering_bound_logger(stdlib_logging.DEBUG),
        )
        log.debug("now seen")
    finally:
        structlog.reset_defaults()
    assert seen == ["at", "now seen"]


def test_a_dropped_event_is_told_without_asking_structlog_for_its_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a filtering logger's levels are known, a dropped debug or info event reads
    structlog's configuration attribute by attribute: get_config (a dict built per call)
    is not called again until the configuration changes."""
    import logging as stdlib_logging

    calls: list[None] = []
    real_get_config = structlog.get_config

    def counted_get_config() -> dict[str, Any]:
        calls.append(None)
        return real_get_config()

    log = library_logger("tests.fast_drop")
    try:
        structlog.configure(
            processors=[lambda _l, _n, event: event],
            wrapper_class=structlog.make_filtering_bound_logger(stdlib_logging.WARNING),
            logger_factory=structlog.ReturnLoggerFactory(),
        )
        log.info("first")  # learns which levels are dropped
        monkeypatch.setattr(structlog, "get_config", counted_get_config)
        for _ in range(100):
            log.debug("dropped")
            log.info("dropped")
        assert calls == []
        log.warning("kept")  # a level that is not dropped takes the full path
        assert len(calls) == 1
    finally:
        structlog.reset_defaults()


def test_without_structlogs_configuration_object_events_take_the_public_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If a structlog release no longer has the configuration object the fast path reads,
    every event is decided through get_config, with the same outcome: dropped levels are
    dropped, and a new configuration is followed."""
    import logging as stdlib_logging

    from actors import logs

    monkeypatch.setattr(logs, "_CONFIG", None)
    seen: list[str] = []

    def collect(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event["event"])
        raise structlog.DropEvent

    log = library_logger("tests.public_path")
    try:
        structlog.configure(
            processors=[collect],
            wrapper_class=structlog.make_filtering_bound_logger(stdlib_logging.WARNING),
        )
        log.info("below")
        log.info("below again")
        log.warning("at")
        structlog.configure(
            processors=[collect],
            wrapper_class=structlog.make_filtering_bound_logger(stdlib_logging.DEBUG),
        )
        log.debug("now seen")
    finally:
        structlog.reset_defaults()
    assert seen == ["at", "now seen"]
