"""A task's resources as Ray's options, and the refusal of what no node could run:
plain functions over the node totals Ray reports (no cluster needed; the cluster tests
check the same against real nodes)."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ResourcesUnavailableError
from actors._execution.ray_resources import ClusterNodes, node_needs, ray_task_options


def test_resources_map_to_rays_options_and_node_names() -> None:
    options = ray_task_options({"cpu": 2, "gpu": 0.5, "memory_mb": 512, "render": 1})
    assert options == {
        "num_cpus": 2,
        "num_gpus": 0.5,
        "memory": 512 * 1024 * 1024,
        "resources": {"render": 1},
    }
    assert ray_task_options(None) == {"num_cpus": 1}  # Ray's own default
    assert node_needs(options) == {
        "CPU": 2.0,
        "GPU": 0.5,
        "memory": float(512 * 1024 * 1024),
        "render": 1,
    }
    assert node_needs(ray_task_options({"cpu": 0})) == {}  # nothing asked, nothing needed


class Nodes:
    """What ``ray.nodes()`` reports (the only call ClusterNodes makes), counted."""

    def __init__(self, *totals: dict[str, float], dead: tuple[dict[str, float], ...] = ()):
        self.reads = 0
        self._nodes = [{"Alive": True, "Resources": t} for t in totals] + [
            {"Alive": False, "Resources": t} for t in dead
        ]

    def nodes(self) -> list[dict[str, Any]]:
        self.reads += 1
        return self._nodes


def test_a_task_some_node_can_run_is_accepted_from_the_cached_totals() -> None:
    ray = Nodes({"CPU": 2.0}, {"CPU": 1.0, "render": 1.0})
    nodes = ClusterNodes(ray)
    for _ in range(5):
        nodes.refuse_unless_feasible({"render": 1})
    assert ray.reads == 1  # read once, trusted for NODES_FRESH_SECONDS


def test_what_no_live_node_has_is_refused_naming_the_resource_and_the_most_any_has() -> None:
    ray = Nodes({"CPU": 2.0, "memory": 2.0 * 2**30}, dead=({"CPU": 64.0},))
    nodes = ClusterNodes(ray)
    with pytest.raises(
        ResourcesUnavailableError, match=r"'cpu' 8 asked, the most any node has is 2"
    ) as cpu:
        nodes.refuse_unless_feasible({"cpu": 8})
    assert cpu.value.resource == "cpu"
    assert ray.reads == 2  # read again before refusing
    with pytest.raises(ResourcesUnavailableError, match=r"'memory_mb' 4096 asked.* is 2048") as mem:
        nodes.refuse_unless_feasible({"memory_mb": 4096})
    assert mem.value.resource == "memory_mb"
    with pytest.raises(ResourcesUnavailableError, match="'tpu'") as tpu:
        nodes.refuse_unless_feasible({"tpu": 1})
    assert tpu.value.resource == "tpu"
