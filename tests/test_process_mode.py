"""Process isolation: operations run in warm child processes that the supervisor can stop,
replace and limit, and whose crashes never reach the host.

Real child processes throughout (``spawn`` start: ~0.2-0.5 s each), so managers are reused
within a test and bounds are generous. Child processes are observed through ``/proc``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from actors import StopReason, TaskContext
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.errors import HTTP_STATUS_BY_CODE, REMEDIATION_BY_CODE, ErrorCodes
from tests import process_ops

MakeManager = Callable[..., TaskManager]

BOUND = 20.0  # seconds: an upper bound for a loaded machine, never a duration we expect


# -- observing child processes through /proc ---------------------------------------------


def child_states() -> dict[int, str]:
    """Every child process of this one: pid -> its /proc state letter ("Z": a zombie)."""
    me = os.getpid()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat_file:
                stat = stat_file.read()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me:
            found[int(entry)] = state
    return found


def is_multiprocessing_helper(pid: int) -> bool:
    """multiprocessing's own long-lived helpers (resource tracker, forkserver) are not
    workers: they serve the whole test session."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline_file:
            cmdline = cmdline_file.read()
    except OSError:
        return False
    return b"resource_tracker" in cmdline or b"forkserver" in cmdline


def new_children(baseline: set[int]) -> dict[int, str]:
    """Children started since ``baseline`` was taken, helpers left out, zombies included."""
    return {
        pid: state
        for pid, state in child_states().items()
        if pid not in baseline and not is_multiprocessing_helper(pid)
    }


def gone(pid: int) -> bool:
    """The process has exited and been reaped (a zombie still has its /proc entry)."""
    return not os.path.exists(f"/proc/{pid}")


