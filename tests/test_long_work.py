"""Long work (issue 20): checkpoints and resume, heartbeats and stall detection.

Real actors, threads, child processes, a real SQLite file, a real HTTP server on
loopback; heartbeat timing on the manual clock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors import ManualClock, NotResumableError, RetryPolicy, TaskContext, UnknownTaskError
from actors._storage.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from storycore_tasks import TaskManager
from storycore_tasks.cli import URL_ENV_VAR, main
from storycore_tasks.errors import iso_utc
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.testing import advance, settle
from tests import long_ops, render_host, stall_scenario
from tests.service_harness import running_service

MakeManager = Callable[..., TaskManager]
WAIT = 60.0
REPO_ROOT = Path(__file__).resolve().parents[1]


# -- the context, in every back-end ------------------------------------------------------


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
@pytest.mark.parametrize("isolation", ["thread", "process", "async"])
def test_every_back_end_offers_checkpoint_heartbeat_and_resume_from(
    make_manager: MakeManager, tmp_path: Path, isolation: str, durable: bool
) -> None:
    """task.checkpoint, task.heartbeat and task.resume_from exist with the same types in
    thread, process and async isolation (checkpoint awaited on the loop); a state that
    is not JSON is refused in the operation with a TypeError naming its type; the status
    shows the checkpoint as JSON reads it back, its time and the last sign of life."""
    store = tmp_path / "tasks.db" if durable else None
    manager = make_manager(num_workers=1, store=store)
    operation = long_ops.async_members if isolation == "async" else long_ops.members
    options = {} if isolation == "async" else {"isolation": isolation}
    status = manager.wait(manager.create_task(operation, **options), timeout=WAIT)
    assert long_ops.members_seen(status) == long_ops.MEMBERS_SEEN, status


# -- checkpoints and resume ----------------------------------------------------------------


def test_a_retry_resumes_from_the_latest_checkpoint(make_manager: MakeManager) -> None:
    """An attempt that failed after 4 checkpointed steps is retried from step 4."""
    manager = make_manager(num_workers=1)
    retry = RetryPolicy(max_attempts=2, backoff=0.001, jitter=False)
    task_id = manager.create_task(
        long_ops.count_then_fail_once, {"steps": 10, "fail_at": 4}, retry=retry
    )
    status = manager.wait(task_id, timeout=WAIT)
    assert (status["status"], status["attempt"], status["result"]) == (
        "completed",
        2,
        {"started_at": 4},
    )
    assert status["checkpoint"] == {"next": 10}


def test_resume_task_runs_a_failed_task_again_from_its_checkpoint(
    make_manager: MakeManager,
) -> None:
    """resume_task: a new attempt of the same id, which reads the checkpoint."""
    manager = make_manager(num_workers=1, operations={"count": long_ops.count_then_fail_once})
    task_id = manager.create_task("count", {"steps": 10, "fail_at": 4})
    failed = manager.wait(task_id, timeout=WAIT)
    assert (failed["status"], failed["checkpoint"]) == ("failed", {"next": 4})
    manager.resume_task(task_id)
    status = manager.wait(task_id, timeout=WAIT)
    assert (status["status"], status["attempt"], status["result"]) == (
        "completed",
        2,
        {"started_at": 4},
    )
    assert [e["code"] for e in status["attempt_errors"]] == ["INTERNAL_ERROR"]


def _never_checkpoints(params: Mapping[str, Any], task: TaskContext) -> None:
    raise RuntimeError("no checkpoint")


def _checkpoints_then_fails(params: Mapping[str, Any], task: TaskContext) -> None:
    task.checkpoint({"n": 1})
    raise RuntimeError("after a checkpoint")


def test_resume_task_refuses_clearly(make_manager: MakeManager) -> None:
    """Refused, naming why and the fix: a completed task, a task without a checkpoint,
    a plain function's task; an unknown id is UnknownTaskError."""
    manager = make_manager(
        num_workers=1,
        operations={"count": long_ops.count_then_fail_once, "none": _never_checkpoints},
    )
    done = manager.create_task("count", {"steps": 2, "fail_at": 99})
    bare = manager.create_task("none")
    plain = manager.create_task(_checkpoints_then_fails)
    for task_id in (done, bare, plain):
        manager.wait(task_id, timeout=WAIT)
    with pytest.raises(NotResumableError, match=r"it completed; read its result"):
        manager.resume_task(done)
    with pytest.raises(NotResumableError, match=r"has no checkpoint.*task\.checkpoint"):
        manager.resume_task(bare)
    with pytest.raises(NotResumableError, match=r"not by name.*register_operation"):
        manager.resume_task(plain)
    with pytest.raises(UnknownTaskError):
        manager.resume_task("00000000-0000-4000-8000-000000000000")
    assert manager.get_task_status(bare)["status"] == "failed"  # nothing changed


