"""isolation="ray" on a real three-node cluster: the same semantics as a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from actors import ResourcesUnavailableError, RetryPolicy
from actors.testing import wait_until
from storycore_tasks import RayBackend, TaskManager
from tests.ray_cluster import ops
from tests.ray_cluster.conftest import NODE_ARGS, RayCluster

MakeManager = Callable[..., TaskManager]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _slots_free(manager: TaskManager) -> bool:
    ray_stats = manager.get_stats()["ray"]
    return ray_stats["running"] == 0 and ray_stats["stopping"] == 0


def test_runs_on_a_node_with_placement_and_coalesced_progress(
    ray_manager: MakeManager, ray_cluster: RayCluster
) -> None:
    """running shows the node and the worker; a million updates cost a handful of items."""
    manager = ray_manager()
    task_id = manager.create_task(ops.many_updates, {"count": 1_000_000}, isolation="ray")
    status = manager.wait(task_id, timeout=60)
    assert status["status"] == "completed", status
    placement = status["placement"]
    assert placement["node_id"] in {
        ray_cluster.head_id, ray_cluster.render_id, ray_cluster.plain_id
    }  # fmt: skip
    assert placement["worker_pid"] == status["result"]["pid"] != os.getpid()
    assert status["partial_result"] == {"done": 1_000_000}
    stats = manager.get_stats()["ray"]
    assert 1 <= stats["progress_items"] < 1_000, stats  # coalesced on the node
    assert status["result"]["per_call_seconds"] < 50e-6  # microseconds, not a message each
    backend = manager._runtime._ray  # the host channel keeps nothing of an ended attempt
    assert backend is not None
    assert backend.channel_size() == 0


@pytest.mark.parametrize("size", [1_000, 3 * 2**20])
def test_an_answer_of_any_size_comes_after_all_its_progress(
    ray_manager: MakeManager, size: int
) -> None:
    """A small answer travels on the host channel, one larger than
    ``CHANNEL_ANSWER_BYTES`` through Ray's object store: either way the result is whole
    and the last partial result is the operation's last, never an earlier one that
    arrived after the answer."""
    from actors._execution.ray_driver import CHANNEL_ANSWER_BYTES

    assert (size > CHANNEL_ANSWER_BYTES) == (size > 2**20)
    manager = ray_manager()
    params = {"steps": 2_000, "size": size}
    status = manager.wait(manager.create_task(ops.big_answer, params, isolation="ray"), 60)
    assert status["status"] == "completed", status.get("error")
    assert status["result"] == bytes(range(256)) * (size // 256)
    assert status["partial_result"] == {"step": 1_999}
    assert status["progress"] == 1.0
    failed = manager.wait(
        manager.create_task(ops.big_answer, {**params, "raise": True}, isolation="ray"), 60
    )
    assert failed["status"] == "failed", failed
    assert failed["error"]["details"]["exception_type"] == "ValueError"
    assert failed["partial_result"] == {"step": 1_999}


def test_placement_by_custom_resource(ray_manager: MakeManager, ray_cluster: RayCluster) -> None:
    """resources={"render": 1} runs on the render node, every time."""
    manager = ray_manager()
    ids = [
        manager.create_task(ops.where, {"value": i}, isolation="ray", resources={"render": 1})
        for i in range(3)
    ]
    nodes = {manager.wait(task_id, timeout=60)["placement"]["node_id"] for task_id in ids}
    assert nodes == {ray_cluster.render_id}


def test_infeasible_resources_are_refused_at_create_task(ray_manager: MakeManager) -> None:
    """A request no node could ever satisfy is refused, naming the resource."""
    manager = ray_manager()
    with pytest.raises(ResourcesUnavailableError, match="'tpu'") as tpu:
        manager.create_task(ops.where, {}, isolation="ray", resources={"tpu": 1})
    assert tpu.value.resource == "tpu"
    with pytest.raises(ResourcesUnavailableError, match="'cpu' 8") as cpu:
        manager.create_task(ops.where, {}, isolation="ray", resources={"cpu": 8})
    assert cpu.value.resource == "cpu"
    with pytest.raises(ValueError, match="not enforced on a Ray node"):
        manager.create_task(ops.where, {}, isolation="ray", memory_limit_mb=100)
    assert manager.get_stats()["total_tasks"] == 0


@pytest.mark.parametrize("operation", [ops.segfault, ops.exit_hard])
def test_a_dying_worker_is_worker_crashed_with_its_node(
    ray_manager: MakeManager, operation: Callable[..., None]
) -> None:
    """A segfault or os._exit on a node is contained: WORKER_CRASHED, node and Ray's error."""
    manager = ray_manager()
    status = manager.wait(manager.create_task(operation, {}, isolation="ray"), timeout=60)
    assert status["status"] == "failed"
    assert status["error"]["code"] == "WORKER_CRASHED"
    details = status["error"]["details"]
    assert details["node_id"] == status["placement"]["node_id"]
    assert "WorkerCrashedError" in details["ray_error"]
    assert status["attempt"] == 1  # Ray's own retries are off
    after = manager.wait(manager.create_task(ops.where, {"value": 2}, isolation="ray"), timeout=60)
    assert after["result"]["value"] == 2


