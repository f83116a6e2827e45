"""A task's ``resources`` as Ray's task options, and whether some node of the cluster
could ever run it (Ray would keep a task no node can satisfy pending for ever, so it is
refused at ``create_task``, naming the resource)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from actors._errors import ResourcesUnavailableError

__all__ = ["ClusterNodes", "node_needs", "ray_task_options"]

NODES_FRESH_SECONDS = 2.0  # how long a read of the cluster's nodes is trusted


def ray_task_options(resources: Mapping[str, float] | None) -> dict[str, Any]:
    """A task's ``resources`` as Ray's task options: ``cpu`` -> ``num_cpus`` (default
    1, as Ray's), ``gpu`` -> ``num_gpus``, ``memory_mb`` -> ``memory`` in bytes (Ray
    only schedules by it, it does not enforce it), any other name a custom resource."""
    options: dict[str, Any] = {"num_cpus": 1}
    custom: dict[str, float] = {}
    for name, amount in (resources or {}).items():
        if name == "cpu":
            options["num_cpus"] = amount
        elif name == "gpu":
            options["num_gpus"] = amount
        elif name == "memory_mb":
            options["memory"] = int(amount * 1024 * 1024)
        else:
            custom[name] = amount
    if custom:
        options["resources"] = custom
    return options


def node_needs(options: Mapping[str, Any]) -> dict[str, float]:
    """Ray's options as the names ``ray.nodes()`` gives a node's totals."""
    needs = {"CPU": float(options.get("num_cpus", 0))}
    if options.get("num_gpus"):
        needs["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        needs["memory"] = float(options["memory"])
    needs.update(options.get("resources", {}))
    return {name: amount for name, amount in needs.items() if amount > 0}


class ClusterNodes:
    """The resources of the cluster's live nodes, read from Ray at most every
    ``NODES_FRESH_SECONDS`` (and once more before a refusal)."""

    def __init__(self, ray: Any) -> None:
        self._ray = ray
        self._nodes: tuple[float, list[dict[str, float]]] | None = None

    def refuse_unless_feasible(self, resources: Mapping[str, float] | None) -> None:
        """Raise :class:`ResourcesUnavailableError` unless some node has all of
        ``resources``."""
        needs = node_needs(ray_task_options(resources))
        for fresh in (False, True):
            nodes = self._totals(refresh=fresh)
            missing = _first_missing(needs, nodes)
            if missing is None:
                return
        assert missing is not None
        name, wanted = missing
        largest = max((node.get(name, 0.0) for node in nodes), default=0.0)
        shown = {"CPU": "cpu", "GPU": "gpu", "memory": "memory_mb"}.get(name, name)
        if name == "memory":
            wanted, largest = wanted / 2**20, largest / 2**20
        raise ResourcesUnavailableError(
            f"no node of the Ray cluster has resources {dict(needs)!r} (Ray would keep the "
            f"task pending for ever): {shown!r} {wanted:g} asked, the most any node has "
            f"is {largest:g}; ask for less, or add a node that has it",
            resource=shown,
        )

    def _totals(self, *, refresh: bool) -> list[dict[str, float]]:
        now = time.monotonic()
        cached = self._nodes
        if cached is not None and not refresh and now - cached[0] < NODES_FRESH_SECONDS:
            return cached[1]
        totals = [dict(node["Resources"]) for node in self._ray.nodes() if node.get("Alive")]
        self._nodes = (now, totals)
        return totals


def _first_missing(
    needs: Mapping[str, float], nodes: list[dict[str, float]]
) -> tuple[str, float] | None:
    """None if one node has all of ``needs``; else the first resource that stops it
    (on the node that comes closest)."""
    best: tuple[int, tuple[str, float]] | None = None
    for node in nodes:
        short = [(name, amount) for name, amount in needs.items() if node.get(name, 0.0) < amount]
        if not short:
            return None
        if best is None or len(short) < best[0]:
            best = (len(short), short[0])
    return best[1] if best is not None else next(iter(needs.items()), ("CPU", 0.0))
