"""The host's resource slots at work (``TaskManager(resources=...)``), with real
threads, real child processes and a real SQLite file: tasks that ask for one of one GPU
never overlap (seen from inside the operations, over many rounds); resources are freed
only when the attempt has really ended (a stuck thread keeps them, a killed child frees
them once it is gone); the queue's order holds across sizes and a large request is not
starved; a child sees the GPUs it holds in CUDA_VISIBLE_DEVICES; a status shows what a
task holds and what it waits for; waits come back after a restart."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from actors import TaskContext
from actors.testing import ManualClock, wait_until
from storycore_tasks import TaskManager
from tests import resource_ops

WAIT = 20.0
MakeManager = Callable[..., TaskManager]


class Exclusive:
    """An operation that counts how many of its runs hold the resource at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.runs = 0

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> int:
        with self._lock:
            self.inside += 1
            self.runs += 1
            self.most = max(self.most, self.inside)
        try:
            threading.Event().wait(0.002)  # a window for an overlap to show
        finally:
            with self._lock:
                self.inside -= 1
        return int(params["n"])


class Gates:
    """Operations that record their start (by params["name"]) and block until let go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.entered: dict[str, threading.Event] = {}
        self.go: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._all_go = False  # once release_all: every gate, later ones too, is open

    def gate(self, name: str) -> tuple[threading.Event, threading.Event]:
        with self._lock:
            if name not in self.go:
                self.go[name] = threading.Event()
                if self._all_go:
                    self.go[name].set()
            return self.entered.setdefault(name, threading.Event()), self.go[name]

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> str:
        name = params["name"]
        entered, go = self.gate(name)
        with self._lock:
            self.started.append(name)
        entered.set()
        if not go.wait(WAIT):
            raise TimeoutError(f"{name} was never let go")
        return name

    def release_all(self) -> None:
        with self._lock:
            self._all_go = True
            gates = list(self.go.values())
        for go in gates:
            go.set()


@pytest.fixture
def gates() -> Any:
    made = Gates()
    yield made
    made.release_all()  # a failed test must not leave an operation blocked


def _status(manager: TaskManager, task_id: str) -> dict[str, Any]:
    manager.runtime.sync()  # the supervisor has handled what was sent before
    status = manager.get_task_status(task_id)
    assert status is not None
    return status


# -- never over-committed ----------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_one_gpu_is_never_held_twice_in_threads(make_manager: MakeManager, round_: int) -> None:
    """Sixty tasks asking for the one GPU on four worker threads, mixed with tasks that
    ask for nothing: the GPU's holders never overlap, every task completes, and the
    tasks without resources were not held back by the line."""
    op = Exclusive()
    free = Exclusive()
    manager = make_manager(num_workers=4, resources={"gpu": 1})
    held = [manager.create_task(op, {"n": n}, resources={"gpu": 1}) for n in range(60)]
    others = [manager.create_task(free, {"n": n}) for n in range(20)]
    for n, task_id in enumerate(held):
        assert manager.wait(task_id, timeout=WAIT)["result"] == n
    for task_id in others:
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    assert (op.runs, op.most) == (60, 1)
    stats = manager.get_stats()["resources"]
    assert (stats["in_use"], stats["holders"], stats["waiting"]) == ({"gpu": 0.0}, 0, 0)


def test_one_gpu_is_never_held_twice_in_child_processes(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    """Twelve process tasks asking for the one GPU on two workers: each holds a marker
    file it creates exclusively, so an overlap would be seen inside the child; none is,
    and each saw the device it held (index 0) in CUDA_VISIBLE_DEVICES."""
    manager = make_manager(num_workers=2, isolation="process", resources={"gpu": 1})
    marker = str(tmp_path / "held")
    tasks = [
        manager.create_task(resource_ops.exclusive, {"marker": marker}, resources={"gpu": 1})
        for _ in range(12)
    ]
    results = [manager.wait(task_id, timeout=WAIT)["result"] for task_id in tasks]
    assert results == [{"overlap": False, "devices": "0"}] * 12


def test_a_child_sees_the_gpus_it_holds_and_the_host_is_untouched(
    make_manager: MakeManager,
) -> None:
    """A process task holding two GPUs sees "0,1", one holding one sees "0", a task
    holding none sees what the host has; the host's own environment is unchanged."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    manager = make_manager(num_workers=1, isolation="process", resources={"gpu": 2})
    both = manager.create_task(resource_ops.devices, resources={"gpu": 2})
    one = manager.create_task(resource_ops.devices, resources={"gpu": 1})
    none = manager.create_task(resource_ops.devices)
    assert manager.wait(both, timeout=WAIT)["result"] == "0,1"
    assert manager.wait(one, timeout=WAIT)["result"] == "0"
    assert manager.wait(none, timeout=WAIT)["result"] == before
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before