def test_timeout_of_a_sleep_is_reported_at_the_deadline_and_the_worker_killed(
    ray_manager: MakeManager,
) -> None:
    """time.sleep(3600): TIMEOUT with the partial result while the ladder still runs;
    the forced cancel then ends the worker and frees the slot."""
    manager = ray_manager(stop_grace=0.3)
    # The deadline is armed at the node's "started", before its "go" round trip, the
    # import of the operation's module (a fresh worker: the last test killed one) and the
    # first progress item: 10 s leave room for them on a loaded machine (1 s failed 5 runs
    # of 5 and 5 s 2 of 4 with the machine's one core oversubscribed three times).
    task_id = manager.create_task(ops.sleep_forever, {}, isolation="ray", timeout=10.0)
    status = manager.wait(task_id, timeout=60)
    assert status["status"] == "failed"
    assert status["error"]["code"] == "TIMEOUT"
    assert status["error"]["details"]["partial_result"] == {"frames": 12}
    pid = status["placement"]["worker_pid"]
    assert wait_until(lambda: _slots_free(manager), timeout=30)
    assert wait_until(lambda: not _alive(pid), timeout=10)


def test_cancel_while_pending_in_rays_queue_never_starts(
    ray_manager: MakeManager, tmp_path: Path
) -> None:
    """A task waiting for the busy render node reads pending; cancelled, it never runs."""
    manager = ray_manager()
    busy = {"started": str(tmp_path / "busy"), "ended": str(tmp_path / "busy-end")}
    blocker = manager.create_task(ops.wait_for_cancel, busy, isolation="ray",
                                  resources={"render": 1})  # fmt: skip
    assert wait_until(lambda: Path(busy["started"]).exists(), timeout=30)
    queued = {"started": str(tmp_path / "queued"), "ended": str(tmp_path / "queued-end")}
    waiting = manager.create_task(ops.wait_for_cancel, queued, isolation="ray",
                                  resources={"render": 1})  # fmt: skip
    assert wait_until(lambda: manager.get_stats()["ray"]["in_flight"] == 2, timeout=10)
    status = manager.get_task_status(waiting)
    assert status["status"] == "pending"
    assert "placement" not in status
    assert manager.cancel_task(waiting)
    manager.cancel_task(blocker)
    assert manager.wait(waiting, timeout=30)["status"] == "cancelled"
    assert wait_until(lambda: _slots_free(manager), timeout=30)
    assert not Path(queued["started"]).exists()


def test_a_cancel_right_after_create_task_is_rays_soft_cancel_never_the_ladders_kill(
    ray_manager: MakeManager, tmp_path: Path
) -> None:
    """A cancel that comes while the attempt is being submitted to Ray (its Ray task
    not there yet) still reaches Ray: the task waiting in Ray's queue ends at once,
    not when the ladder's forced step (after 2 x stop_grace = 60 s here) kills it."""
    manager = ray_manager(stop_grace=30)
    busy = {"started": str(tmp_path / "busy"), "ended": str(tmp_path / "busy-end")}
    blocker = manager.create_task(ops.wait_for_cancel, busy, isolation="ray",
                                  resources={"render": 1})  # fmt: skip
    assert wait_until(lambda: Path(busy["started"]).exists(), timeout=30)
    for _ in range(30):
        waiting = manager.create_task(ops.where, isolation="ray", resources={"render": 1})
        assert manager.cancel_task(waiting)
        assert manager.wait(waiting, timeout=30)["status"] == "cancelled"
        assert wait_until(lambda: manager.get_stats()["ray"]["in_flight"] == 1, timeout=10)
    manager.cancel_task(blocker)
    assert wait_until(lambda: _slots_free(manager), timeout=60)


