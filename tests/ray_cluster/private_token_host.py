"""A host for test_private_token: one Ray task on a private local cluster started with no
token in the environment; prints what the environment held during and after it."""

from __future__ import annotations

import json
import os
from typing import Any

from storycore_tasks import RayBackend, TaskManager


def one(params: Any, task: Any) -> str:
    return os.environ.get("RAY_AUTH_MODE", "")


if __name__ == "__main__":
    manager = TaskManager(ray=RayBackend(address="local", start_local={"num_cpus": 1}))
    task_id = manager.create_task(one, isolation="ray")
    status = manager.wait(task_id, timeout=120)
    during = {name: name in os.environ for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    manager.shutdown()
    after = {name: name in os.environ for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    print(json.dumps({"status": status["status"], "result": status["result"],
                      "during": during, "after": after}))  # fmt: skip
