"""Where lifecycle events go when the host has not configured structlog."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_script(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unconfigured_events_follow_stdlib_logging() -> None:
    """Without structlog configuration, events reach the host's stdlib logging handlers
    (with task_id), and nothing is printed to standard output."""
    done = run_script(
        """
        import logging, sys
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append((record.name, record.levelname, record.getMessage()))
        logging.getLogger().addHandler(Keep())
        logging.getLogger().setLevel(logging.INFO)
        from storycore_tasks import TaskManager
        with TaskManager(num_workers=1) as manager:
            task_id = manager.create_task(lambda params, task: 1)
            manager.wait(task_id, 10)
        completed = [r for r in records if "task.completed" in r[2]]
        assert len(completed) == 1, records
        name, level, message = completed[0]
        assert name == "actors.registry" and level == "INFO", completed
        assert task_id in message and "duration_ms=" in message, message
        sys.stderr.write("ok")
        """
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "ok")


def test_unconfigured_and_unhandled_only_warnings_reach_stderr() -> None:
    """With no logging setup at all, a completed task prints nothing; a timed-out one
    prints a single task.timed_out warning on standard error."""
    done = run_script(
        """
        import threading
        from storycore_tasks import TaskManager
        release = threading.Event()
        with TaskManager(num_workers=1) as manager:
            manager.wait(manager.create_task(lambda params, task: 1), 10)
            slow = manager.create_task(lambda params, task: release.wait(10), timeout=0.05)
            manager.wait(slow, 10)
            release.set()
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("event='task.timed_out'")


def test_a_failing_log_processor_never_breaks_the_runtime() -> None:
    """A structlog processor that raises (a closed pipe, a bug in the host's logging)
    costs the event, not the actors: tasks still run and the loss is counted."""
    done = run_script(
        """
        import structlog
        from actors._core.registry import _log as registry_log
        def explode(logger, method, event_dict):
            raise BrokenPipeError("stdout is gone")
        structlog.configure(processors=[explode])
        from storycore_tasks import TaskManager
        with TaskManager(num_workers=2) as manager:
            ids = [manager.create_task(lambda params, task: 7) for _ in range(20)]
            results = [manager.wait(task_id, 10)["result"] for task_id in ids]
        assert results == [7] * 20, results
        assert registry_log.dropped_events >= 40, registry_log.dropped_events
        print("ok")
        """
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