def test_cooperative_cancel_lets_the_operation_return(
    ray_manager: MakeManager, tmp_path: Path
) -> None:
    """The flag reaches the node; the operation returns on its own and its worker lives."""
    manager = ray_manager(stop_grace=30)
    files = {"started": str(tmp_path / "s"), "ended": str(tmp_path / "e")}
    task_id = manager.create_task(ops.wait_for_cancel, files, isolation="ray")
    assert wait_until(lambda: Path(files["started"]).exists(), timeout=30)
    assert manager.get_task_status(task_id)["status"] == "running"
    assert manager.cancel_task(task_id)
    assert wait_until(lambda: _slots_free(manager), timeout=30)
    assert Path(files["ended"]).read_text() == "cancel_requested"
    assert manager.get_task_status(task_id)["status"] == "cancelled"
    assert _alive(int(Path(files["started"]).read_text()))


def test_forced_cancel_interrupts_the_operations_thread(
    ray_manager: MakeManager, tmp_path: Path
) -> None:
    """An operation ignoring the flag gets TaskInterrupted after stop_grace; the worker lives."""
    manager = ray_manager(stop_grace=0.3)
    files = {"started": str(tmp_path / "s"), "ended": str(tmp_path / "e")}
    task_id = manager.create_task(ops.ignore_the_flag, files, isolation="ray")
    assert wait_until(lambda: Path(files["started"]).exists(), timeout=30)
    assert manager.cancel_task(task_id)
    assert wait_until(lambda: _slots_free(manager), timeout=30)
    assert Path(files["ended"]).read_text() == "interrupted"
    assert _alive(int(Path(files["started"]).read_text()))