# -- heartbeats and stalls (manual clock) ----------------------------------------------------


class Beats:
    """An operation that beats when the test asks it to, else stays silent."""

    def __init__(self) -> None:
        self.ask = threading.Event()
        self.beaten = threading.Event()
        self.started = threading.Event()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> None:
        self.started.set()
        task.checkpoint({"at": "start"})
        while not task.wait_cancelled(0.002):
            if self.ask.is_set():
                self.ask.clear()
                task.heartbeat()
                self.beaten.set()

    def beat(self) -> None:
        self.beaten.clear()
        self.ask.set()
        assert self.beaten.wait(WAIT)


def test_a_silent_task_stalls_after_its_heartbeat_timeout(make_manager: MakeManager) -> None:
    """A sign of life at t=3 moves a 5 s heartbeat deadline to t=8 (one timer, re-armed
    for the time left): running at t=6, failed STALLED at t=8 with 5 s of silence, the
    last progress, the partial result and the checkpoint; stalls are counted."""
    clock = ManualClock()
    manager = make_manager(num_workers=1, clock=clock)
    op = Beats()
    task_id = manager.create_task(op, heartbeat_timeout=5.0)
    assert op.started.wait(WAIT)
    advance(manager, 3.0)
    op.beat()
    # The registry stamps a sign of life when it drains it: before the clock moves on.
    settle(manager)
    beat_at = clock.time()
    advance(manager, 3.0)
    status = manager.get_task_status(task_id)
    assert status is not None
    assert (status["status"], status["last_heartbeat_at"]) == ("running", iso_utc(beat_at))
    advance(manager, 2.0)
    status = manager.wait(task_id, timeout=WAIT)
    assert status["status"] == "failed"
    error = status["error"]
    assert error["code"] == "STALLED"
    assert error["details"]["silent_seconds"] == 5.0
    assert error["details"]["heartbeat_timeout"] == 5.0
    assert error["details"]["checkpoint"] == {"at": "start"}
    assert error["details"]["progress"] == 0.0
    assert manager.get_stats()["lifetime_stats"]["total_stalled"] == 1


def test_a_stall_is_retried_like_a_timeout_and_the_manager_default_applies(
    make_manager: MakeManager,
) -> None:
    """The manager's heartbeat_timeout applies to a task given none; a stall is retried
    under retry_on_timeout, and the next attempt resumes from the checkpoint."""
    clock = ManualClock()
    manager = make_manager(num_workers=1, clock=clock, heartbeat_timeout=4.0)
    op = Beats()
    retry = RetryPolicy(max_attempts=2, backoff=1.0, jitter=False, retry_on_timeout=True)
    task_id = manager.create_task(op, retry=retry)
    assert op.started.wait(WAIT)
    advance(manager, 4.0)
    status = manager.get_task_status(task_id)
    assert status is not None
    assert status["status"] == "pending"
    assert [e["code"] for e in status["attempt_errors"]] == ["STALLED"]
    assert status["heartbeat_timeout"] == 4.0


def test_a_silent_child_stalls_and_a_beating_one_does_not(make_manager: MakeManager) -> None:
    """Process isolation: the child's signs of life reach the host's watch. A child
    beating every millisecond is still running two heartbeat timeouts later (each
    advance waits until its beats are seen at the time reached); a silent one fails
    STALLED after 5 s of silence with its checkpoint, and is stopped (it returned)."""
    clock = ManualClock()
    manager = make_manager(num_workers=2, clock=clock, isolation="process")
    stall_scenario.a_silent_task_stalls_and_a_beating_one_does_not(
        manager, clock, WAIT, heartbeat_timeout=5.0
    )


def _checkpoint_and_wait(params: Mapping[str, Any], task: TaskContext) -> None:
    task.checkpoint({"frame": 7})
    task.wait_cancelled(WAIT)


def test_a_timeout_reports_the_latest_checkpoint(make_manager: MakeManager) -> None:
    """A timeout's error details carry the latest checkpoint."""
    manager = make_manager(num_workers=1, clock=ManualClock())
    task_id = manager.create_task(_checkpoint_and_wait, timeout=5.0)
    manager.runtime.sync()
    deadline = threading.Event()
    for _ in range(2000):  # until the checkpoint reached the registry
        found = manager.get_task_status(task_id)
        if found is not None and found["checkpoint"] is not None:
            break
        deadline.wait(0.005)
    advance(manager, 5.0)
    status = manager.wait(task_id, timeout=WAIT)
    assert status["error"]["code"] == "TIMEOUT"
    assert status["error"]["details"]["checkpoint"] == {"frame": 7}