@pytest.mark.parametrize("isolation", ["thread", "process", "async"])
def test_the_operation_reads_the_gpus_it_holds_in_task_gpu_indices(
    make_manager: MakeManager, gates: Gates, isolation: str
) -> None:
    """``task.gpu_indices`` is a tuple naming the devices the task holds of the ledger,
    in every host isolation: (1,) while another task holds GPU 0, (0, 1) once both are
    free, () without a request; a child also sees them in CUDA_VISIBLE_DEVICES."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    manager = make_manager(num_workers=2, resources={"gpu": 2})
    holder = manager.create_task(gates, {"name": "holder"}, resources={"gpu": 1})
    assert gates.gate("holder")[0].wait(WAIT)
    assert _status(manager, holder)["gpu_indices"] == [0]
    op: Any = resource_ops.async_gpu_view if isolation == "async" else resource_ops.gpu_view
    options = {} if isolation == "async" else {"isolation": isolation}
    beside = manager.wait(manager.create_task(op, resources={"gpu": 1}, **options), timeout=WAIT)
    gates.gate("holder")[1].set()
    assert manager.wait(holder, timeout=WAIT)["status"] == "completed"
    both = manager.wait(manager.create_task(op, resources={"gpu": 2}, **options), timeout=WAIT)
    none = manager.wait(manager.create_task(op, **options), timeout=WAIT)
    in_child = isolation == "process"
    assert [beside["result"], both["result"], none["result"]] == [
        {"indices": [1], "type": "tuple", "is_context": True,
         "devices": "1" if in_child else before},
        {"indices": [0, 1], "type": "tuple", "is_context": True,
         "devices": "0,1" if in_child else before},
        {"indices": [], "type": "tuple", "is_context": True, "devices": before},
    ]  # fmt: skip


# -- freed when the attempt has really ended ----------------------------------------------


def test_a_child_that_dies_frees_its_gpu(make_manager: MakeManager) -> None:
    """A task whose child exits at once (os._exit) fails WORKER_CRASHED, and the task
    waiting for its GPU then runs in a new child, with the same device."""
    manager = make_manager(num_workers=2, isolation="process", resources={"gpu": 1})
    dead = manager.create_task(resource_ops.die, resources={"gpu": 1})
    after = manager.create_task(resource_ops.devices, resources={"gpu": 1})
    assert manager.wait(dead, timeout=WAIT)["error"]["code"] == "WORKER_CRASHED"
    assert manager.wait(after, timeout=WAIT)["result"] == "0"
    assert manager.get_stats()["resources"]["in_use"] == {"gpu": 0.0}


def test_a_killed_child_frees_its_gpu_only_once_it_is_gone(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    """A process task ignoring SIGTERM holds the GPU; the next one waits for it (its
    status says so). Cancelled, the first is killed (SIGKILL, after stop_grace); the
    waiting task then runs and finds the first child's process gone."""
    manager = make_manager(num_workers=2, isolation="process", resources={"gpu": 1}, stop_grace=0.2)
    started = tmp_path / "started"
    stuck = manager.create_task(
        resource_ops.unstoppable, {"started": str(started)}, resources={"gpu": 1}
    )
    assert wait_until(started.exists, timeout=WAIT)
    waiting = manager.create_task(
        resource_ops.pid_gone, {"started": str(started)}, resources={"gpu": 1}
    )
    status = _status(manager, waiting)
    assert (status["status"], status["waiting_for"]) == ("pending", {"gpu": 1.0})
    held = _status(manager, stuck)
    assert (held["resources_held"], held["gpu_indices"]) == ({"gpu": 1.0}, [0])
    assert manager.cancel_task(stuck)
    assert manager.wait(waiting, timeout=WAIT)["result"] == {"gone": True, "devices": "0"}
    assert manager.wait(stuck, timeout=WAIT)["status"] == "cancelled"


