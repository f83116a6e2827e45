"""The dashboard shows where a Ray task runs: its node and its worker's pid, in a real
browser (Debian's Chromium through Playwright), while it runs and after it ended."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.service import ServiceConfig
from tests.dashboard_harness import WAIT_MS, chromium, save_screenshot
from tests.ray_cluster import ops
from tests.ray_cluster.conftest import RayCluster
from tests.service_harness import running_service

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
expect = sync_api.expect


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Chromium with its profile and cache under the test's own folder: the nested
    suite checks that nothing is written under $HOME."""
    with chromium(sync_api, tmp_path) as launched:
        yield launched


def test_the_detail_shows_the_node_and_the_worker_of_a_ray_task(
    ray_manager: Callable[..., TaskManager],
    ray_cluster: RayCluster,
    browser: Any,
    tmp_path: Path,
) -> None:
    """Placed by its custom resource on the render node: the detail names that node and
    the worker pid the operation itself saw, says it runs on a node of the cluster, and
    still shows both once the task was cancelled."""
    manager = ray_manager()
    started, ended = tmp_path / "started", tmp_path / "ended"
    params = {"started": str(started), "ended": str(ended)}
    errors: list[str] = []
    with running_service(manager, ServiceConfig(tokens=None)) as running:
        task_id = manager.create_task(
            ops.wait_for_cancel, params, isolation="ray", resources={"render": 1}
        )
        assert wait_until(started.exists, timeout=60)
        worker_pid = started.read_text(encoding="utf-8")
        status = manager.get_task_status(task_id)
        assert status is not None
        assert status["placement"]["node_id"] == ray_cluster.render_id
        page = browser.new_context().new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{running.url}/#/tasks/{task_id}")
        field = page.locator("#detail-body").locator
        expect(page.locator("#detail-state")).to_have_text("running", timeout=WAIT_MS)
        expect(field("[data-field=isolation]")).to_have_text("ray: a node of the Ray cluster")
        expect(field("[data-field=placement-node]")).to_have_text(ray_cluster.render_id)
        expect(field("[data-field=placement-pid]")).to_have_text(worker_pid)
        save_screenshot(page, tmp_path, "detail-ray-placement.png")

        assert manager.cancel_task(task_id)
        assert manager.wait(task_id, timeout=60)["status"] == "cancelled"
        expect(page.locator("#detail-state")).to_have_text("cancelled", timeout=WAIT_MS)
        expect(field("[data-field=placement-node]")).to_have_text(ray_cluster.render_id)
        expect(field("[data-field=placement-pid]")).to_have_text(worker_pid)
    assert errors == []
