"""Refusals of a RayBackend before it connects: bad addresses, limits a Ray node cannot
enforce. They build RayBackend(address="local") (which looks for
``ray``), so they run in the PID-namespaced suite with the cluster tests (moved here
from tests/test_ray_cluster.py); none of them starts a cluster."""

from __future__ import annotations

import pytest

from storycore_tasks import RayBackend, TaskManager


def _noop(params: object, task: object) -> str:
    return "ok"


def test_limits_and_bad_addresses_are_refused_before_connecting() -> None:
    """Limits cannot be enforced on a reused Ray worker; no implicit join."""
    for address in ("auto", "", None):
        with pytest.raises(ValueError, match="never done"):
            RayBackend(address=address)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start_local applies to address='local' only"):
        RayBackend(address="10.0.0.1:6379", start_local={"num_cpus": 1})
    manager = TaskManager(ray=RayBackend(address="local"))
    try:
        with pytest.raises(ValueError, match="not enforced on a Ray node"):
            manager.create_task(_noop, isolation="ray", cpu_time_limit=1)
        assert manager.get_stats()["ray"]["connected"] is False  # nothing started
    finally:
        manager.shutdown(wait=True)