def test_a_stuck_thread_keeps_its_resources_until_it_leaves(
    make_manager: MakeManager, gates: Gates
) -> None:
    """On a manual clock (the stop ladder does not move), a cancelled thread task that
    does not return reads cancelled but still holds the GPU, and the task waiting for it
    stays pending; once the operation returns, the waiting task runs."""
    manager = make_manager(num_workers=2, resources={"gpu": 1}, clock=ManualClock())
    stuck = manager.create_task(gates, {"name": "stuck"}, resources={"gpu": 1})
    assert gates.gate("stuck")[0].wait(WAIT)
    waiting = manager.create_task(gates, {"name": "next"}, resources={"gpu": 1})
    assert manager.cancel_task(stuck)
    ended = _status(manager, stuck)
    assert (ended["status"], ended["resources_held"]) == ("cancelled", {"gpu": 1.0})
    assert _status(manager, waiting)["waiting_for"] == {"gpu": 1.0}
    assert manager.get_stats()["stopping"] == 1
    gates.gate("stuck")[1].set()  # the operation leaves its thread
    assert gates.gate("next")[0].wait(WAIT)
    running = _status(manager, waiting)
    assert (running["status"], running["resources_held"], running["waiting_for"]) == (
        "running",
        {"gpu": 1.0},
        None,
    )
    assert _status(manager, stuck)["resources_held"] is None
    gates.gate("next")[1].set()
    assert manager.wait(waiting, timeout=WAIT)["status"] == "completed"


