"""Self-healing of the manager's own actors: the registry and the timer service.

When the registry fails while handling a message it is restarted in place and rebuilt
from its records (the SQLite file, with a durable store); the one task that message was
about ends ``failed`` with ``INTERRUPTED`` (cause ``registry_restarted``) and nothing
keeps running for it; an ask that met the failure raises ``ActorRestartedError`` and the
next one works (a failing query restarts nothing: it raises ``QueryFailedError``); every
other task, waiter, count, group and dependency carries on. A failing timer tick loses
no armed timer. Past ``max_restarts`` restarts within ``restart_window`` seconds the
manager stops itself cleanly and says why.

Every test runs with the memory store and with a durable one where that matters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from actors import (
    ActorRestartedError,
    InjectedFaultError,
    ManualClock,
    QueryFailedError,
    RetryPolicy,
    RuntimeClosedError,
    TaskContext,
)
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.testing import LifecycleCapture
from tests.gates import Gate, settle
from tests.registry_peek import watched

MakeManager = Callable[..., TaskManager]

WAIT = 15.0
"""Upper bound of every wait; a healthy run never gets near it."""

STORES = ["memory", "durable"]


# -- operations and helpers -------------------------------------------------------------


def quick(params: Mapping[str, Any], task: TaskContext) -> Any:
    return {"n": params.get("n")}


class Cooperative:
    """Waits for ``go`` (if given), optionally reports progress or raises, then waits
    until the task is cancelled. Records whether it ran and whether it saw the cancel."""

    def __init__(
        self, *, progress: bool = False, fail_first: bool = False, cap: float = WAIT
    ) -> None:
        self.cap = cap
        self.progress = progress
        self.fail_first = fail_first
        self.go = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.saw_cancel: bool | None = None
        self.returned = threading.Event()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        self.calls += 1
        self.entered.set()
        try:
            self.go.wait(WAIT)
            if self.fail_first and self.calls == 1:
                raise OSError("first attempt fails")
            if self.progress:
                task.update_progress(0.5)
            self.saw_cancel = task.wait_cancelled(self.cap)
            return "cooperated"
        finally:
            self.returned.set()


class Waiter(threading.Thread):
    """``manager.wait(task_id)`` on a thread of its own; ``result`` or ``error``."""

    def __init__(self, manager: TaskManager, task_id: str) -> None:
        super().__init__(name=f"waiter-{task_id[:8]}", daemon=True)
        self.manager = manager
        self.task_id = task_id
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.manager.wait(self.task_id, timeout=WAIT)
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> dict[str, Any]:
        self.join(WAIT)
        assert not self.is_alive(), f"wait({self.task_id}) still blocked"
        assert self.error is None, f"wait({self.task_id}) raised {self.error!r}"
        assert self.result is not None
        return self.result


def start_waiters(manager: TaskManager, task_ids: list[str]) -> list[Waiter]:
    """Waiters on ``task_ids``, returned once each is blocked in the registry."""
    waiters = [Waiter(manager, task_id) for task_id in task_ids]
    for waiter in waiters:
        waiter.start()
    for task_id in task_ids:
        assert wait_until(lambda t=task_id: watched(manager, t), timeout=WAIT)
    return waiters


def restarts(manager: TaskManager) -> dict[str, Any]:
    return dict(manager.get_stats()["restarts"])


def wait_restarts(manager: TaskManager, part: str, count: int) -> None:
    """Until ``part`` has been restarted ``count`` times (read without asking an actor,
    so it works while the manager is stopping)."""
    assert wait_until(
        lambda: manager.runtime._healing.snapshot()[part] >= count,
        timeout=WAIT,
    ), f"the {part} was not restarted {count} times: {restarts(manager)}"


def status(manager: TaskManager, task_id: str) -> dict[str, Any]:
    found = manager.get_task_status(task_id)
    assert found is not None, task_id
    return found


def assert_interrupted_by_restart(result: dict[str, Any]) -> None:
    assert result["status"] == "failed", result
    assert result["error"]["code"] == "INTERRUPTED", result["error"]
    assert result["error"]["details"]["cause"] == "registry_restarted", result["error"]


def assert_quiet(manager: TaskManager) -> None:
    """Nothing runs, stops or waits any more in the supervisor."""

    def quiet() -> bool:
        stats = manager.get_stats()
        return bool(stats["running"] == stats["stopping"] == stats["queue_size"] == 0)

    assert wait_until(quiet, timeout=WAIT), manager.get_stats()


def assert_counts(manager: TaskManager, expected: dict[str, int]) -> None:
    """status_counts and lifetime_stats agree with ``expected`` (by status) and with the
    listed tasks."""
    stats = manager.get_stats()
    counts = {k: v for k, v in stats["status_counts"].items() if v}
    assert counts == {k: v for k, v in expected.items() if v}
    total = sum(expected.values())
    assert stats["total_tasks"] == total
    listed: dict[str, int] = {}
    for task in manager.list_tasks():
        listed[task["status"]] = listed.get(task["status"], 0) + 1
    assert listed == counts
    lifetime = stats["lifetime_stats"]
    assert lifetime["total_created"] == total
    assert lifetime["total_completed"] == expected.get("completed", 0)
    assert lifetime["total_failed"] == expected.get("failed", 0)
    assert lifetime["total_cancelled"] == expected.get("cancelled", 0)


def new_manager(
    make_manager: MakeManager, store: str, tmp_path: Path, **kwargs: Any
) -> TaskManager:
    if store == "durable":
        kwargs["store"] = tmp_path / "t.db"
    return make_manager(**kwargs)


@pytest.fixture
def gates(make_manager: MakeManager) -> Iterator[list[Gate]]:
    """Gates released at the end of the test, before its managers shut down (this
    fixture depends on make_manager, so it is torn down first)."""
    made: list[Gate] = []
    yield made
    for gate in made:
        gate.release()


@pytest.fixture
def cooperatives(make_manager: MakeManager) -> Iterator[list[Cooperative]]:
    made: list[Cooperative] = []
    yield made
    for op in made:
        op.go.set()


# -- one task per failing message kind ----------------------------------------------------

# A failing status query ("status") restarts nothing: see
# test_a_failing_query_raises_and_restarts_nothing below.
KINDS = ["create", "start", "progress", "retry", "finish", "now"]
FAILED_MESSAGE = {
    "create": "Register",
    "start": "MarkRunning",
    "progress": "ProgressReady",
    "retry": "RetryScheduled",
    "finish": "Finish",
    "now": "InjectFault",
}


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_registry_failure_ends_only_the_task_it_was_about(
    make_manager: MakeManager,
    tmp_path: Path,
    gates: list[Gate],
    cooperatives: list[Cooperative],
    captured_lifecycle: LifecycleCapture,
    kind: str,
    store: str,
) -> None:
    """The registry fails on one message of ``kind``: that task (if the message was about
    one) ends INTERRUPTED/registry_restarted and nothing keeps running for it; waiters
    blocked across the restart get their answers; every other task completes; the counts
    add up; the restart is counted and logged."""
    manager = new_manager(make_manager, store, tmp_path, num_workers=3)
    # Bystanders: two completed before the restart, two running across it (with callers
    # blocked in wait), two created after it.
    before = [manager.create_task(quick, {"n": i}) for i in range(2)]
    for task_id in before:
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    running_gates = [Gate(result=f"gate-{i}") for i in range(2)]
    gates.extend(running_gates)
    running = [manager.create_task(gate) for gate in running_gates]
    for gate in running_gates:
        gate.wait_entered()
    waiters = start_waiters(manager, running)
    bystanders = before + running
    target: str | None = None
    op = Cooperative(progress=kind == "progress", fail_first=kind == "retry")
    cooperatives.append(op)

    if kind == "create":
        manager.faults.fail_registry(on="create")
        target = manager.create_task(op)
    elif kind == "start":
        filler = Gate(result="filler")  # holds the last slot, so the target waits
        gates.append(filler)
        bystanders.append(manager.create_task(filler))
        filler.wait_entered()
        target = manager.create_task(op)
        manager.faults.fail_registry(on="start", task_id=target)
        filler.release()  # the target starts now, and its MarkRunning fails
    elif kind in ("progress", "retry", "finish"):
        retry = RetryPolicy(max_attempts=3, backoff=60.0, jitter=False)
        if kind == "finish":
            finisher = Gate(result="lost")
            gates.append(finisher)
            target = manager.create_task(finisher)
            finisher.wait_entered()
            manager.faults.fail_registry(on="finish", task_id=target)
            finisher.release()
        else:
            target = manager.create_task(op, retry=retry if kind == "retry" else None)
            assert op.entered.wait(WAIT)
            manager.faults.fail_registry(on=kind, task_id=target)
            op.go.set()
    else:
        manager.faults.fail_registry(on="now")
    wait_restarts(manager, "registry", 1)

    if target is not None:
        ended = manager.wait(target, timeout=WAIT)
        assert_interrupted_by_restart(ended)
        assert ended["error"]["details"]["was_running"] is (kind not in ("create", "start"))
        assert status(manager, target)["status"] == "failed"  # it stays so
        captured_lifecycle.wait_for("task.lost_to_registry_failure", task_id=target)
        # The message that failed was not handled again.
        if kind in ("create", "start"):
            assert (ended["attempt"], ended["started_at"]) == (0, None)
        elif kind == "progress":
            assert (ended["attempt"], ended["progress"]) == (1, 0.0)
        elif kind == "retry":
            assert ended["attempt"] == 1
            assert "attempts" not in ended["error"]["details"]  # no retry was recorded
        else:
            assert "result" not in ended  # the operation's "lost" never reached it
    # Nothing keeps running for the casualty: it never ran, or it saw the cancel.
    op.go.set()
    if kind == "retry":
        assert op.returned.wait(WAIT)
        assert op.calls == 1  # its first attempt failed, and its retry was dropped
    elif op.calls:
        assert op.returned.wait(WAIT)
        assert op.saw_cancel is True
    # The bystanders: the blocked waiters get their answers once the gates open.
    for gate in running_gates:
        gate.release()
    for i, waiter in enumerate(waiters):
        result = waiter.outcome()
        assert result["status"] == "completed"
        assert result["result"] == f"gate-{i}"
    after = [manager.create_task(quick, {"n": 10 + i}) for i in range(2)]
    for i, task_id in enumerate(after):
        assert manager.wait(task_id, timeout=WAIT)["result"] == {"n": 10 + i}
    for task_id in bystanders:
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    assert_quiet(manager)
    completed = len(bystanders) + len(after)
    assert_counts(manager, {"completed": completed, "failed": 0 if target is None else 1})
    counted = restarts(manager)
    assert counted["registry"] == 1
    assert counted["timers"] == 0
    assert counted["total"] == 1
    assert counted["gave_up"] is None
    logged = captured_lifecycle.named("actor.restarted")
    assert len(logged) == 1
    assert logged[0]["actor"] == "registry"
    assert logged[0]["restarts"] == 1
    assert logged[0]["failed_message"] == FAILED_MESSAGE[kind]
    assert logged[0]["task_id"] == target
    assert "InjectedFaultError" in logged[0]["error"]
    if target is None:
        assert not captured_lifecycle.named("task.lost_to_registry_failure")


@pytest.mark.parametrize("store", STORES)
def test_a_failing_query_raises_and_restarts_nothing(
    make_manager: MakeManager, tmp_path: Path, store: str
) -> None:
    """Only the query that met the failure gets QueryFailedError, with the error given;
    a query changes nothing, so the registry is not restarted and nothing is counted."""
    manager = new_manager(make_manager, store, tmp_path)
    task_id = manager.create_task(quick, {"n": 1})
    manager.wait(task_id, timeout=WAIT)
    error = KeyError("registry bug")
    manager.faults.fail_registry(error, on="status")
    with pytest.raises(QueryFailedError, match="registry") as raised:
        manager.get_task_result(task_id)
    assert raised.value.error is error
    assert raised.value.request == "GetSnapshot"
    assert manager.get_task_result(task_id) == {"n": 1}
    assert manager.get_task_status(task_id) is not None
    assert restarts(manager)["registry"] == 0
    assert restarts(manager)["gave_up"] is None


# -- dependencies and groups across a restart ---------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> str:
        self.seen.append(dict(task.dependency_results))
        return "dependent-ran"


@pytest.mark.parametrize("store", STORES)
def test_a_dependent_waiting_across_a_restart_runs_when_its_dependency_completes(
    make_manager: MakeManager, tmp_path: Path, gates: list[Gate], store: str
) -> None:
    manager = new_manager(make_manager, store, tmp_path)
    gate = Gate(result="upstream")
    gates.append(gate)
    upstream = manager.create_task(gate)
    recorder = Recorder()
    dependent = manager.create_task(recorder, depends_on=[upstream])
    chained = manager.create_task(recorder, depends_on=[dependent])
    gate.wait_entered()
    manager.faults.fail_registry(on="now")
    wait_restarts(manager, "registry", 1)
    assert status(manager, dependent)["status"] == "pending"
    gate.release()
    assert manager.wait(dependent, timeout=WAIT)["result"] == "dependent-ran"
    assert manager.wait(chained, timeout=WAIT)["status"] == "completed"
    assert recorder.seen == [{upstream: "upstream"}, {dependent: "dependent-ran"}]
    assert_counts(manager, {"completed": 3})


@pytest.mark.parametrize("store", STORES)
def test_a_dependent_of_the_casualty_is_cancelled_with_dependency_error(
    make_manager: MakeManager, tmp_path: Path, gates: list[Gate], store: str
) -> None:
    manager = new_manager(make_manager, store, tmp_path)
    gate = Gate()
    gates.append(gate)
    upstream = manager.create_task(gate)
    recorder = Recorder()
    dependent = manager.create_task(recorder, depends_on=[upstream])
    chained = manager.create_task(recorder, depends_on=[dependent])
    gate.wait_entered()
    waiters = start_waiters(manager, [dependent, chained])
    manager.faults.fail_registry(on="finish", task_id=upstream)
    gate.release()
    assert_interrupted_by_restart(manager.wait(upstream, timeout=WAIT))
    for waiter, failed_on in zip(waiters, [upstream, dependent], strict=True):
        result = waiter.outcome()
        assert result["status"] == "cancelled"
        assert result["error"]["code"] == "DEPENDENCY_ERROR"
        assert result["error"]["details"]["dependency_id"] == failed_on
    assert recorder.seen == []
    assert_quiet(manager)
    assert_counts(manager, {"failed": 1, "cancelled": 2})


@pytest.mark.parametrize("store", STORES)
def test_a_dependent_created_after_the_restart_on_a_task_from_before_it(
    make_manager: MakeManager, tmp_path: Path, gates: list[Gate], store: str
) -> None:
    """The rebuilt registry still knows the tasks it had, to depend on."""
    manager = new_manager(make_manager, store, tmp_path)
    done = manager.create_task(quick, {"n": 7})
    manager.wait(done, timeout=WAIT)
    gate = Gate(result="late")
    gates.append(gate)
    running = manager.create_task(gate)
    gate.wait_entered()
    manager.faults.fail_registry(on="now")
    wait_restarts(manager, "registry", 1)
    recorder = Recorder()
    dependent = manager.create_task(recorder, depends_on=[done, running])
    assert status(manager, dependent)["status"] == "pending"
    gate.release()
    assert manager.wait(dependent, timeout=WAIT)["status"] == "completed"
    assert recorder.seen == [{done: {"n": 7}, running: "late"}]


@pytest.mark.parametrize("store", STORES)
def test_groups_survive_a_restart(
    make_manager: MakeManager, tmp_path: Path, gates: list[Gate], store: str
) -> None:
    manager = new_manager(make_manager, store, tmp_path, num_workers=3)
    members = [Gate(result=i) for i in range(3)]
    gates.extend(members)
    group_id = manager.create_group([{"operation": gate} for gate in members])
    for gate in members:
        gate.wait_entered()
    before = manager.get_group_status(group_id)
    assert before is not None
    assert before["state"] == "running"
    manager.faults.fail_registry(on="now")
    wait_restarts(manager, "registry", 1)
    after = manager.get_group_status(group_id)
    assert after is not None
    assert after["tasks"] == before["tasks"]
    assert after["counts"]["running"] == 3
    # One member is the casualty of a second restart; the others complete.
    casualty = before["tasks"][0]
    manager.faults.fail_registry(on="finish", task_id=casualty)
    for gate in members:
        gate.release()
    for task_id in before["tasks"]:
        manager.wait(task_id, timeout=WAIT)
    final = manager.get_group_status(group_id)
    assert final is not None
    assert final["state"] == "failed"
    assert final["counts"]["completed"] == 2
    assert final["counts"]["failed"] == 1
    assert_interrupted_by_restart(status(manager, casualty))
    # A new group after the restarts works too.
    second = manager.create_group([{"operation": quick, "params": {"n": 1}}])
    second_status = manager.get_group_status(second)
    assert second_status is not None
    manager.wait(second_status["tasks"][0], timeout=WAIT)
    final_second = manager.get_group_status(second)
    assert final_second is not None
    assert final_second["state"] == "completed"


# -- counts and durable records -------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
def test_lifetime_counts_of_removed_tasks_survive_a_restart(
    make_manager: MakeManager, tmp_path: Path, store: str
) -> None:
    """Retention removed some records; the restart rebuilds the counters from the records
    left and keeps those of the removed ones."""
    manager = new_manager(make_manager, store, tmp_path)
    ok = [manager.create_task(quick, {"n": i}) for i in range(3)]
    for task_id in ok:
        manager.wait(task_id, timeout=WAIT)
    manager.faults.raise_error(ValueError("bad"), operation=f"{__name__}.quick", times=1)
    failing = manager.create_task(quick, {"n": 99})
    manager.wait(failing, timeout=WAIT)
    assert status(manager, failing)["status"] == "failed"
    assert manager.cleanup_old_tasks(0) == 4
    kept = manager.create_task(quick, {"n": 5})
    manager.wait(kept, timeout=WAIT)
    before = manager.get_stats()["lifetime_stats"]
    assert before["total_created"] == 5
    manager.faults.fail_registry(on="now")
    wait_restarts(manager, "registry", 1)
    stats = manager.get_stats()
    assert stats["lifetime_stats"] == before
    assert stats["total_tasks"] == 1
    assert stats["status_counts"]["completed"] == 1


def snapshot_records(manager: TaskManager) -> dict[str, dict[str, Any]]:
    return {task["task_id"]: task for task in manager.list_tasks()}


def test_a_durable_manager_reopened_after_restarts_has_the_same_records(
    make_manager: MakeManager, tmp_path: Path, gates: list[Gate]
) -> None:
    """Restarts of every kind, then a clean shutdown: reopening the file reads exactly
    the records and counters the manager showed before it shut down."""
    path = tmp_path / "t.db"
    manager = make_manager(store=path, num_workers=1, max_restarts=10)
    ids = [manager.create_task(quick, {"n": i}) for i in range(3)]
    manager.faults.fail_registry(on="create")
    ids.append(manager.create_task(quick, {"n": 3}))  # the casualty of a Register
    wait_restarts(manager, "registry", 1)
    filler = Gate(result="filler")
    gates.append(filler)
    ids.append(manager.create_task(filler))
    filler.wait_entered()
    never_started = Cooperative()
    ids.append(manager.create_task(never_started))
    manager.faults.fail_registry(on="start", task_id=ids[-1])
    filler.release()
    wait_restarts(manager, "registry", 2)
    finisher = Gate(result="lost")
    gates.append(finisher)
    ids.append(manager.create_task(finisher))
    finisher.wait_entered()
    manager.faults.fail_registry(on="finish", task_id=ids[-1])
    finisher.release()
    wait_restarts(manager, "registry", 3)
    progress_op = Cooperative(progress=True)
    ids.append(manager.create_task(progress_op))
    assert progress_op.entered.wait(WAIT)
    manager.faults.fail_registry(on="progress", task_id=ids[-1])
    progress_op.go.set()
    wait_restarts(manager, "registry", 4)
    manager.faults.fail_registry(on="status")
    with pytest.raises(QueryFailedError):  # a query: no restart
        manager.get_task_status(ids[0])
    manager.faults.fail_registry(on="now")
    wait_restarts(manager, "registry", 5)
    ids.extend(manager.create_task(quick, {"n": i}) for i in range(10, 13))
    for task_id in ids:
        manager.wait(task_id, timeout=WAIT)
    assert restarts(manager)["registry"] == 5
    assert_quiet(manager)
    records = snapshot_records(manager)
    stats = manager.get_stats()
    assert set(records) == set(ids)
    manager.shutdown(wait=True)

    reopened = make_manager(store=path)
    assert snapshot_records(reopened) == records
    reopened_stats = reopened.get_stats()
    assert reopened_stats["lifetime_stats"] == stats["lifetime_stats"]
    assert reopened_stats["status_counts"] == stats["status_counts"]
    interrupted = [r for r in records.values() if r.get("error", {}).get("code") == "INTERRUPTED"]
    assert len(interrupted) == 4
    for record in interrupted:
        assert record["error"]["details"]["cause"] == "registry_restarted"


# -- the timer service ----------------------------------------------------------------------


def test_timeouts_armed_before_a_timer_failure_still_fire(
    make_manager: MakeManager,
    clock: ManualClock,
    gates: list[Gate],
    captured_lifecycle: LifecycleCapture,
) -> None:
    manager = make_manager(clock=clock, num_workers=2)
    gate = Gate(partial={"frames": 3})
    gates.append(gate)
    timed = manager.create_task(gate, timeout=5.0)
    delayed = manager.create_task(quick, {"n": 1}, delay=8.0)
    gate.wait_entered()
    settle(manager)
    armed = manager.get_stats()["timers"]["armed"]
    manager.faults.fail_timers()
    wait_restarts(manager, "timers", 1)
    assert manager.get_stats()["timers"]["armed"] == armed  # none lost
    assert status(manager, timed)["status"] == "running"
    clock.advance(5.0)
    failed = manager.wait(timed, timeout=WAIT)
    assert failed["error"]["code"] == "TIMEOUT"
    assert failed["error"]["details"]["partial_result"] == {"frames": 3}
    assert status(manager, delayed)["status"] == "pending"
    clock.advance(3.0)
    assert manager.wait(delayed, timeout=WAIT)["result"] == {"n": 1}
    counted = restarts(manager)
    assert counted["timers"] == 1
    assert counted["registry"] == 0
    assert counted["total"] == 1
    logged = captured_lifecycle.named("actor.restarted")
    assert [(e["actor"], e["restarts"]) for e in logged] == [("timers", 1)]
    assert "InjectedFaultError" in logged[0]["error"]


def test_a_timer_failure_while_timers_are_due_fires_them_after_the_restart(
    make_manager: MakeManager, clock: ManualClock, gates: list[Gate]
) -> None:
    """The tick that fails is the one that would have fired due timers: they fire on
    the next one."""
    manager = make_manager(clock=clock, num_workers=3)
    made = [Gate() for _ in range(3)]
    gates.extend(made)
    ids = [manager.create_task(gate, timeout=1.0 + i) for i, gate in enumerate(made)]
    for gate in made:
        gate.wait_entered()
    settle(manager)
    manager.faults.fail_timers(RuntimeError("tick bug"))
    clock.advance(10.0)  # every deadline is due; the failing tick is this one or before
    for task_id in ids:
        assert manager.wait(task_id, timeout=WAIT)["error"]["code"] == "TIMEOUT"
    assert restarts(manager)["timers"] == 1


# -- restart intensity ---------------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
def test_more_than_max_restarts_in_the_window_stops_the_manager_cleanly(
    make_manager: MakeManager,
    tmp_path: Path,
    gates: list[Gate],
    captured_lifecycle: LifecycleCapture,
    store: str,
) -> None:
    manager = new_manager(make_manager, store, tmp_path, num_workers=1, max_restarts=3)
    for count in range(1, 4):
        manager.faults.fail_registry(on="now")
        wait_restarts(manager, "registry", count)
        task_id = manager.create_task(quick, {"n": count})  # it still works
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    assert restarts(manager)["gave_up"] is None
    gate = Gate(result="drained")
    gates.append(gate)
    running = manager.create_task(gate)
    gate.wait_entered()
    pending = manager.create_task(quick, {"n": 9})
    pending_waiter = start_waiters(manager, [pending])[0]

    manager.faults.fail_timers()  # the 4th restart within the window: timers count too
    wait_restarts(manager, "timers", 1)
    assert wait_until(lambda: manager.runtime.stopped_reason is not None, timeout=WAIT)
    reason = manager.runtime.stopped_reason
    assert reason is not None
    assert "max_restarts=3" in reason
    assert "timers" in reason
    with pytest.raises(RuntimeClosedError) as refused:
        manager.create_task(quick)
    assert reason in str(refused.value)
    with pytest.raises(RuntimeClosedError):
        manager.create_task(quick)  # and every later call
    cancelled = pending_waiter.outcome()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["details"]["reason"] == "shutdown"
    gate.release()
    assert manager.wait(running, timeout=WAIT)["result"] == "drained"
    manager.shutdown(wait=True, timeout=WAIT)
    counted = restarts(manager)
    assert counted == {
        "registry": 3,
        "timers": 1,
        "total": 4,
        "max_restarts": 3,
        "window": 60.0,
        "gave_up": reason,
    }
    giving_up = captured_lifecycle.named("manager.giving_up")
    assert len(giving_up) == 1
    assert giving_up[0]["reason"] == reason
    assert len(captured_lifecycle.named("actor.restarted")) == 4


def test_max_restarts_zero_gives_up_at_the_first_failure(
    make_manager: MakeManager, captured_lifecycle: LifecycleCapture
) -> None:
    manager = make_manager(max_restarts=0)
    done = manager.create_task(quick, {"n": 1})
    manager.wait(done, timeout=WAIT)
    manager.faults.fail_registry(on="now")
    assert wait_until(lambda: manager.runtime.stopped_reason is not None, timeout=WAIT)
    reason = manager.runtime.stopped_reason
    assert reason is not None
    assert "max_restarts=0" in reason
    with pytest.raises(RuntimeClosedError, match="stopped itself"):
        manager.create_task(quick)
    manager.shutdown(wait=True, timeout=WAIT)
    assert manager.get_task_result(done) == {"n": 1}  # read from the final records
    assert restarts(manager)["gave_up"] == reason
    captured_lifecycle.wait_for("manager.giving_up")


def test_restarts_spaced_beyond_the_window_never_give_up(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(clock=clock, max_restarts=1, restart_window=10.0)
    for count in range(1, 6):
        manager.faults.fail_registry(on="now")
        wait_restarts(manager, "registry", count)
        clock.advance(10.5)
        settle(manager)
    task_id = manager.create_task(quick, {"n": 1})
    assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    counted = restarts(manager)
    assert counted["registry"] == 5
    assert counted["gave_up"] is None
    assert manager.runtime.stopped_reason is None
    # Two within the window do give up.
    manager.faults.fail_registry(on="now")
    wait_restarts(manager, "registry", 6)
    clock.advance(9.0)
    manager.faults.fail_registry(on="now")
    assert wait_until(lambda: manager.runtime.stopped_reason is not None, timeout=WAIT)
    with pytest.raises(RuntimeClosedError):
        manager.create_task(quick)


# -- regressions: bugs found while writing these tests, now fixed ------------------------------


def test_a_create_with_dependencies_is_a_create_for_fail_registry(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    done = manager.create_task(quick, {"n": 1})
    manager.wait(done, timeout=WAIT)
    manager.faults.fail_registry(on="create")
    try:
        dependent: str | None = manager.create_task(quick, {"n": 2}, depends_on=[done])
    except ActorRestartedError:
        dependent = None  # the create met the failure: acceptable, as long as it was this one
    later = manager.create_task(quick, {"n": 3})
    assert manager.wait(later, timeout=WAIT)["status"] == "completed"  # not the casualty
    assert restarts(manager)["registry"] == 1
    if dependent is not None:
        assert_interrupted_by_restart(manager.wait(dependent, timeout=WAIT))


def test_a_failed_dependent_create_gives_its_queue_place_back(make_manager: MakeManager) -> None:
    """A registry failure on a create with dependencies ends that task (its id tells
    why) and gives its place in the queue back. Armed through the runtime's own hook,
    which fail_registry(on="create") also uses."""
    from actors._core.messages import RegisterDependent

    manager = make_manager(max_pending=1)
    done = manager.create_task(quick, {"n": 1})
    manager.wait(done, timeout=WAIT)
    manager.runtime._fail_registry(InjectedFaultError("registry bug"), RegisterDependent, None)
    casualty = manager.create_task(quick, {"n": 2}, depends_on=[done])
    ended = manager.wait(casualty, timeout=WAIT)  # its id says what happened to it
    assert ended["error"]["code"] == "INTERRUPTED"
    assert ended["error"]["details"]["cause"] == "registry_restarted"
    wait_restarts(manager, "registry", 1)
    assert_quiet(manager)  # nothing is pending...
    delayed = manager.create_task(quick, {"n": 3}, delay=3600)  # ...so one task fits
    assert status(manager, delayed)["status"] == "pending"


def test_two_registry_faults_armed_together_both_fire(
    make_manager: MakeManager, gates: list[Gate]
) -> None:
    manager = make_manager(num_workers=2, max_restarts=10)
    made = [Gate(), Gate()]
    gates.extend(made)
    first, second = (manager.create_task(gate) for gate in made)
    for gate in made:
        gate.wait_entered()
    manager.faults.fail_registry(on="finish", task_id=first)
    manager.faults.fail_registry(on="finish", task_id=second)
    for gate in made:
        gate.release()
    results = [manager.wait(task_id, timeout=WAIT) for task_id in (first, second)]
    assert restarts(manager)["registry"] == 2
    for result in results:
        assert_interrupted_by_restart(result)


class _SubmitAfterRestart:
    """Stands in for the runtime's supervisor ref: tells each Submit only once the
    registry has restarted, which widens a real (narrow) window of create_task: between
    its tell of Register to the registry and its tell of Submit to the supervisor."""

    def __init__(self, manager: TaskManager) -> None:
        self._manager = manager
        self._ref = manager.runtime._supervisor

    def tell(self, message: Any) -> None:
        from actors._core.messages import Submit

        if isinstance(message, Submit):
            wait_restarts(self._manager, "registry", 1)
        self._ref.tell(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ref, name)


def test_the_casualty_of_a_failed_create_is_never_left_running(
    make_manager: MakeManager, cooperatives: list[Cooperative]
) -> None:
    manager = make_manager()
    runtime = manager.runtime
    real = runtime._supervisor
    runtime._supervisor = _SubmitAfterRestart(manager)  # type: ignore[assignment]
    try:
        op = Cooperative(cap=2.0)  # it would otherwise hold its slot for WAIT seconds
        cooperatives.append(op)
        op.go.set()
        manager.faults.fail_registry(on="create")
        target = manager.create_task(op)
        assert_interrupted_by_restart(manager.wait(target, timeout=WAIT))
    finally:
        runtime._supervisor = real
    # It never runs, or it is told to stop (it waits for that up to 2 s).
    if wait_until(lambda: op.calls > 0, timeout=0.5):
        assert op.returned.wait(WAIT)
        assert op.saw_cancel is True


# -- the supervisor: not restarted, but it fails cleanly -----------------------------------


def test_a_supervisor_failure_stops_the_manager_and_answers_every_waiter(
    make_manager: MakeManager, cooperatives: list[Cooperative]
) -> None:
    """The supervisor is not restarted (its state has no other copy): the manager stops
    itself with the reason, the running operations are asked to stop, every unfinished
    task ends INTERRUPTED (cause supervisor_failed), every wait() gets that answer, and
    later calls are refused with the reason."""
    op = Cooperative()
    cooperatives.append(op)
    manager = make_manager(num_workers=2, operations={"op": op})
    with LifecycleCapture() as log:
        running = [manager.create_task("op") for _ in range(2)]
        pending = [manager.create_task("op") for _ in range(3)]
        assert wait_until(lambda: manager.get_stats()["running"] == 2, timeout=WAIT)
        waiters = start_waiters(manager, running + pending)
        op.go.set()  # the running ones now wait for their cancel

        manager.faults.fail_supervisor()

        for waiter in waiters:
            error = waiter.outcome()["error"]
            assert error["code"] == "INTERRUPTED"
            assert error["details"]["cause"] == "supervisor_failed"
            assert error["details"]["was_running"] is (waiter.task_id in running)
        assert log.wait_for("manager.giving_up", timeout=WAIT)["actor"] == "supervisor"
    reason = manager.runtime.stopped_reason
    assert reason is not None
    assert "supervisor" in reason
    assert "InjectedFaultError" in reason
    with pytest.raises(RuntimeClosedError, match="stopped itself because the supervisor"):
        manager.create_task("op")
    manager.shutdown(wait=True, timeout=WAIT)
    assert op.saw_cancel is True  # the running operations were told to stop
    assert manager.get_stats()["lifetime_stats"]["total_failed"] == 5


def test_a_supervisor_failure_with_a_durable_store_leaves_the_work_to_the_next_start(
    make_manager: MakeManager, cooperatives: list[Cooperative], tmp_path: Path
) -> None:
    """With a durable store unfinished tasks are not failed: the next manager that opens
    the file recovers them (pending named tasks run; the running one is interrupted)."""
    op = Cooperative()
    cooperatives.append(op)
    path = tmp_path / "t.db"
    manager = make_manager(num_workers=1, store=path, operations={"op": op, "quick": quick})
    running = manager.create_task("op")
    pending = [manager.create_task("quick", {"n": n}) for n in range(3)]
    assert op.entered.wait(WAIT)
    manager.faults.fail_supervisor()
    assert wait_until(lambda: manager.runtime.stopped_reason is not None, timeout=WAIT)
    op.go.set()
    manager.shutdown(wait=True, timeout=WAIT)

    reopened = make_manager(store=path, operations={"op": op, "quick": quick})
    for n, task_id in enumerate(pending):
        assert reopened.wait(task_id, timeout=WAIT)["result"] == {"n": n}
    interrupted = reopened.wait(running, timeout=WAIT)["error"]
    assert interrupted["code"] == "INTERRUPTED"
    assert interrupted["details"]["cause"] == "process_stopped"