def test_a_removed_node_is_worker_crashed_and_the_retry_runs_on_another(
    ray_manager: MakeManager, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """Node removed under the first attempt -> WORKER_CRASHED naming it; our retry runs
    on the other node that has the resource."""
    first = ray_cluster.cluster.add_node(**NODE_ARGS, resources={"flaky": 1})
    second = ray_cluster.cluster.add_node(**NODE_ARGS, resources={"flaky": 1})
    ray_cluster.cluster.wait_for_nodes()
    nodes = {first.node_id: first, second.node_id: second}
    try:
        manager = ray_manager()
        retry = RetryPolicy(max_attempts=2, backoff=0.0, jitter=False)
        marker = tmp_path / "first"
        task_id = manager.create_task(
            ops.crash_once_on_a_node, {"first": str(marker)},
            isolation="ray", resources={"flaky": 1}, retry=retry,
        )  # fmt: skip
        assert wait_until(marker.exists, timeout=90)
        doomed = manager.get_task_status(task_id)["placement"]["node_id"]
        ray_cluster.cluster.remove_node(nodes.pop(doomed), allow_graceful=False)
        status = manager.wait(task_id, timeout=60)
        assert status["status"] == "completed", status
        assert status["attempt"] == 2
        assert status["placement"]["node_id"] in nodes
        [crash] = status["attempt_errors"]
        assert crash["code"] == "WORKER_CRASHED"
        assert doomed in crash["message"]
    finally:
        for node in nodes.values():
            ray_cluster.cluster.remove_node(node)


def test_host_killed_with_a_durable_store_recovers_the_running_task_exactly(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """kill -9 of a host whose Ray task has started: its running was committed before
    the operation began (the node's "go"), so the next manager finds it INTERRUPTED
    while it ran; Ray ends the orphaned attempt with its owner."""
    db, marker, out = tmp_path / "tasks.db", tmp_path / "started", tmp_path / "host.out"
    with out.open("wb") as stdout:
        host = subprocess.Popen(
            [sys.executable, "-m", "tests.ray_cluster.durable_host",
             ray_cluster.address, str(db), str(marker)],
            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        # Well inside the test's own timeout: a host whose task ended unrun exits (saying
        # how), and one that is stuck is reported with its output, not as a hang.
        started = wait_until(lambda: marker.exists() or host.poll() is not None, timeout=75)
        assert started, out.read_text()
        assert marker.exists(), out.read_text()
    finally:
        host.kill()
        host.wait(timeout=30)
    task_id = out.read_text().split("TASK ", 1)[1].split()[0]
    worker = int(marker.read_text())
    assert wait_until(lambda: not _alive(worker), timeout=30)
    with TaskManager(store=db) as recovered:
        status = recovered.get_task_status(task_id)
    assert status["status"] == "failed"
    assert status["error"]["code"] == "INTERRUPTED"
    assert status["error"]["details"]["was_running"] is True


def test_the_node_imports_none_of_the_hosts_runtime(ray_manager: MakeManager) -> None:
    """A Ray worker runs the driver without pykka, structlog or the host's actors."""
    manager = ray_manager()
    status = manager.wait(manager.create_task(ops.modules, {}, isolation="ray"), timeout=60)
    assert status["status"] == "completed", status.get("error")
    loaded = set(status["result"])
    assert "actors._execution.ray_driver" in loaded
    heavy = {"pykka", "structlog", "actors._core", "actors._storage", "actors._execution.context"}
    assert not heavy & loaded


def test_a_host_channel_no_node_can_reach_reads_as_a_lost_cluster_never_as_a_cancel(
    ray_manager: MakeManager,
) -> None:
    """No verdict can reach the node (the host's channel is closed and its worker's
    connection broken): the attempt ends INTERRUPTED (ray_unavailable) without running
    its operation, not CANCELLED with a reason no one gave."""
    manager = ray_manager()
    first = manager.wait(manager.create_task(ops.where, {"value": 1}, isolation="ray"), timeout=60)
    assert first["status"] == "completed", first
    backend = manager._runtime._ray
    assert backend is not None
    backend._patience = 1.0  # how long a node retries a host it cannot reach
    backend.close_channel()
    status = manager.wait(manager.create_task(ops.where, {"value": 2}, isolation="ray"), timeout=90)
    assert status["status"] == "failed", status
    assert status["error"]["code"] == "INTERRUPTED"
    assert status["error"]["details"]["cause"] == "ray_unavailable"
    assert status["error"]["details"]["was_running"] is False
    assert "result" not in status or status["result"] is None


def test_a_named_channel_address_is_where_the_nodes_connect(ray_cluster: RayCluster) -> None:
    """channel_address="HOST:PORT" is where the host listens and what nodes are told."""
    import socket

    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    backend = RayBackend(address=ray_cluster.address, channel_address=f"127.0.0.1:{port}")
    with TaskManager(ray=backend) as manager:
        status = manager.wait(manager.create_task(ops.where, {"value": 3}, isolation="ray"), 60)
        assert status["status"] == "completed", status
        assert backend._channel is not None
        assert backend._channel.address == ("127.0.0.1", port)
        assert backend._channel_args is not None
        assert backend._channel_args[:2] == ("127.0.0.1", port)


def test_what_cannot_be_pickled_is_refused_at_create_task_every_time(
    ray_manager: MakeManager,
) -> None:
    """An operation or params Ray's cloudpickle cannot pickle is refused, naming the
    operation; an operation that pickled once is not checked again, its params are."""
    import threading

    held = threading.Lock()

    def holds_a_lock(params: object, task: object) -> bool:
        return held.locked()

    manager = ray_manager()
    for _ in range(2):  # a refusal is not remembered as a success
        with pytest.raises(TypeError, match=r"'.*holds_a_lock' or its params cannot be"):
            manager.create_task(holds_a_lock, isolation="ray")
    manager.create_task(ops.where, {"plain": 1}, isolation="ray")  # pickled, remembered
    with pytest.raises(TypeError, match="or its params cannot be pickled"):
        manager.create_task(ops.where, {"lock": held}, isolation="ray")
    assert manager.get_stats()["total_tasks"] == 1