# -- one status path: the registry publishes what a task holds and waits for ---------------


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_a_status_read_as_the_operation_starts_shows_what_it_holds(
    make_manager: MakeManager, tmp_path: Path, durable: bool
) -> None:
    """Over forty rounds, a status read made the moment the operation has begun (no
    sync) shows the GPU it holds and its index, and its snapshot (the registry's
    published state, the one path of a status read) carries them too; once the task
    has ended, nothing is held."""
    store = tmp_path / "tasks.db" if durable else None
    manager = make_manager(num_workers=1, resources={"gpu": 2}, store=store)
    began = threading.Event()
    go = threading.Event()

    def op(params: Mapping[str, Any], task: TaskContext) -> list[int]:
        began.set()
        if not go.wait(WAIT):
            raise TimeoutError("never let go")
        return list(task.gpu_indices)

    for _ in range(40):
        began.clear()
        go.clear()
        task_id = manager.create_task(op, resources={"gpu": 1})
        assert began.wait(WAIT)
        status = manager.get_task_status(task_id)
        assert status is not None
        assert (status["status"], status["resources_held"], status["gpu_indices"]) == (
            "running",
            {"gpu": 1.0},
            [0],
        )
        snapshot = manager.runtime.snapshot(task_id)
        assert snapshot is not None
        assert (snapshot.resources_held, snapshot.gpu_indices, snapshot.waiting_for) == (
            {"gpu": 1.0},
            (0,),
            None,
        )
        go.set()
        done = manager.wait(task_id, timeout=WAIT)
        assert (done["result"], done["resources_held"], "gpu_indices" in done) == ([0], None, False)


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_a_waiting_task_shows_its_request_then_what_it_holds(
    make_manager: MakeManager, gates: Gates, tmp_path: Path, durable: bool
) -> None:
    """Once the supervisor has put a task in the line, its published snapshot has its
    request in ``waiting_for`` (and nothing held); when it starts, the snapshot read as
    its operation begins holds the GPU and waits for nothing."""
    store = tmp_path / "tasks.db" if durable else None
    manager = make_manager(
        num_workers=2, resources={"gpu": 1}, store=store, operations={"op": gates}
    )
    holder = manager.create_task("op", {"name": "holder"}, resources={"gpu": 1})
    assert gates.gate("holder")[0].wait(WAIT)
    waiter = manager.create_task("op", {"name": "waiter"}, resources={"gpu": 1})
    manager.runtime.sync()  # the supervisor has put it in the line, the registry knows
    snapshot = manager.runtime.snapshot(waiter)
    assert snapshot is not None
    assert (snapshot.status.value, snapshot.waiting_for, snapshot.resources_held) == (
        "pending",
        {"gpu": 1.0},
        None,
    )
    gates.gate("holder")[1].set()
    assert gates.gate("waiter")[0].wait(WAIT)
    status = manager.get_task_status(waiter)
    assert status is not None
    assert (status["status"], status["resources_held"], status["waiting_for"]) == (
        "running",
        {"gpu": 1.0},
        None,
    )
    assert manager.wait(holder, timeout=WAIT)["resources_held"] is None
    gates.gate("waiter")[1].set()
    assert manager.wait(waiter, timeout=WAIT)["status"] == "completed"


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
def test_what_tasks_hold_and_wait_for_survives_a_registry_restart(
    make_manager: MakeManager, gates: Gates, tmp_path: Path, durable: bool
) -> None:
    """The registry restarts (with a durable store it reloads its records from the
    file, which does not keep them): the holder still shows the GPU it holds, the
    waiting task its request."""
    store = tmp_path / "tasks.db" if durable else None
    manager = make_manager(
        num_workers=2, resources={"gpu": 1}, store=store, operations={"op": gates}
    )
    holder = manager.create_task("op", {"name": "holder"}, resources={"gpu": 1})
    assert gates.gate("holder")[0].wait(WAIT)
    waiter = manager.create_task("op", {"name": "waiter"}, resources={"gpu": 1})
    assert _status(manager, waiter)["waiting_for"] == {"gpu": 1.0}
    manager.faults.fail_registry(on="now")
    assert wait_until(lambda: manager.runtime._healing.snapshot()["registry"] >= 1, timeout=WAIT)
    held, waiting = _status(manager, holder), _status(manager, waiter)
    assert (held["status"], held["resources_held"], held["gpu_indices"]) == (
        "running",
        {"gpu": 1.0},
        [0],
    )
    assert (waiting["status"], waiting["waiting_for"]) == ("pending", {"gpu": 1.0})
    gates.release_all()
    for task_id in (holder, waiter):
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"


# -- the order of the line ----------------------------------------------------------------


@pytest.mark.parametrize("round_", range(5))
def test_priority_holds_across_sizes_and_a_large_request_is_not_starved(
    make_manager: MakeManager, gates: Gates, round_: int
) -> None:
    """Two GPUs, one held by A. L (normal, asks for two) waits; S1 and S2 (normal, one
    each, submitted after L) do not take the free GPU L needs, though it is free; H
    (high priority, one) is ahead of L and takes it at once. When A and H end, L runs,
    then S1 and S2: the starts are A, H, L, S1, S2."""
    manager = make_manager(num_workers=4, resources={"gpu": 2})
    tasks = {"A": manager.create_task(gates, {"name": "A"}, resources={"gpu": 1})}
    assert gates.gate("A")[0].wait(WAIT)
    tasks["L"] = manager.create_task(gates, {"name": "L"}, resources={"gpu": 2})
    for name in ("S1", "S2"):
        tasks[name] = manager.create_task(gates, {"name": name}, resources={"gpu": 1})
    for name in ("L", "S1", "S2"):
        assert _status(manager, tasks[name])["waiting_for"] == {"gpu": 1.0 * (name == "L") + 1.0}
    assert manager.get_stats()["resources"]["in_use"] == {"gpu": 1.0}  # one free, kept for L
    tasks["H"] = manager.create_task(gates, {"name": "H"}, resources={"gpu": 1}, priority="high")
    assert gates.gate("H")[0].wait(WAIT)
    assert _status(manager, tasks["L"])["status"] == "pending"
    for name in ("A", "H"):
        gates.gate(name)[1].set()
    assert gates.gate("L")[0].wait(WAIT)
    assert _status(manager, tasks["L"])["gpu_indices"] == [0, 1]
    assert _status(manager, tasks["S1"])["status"] == "pending"
    gates.gate("L")[1].set()
    for name in ("S1", "S2"):
        gates.gate(name)[1].set()
    for task_id in tasks.values():
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
    assert gates.started == ["A", "H", "L", "S1", "S2"]


