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


def test_a_bad_channel_address_is_refused_naming_the_form() -> None:
    """The host channel's address is "HOST:PORT" (port 0: any free one)."""
    for address in ("10.0.0.2", ":7000", "host:port", "10.0.0.2:70000"):
        with pytest.raises(ValueError, match="channel_address must be 'HOST:PORT'"):
            RayBackend(address="local", channel_address=address)
    with pytest.raises(TypeError, match="channel_address must be a 'host:port' string"):
        RayBackend(address="local", channel_address=7000)  # type: ignore[arg-type]
    RayBackend(address="local", channel_address="127.0.0.1:0")  # accepted, not connected
    RayBackend(address="local", channel_address="[::1]:7000")
