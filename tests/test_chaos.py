"""Chaos: hundreds of tasks of every shape while faults are injected everywhere.

Each round creates a mix of quick tasks, tasks reporting progress, tasks with timeouts,
tasks the test cancels at random, tasks that fail and are retried, and tasks that depend
on earlier ones, while it injects random faults into the operations (raise, hang,
ignore_cancellation, delay, crash, exceed_limit) and into the manager's own registry
(``fail_registry`` with random ``on=`` kinds) and timer service (``fail_timers``), and a
second thread polls statuses. Whatever happens, at the end:

* every task id ``create_task`` returned is terminal (no caller hangs);
* ``status_counts`` and ``lifetime_stats`` add up to the number of tasks created;
* every ``failed``/``INTERRUPTED`` task has the cause ``registry_restarted``, and there
  are no more of them than registry restarts;
* every failure is explained: a timeout, an injected fault, the registry restart, or the
  flaky operation running out of attempts; every completed result is the right one.

A seeded ``random.Random`` drives each round (reproducible choices; the thread timing is
not). One round runs in process isolation with real crashes. A last round exceeds the
restart intensity in the middle of the load: every caller gets a result or a clear
error, none hangs, and nothing leaks (the autouse fixture checks threads and actors).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import (
    ActorRestartedError,
    QueryFailedError,
    RetryPolicy,
    RuntimeClosedError,
    TaskContext,
)
from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests import process_ops

FINAL_DEADLINE = 30.0
"""Seconds every task of a round together may take to be terminal once all are created."""
OP_CAP = 10.0
"""No cooperative operation waits longer than this, so a broken round cannot hang."""
REGISTRY_KINDS = ("now", "create", "start", "progress", "retry", "finish", "status")
TARGETABLE = ("start", "progress", "retry", "finish")
TERMINAL = ("completed", "failed", "cancelled")


# -- operations ------------------------------------------------------------------------------

_flaky_calls: Counter[str] = Counter()
_flaky_lock = threading.Lock()


def op_quick(params: Mapping[str, Any], task: TaskContext) -> Any:
    return {"i": params["i"]}


def op_progress(params: Mapping[str, Any], task: TaskContext) -> Any:
    steps = params["steps"]
    for step in range(1, steps + 1):
        task.update_progress(step / steps)
        task.partial_result = {"step": step}
        if task.wait_cancelled(params["pause"]):
            return None
    return {"steps": steps}


def op_timed(params: Mapping[str, Any], task: TaskContext) -> Any:
    """Works ``t`` seconds (cooperatively); its timeout may come first."""
    task.wait_cancelled(params["t"])
    return "timed-done"


def op_cancellable(params: Mapping[str, Any], task: TaskContext) -> Any:
    """Runs until the test cancels it."""
    task.wait_cancelled(OP_CAP)
    return "cancel-me"


def op_flaky(params: Mapping[str, Any], task: TaskContext) -> Any:
    """Fails its first ``fail`` runs (retried by its policy)."""
    with _flaky_lock:
        _flaky_calls[task.task_id] += 1
        calls = _flaky_calls[task.task_id]
    if calls <= params["fail"]:
        raise OSError(f"flaky run {calls}")
    return "flaky-done"


def op_dependent(params: Mapping[str, Any], task: TaskContext) -> Any:
    return sorted(task.dependency_results)


OPERATIONS = {
    "chaos.quick": op_quick,
    "chaos.progress": op_progress,
    "chaos.timed": op_timed,
    "chaos.cancellable": op_cancellable,
    "chaos.flaky": op_flaky,
    "chaos.dependent": op_dependent,
}
SHAPES = (
    ("chaos.quick", 30),
    ("chaos.progress", 20),
    ("chaos.timed", 15),
    ("chaos.cancellable", 8),
    ("chaos.flaky", 12),
    ("chaos.dependent", 15),
)
# The faults an operation can take without hanging the round: "hang" only where a
# timeout or the test's cancel ends it.
OPERATION_FAULTS = {
    "chaos.quick": ("raise", "ignore_cancellation", "delay", "crash", "exceed_limit"),
    "chaos.progress": ("raise", "ignore_cancellation", "delay", "crash", "exceed_limit"),
    "chaos.timed": ("raise", "hang", "ignore_cancellation", "delay", "crash", "exceed_limit"),
    "chaos.cancellable": ("raise", "hang", "ignore_cancellation", "delay", "crash"),
    "chaos.flaky": ("raise", "delay", "crash", "exceed_limit"),
    "chaos.dependent": ("raise", "delay", "exceed_limit"),
}
RETRY = RetryPolicy(max_attempts=3, backoff=0.002, max_backoff=0.01, jitter=True)


# -- one round -------------------------------------------------------------------------------


@dataclass
class Created:
    task_id: str
    operation: str
    params: dict[str, Any]
    timeout: float | None = None
    depends_on: list[str] = field(default_factory=list)


@dataclass
class Round:
    """What a round did, for its checks."""

    created: list[Created] = field(default_factory=list)
    registry_faults: Counter[str] = field(default_factory=Counter)
    timer_faults: int = 0
    operation_faults: int = 0
    restarted_asks: int = 0
    cancels_accepted: int = 0


def inject_operation_fault(manager: TaskManager, rng: random.Random) -> None:
    operation = rng.choice(list(OPERATION_FAULTS))
    kind = rng.choice(OPERATION_FAULTS[operation])
    times = rng.randint(1, 3)
    faults = manager.faults
    if kind == "raise":
        faults.raise_error(
            rng.choice([OSError, ValueError, KeyError]), operation=operation, times=times
        )
    elif kind == "hang":
        faults.hang(operation=operation, times=times)
    elif kind == "ignore_cancellation":
        faults.ignore_cancellation(rng.uniform(0.0, 0.05), operation=operation, times=times)
    elif kind == "delay":
        faults.delay(rng.uniform(0.0, 0.02), operation=operation, times=times)
    elif kind == "crash":
        faults.crash(operation=operation, times=times)
    else:
        faults.exceed_limit(rng.choice(["memory", "cpu"]), operation=operation, times=times)


def create_one(manager: TaskManager, rng: random.Random, index: int, done: Round) -> None:
    operations, weights = zip(*SHAPES, strict=True)
    operation = rng.choices(operations, weights)[0]
    if operation == "chaos.dependent" and not done.created:
        operation = "chaos.quick"
    params: dict[str, Any] = {"i": index}
    options: dict[str, Any] = {}
    if operation == "chaos.progress":
        params.update(steps=rng.randint(2, 6), pause=rng.uniform(0.0, 0.003))
    elif operation == "chaos.timed":
        params["t"] = rng.choice([0.0, 0.005, 0.2])
        options["timeout"] = rng.choice([0.02, 0.05, 1.0])
    elif operation == "chaos.flaky":
        params["fail"] = rng.randint(0, 2)
        options["retry"] = RETRY
    elif operation == "chaos.dependent":
        recent = done.created[-20:]
        options["depends_on"] = sorted(
            {rng.choice(recent).task_id for _ in range(rng.randint(1, 2))}
        )
    if operation != "chaos.flaky" and rng.random() < 0.1:
        options["retry"] = RETRY  # a failure injected into it is retried too
    if rng.random() < 0.1:
        options["priority"] = rng.choice(["low", "high", "critical"])
    task_id = manager.create_task(operation, params, **options)
    done.created.append(
        Created(task_id, operation, params, options.get("timeout"), options.get("depends_on", []))
    )


def chaos_round(
    seed: int,
    *,
    tasks: int,
    store: Path | None = None,
    fault_rate: float = 1.0,
) -> Round:
    """Run one round on a fresh manager, check every invariant, shut it down."""
    rng = random.Random(seed)
    done = Round()
    manager = TaskManager(
        num_workers=6,
        max_restarts=1000,
        stop_grace=0.05,
        store=store,
        operations=OPERATIONS,
    )
    poller_errors: list[BaseException] = []
    stop_polling = threading.Event()
    try:
        poller = threading.Thread(
            target=poll, args=(manager, done, random.Random(seed + 1), stop_polling, poller_errors)
        )
        poller.start()
        try:
            for index in range(tasks):
                create_one(manager, rng, index, done)
                act(manager, rng, done, fault_rate)
            for created in done.created:
                if created.operation == "chaos.cancellable":
                    done.cancels_accepted += manager.cancel_task(created.task_id)
        finally:
            stop_polling.set()
            poller.join(FINAL_DEADLINE)
        assert not poller.is_alive(), "the status poller hung"
        assert not poller_errors, poller_errors
        check_round(manager, done)
    finally:
        manager.shutdown(wait=True, cancel_pending=True, timeout=FINAL_DEADLINE)
    return done


def act(manager: TaskManager, rng: random.Random, done: Round, rate: float) -> None:
    """Between two creations: maybe a fault, a cancel or a status query."""
    roll = rng.random() / rate
    if roll < 0.06:
        inject_operation_fault(manager, rng)
        done.operation_faults += 1
    elif roll < 0.09:
        on = rng.choice(REGISTRY_KINDS)
        task_id = None
        if on in TARGETABLE and rng.random() < 0.5:
            task_id = rng.choice(done.created[-10:]).task_id
        manager.faults.fail_registry(on=on, task_id=task_id)
        done.registry_faults[on] += 1
    elif roll < 0.1:
        manager.faults.fail_timers()
        done.timer_faults += 1
    elif rng.random() < 0.05:
        done.cancels_accepted += manager.cancel_task(rng.choice(done.created).task_id)
    elif rng.random() < 0.05:
        try:
            manager.get_task_status(rng.choice(done.created).task_id)
        except (ActorRestartedError, QueryFailedError):
            done.restarted_asks += 1


def poll(
    manager: TaskManager,
    done: Round,
    rng: random.Random,
    stop: threading.Event,
    errors: list[BaseException],
) -> None:
    """Another caller, reading statuses and waiting briefly while the round runs."""
    try:
        while not stop.is_set():
            if not done.created:
                continue
            task_id = rng.choice(done.created).task_id
            try:
                if rng.random() < 0.5:
                    found = manager.get_task_status(task_id)
                    assert found is not None
                    assert found["task_id"] == task_id
                else:
                    manager.wait(task_id, timeout=0.001)
            except (ActorRestartedError, QueryFailedError):
                done.restarted_asks += 1
            except TimeoutError:
                pass
    except BaseException as exc:
        errors.append(exc)


def check_round(manager: TaskManager, done: Round) -> None:
    deadline = time.monotonic() + FINAL_DEADLINE
    final: dict[str, dict[str, Any]] = {}
    for created in done.created:
        remaining = max(deadline - time.monotonic(), 0.01)
        try:
            final[created.task_id] = manager.wait(created.task_id, timeout=remaining)
        except TimeoutError:
            pytest.fail(
                f"task {created} is not terminal: {manager.get_task_status(created.task_id)}"
            )
    assert len(final) == len(done.created)  # every id is distinct

    interrupted = 0
    for created in done.created:
        result = final[created.task_id]
        assert result["status"] in TERMINAL, result
        check_task(created, result, final)
        interrupted += is_interrupted(result)

    stats = manager.get_stats()
    restarts = stats["restarts"]
    assert restarts["gave_up"] is None
    assert interrupted <= restarts["registry"], (interrupted, restarts, done.registry_faults)
    assert restarts["registry"] <= sum(done.registry_faults.values())
    assert restarts["registry"] >= done.registry_faults["now"]  # each "now" fires at once
    assert restarts["timers"] <= done.timer_faults
    if done.timer_faults:
        assert wait_until(lambda: manager.get_stats()["restarts"]["timers"] >= 1, timeout=5.0)
    assert restarts["total"] == restarts["registry"] + restarts["timers"]

    total = len(done.created)
    by_status = Counter(result["status"] for result in final.values())
    counts = stats["status_counts"]
    assert counts == {"pending": 0, "running": 0, **{s: by_status[s] for s in TERMINAL}}
    assert sum(counts.values()) == stats["total_tasks"] == total
    lifetime = stats["lifetime_stats"]
    assert lifetime["total_created"] == total
    assert lifetime["total_completed"] == by_status["completed"]
    assert lifetime["total_failed"] == by_status["failed"]
    assert lifetime["total_cancelled"] == by_status["cancelled"]
    assert lifetime["total_timed_out"] == sum(
        1 for r in final.values() if r.get("error", {}).get("code") == "TIMEOUT"
    )
    # Nothing is left running for any task.
    assert wait_until(
        lambda: (s := manager.get_stats())["running"] == 0 and s["stopping"] == 0,
        timeout=FINAL_DEADLINE,
    ), manager.get_stats()


def is_interrupted(result: dict[str, Any]) -> bool:
    error = result.get("error")
    if result["status"] != "failed" or error is None or error["code"] != "INTERRUPTED":
        return False
    assert error["details"]["cause"] == "registry_restarted", error
    return True


def expected_result(created: Created) -> Any:
    operation = created.operation
    if operation == "chaos.quick":
        return {"i": created.params["i"]}
    if operation == "chaos.progress":
        return {"steps": created.params["steps"]}
    if operation == "chaos.dependent":
        return sorted(created.depends_on)
    return {
        "chaos.timed": "timed-done",
        "chaos.cancellable": "cancel-me",
        "chaos.flaky": "flaky-done",
    }[operation]


def check_task(created: Created, result: dict[str, Any], final: dict[str, dict[str, Any]]) -> None:
    """Each ending is explained by what the round did to the task."""
    injected = bool(result.get("injected_faults"))
    status = result["status"]
    if status == "completed":
        if injected:
            # An injected ignore_cancellation replaces the operation (returns None).
            assert result["result"] in (expected_result(created), None), result
        else:
            assert result["result"] == expected_result(created), result
        assert created.operation != "chaos.cancellable" or injected, result
        for dependency in created.depends_on:
            assert final[dependency]["status"] == "completed", (result, final[dependency])
        return
    error = result["error"]
    code = error["code"]
    if status == "cancelled":
        assert code in ("CANCELLED", "DEPENDENCY_ERROR"), error
        if code == "DEPENDENCY_ERROR":
            failed_dependency = final[error["details"]["dependency_id"]]
            assert failed_dependency["status"] in ("failed", "cancelled"), failed_dependency
            assert error["details"]["dependency_id"] in created.depends_on
        return
    if code == "INTERRUPTED":
        return  # checked by is_interrupted: the registry restarted on it
    if code == "TIMEOUT":
        assert created.timeout is not None, result
        return
    # Any other failure comes from an injected fault or the flaky operation's own errors.
    if (
        created.operation == "chaos.flaky"
        and code == "INTERNAL_ERROR"
        and error["details"]["exception_type"] == "OSError"
    ):
        return  # its own failure, on its last attempt
    assert injected, result
    assert "injected_fault" in error["details"], error


# -- the rounds ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505, 606])
def test_chaos_round_in_memory(seed: int) -> None:
    done = chaos_round(seed, tasks=300)
    assert len(done.created) == 300
    assert sum(done.registry_faults.values()) > 0


@pytest.mark.parametrize("seed", [707, 808])
def test_chaos_round_with_a_durable_store(seed: int, tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    done = chaos_round(seed, tasks=200, store=path)
    # Everything the round saw is what the file holds.
    reopened = TaskManager(store=path, operations=OPERATIONS)
    try:
        records = {task["task_id"]: task for task in reopened.list_tasks()}
        assert set(records) == {created.task_id for created in done.created}
        assert all(task["status"] in TERMINAL for task in records.values())
        stats = reopened.get_stats()
        assert stats["lifetime_stats"]["total_created"] == len(done.created)
    finally:
        reopened.shutdown(wait=True, timeout=FINAL_DEADLINE)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    tasks=st.integers(min_value=20, max_value=80),
    fault_rate=st.floats(min_value=0.5, max_value=3.0),
)
def test_chaos_property(seed: int, tasks: int, fault_rate: float) -> None:
    done = chaos_round(seed, tasks=tasks, fault_rate=fault_rate)
    assert len(done.created) == tasks


@pytest.fixture(scope="module")
def _resource_tracker_running() -> None:
    """multiprocessing's resource tracker starts with the first child of the process and
    lives as long as it: started before the leak check's snapshot, it is not a leak."""
    resource_tracker.ensure_running()


