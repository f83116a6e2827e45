"""``storycore-tasks demo --ray`` and the B14 benchmark, each in a subprocess that starts
(and stops) a private local Ray cluster of its own (``address="local"``), with its own
``RAY_TMPDIR``: inside this suite's PID namespace, so nothing it starts can outlive it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_ray_env() -> Iterator[dict[str, str]]:
    """The suite's environment with a RAY_TMPDIR of its own (short, for AF_UNIX paths)."""
    ray_tmp = tempfile.mkdtemp(prefix="sct-sub-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    try:
        yield env
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _run(command: list[str], env: dict[str, str], out: Path, timeout: float) -> tuple[int, str]:
    with out.open("wb") as stream:  # a file, not a pipe: Ray's daemons would hold a pipe
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, timeout=timeout, check=False,
        )  # fmt: skip
    return done.returncode, out.read_text(errors="replace")


@pytest.mark.timeout(200)
def test_demo_ray_runs_the_six_tasks_on_a_private_local_cluster(
    own_ray_env: dict[str, str], tmp_path: Path
) -> None:
    """demo --ray: the same outcomes as the thread run (2 completed, 1 timeout, 2
    cancelled, the segfault contained on its node)."""
    code, text = _run(
        [sys.executable, "-m", "storycore_tasks", "demo", "--ray", "--memory", "--json"],
        own_ray_env, tmp_path / "demo.out", timeout=180,
    )  # fmt: skip
    assert code == 0, text[-3000:]
    finished = [
        json.loads(line)
        for line in text.splitlines()
        if line.startswith("{") and '"demo.finished"' in line
    ]
    assert len(finished) == 1, text[-3000:]
    tasks = {task["task"]: task for task in finished[0]["tasks"]}
    outcome = {name: (task["status"], task["error"]) for name, task in tasks.items()}
    assert outcome == {
        "render intro": ("completed", None),
        "narrate ch. 1": ("completed", None),
        "llm storyboard": ("failed", "TIMEOUT"),
        "render finale": ("cancelled", "CANCELLED"),
        "render credits": ("cancelled", "CANCELLED"),
        "denoise audio": ("failed", "WORKER_CRASHED"),
    }, text[-3000:]
    started = [line for line in text.splitlines() if '"task.started"' in line]
    assert len(started) == 5, text[-3000:]  # all but the one cancelled while pending


@pytest.mark.timeout(300)
def test_the_ray_benchmark_measures_every_part(own_ray_env: dict[str, str], tmp_path: Path) -> None:
    """python -m benchmarks --quick --only B14: throughput against bare Ray, the four
    cancel steps, one task after another against a bare one, and create -> running, all
    measured (no speed asserted)."""
    output = tmp_path / "bench"
    code, text = _run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "B14", "--output", str(output)],
        own_ray_env, tmp_path / "bench.out", timeout=280,
    )  # fmt: skip
    assert code == 0, text[-3000:]
    report: dict[str, Any] = json.loads((output / "latest.json").read_text(encoding="utf-8"))
    [scenario] = report["scenarios"]
    assert scenario["id"] == "B14"
    assert scenario["error"] is None
    parts = scenario["parts"]
    assert [part["status"] for part in parts] == ["measured"] * 7
    assert parts[0]["ratios"]["throughput"] > 0
    assert len(parts[0]["figures"]["tasks_per_second"]) == 1
    steps = [part["scenario"] for part in parts[1:5]]
    for step in ("pending in Ray's queue", "cooperative", "interrupt after", "forced cancel"):
        assert any(step in name for name in steps), steps
    for part in parts[1:]:
        assert part["figures"]["latency_ms"]["n"] >= 1
        assert part["figures"]["latency_ms"]["p50"] > 0
    [sequential] = [part for part in parts if "one no-op task after another" in part["scenario"]]
    bare = sequential["baseline_figures"]["latency_ms"]
    assert bare["n"] == sequential["figures"]["latency_ms"]["n"]
    assert bare["p50"] > 0


@pytest.mark.timeout(200)
def test_a_private_cluster_started_without_a_token_writes_nothing_under_home(
    own_ray_env: dict[str, str], tmp_path: Path
) -> None:
    """Ray 2.60 writes a token to ~/.ray/auth_token for a new local cluster given none:
    RayBackend("local") gives its cluster a random token in the environment instead
    (token auth on: the node's worker reads mode "token"), and takes it back after."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in own_ray_env.items() if not k.startswith("RAY_AUTH_")}
    env["HOME"] = str(home)
    code, text = _run(
        [sys.executable, str(ROOT / "tests" / "ray_cluster" / "private_token_host.py")],
        env, tmp_path / "token.out", timeout=180,
    )  # fmt: skip
    assert code == 0, text[-3000:]
    report = json.loads(text.strip().splitlines()[-1])
    assert report == {
        "status": "completed",
        "result": "token",
        "during": {"RAY_AUTH_MODE": True, "RAY_AUTH_TOKEN": True},
        "after": {"RAY_AUTH_MODE": False, "RAY_AUTH_TOKEN": False},
    }, text[-3000:]
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