def sigterm_ignored(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status_file:
        for line in status_file:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


# -- reading the manager ------------------------------------------------------------------


def status_of(manager: TaskManager, task_id: str) -> dict[str, Any]:
    status = manager.get_task_status(task_id)
    assert status is not None, f"task {task_id} is unknown"
    return status


def wait_for_partial(manager: TaskManager, task_id: str) -> Any:
    """The partial result the operation published from its child, once it has arrived."""
    assert wait_until(lambda: "partial_result" in status_of(manager, task_id), timeout=BOUND)
    return status_of(manager, task_id)["partial_result"]


def pool(manager: TaskManager) -> tuple[int, int, int]:
    """(children alive, started_total, replaced_total) of the manager's process pool."""
    stats = manager.get_stats()["process_pool"]
    return stats["children"], stats["started_total"], stats["replaced_total"]


def run_getpid(manager: TaskManager, **kwargs: Any) -> int:
    """Run a healthy task to completion and return the pid that ran it."""
    status = manager.wait(manager.create_task(process_ops.getpid, **kwargs), timeout=BOUND)
    assert status["status"] == "completed", status
    pid = status["result"]
    assert isinstance(pid, int)
    return pid


# -- the tests ----------------------------------------------------------------------------


def test_a_process_task_returns_its_result_and_reports_progress(
    make_manager: MakeManager,
) -> None:
    """Process mode: the result comes back from the child, and update_progress and
    partial_result set in the child reach get_task_status while the operation runs."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=10.0)
    done = manager.wait(manager.create_task(process_ops.echo, {"value": 42}), timeout=BOUND)
    assert done["status"] == "completed"
    child_pid = done["result"]["pid"]
    assert done["result"] == {"echo": {"value": 42}, "pid": child_pid}
    assert child_pid != os.getpid()

    task_id = manager.create_task(process_ops.report_then_wait)
    expected_partial = {"step": 1, "pid": child_pid}
    assert wait_until(
        lambda: (
            status_of(manager, task_id).get("partial_result") == expected_partial
            and status_of(manager, task_id)["progress"] == 0.5
        ),
        timeout=BOUND,
    )
    assert status_of(manager, task_id)["status"] == "running"
    assert manager.cancel_task(task_id) is True
    assert status_of(manager, task_id)["status"] == "cancelled"
    # wait_cancelled() returned in the child: with a 10 s stop_grace, a child that missed
    # the cooperative flag would still hold the only slot, and this would time out.
    follow_up = manager.wait(manager.create_task(process_ops.getpid), timeout=5.0)
    assert follow_up["result"] == child_pid


def test_a_cancel_as_the_task_starts_reaches_the_child(make_manager: MakeManager) -> None:
    """A cancel that arrives while a process task is being handed to its child still sets
    the cooperative flag in the child: the operation returns by itself, and its child is
    neither signalled nor replaced (stop_grace is 10 s, so a lost flag shows as a
    follow-up task that cannot start)."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=10.0)
    child_pid = run_getpid(manager)
    for _ in range(5):
        task_id = manager.create_task(process_ops.report_then_wait)
        assert manager.cancel_task(task_id) is True
        follow_up = manager.wait(manager.create_task(process_ops.getpid), timeout=5.0)
        assert follow_up["result"] == child_pid
    assert pool(manager) == (1, 1, 0)


def test_a_new_child_start_does_not_count_against_the_timeout(
    make_manager: MakeManager,
) -> None:
    """Timeouts count from the start of running in a ready child: a task whose child was
    just replaced (the previous one was killed at its timeout) still starts its
    operation, and so times out with its partial result."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.1)
    run_getpid(manager)  # the pool is warm
    for _ in range(2):
        status = manager.wait(
            manager.create_task(process_ops.partial_then_sleep, timeout=0.3), timeout=BOUND
        )
        assert status["error"]["code"] == "TIMEOUT"
        assert isinstance(status["error"]["details"].get("partial_result"), dict), status


def test_children_are_reused_then_replaced_after_max_tasks_per_child(
    make_manager: MakeManager,
) -> None:
    """A warm child serves task after task (same pid, not the host's); after
    max_tasks_per_child tasks it is retired and a new child runs the next task."""
    manager = make_manager(num_workers=1, isolation="process", max_tasks_per_child=2)
    first, second, third = (run_getpid(manager) for _ in range(3))
    assert first == second
    assert first != os.getpid()
    assert third not in (first, os.getpid())
    assert wait_until(lambda: gone(first), timeout=BOUND)
    assert wait_until(lambda: pool(manager) == (1, 2, 1), timeout=BOUND), pool(manager)


def test_fifty_sleeping_timeouts_leave_no_extra_child_and_no_zombie(
    make_manager: MakeManager,
) -> None:
    """50 operations stuck in time.sleep(3600) past their timeout: every one ends
    failed/TIMEOUT with its partial result, and within the grace windows no child is left
    beyond the pool and none is a zombie."""
    baseline = set(child_states())
    manager = make_manager(num_workers=5, isolation="process", stop_grace=0.1)
    # 0.5 s: a replacement child imports this test's operations module (unpickling the
    # task) within the attempt's time; at 0.2 s a loaded machine missed the partial result.
    ids = [manager.create_task(process_ops.partial_then_sleep, timeout=0.5) for _ in range(50)]
    statuses = [manager.wait(task_id, timeout=120) for task_id in ids]
    assert [(s["status"], s["error"]["code"]) for s in statuses] == [("failed", "TIMEOUT")] * 50

    def contained() -> bool:
        if manager.get_stats()["stopping"] != 0:  # a child still holds its slot
            return False
        children = new_children(baseline)
        zombies = [pid for pid, state in children.items() if state == "Z"]
        pool_size = manager.get_stats()["process_pool"]["children"]
        return not zombies and len(children) <= 5 and pool_size <= 5

    assert wait_until(contained, timeout=BOUND), new_children(baseline)
    partials = [s["error"]["details"].get("partial_result") for s in statuses]
    assert all(isinstance(p, dict) and isinstance(p.get("pid"), int) for p in partials), partials
    pids: list[int] = [p["pid"] for p in partials]
    assert partials == [{"pid": pid} for pid in pids]
    assert os.getpid() not in pids
    live = new_children(baseline)
    assert [pid for pid in pids if not gone(pid) and pid not in live] == []
    assert run_getpid(manager) != os.getpid()  # the pool still serves


@pytest.mark.parametrize(
    ("operation", "limits", "code", "details", "child_survives"),
    [
        pytest.param(
            process_ops.segfault,
            {},
            "WORKER_CRASHED",
            {"exit_code": None, "signal": signal.SIGSEGV},
            False,
            id="segfault",
        ),
        pytest.param(
            process_ops.exit_3,
            {},
            "WORKER_CRASHED",
            {"exit_code": 3, "signal": None},
            False,
            id="os._exit(3)",
        ),
        pytest.param(
            process_ops.kill_self,
            {},
            "WORKER_CRASHED",
            {"exit_code": None, "signal": signal.SIGKILL},
            False,
            id="SIGKILL",
        ),
        pytest.param(
            process_ops.raise_system_exit,
            {},
            "INTERNAL_ERROR",
            {"exception_type": "SystemExit"},
            True,
            id="SystemExit",
        ),
        pytest.param(
            process_ops.unpicklable_result,
            {},
            "INTERNAL_ERROR",
            {},  # exception_type mentions pickling: checked below
            None,
            id="unpicklable-result",
        ),
        pytest.param(
            process_ops.allocate_a_gigabyte,
            {"memory_limit_mb": 300},
            "RESOURCE_EXHAUSTED",
            {"limit": "memory_limit_mb", "value": 300},
            None,
            id="memory-one-allocation",
        ),
        pytest.param(
            process_ops.grow_a_list,
            {"memory_limit_mb": 300},
            "RESOURCE_EXHAUSTED",
            {"limit": "memory_limit_mb", "value": 300},
            None,
            id="memory-growing-list",
        ),
        pytest.param(
            process_ops.spin,
            {"cpu_time_limit": 1},
            "RESOURCE_EXHAUSTED",
            {"limit": "cpu_time_limit", "value": 1},
            None,
            id="cpu-spin",
        ),
    ],
)
def test_a_misbehaving_child_is_contained(
    make_manager: MakeManager,
    operation: Callable[[Mapping[str, Any], TaskContext], Any],
    limits: dict[str, Any],
    code: str,
    details: dict[str, Any],
    child_survives: bool | None,
) -> None:
    """A segfault, os._exit, a signal, SystemExit, an unpicklable result, a memory bomb
    under memory_limit_mb and a CPU spin under cpu_time_limit each end failed with the
    documented code and details; a healthy task submitted afterwards completes (in the
    same child when the child survives, in a new one when it died)."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    child_pid = run_getpid(manager)  # the one warm child, which runs the next task too
    status = manager.wait(manager.create_task(operation, timeout=BOUND, **limits), timeout=60)
    assert (status["status"], status["error"]["code"]) == ("failed", code), status
    error = status["error"]
    assert {key: error["details"].get(key) for key in details} == details
    assert error["remediation"] == REMEDIATION_BY_CODE[ErrorCodes(code)]
    if operation is process_ops.unpicklable_result:  # the error says pickling failed
        assert "pickl" in error["details"]["exception_type"].lower(), error
    # A healthy task afterwards, allocating more than any limit above: limits are per task.
    after = manager.wait(
        manager.create_task(process_ops.allocate_mb_and_getpid, {"mb": 400}), timeout=BOUND
    )
    assert after["status"] == "completed", after
    assert after["result"] != os.getpid()
    if child_survives is True:
        assert after["result"] == child_pid
    elif child_survives is False:
        assert after["result"] != child_pid
        assert wait_until(lambda: gone(child_pid), timeout=BOUND)


def test_cancelling_a_non_cooperative_process_task_stops_its_child(
    make_manager: MakeManager,
) -> None:
    """Cancel of a running task stuck in time.sleep: cancelled at once, and its child is
    stopped (exited and reaped) after stop_grace, never before; the pool carries on."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.2)
    task_id = manager.create_task(process_ops.partial_then_sleep)
    pid = wait_for_partial(manager, task_id)["pid"]
    started = time.monotonic()
    assert manager.cancel_task(task_id) is True
    status = status_of(manager, task_id)
    assert (status["status"], status["error"]["code"]) == ("cancelled", "CANCELLED")
    assert wait_until(lambda: gone(pid), timeout=BOUND)
    assert time.monotonic() - started >= 0.2
    assert status_of(manager, task_id)["status"] == "cancelled"
    assert run_getpid(manager) not in (pid, os.getpid())


def test_a_child_that_ignores_sigterm_is_killed(make_manager: MakeManager) -> None:
    """A child that ignores SIGTERM is SIGKILLed after the second grace; its task stays
    terminal and the pool serves the next task in a new child."""
    manager = make_manager(num_workers=1, isolation="process", stop_grace=0.3)
    task_id = manager.create_task(process_ops.ignore_sigterm_then_sleep)
    partial = wait_for_partial(manager, task_id)
    pid = partial["pid"]
    assert partial == {"pid": pid, "ignoring": "SIGTERM"}
    assert sigterm_ignored(pid)
    started = time.monotonic()
    assert manager.cancel_task(task_id) is True
    assert wait_until(lambda: gone(pid), timeout=BOUND)
    assert time.monotonic() - started >= 0.6  # SIGTERM at 0.3 s did nothing; SIGKILL at 0.6
    assert status_of(manager, task_id)["status"] == "cancelled"
    assert run_getpid(manager) not in (pid, os.getpid())
    assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=BOUND)


def test_shutdown_with_busy_children_leaves_no_child(make_manager: MakeManager) -> None:
    """shutdown(wait=True) while children are busy lets their operations finish, then
    leaves no child process (and, by the autouse fixture, no thread) behind."""
    baseline = set(child_states())
    manager = make_manager(num_workers=2, isolation="process")
    ids = [manager.create_task(process_ops.sleep_then_return, {"seconds": 0.5}) for _ in range(2)]
    busy = {wait_for_partial(manager, task_id)["pid"] for task_id in ids}
    assert len(busy) == 2
    assert busy <= set(new_children(baseline))
    manager.shutdown(wait=True, timeout=BOUND)
    assert new_children(baseline) == {}
    assert [status_of(manager, task_id).get("result") for task_id in ids] == ["finished"] * 2
    assert manager.get_stats()["process_pool"]["children"] == 0


def test_unpicklable_operations_and_params_are_refused_at_create_task(
    make_manager: MakeManager,
) -> None:
    """In process mode create_task refuses an operation or params that cannot be pickled,
    with a TypeError naming the culprit; nothing is queued."""

    def local_operation(params: Mapping[str, Any], task: TaskContext) -> int:
        return 1

    manager = make_manager(num_workers=1, isolation="process")
    with pytest.raises(TypeError, match="local_operation"):
        manager.create_task(local_operation)
    with pytest.raises(TypeError, match="lambda"):
        manager.create_task(lambda params, task: 1)
    with pytest.raises(TypeError, match="the_lock"):
        manager.create_task(process_ops.echo, {"fine": 1, "the_lock": threading.Lock()})
    stats = manager.get_stats()
    assert (stats["total_tasks"], stats["queue_size"]) == (0, 0)
    assert stats["lifetime_stats"]["total_created"] == 0

    thread_manager = make_manager(num_workers=1)  # the check follows the task's isolation
    with pytest.raises(TypeError, match="local_operation"):
        thread_manager.create_task(local_operation, isolation="process")
    assert thread_manager.get_stats()["lifetime_stats"]["total_created"] == 0
    in_thread = thread_manager.create_task(local_operation)
    assert thread_manager.wait(in_thread, timeout=BOUND)["result"] == 1


def test_isolation_and_limits_are_validated(make_manager: MakeManager) -> None:
    """An unknown isolation is a ValueError; a memory or CPU limit needs a child process,
    so giving one to a thread-isolated task is a ValueError; nothing is queued."""
    with pytest.raises(ValueError, match="isolation"):
        make_manager(isolation="bogus")

    manager = make_manager(num_workers=1)
    with pytest.raises(ValueError, match="isolation"):
        manager.create_task(process_ops.getpid, isolation="bogus")
    with pytest.raises(ValueError, match="memory_limit_mb"):
        manager.create_task(process_ops.getpid, memory_limit_mb=300)
    with pytest.raises(ValueError, match="cpu_time_limit"):
        manager.create_task(process_ops.getpid, cpu_time_limit=1)
    process_manager = make_manager(num_workers=1, isolation="process")
    with pytest.raises(ValueError, match="memory_limit_mb"):
        process_manager.create_task(process_ops.getpid, isolation="thread", memory_limit_mb=300)
    for m in (manager, process_manager):
        assert m.get_stats()["lifetime_stats"]["total_created"] == 0


def test_per_task_isolation_overrides_the_manager_default(make_manager: MakeManager) -> None:
    """create_task(isolation="process") on a thread-default manager runs that task in a
    child while the others run in the host process, and the reverse."""
    manager = make_manager(num_workers=2)
    assert run_getpid(manager, isolation="process") != os.getpid()
    assert run_getpid(manager) == os.getpid()
    assert run_getpid(manager, isolation="thread") == os.getpid()

    process_manager = make_manager(num_workers=1, isolation="process")
    assert run_getpid(process_manager, isolation="thread") == os.getpid()
    assert run_getpid(process_manager) != os.getpid()


def test_status_dicts_carry_the_isolation(make_manager: MakeManager) -> None:
    """Every status dict says where the task runs: "thread" or "process", from creation on."""
    manager = make_manager(num_workers=1, isolation="process")
    in_child = manager.create_task(process_ops.getpid)
    in_host = manager.create_task(process_ops.getpid, isolation="thread")
    assert status_of(manager, in_child)["isolation"] == "process"
    assert status_of(manager, in_host)["isolation"] == "thread"
    assert manager.wait(in_child, timeout=BOUND)["isolation"] == "process"
    assert manager.wait(in_host, timeout=BOUND)["isolation"] == "thread"
    assert {s["task_id"]: s["isolation"] for s in manager.list_tasks()} == {
        in_child: "process",
        in_host: "thread",
    }
    thread_manager = make_manager(num_workers=1)
    default_task = thread_manager.create_task(process_ops.getpid)
    assert thread_manager.wait(default_task, timeout=BOUND)["isolation"] == "thread"


@pytest.mark.parametrize("code", ["WORKER_CRASHED", "RESOURCE_EXHAUSTED"])
def test_the_new_codes_have_an_http_status_and_a_remediation(code: str) -> None:
    """WORKER_CRASHED and RESOURCE_EXHAUSTED map to an HTTP error status and carry a
    remediation text."""
    error_code = ErrorCodes(code)
    assert 400 <= HTTP_STATUS_BY_CODE[error_code] <= 599
    assert REMEDIATION_BY_CODE[error_code].strip()


def test_a_process_default_manager_warms_exactly_its_pool(make_manager: MakeManager) -> None:
    """isolation="process" starts num_workers children up front, and not one more."""
    manager = make_manager(num_workers=3, isolation="process")
    assert wait_until(lambda: manager.get_stats()["process_pool"]["idle"] == 3, timeout=BOUND)
    # Three thread tasks that meet at a barrier need all three pool threads at once, so
    # every warm-up job has finished by the time they complete.
    barrier = threading.Barrier(3, timeout=BOUND)

    def meet(params: Mapping[str, Any], task: TaskContext) -> int:
        return barrier.wait()

    ids = [manager.create_task(meet, isolation="thread") for _ in range(3)]
    assert sorted(manager.wait(task_id, timeout=BOUND)["result"] for task_id in ids) == [0, 1, 2]
    pool = manager.get_stats()["process_pool"]
    assert (pool["children"], pool["started_total"], pool["replaced_total"]) == (3, 3, 0)


def test_a_message_the_parent_cannot_read_fails_the_task_and_retires_its_child(
    make_manager: MakeManager,
) -> None:
    """A partial result that cannot be unpickled in the host fails its task at once with
    INTERNAL_ERROR, and its child (still running the operation) is killed, not reused."""
    manager = make_manager(num_workers=1, isolation="process")
    task_id = manager.create_task(process_ops.partial_unreadable_by_parent)
    status = manager.wait(task_id, timeout=BOUND)
    assert (status["status"], status["error"]["code"]) == ("failed", "INTERNAL_ERROR")
    assert "only be unpickled" in status["error"]["message"]
    assert wait_until(lambda: manager.get_stats()["process_pool"]["children"] == 0, timeout=BOUND)
    assert run_getpid(manager) != os.getpid()  # a new child serves the next task


def test_a_cancelled_child_still_coalesces_its_progress() -> None:
    """After a stop request, a child context reporting progress in a tight loop still
    sends at most one message per interval (about 100 a second), not one per call."""
    import multiprocessing
    import pickle

    from actors._execution.child import (
        _PROGRESS_INTERVAL,
        ChildTaskContext,
        _Channel,
        _ProgressSender,
    )
    from actors._execution.processes import _FrameReader
    from actors._execution.wire import Progress

    parent_end, child_end = multiprocessing.Pipe(duplex=True)
    received: list[tuple[Any, ...]] = []

    def read() -> None:  # the child's frames, as the host reads them
        frames = _FrameReader(parent_end.fileno())
        while not frames.eof:
            frames.fill()
            received.extend(pickle.loads(payload) for payload in frames.frames())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sender = _ProgressSender()
        context = ChildTaskContext("t-1", _Channel(child_end), sender)
        context._request_stop("cancel_requested")  # what a CancelTask does
        calls = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.3:
            context.update_progress((calls % 100) / 100)
            calls += 1
        context._close()
        sender.close()
    finally:
        child_end.close()
        reader.join(BOUND)
    parent_end.close()
    assert calls > 10_000  # the storm really happened
    assert 1 <= len(received) <= 0.3 / _PROGRESS_INTERVAL + 5
    assert {type(message) for message in received} == {Progress}


def test_a_child_given_back_cannot_be_signalled_for_its_old_task() -> None:
    """Once a task's child is detached (given back to the pool), a late escalation for
    that task signals nothing: the child, maybe running the next task, lives on."""
    import pykka

    from actors import Isolation, TaskOptions
    from actors._execution.process_backend import ProcessAttempt
    from actors._execution.processes import ChildProcess
    from actors._outcome import Outcome
    from actors._records import TaskSpec

    class Events:  # the attempt reports nothing here: it is never driven
        published = None  # its context makes its own channel

        def started(self) -> None: ...

        def confirm_start(self) -> Outcome | None:
            return None

        def ended(self, outcome: Outcome) -> None: ...

    spec = TaskSpec(
        task_id="t-1",
        operation=process_ops.echo,
        operation_name="echo",
        params={},
        options=TaskOptions(isolation=Isolation.PROCESS),
        seq=1,
        created_at=0.0,
    )
    registry = pykka.ThreadingActor.start()
    child = ChildProcess("test-child")
    try:
        attempt = ProcessAttempt(spec, registry, Events())
        attempt.attach_child(child)
        attempt.detach_child()
        attempt.interrupt(StopReason.TIMEOUT)
        attempt.kill(StopReason.TIMEOUT)
        attempt.stop(StopReason.TIMEOUT)  # nowhere to go: no error either
        assert child.process.exitcode is None
        assert not child.has_exited()
        attempt.attach_child(child)
        attempt.kill(StopReason.TIMEOUT)
        child.process.join(BOUND)
        assert child.process.exitcode == -signal.SIGKILL
    finally:
        child.close()
        registry.stop()


def test_children_run_below_the_host_priority(make_manager: MakeManager) -> None:
    """Children run at niceness +10 from the host, so CPU-bound operations cannot starve
    the supervisor's threads (benchmark B2 under process-mode load)."""
    manager = make_manager(num_workers=1, isolation="process")
    status = manager.wait(manager.create_task(process_ops.niceness), timeout=BOUND)
    assert status["result"] == min(os.nice(0) + 10, 19)


def test_a_worn_out_childs_replacement_is_up_before_the_next_task_needs_it(
    make_manager: MakeManager,
) -> None:
    """The replacement of a child starts beside its last task (max_tasks_per_child), so
    the next task runs on a child that was already up when that task was created: no
    task waits for an interpreter to boot."""
    manager = make_manager(num_workers=1, isolation="process", max_tasks_per_child=2)
    ran_on: list[int] = []
    for round_number in range(6):
        assert wait_until(lambda: manager.get_stats()["process_pool"]["idle"] >= 1, timeout=BOUND)
        up_before = set(child_states())
        pid = run_getpid(manager)
        assert pid in up_before, f"round {round_number}: the task waited for a new child"
        ran_on.append(pid)
    assert [ran_on.index(pid) for pid in ran_on] == [0, 0, 2, 2, 4, 4]  # two tasks each


@pytest.mark.parametrize("workers", [1, 4])
def test_a_shutdown_while_children_start_leaves_none_behind(
    make_manager: MakeManager, workers: int
) -> None:
    """The pool's starter may be booting children when shutdown comes: it finishes that
    start, the child is stopped, and neither it nor the starter thread is left."""
    baseline = set(child_states())
    for _ in range(3):
        manager = TaskManager(num_workers=workers, isolation="process")
        manager.shutdown(wait=True, timeout=BOUND)
        assert wait_until(lambda: not new_children(baseline), timeout=BOUND), new_children(baseline)
        assert not [t for t in threading.enumerate() if t.name.endswith("-starter")]


def test_a_childs_progress_thread_starts_with_its_first_report_and_serves_later_tasks(
    make_manager: MakeManager,
) -> None:
    """No thread is started for a task that reports nothing; the first report starts the
    child's one sender, which later tasks share, and each task's last values arrive."""
    manager = make_manager(num_workers=1, isolation="process", max_tasks_per_child=10)

    def run(report: bool, n: int) -> dict[str, Any]:
        task_id = manager.create_task(
            process_ops.report_then_list_threads, {"report": report, "n": n}
        )
        status = manager.wait(task_id, timeout=BOUND)
        assert status["status"] == "completed", status
        return status

    quiet = run(False, 0)
    assert "progress-sender" not in quiet["result"]["threads"]
    for n in range(1, 4):
        loud = run(True, n)
        assert loud["result"]["threads"].count("progress-sender") == 1
        assert loud["result"]["pid"] == quiet["result"]["pid"]  # one child throughout
        assert loud["partial_result"] == {"n": n}
        assert loud["progress"] == 1.0