# The default crash(SIGKILL) fails in a child (see test_faults.py); other signals kill it.
CRASH_SIGNALS = (signal.SIGSEGV, signal.SIGTERM, signal.SIGABRT)


@pytest.mark.usefixtures("_resource_tracker_running")
def test_chaos_round_in_process_isolation() -> None:
    """Real children: some die by injected crashes, while the registry fails."""
    rng = random.Random(909)
    manager = TaskManager(num_workers=2, isolation="process", stop_grace=0.2, max_restarts=1000)
    created: list[str] = []
    registry_faults = 0
    echo = f"{process_ops.echo.__module__}.{process_ops.echo.__qualname__}"
    waits = f"{process_ops.report_then_wait.__module__}.{process_ops.report_then_wait.__qualname__}"
    try:
        for index in range(24):
            if index % 5 == 0:
                manager.faults.crash(
                    rng.choice(CRASH_SIGNALS),
                    operation=rng.choice([echo, echo, waits]),
                    times=rng.randint(1, 2),
                )
            if index % 8 == 3:
                manager.faults.fail_registry(on=rng.choice(REGISTRY_KINDS))
                registry_faults += 1
            if rng.random() < 0.7:
                created.append(manager.create_task(process_ops.echo, {"i": index}))
            else:
                created.append(manager.create_task(process_ops.report_then_wait, timeout=0.3))
        deadline = time.monotonic() + FINAL_DEADLINE
        final = [manager.wait(t, timeout=max(deadline - time.monotonic(), 0.01)) for t in created]
        codes = Counter(r.get("error", {}).get("code") for r in final)
        interrupted = sum(is_interrupted(r) for r in final)
        stats = manager.get_stats()
        assert interrupted <= stats["restarts"]["registry"] <= registry_faults
        assert codes["WORKER_CRASHED"] >= 1, codes  # a child really died
        for result in final:
            code = result.get("error", {}).get("code")
            assert code in (None, "WORKER_CRASHED", "TIMEOUT", "INTERRUPTED"), result
            if code == "WORKER_CRASHED":
                assert result["error"]["details"]["injected_fault"].startswith("crash"), result
                assert result["error"]["details"]["signal"] in CRASH_SIGNALS
            if code is None:
                assert result["result"]["echo"] == {"i": created.index(result["task_id"])}
        assert sum(stats["status_counts"].values()) == len(created)
        assert stats["lifetime_stats"]["total_created"] == len(created)
    finally:
        manager.shutdown(wait=True, cancel_pending=True, timeout=FINAL_DEADLINE)


