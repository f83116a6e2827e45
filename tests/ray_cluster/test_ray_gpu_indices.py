"""``task.gpu_indices`` on a Ray node: the GPUs Ray gave the worker
(``ray.get_gpu_ids()``), empty for a task that asked for none."""

from __future__ import annotations

from collections.abc import Callable

from storycore_tasks import TaskManager
from tests.ray_cluster import gpu_ops
from tests.ray_cluster.conftest import NODE_ARGS, RayCluster

MakeManager = Callable[..., TaskManager]


def test_a_ray_task_reads_the_gpus_ray_gave_it(
    ray_manager: MakeManager, ray_cluster: RayCluster
) -> None:
    """On a node declaring two GPUs, a task asking for one reads a one-tuple of an index
    below 2, the one Ray put in CUDA_VISIBLE_DEVICES; a task asking for none reads ()."""
    node = ray_cluster.cluster.add_node(**NODE_ARGS, num_gpus=2)
    ray_cluster.cluster.wait_for_nodes()
    try:
        manager = ray_manager()
        holds = manager.create_task(gpu_ops.gpu_view, isolation="ray", resources={"gpu": 1})
        status = manager.wait(holds, timeout=90)
        assert status["status"] == "completed", status
        seen = status["result"]
        assert (seen["type"], len(seen["indices"])) == ("tuple", 1)
        assert seen["indices"][0] in (0, 1)
        assert seen["devices"] == str(seen["indices"][0])
        assert status["placement"]["node_id"] == node.node_id
        none = manager.wait(manager.create_task(gpu_ops.gpu_view, isolation="ray"), timeout=90)
        assert none["status"] == "completed", none
        assert (none["result"]["indices"], none["result"]["type"]) == ([], "tuple")
    finally:
        ray_cluster.cluster.remove_node(node)