def test_a_task_waiting_for_one_resource_does_not_hold_up_another(
    make_manager: MakeManager, gates: Gates
) -> None:
    """A task waiting for the GPU does not keep a later one that asks only for the
    render licence from starting, nor a task that asks for nothing."""
    manager = make_manager(num_workers=4, resources={"gpu": 1, "render_license": 1})
    first = manager.create_task(gates, {"name": "gpu-1"}, resources={"gpu": 1})
    assert gates.gate("gpu-1")[0].wait(WAIT)
    blocked = manager.create_task(gates, {"name": "gpu-2"}, resources={"gpu": 1})
    licence = manager.create_task(gates, {"name": "licence"}, resources={"render_license": 1})
    plain = manager.create_task(gates, {"name": "plain"})
    assert gates.gate("licence")[0].wait(WAIT)
    assert gates.gate("plain")[0].wait(WAIT)
    assert _status(manager, blocked)["waiting_for"] == {"gpu": 1.0}
    gates.release_all()
    for task_id in (first, blocked, licence, plain):
        assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"


def test_coroutine_tasks_wait_for_resources_too(make_manager: MakeManager) -> None:
    """Coroutine operations (their own slots) take from the same ledger: two asking for
    the one licence never overlap."""
    inside: list[int] = []
    most: list[int] = [0]

    async def render(params: Mapping[str, Any], task: Any) -> int:
        inside.append(1)
        most[0] = max(most[0], len(inside))
        await asyncio.sleep(0.002)
        inside.pop()
        return int(params["n"])

    manager = make_manager(num_workers=1, resources={"render_license": 1})
    tasks = [
        manager.create_task(render, {"n": n}, resources={"render_license": 1}) for n in range(20)
    ]
    assert [manager.wait(t, timeout=WAIT)["result"] for t in tasks] == list(range(20))
    assert most == [1]


# -- cancel, shutdown, recovery ---------------------------------------------------------------


def test_a_task_cancelled_while_waiting_for_resources_never_starts(
    make_manager: MakeManager, gates: Gates
) -> None:
    manager = make_manager(num_workers=2, resources={"gpu": 1})
    holder = manager.create_task(gates, {"name": "holder"}, resources={"gpu": 1})
    assert gates.gate("holder")[0].wait(WAIT)
    waiting = manager.create_task(gates, {"name": "never"}, resources={"gpu": 1})
    assert manager.cancel_task(waiting)
    status = _status(manager, waiting)
    assert (status["status"], status["waiting_for"]) == ("cancelled", None)
    assert manager.get_stats()["resources"]["waiting"] == 0
    gates.gate("holder")[1].set()
    assert manager.wait(holder, timeout=WAIT)["status"] == "completed"
    assert "never" not in gates.started


