"""A real Ray cluster on this machine for the whole nested session: a head and two
nodes of one CPU each (one has a ``render`` resource), 100 MB object stores, no
dashboard. Only collected inside the PID namespace tests/test_ray_cluster.py starts
(``STORYCORE_RAY_NESTED=1``): nothing Ray starts can outlive it, and the token and
``RAY_TMPDIR`` it set keep it apart from any other cluster of the machine."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from storycore_tasks import RayBackend, TaskManager

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

NODE_ARGS: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 100 << 20}


@dataclass
class RayCluster:
    cluster: Any
    address: str
    head_id: str
    render_id: str
    plain_id: str


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    assert os.environ.get("RAY_AUTH_TOKEN"), "run through tests/test_ray_cluster.py"
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**NODE_ARGS, "include_dashboard": False},
    )
    render = cluster.add_node(**NODE_ARGS, resources={"render": 1})
    plain = cluster.add_node(**NODE_ARGS)
    cluster.wait_for_nodes()
    # The host's driver connects once, here: the threads it starts belong to the
    # session, so every test's leak check still sees its own threads only.
    ray.init(address=cluster.address, log_to_driver=False)
    info = RayCluster(
        cluster, cluster.address, cluster.head_node.node_id, render.node_id, plain.node_id
    )
    _warm_up(info)
    yield info
    ray.shutdown()
    cluster.shutdown()


def _warm_up(info: RayCluster) -> None:
    """One task through a manager: Ray's lazily started driver threads start now."""
    from tests.ray_cluster import ops

    manager = TaskManager(ray=RayBackend(address=info.address), stop_grace=0.3)
    try:
        task_id = manager.create_task(ops.where, {"value": 1}, isolation="ray")
        status = manager.wait(task_id, timeout=60)
        assert status["status"] == "completed", status
    finally:
        manager.shutdown(wait=True, timeout=30)


@pytest.fixture
def ray_manager(ray_cluster: RayCluster) -> Iterator[Callable[..., TaskManager]]:
    """Managers on the session's cluster (each with a RayBackend of its own), shut
    down at the end of the test."""
    managers: list[TaskManager] = []

    def make(**kwargs: Any) -> TaskManager:
        kwargs.setdefault("stop_grace", 0.3)
        manager = TaskManager(ray=RayBackend(address=ray_cluster.address), **kwargs)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown(wait=True, cancel_pending=True, timeout=30)