def test_exceeding_the_restart_intensity_in_the_middle_of_the_load() -> None:
    """The registry keeps failing while four threads create, poll and wait: the manager
    gives up at the sixth restart. Every caller gets a result or a clear error."""
    rng = random.Random(1234)
    manager = TaskManager(num_workers=4, max_restarts=5, stop_grace=0.05, operations=OPERATIONS)
    outcomes: Counter[str] = Counter()
    unexpected: list[BaseException] = []
    lock = threading.Lock()
    created: list[str] = []
    closed_messages: list[str] = []
    started = threading.Barrier(4)

    def worker(seed: int) -> None:
        local = random.Random(seed)
        started.wait(FINAL_DEADLINE)
        for index in range(150):
            try:
                operation = local.choice(["chaos.quick", "chaos.progress", "chaos.timed"])
                params: dict[str, Any] = {"i": index, "steps": 3, "pause": 0.001, "t": 0.01}
                task_id = manager.create_task(operation, params, timeout=0.5)
                with lock:
                    created.append(task_id)
                    outcomes["created"] += 1
                if local.random() < 0.3:
                    manager.get_task_status(task_id)
            except RuntimeClosedError as exc:
                with lock:
                    outcomes["closed"] += 1
                    closed_messages.append(str(exc))
                return
            except (ActorRestartedError, QueryFailedError):
                with lock:
                    outcomes["restarted"] += 1
            except BaseException as exc:
                with lock:
                    unexpected.append(exc)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    try:
        for thread in threads:
            thread.start()
        started.wait(FINAL_DEADLINE)
        for _ in range(10):  # a fault every 20 or so tasks created
            manager.faults.fail_registry(on=rng.choice(["now", "status", "create", "finish"]))
            if manager.runtime.stopped_reason is not None:
                break
            count = len(created)
            wait_until(
                lambda n=count: (
                    len(created) >= n + 20
                    or manager.runtime.closed
                    or not any(thread.is_alive() for thread in threads)
                ),
                timeout=2.0,
            )
        for _ in range(6):  # whatever the load did, six more restarts at once
            manager.faults.fail_registry(on="now")
        assert wait_until(lambda: manager.runtime.stopped_reason is not None, timeout=10.0)
        for thread in threads:
            thread.join(FINAL_DEADLINE)
            assert not thread.is_alive(), "a caller hung"
        assert not unexpected, unexpected
        reason = manager.runtime.stopped_reason
        assert reason is not None
        assert "max_restarts=5" in reason
        assert all(reason in message for message in closed_messages), closed_messages
        with pytest.raises(RuntimeClosedError) as refused:
            manager.create_task("chaos.quick", {"i": -1})
        assert reason in str(refused.value)
        # Every task created before the end is answered: terminal, or a clear error.
        deadline = time.monotonic() + FINAL_DEADLINE
        for task_id in created:
            try:
                result = manager.wait(task_id, timeout=max(deadline - time.monotonic(), 0.01))
            except RuntimeClosedError:
                outcomes["wait_closed"] += 1
                continue
            assert result["status"] in TERMINAL
            if result["status"] == "failed" and result["error"]["code"] == "INTERRUPTED":
                assert result["error"]["details"]["cause"] == "registry_restarted"
    finally:
        manager.shutdown(wait=True, cancel_pending=True, timeout=FINAL_DEADLINE)
    stats = manager.get_stats()
    assert stats["restarts"]["gave_up"] == reason
    assert stats["restarts"]["registry"] >= 6
    assert outcomes["created"] == len(created) > 0
    assert stats["lifetime_stats"]["total_created"] == len(created)
    assert sum(stats["status_counts"].values()) == len(created)
    assert stats["status_counts"]["pending"] == stats["status_counts"]["running"] == 0