# -- the durable store ------------------------------------------------------------------------


def test_a_version_2_file_is_migrated_and_checkpoints_survive_a_restart(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    """A file at schema version 2 gains the new columns; a checkpoint committed there
    reads back after reopening, and resume_task then goes on from it."""
    path = tmp_path / "v2.db"
    connection = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2):
        for statement in MIGRATIONS[version]:
            connection.execute(statement)
    connection.execute("UPDATE schema_version SET version = 2")
    connection.close()
    operations = {"count": long_ops.count_then_fail_once}
    first = TaskManager(num_workers=1, store=path, operations=operations)
    try:
        task_id = first.create_task("count", {"steps": 6, "fail_at": 3}, heartbeat_timeout=60)
        assert first.wait(task_id, timeout=WAIT)["status"] == "failed"
    finally:
        first.shutdown(wait=True)
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        row = check.execute("SELECT checkpoint, heartbeat_timeout FROM tasks").fetchone()
    finally:
        check.close()
    assert row == ('{"next":3}', 60.0)
    second = make_manager(num_workers=1, store=path, operations=operations)
    status = second.get_task_status(task_id)
    assert status is not None
    assert (status["checkpoint"], status["heartbeat_timeout"]) == ({"next": 3}, 60.0)
    second.resume_task(task_id)
    assert second.wait(task_id, timeout=WAIT)["result"] == {"started_at": 3}


def test_a_render_killed_at_frame_600_resumes_at_frame_600(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    """A render of 1,000 frames checkpointing every frame, its host SIGKILLed after frame
    600 (durable store), resumes at frame 600 after the restart: no frame before the last
    checkpoint is rendered twice, and every frame is rendered."""
    database, log = tmp_path / "render.db", tmp_path / "frames.log"
    host = subprocess.run(
        [sys.executable, "-m", "tests.render_host", str(database), str(log)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert host.returncode == -9, host.stderr
    task_id = host.stdout.strip()
    assert log.read_text().split() == [str(n) for n in range(601)]
    manager = make_manager(num_workers=1, store=database, operations=render_host.OPERATIONS)
    status = manager.wait(task_id, timeout=WAIT)
    assert (status["status"], status["result"]) == ("completed", {"resumed_at": 600})
    frames = [int(n) for n in log.read_text().split()]
    assert sorted(set(frames)) == list(range(1000))
    twice = sorted({f for f in frames if frames.count(f) > 1})
    assert twice == [600]  # the one frame after the last checkpoint


# -- HTTP and the CLI ----------------------------------------------------------------------


def test_resume_over_http_and_the_cli(
    make_manager: MakeManager, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """POST /v1/tasks/{id}/resume answers 202 and runs the task again; a task that
    cannot be resumed is a 409 CONFLICT naming why and the fix; `resume ID` does the
    same from the command line."""
    manager = make_manager(num_workers=1, operations={"count": long_ops.count_then_fail_once})
    failed = manager.create_task("count", {"steps": 5, "fail_at": 2})
    again = manager.create_task("count", {"steps": 5, "fail_at": 1})
    done = manager.create_task("count", {"steps": 1, "fail_at": 9})
    for task_id in (failed, again, done):
        manager.wait(task_id, timeout=WAIT)
    with running_service(manager, ServiceConfig(tokens=None)) as service:
        with httpx.Client(base_url=service.url, timeout=WAIT) as client:
            answer = client.post(f"/v1/tasks/{failed}/resume")
            assert answer.status_code == 202, answer.text
            assert answer.json()["data"] == {
                "task_id": failed,
                "status": "pending",
                "resumed": True,
            }
            assert manager.wait(failed, timeout=WAIT)["result"] == {"started_at": 2}
            refused = client.post(f"/v1/tasks/{done}/resume")
            assert refused.status_code == 409, refused.text
            error = refused.json()["error"]
            assert (error["code"], error["details"]["reason"]) == ("CONFLICT", "it completed")
            assert "create a new task" in error["remediation"]
            assert (
                client.post(f"/v1/tasks/{'0' * 8}-0000-4000-8000-{'0' * 12}/resume").status_code
                == 404
            )
        monkeypatch.setenv(URL_ENV_VAR, service.url)
        assert main(["resume", again]) == 0
        assert f"resumed {again}" in capsys.readouterr().out
        assert manager.wait(again, timeout=WAIT)["result"] == {"started_at": 1}
        assert main(["resume", done]) != 0
        assert "it completed" in capsys.readouterr().err
