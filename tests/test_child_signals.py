"""A pool child ignores Ctrl-C (SIGINT), from its first instruction on, and says nothing
when its host is gone (issue 15 b; the child.py docstring's promises).

Real processes throughout. SIGINT sent to the child's own pid while it runs a task, and
its host killed under it, are pinned in tests/test_hardening_process.py; here: SIGINT to
the child's whole process group, a Ctrl-C storm at the host's process group while
children keep starting (a child is in the host's group until it has made its own), and a
host killed under a child blocked in C that never touches its channel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests import process_ops
from tests.test_hardening_process import ended, wait_for_partial

MakeManager = Callable[..., TaskManager]

BOUND = 30.0  # seconds: an upper bound for a loaded machine, never a duration we expect
REPO = Path(__file__).resolve().parent.parent
STARTS = 40  # children started while the SIGINTs arrive
SIGINT_EVERY = 0.005  # seconds between two SIGINTs of the storm


def test_sigint_to_the_childs_process_group_changes_nothing(
    make_manager: MakeManager, tmp_path: Path, capfd: Any
) -> None:
    """SIGINT to the child's whole process group (its own: a Ctrl-C aimed at it) while
    an operation runs: the task completes with its result, the same child serves the
    next task, and nothing is printed on standard error."""
    manager = make_manager(num_workers=1, isolation="process")
    release = tmp_path / "release"
    task_id = manager.create_task(process_ops.pid_then_wait_for_file, {"path": str(release)})
    pid = wait_for_partial(manager, task_id)["pid"]
    assert os.getpgid(pid) == pid  # a group of its own
    os.killpg(pid, signal.SIGINT)
    release.touch()
    status = manager.wait(task_id, timeout=BOUND)
    assert (status["status"], status.get("result")) == ("completed", "finished"), status
    again = manager.wait(manager.create_task(process_ops.getpid), timeout=BOUND)
    assert again["result"] == pid
    manager.shutdown(wait=True, timeout=BOUND)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err


def test_a_ctrl_c_storm_while_children_start_prints_nothing() -> None:
    """SIGINT after SIGINT at the host's process group (a terminal's Ctrl-C) while
    children keep starting, each one in that group until it makes its own: no child dies
    of it or prints a traceback, and every task completes."""
    host = subprocess.Popen(
        [sys.executable, "-m", "tests.sigint_host", str(STARTS)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    sent = 0
    try:
        assert host.stdout is not None
        assert host.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + BOUND
        while host.poll() is None and time.monotonic() < deadline:
            try:
                os.killpg(host.pid, signal.SIGINT)
            except ProcessLookupError:
                break
            sent += 1
            time.sleep(SIGINT_EVERY)  # the storm's pace, not a wait for a result
        out, err = host.communicate(timeout=BOUND)
    finally:
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGKILL)
            host.wait(BOUND)
    assert sent > 0
    lines = out.decode().split()
    assert lines[:2] == ["done", str(STARTS + 1)], out.decode()
    assert int(lines[2]) > 0  # the host got its SIGINTs
    assert err.decode() == ""
    assert host.returncode == 0


def test_an_orphaned_child_blocked_in_c_exits_quietly() -> None:
    """When its host is killed (SIGKILL) while the child runs an operation that blocks
    in C and never touches the channel, the child exits at once, without a word."""
    host = subprocess.Popen(
        [sys.executable, "-m", "tests.process_host", "--blocked"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert host.stdout is not None
        child = int(host.stdout.readline().decode().split()[0])
        assert not ended(child)
        host.kill()
        host.wait(BOUND)
        _, err = host.communicate(timeout=BOUND)  # end of file once the child is gone
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(BOUND)
    assert err.decode() == ""
    assert wait_until(lambda: ended(child), timeout=BOUND)