def test_shutdown_cancelling_pending_cancels_the_tasks_waiting_for_resources(
    gates: Gates,
) -> None:
    manager = TaskManager(num_workers=2, resources={"gpu": 1})
    holder = manager.create_task(gates, {"name": "holder"}, resources={"gpu": 1})
    assert gates.gate("holder")[0].wait(WAIT)
    waiting = manager.create_task(gates, {"name": "never"}, resources={"gpu": 1})
    manager.runtime.sync()
    gates.gate("holder")[1].set()
    manager.shutdown(wait=True, cancel_pending=True, timeout=WAIT)
    assert manager.get_task_status(waiting)["status"] == "cancelled"
    assert manager.get_task_status(holder)["status"] == "completed"
    assert "never" not in gates.started


def test_resource_waits_come_back_after_a_restart(
    make_manager: MakeManager, gates: Gates, tmp_path: Path
) -> None:
    """With a SQLite file: A holds the GPU, B and C wait for it. The supervisor fails
    (the manager stops, leaving the work to the next start). A reopened manager with the
    same resources runs B and C one at a time (each waits for the GPU in its turn), and
    their status shows their request; A, interrupted while it ran, is not run again."""
    path = tmp_path / "tasks.db"
    first = make_manager(num_workers=2, store=path, resources={"gpu": 1}, operations={"op": gates})
    a = first.create_task("op", {"name": "A"}, resources={"gpu": 1})
    assert gates.gate("A")[0].wait(WAIT)
    b = first.create_task("op", {"name": "B"}, resources={"gpu": 1})
    c = first.create_task("op", {"name": "C"}, resources={"gpu": 1})
    assert _status(first, c)["waiting_for"] == {"gpu": 1.0}
    first.faults.fail_supervisor()
    assert wait_until(lambda: first.runtime.stopped_reason is not None, timeout=WAIT)
    gates.gate("A")[1].set()
    first.shutdown(wait=True, timeout=WAIT)

    second = make_manager(num_workers=2, store=path, resources={"gpu": 1}, operations={"op": gates})
    assert gates.gate("B")[0].wait(WAIT)
    waiting = _status(second, c)
    assert (waiting["status"], waiting["waiting_for"]) == ("pending", {"gpu": 1.0})
    assert _status(second, b)["resources_held"] == {"gpu": 1.0}
    gates.gate("B")[1].set()
    gates.gate("C")[1].set()
    for task_id in (b, c):
        done = second.wait(task_id, timeout=WAIT)
        assert (done["status"], done["resources"]) == ("completed", {"gpu": 1.0})
    assert second.wait(a, timeout=WAIT)["error"]["code"] == "INTERRUPTED"
    assert gates.started == ["A", "B", "C"]


def test_a_recovered_task_asking_for_what_the_new_manager_lacks_fails_clearly(
    make_manager: MakeManager, gates: Gates, tmp_path: Path
) -> None:
    """A pending task recovered by a manager that does not declare its resource fails
    (never runs as if it held them), with the refusal create_task would have given."""
    path = tmp_path / "tasks.db"
    first = make_manager(num_workers=2, store=path, resources={"gpu": 1}, operations={"op": gates})
    first.create_task("op", {"name": "A"}, delay=3600, resources={"gpu": 1})
    holder = first.create_task("op", {"name": "H"}, resources={"gpu": 1})
    assert gates.gate("H")[0].wait(WAIT)
    waiting = first.create_task("op", {"name": "B"}, resources={"gpu": 1})
    assert _status(first, waiting)["waiting_for"] == {"gpu": 1.0}
    first.faults.fail_supervisor()
    assert wait_until(lambda: first.runtime.stopped_reason is not None, timeout=WAIT)
    gates.gate("H")[1].set()
    first.shutdown(wait=True, timeout=WAIT)

    second = make_manager(num_workers=1, store=path, operations={"op": gates})
    failed = second.wait(waiting, timeout=WAIT)["error"]
    assert (failed["code"], failed["details"]["cause"]) == ("INTERRUPTED", "resources_unavailable")
    assert "resources this task manager does not declare" in failed["message"]
    assert second.wait(holder, timeout=WAIT)["error"]["code"] == "INTERRUPTED"
    assert "B" not in gates.started
