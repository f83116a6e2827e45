"""Process isolation under attack (issue 14, items 5, 9, 10, 16, 17; issue 15, a and b).

Real child processes throughout: operations that fork, start ``sleep`` processes (in the
child's session or a new one, or double-forked), write junk on the channel to the host,
map memory past a limit, ignore SIGXCPU, and a host process that is killed under its
child. Processes are observed through ``/proc``, waiting with a deadline.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.spawn
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors._execution.processes import ChildProcess
from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests import process_ops

MakeManager = Callable[..., TaskManager]

BOUND = 20.0  # seconds: an upper bound for a loaded machine, never a duration we expect
REPO = Path(__file__).resolve().parent.parent


def ended(pid: int) -> bool:
    """The process has exited: no /proc entry, or a zombie (its parent, maybe init in a
    container, has not reaped it yet; a zombie runs nothing and holds nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            stat = stat_file.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def wait_for_partial(manager: TaskManager, task_id: str) -> Any:
    def published() -> bool:
        status = manager.get_task_status(task_id)
        return status is not None and "partial_result" in status

    assert wait_until(published, timeout=BOUND)
    status = manager.get_task_status(task_id)
    assert status is not None
    return status["partial_result"]


def running_getpid(manager: TaskManager) -> int:
    status = manager.wait(manager.create_task(process_ops.getpid), timeout=BOUND)
    assert status["status"] == "completed", status
    pid = status["result"]
    assert isinstance(pid, int)
    return pid


def shutdown_within(manager: TaskManager, seconds: float) -> float:
    started = time.monotonic()
    manager.shutdown(wait=True, timeout=seconds)
    return time.monotonic() - started


# -- 5: an operation that forks, then times out ------------------------------------------


@pytest.mark.parametrize("raw", [False, True], ids=["os.fork", "libc-fork"])
def test_a_forking_operation_that_times_out_frees_its_slot(
    make_manager: MakeManager, raw: bool
) -> None:
    """A timed-out operation whose forked copy holds every descriptor the child had (the
    channel, multiprocessing's sentinel pipe) frees its slot once the child itself is
    gone: the next task runs, shutdown returns, and the forked copy is gone too."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    task_id = manager.create_task(process_ops.fork_then_sleep, {"raw": raw}, timeout=0.5)
    partial = wait_for_partial(manager, task_id)
    status = manager.wait(task_id, timeout=BOUND)
    assert (status["status"], status["error"]["code"]) == ("failed", "TIMEOUT")
    assert running_getpid(manager) not in (partial["pid"], os.getpid())
    assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=BOUND)
    assert shutdown_within(manager, BOUND) < BOUND
    assert wait_until(lambda: ended(partial["pid"]) and ended(partial["forked"]), timeout=BOUND)


# -- 9: a stop takes the operation's whole process tree -----------------------------------


@pytest.mark.parametrize("cooperative", [False, True], ids=["blocked-in-C", "cooperative"])
@pytest.mark.parametrize("setsid", [False, True], ids=["same-session", "setsid"])
def test_a_timed_out_operation_takes_its_processes_with_it(
    make_manager: MakeManager, setsid: bool, cooperative: bool
) -> None:
    """The sleeps a timed-out operation started (one direct, in its session or a new
    one; one double-forked daemon in a new session) are ended once the timeout is
    reported, whether the operation then returns (cooperative) or is signalled; the pool
    serves the next task and shutdown leaves none of them."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    params = {"setsid": setsid, "cooperative": cooperative}
    task_id = manager.create_task(process_ops.start_sleeps, params, timeout=1.0)
    sleeps = wait_for_partial(manager, task_id)["sleeps"]
    assert len(sleeps) == 2
    assert not any(ended(pid) for pid in sleeps)  # really started
    status = manager.wait(task_id, timeout=BOUND)
    assert (status["status"], status["error"]["code"]) == ("failed", "TIMEOUT")
    assert wait_until(lambda: all(ended(pid) for pid in sleeps), timeout=BOUND), sleeps
    assert running_getpid(manager) != os.getpid()
    shutdown_within(manager, BOUND)
    assert all(ended(pid) for pid in sleeps)


def test_shutdown_ends_the_processes_of_a_cancelled_operation(make_manager: MakeManager) -> None:
    """Processes of an operation cancelled while blocked in C are gone by the time
    shutdown(wait=True) returns."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    task_id = manager.create_task(process_ops.start_sleeps, {"setsid": True})
    partial = wait_for_partial(manager, task_id)
    assert manager.cancel_task(task_id) is True
    shutdown_within(manager, BOUND)
    everything = [partial["pid"], *partial["sleeps"]]
    assert wait_until(lambda: all(ended(pid) for pid in everything), timeout=BOUND), everything


def test_a_completed_operation_leaves_no_process_behind(make_manager: MakeManager) -> None:
    """A task's processes never outlive it: what a completed operation left running is
    ended before its result is reported, and its child serves the next task."""
    manager = make_manager(num_workers=1, isolation="process")
    child = running_getpid(manager)
    status = manager.wait(manager.create_task(process_ops.leave_sleeps), timeout=BOUND)
    assert status["status"] == "completed", status
    sleeps = status["result"]["sleeps"]
    assert wait_until(lambda: all(ended(pid) for pid in sleeps), timeout=BOUND), sleeps
    assert running_getpid(manager) == child


# -- 10: junk on the channel to the host ---------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"junk": b"\x00" * 11}, id="eleven-zero-bytes"),
        pytest.param({"junk": b"garbage on the wire\n"}, id="text"),
        pytest.param({"junk": b"\x00\x00\x00\x05hello"}, id="a-multiprocessing-frame"),
        pytest.param({"record": ("surprise", 1)}, id="unexpected-record"),
        pytest.param(
            {"record": ("done", "t-someone-else", "completed", 1, False)}, id="old-tuple-record"
        ),
        pytest.param({"wire": ("Done", "t-someone-else", "completed", 1, False)}, id="other-task"),
        pytest.param({"wire": ("Done", None, "completed", 1, False)}, id="done-of-no-task"),
        pytest.param({"wire": ("Done", "", "finished", 1, False)}, id="done-of-unknown-kind"),
        pytest.param({"wire": ("Done", "", "raised", "not an exception", False)}, id="bad-raised"),
        pytest.param({"wire": ("Done", "", "completed", 1, "yes")}, id="retire-not-a-bool"),
        pytest.param({"wire": ("Progress", "", 2, False, None)}, id="progress-not-a-float"),
        pytest.param({"wire": ("Ready",)}, id="ready-during-a-task"),
        pytest.param({"wire": ("RunTask", "", b"", None, None)}, id="a-host-record"),
    ],
)
def test_junk_on_the_channel_crashes_the_attempt(
    make_manager: MakeManager, params: dict[str, Any]
) -> None:
    """Bytes that are not a frame, or a record that does not belong to the task, end a
    task without a timeout at once as WORKER_CRASHED naming a corrupted channel; the
    child is killed, the slot freed, and shutdown does not hang."""
    manager = make_manager(num_workers=1, isolation="process")
    task_id = manager.create_task(process_ops.write_on_channel, params)
    status = manager.wait(task_id, timeout=BOUND)
    assert (status["status"], status["error"]["code"]) == ("failed", "WORKER_CRASHED"), status
    assert "corrupted channel" in status["error"]["message"]
    assert status["error"]["details"]["reason"].startswith("corrupted channel")
    assert running_getpid(manager) != os.getpid()
    assert shutdown_within(manager, BOUND) < BOUND


# -- 16: ENOMEM under a memory limit -------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "limits", "code"),
    [
        pytest.param({}, {"memory_limit_mb": 300}, "RESOURCE_EXHAUSTED", id="mmap"),
        pytest.param({"wrap": True}, {"memory_limit_mb": 300}, "RESOURCE_EXHAUSTED", id="wrapped"),
    ],
)
def test_an_mmap_past_the_memory_limit_is_resource_exhaustion(
    make_manager: MakeManager, params: dict[str, Any], limits: dict[str, Any], code: str
) -> None:
    """An OSError ENOMEM under memory_limit_mb (an anonymous mmap; also when the
    operation re-raises it as the cause of its own error) reads RESOURCE_EXHAUSTED with
    the limit, and the next task runs with no limit left over."""
    manager = make_manager(num_workers=1, isolation="process")
    status = manager.wait(
        manager.create_task(process_ops.map_a_gigabyte, params, **limits), timeout=BOUND
    )
    assert (status["status"], status["error"]["code"]) == ("failed", code), status
    assert status["error"]["details"]["limit"] == "memory_limit_mb"
    assert status["error"]["details"]["value"] == 300
    after = manager.wait(manager.create_task(process_ops.map_a_gigabyte), timeout=BOUND)
    assert after["result"] == 1024**3


def test_enomem_without_a_memory_limit_is_the_operations_error(make_manager: MakeManager) -> None:
    """Without memory_limit_mb an ENOMEM is the operation's own error (INTERNAL_ERROR)."""
    manager = make_manager(num_workers=1, isolation="process")
    status = manager.wait(manager.create_task(process_ops.raise_enomem), timeout=BOUND)
    assert status["error"]["code"] == "INTERNAL_ERROR"
    assert status["error"]["details"]["exception_type"] == "OSError"


# -- 17: an operation that ignores SIGXCPU -------------------------------------------------


def test_the_cpu_hard_limit_ends_an_operation_that_ignores_sigxcpu(
    make_manager: MakeManager,
) -> None:
    """cpu_time_limit is enforced even when the operation ignores SIGXCPU: the kernel's
    SIGKILL at the hard limit (a second above the soft one) ends it, and that reads
    RESOURCE_EXHAUSTED for the CPU limit, not WORKER_CRASHED."""
    manager = make_manager(num_workers=1, isolation="process")
    child = running_getpid(manager)
    task_id = manager.create_task(process_ops.spin_ignoring_sigxcpu, cpu_time_limit=1)
    status = manager.wait(task_id, timeout=60)
    assert (status["status"], status["error"]["code"]) == ("failed", "RESOURCE_EXHAUSTED"), status
    assert status["error"]["details"]["limit"] == "cpu_time_limit"
    assert "SIGKILL" in status["error"]["details"]["reason"]
    assert wait_until(lambda: ended(child), timeout=BOUND)
    assert running_getpid(manager) != child


def test_a_host_kill_under_a_cpu_limit_is_not_called_cpu_exhaustion(
    make_manager: MakeManager,
) -> None:
    """A child the host SIGKILLs (its stop ladder) under a cpu_time_limit is not reported
    as CPU exhaustion: the task keeps the terminal state of its stop."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.1)
    task_id = manager.create_task(
        process_ops.ignore_sigterm_then_sleep, cpu_time_limit=600, timeout=0.5
    )
    pid = wait_for_partial(manager, task_id)["pid"]
    status = manager.wait(task_id, timeout=BOUND)
    assert status["error"]["code"] == "TIMEOUT"
    assert wait_until(lambda: ended(pid), timeout=BOUND)
    assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=BOUND)
    final = manager.get_task_status(task_id)
    assert final is not None
    assert final["error"]["code"] == "TIMEOUT"


# -- issue 15 a: a child that fails to start -----------------------------------------------


@pytest.fixture
def broken_interpreter() -> Iterator[None]:
    """Children start with /bin/false as their interpreter: they exit 1 at once."""
    saved = multiprocessing.spawn.get_executable()
    multiprocessing.get_context("spawn").set_executable("/bin/false")
    try:
        yield
    finally:
        multiprocessing.get_context("spawn").set_executable(saved)


def test_a_child_that_fails_to_start_raises_the_intended_error(broken_interpreter: None) -> None:
    """A child that dies before its handshake raises RuntimeError naming its exit code
    (not ValueError from a closed process object), and is reaped."""
    with pytest.raises(RuntimeError, match=r"died while starting \(exit code 1\)"):
        ChildProcess("doomed")


def test_a_task_whose_child_cannot_start_fails_clearly(
    make_manager: MakeManager, broken_interpreter: None
) -> None:
    """The task whose child cannot start fails with that reason; the manager carries on."""
    manager = make_manager(num_workers=1, isolation="process")
    status = manager.wait(manager.create_task(process_ops.getpid), timeout=BOUND)
    assert status["status"] == "failed"
    assert "died while starting" in status["error"]["message"], status


# -- issue 15 b: SIGINT, and an orphaned child ---------------------------------------------


def test_sigint_to_a_child_changes_nothing(
    make_manager: MakeManager, capfd: pytest.CaptureFixture[str]
) -> None:
    """SIGINT (a Ctrl-C) sent to the child running a task neither fails the task nor
    prints a traceback: the task completes, and a cancel afterwards still stops the next
    one (the host's ladder decides)."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    task_id = manager.create_task(process_ops.pid_then_wait, {"seconds": 1.0})
    pid = wait_for_partial(manager, task_id)["pid"]
    os.kill(pid, signal.SIGINT)
    status = manager.wait(task_id, timeout=BOUND)
    assert (status["status"], status.get("result")) == ("completed", "finished"), status
    second = manager.create_task(process_ops.pid_then_wait, {"seconds": 60.0})
    assert wait_for_partial(manager, second)["pid"] == pid  # the same child, still serving
    os.kill(pid, signal.SIGINT)
    assert manager.cancel_task(second) is True
    assert manager.wait(second, timeout=BOUND)["status"] == "cancelled"
    shutdown_within(manager, BOUND)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err


def test_an_orphaned_child_exits_quietly_with_its_processes() -> None:
    """When its host is killed (SIGKILL), a child busy reporting progress exits without
    a word on standard error and ends the processes its operation started."""
    host = subprocess.Popen(
        [sys.executable, "-m", "tests.process_host"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert host.stdout is not None
        line = host.stdout.readline().decode()
        child, sleeper = (int(word) for word in line.split())
        assert not ended(child)
        assert not ended(sleeper)
        host.kill()
        host.wait(BOUND)
        # Standard error reaches end of file once the child and its sleep, which share
        # it, are gone: that is the deadline for both.
        _, err = host.communicate(timeout=BOUND)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(BOUND)
    assert err.decode() == ""
    assert wait_until(lambda: ended(child) and ended(sleeper), timeout=BOUND)
