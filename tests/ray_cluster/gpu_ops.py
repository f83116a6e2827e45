"""The operation tests/ray_cluster/test_ray_gpu_indices.py runs on a node (the standard
library only: a node's worker must not import the host's runtime)."""

from __future__ import annotations

import os
from typing import Any


def gpu_view(params: dict[str, Any], task: Any) -> dict[str, Any]:
    """``task.gpu_indices`` (and its type) and the CUDA_VISIBLE_DEVICES Ray set."""
    return {
        "indices": list(task.gpu_indices),
        "type": type(task.gpu_indices).__name__,
        "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
