"""B14: ``isolation="ray"`` on a private local Ray cluster (opt-in: ``--only B14``).

Four parts, all on one private cluster this scenario starts (``RayBackend(address=
"local")``, 2 CPUs and one ``bench_slot`` resource) and stops; it never joins another.
Unless they are set already, ``RAY_TMPDIR`` (a temporary directory, removed at the end),
a random ``RAY_AUTH_TOKEN`` and ``RAY_USAGE_STATS_ENABLED=0`` are set first, so nothing
is written under ``$HOME`` and no other cluster of the machine is found.

* **throughput, 300 in flight**: rounds alternate (the order rotating) between
  ``ray_tasks`` no-op tasks created with ``isolation="ray"`` (``create_task`` each, then
  ``wait`` for all; ``max_in_flight=300``) and as many bare Ray tasks doing the same
  no-op (``.remote()`` in batches of 300, then ``ray.get`` of the batch), same cluster,
  same driver, same ``num_cpus=1`` per task. Figure: tasks per second; ratio ray /
  bare (target at least 0.5x).
* **cancel latency of each ladder step**, from ``cancel_task`` until the Ray slot is
  free again (the supervisor's Ray ``running + stopping`` back to what it was):
  a task pending in Ray's queue (it waits for ``bench_slot``, held by another task);
  a cooperative operation (it returns on ``is_cancelled()``); one that ignores the flag
  (a Python spin: ``TaskInterrupted`` after ``stop_grace``); one in ``time.sleep(3600)``
  (the forced ``ray.cancel`` after a second ``stop_grace``, which ends its worker).
* **one task after another, end to end**: ``create_task`` + ``wait`` of a no-op,
  against a bare Ray task's ``.remote()`` + ``ray.get``, alternating blocks of ten,
  p50 / p99 of each.
* **create_task -> running on a warm cluster**: one at a time, from ``create_task`` to
  the first status that reads ``running`` (the node's ``started`` on the host channel, after its
  worker took the task), p50 / p99.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks import ops
from benchmarks.harness import alternate, median, summarize
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import RayBackend, TaskManager

__all__ = ["IN_FLIGHT", "STOP_GRACE", "TARGET_RATIO", "run"]

TARGET_RATIO = 0.5
IN_FLIGHT = 300
STOP_GRACE = 0.2  # seconds, for the cancel ladder
SAFETY_SECONDS = 120.0
_POLL = 0.0002


@contextlib.contextmanager
def _private_ray_environment() -> Iterator[None]:
    """RAY_TMPDIR, a token and no usage stats for this process (and the cluster it
    starts), unless the caller chose them; restored afterwards."""
    saved = {name: os.environ.get(name) for name in _ENV}
    made: str | None = None
    if not os.environ.get("RAY_TMPDIR"):
        # Short: Ray's socket paths under it must fit AF_UNIX's 107 bytes.
        made = tempfile.mkdtemp(prefix="sct-bench-ray-", dir="/tmp")
        os.environ["RAY_TMPDIR"] = made
    if not os.environ.get("RAY_AUTH_TOKEN"):
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(16)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


_ENV = ("RAY_TMPDIR", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED")


def _ray_slots(manager: TaskManager) -> int:
    stats: dict[str, Any] = manager.get_stats()["ray"]
    return int(stats["running"]) + int(stats["stopping"])


def _wait(predicate: Callable[[], bool], what: str) -> float:
    """Poll until ``predicate()``; the perf_counter at that moment."""
    deadline = time.perf_counter() + SAFETY_SECONDS
    while True:
        if predicate():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} did not happen within {SAFETY_SECONDS} s")
        time.sleep(_POLL)


def _until_status(manager: TaskManager, task_id: str, status: str) -> float:
    return _wait(lambda: manager.get_task_status(task_id)["status"] == status, status)


def _until_slots(manager: TaskManager, count: int, what: str) -> float:
    """Until the supervisor's Ray running + stopping reads ``count``."""
    return _wait(lambda: _ray_slots(manager) == count, what)


# -- throughput --------------------------------------------------------------------------


def _through_manager(manager: TaskManager, count: int) -> float:
    start = time.perf_counter()
    ids = [manager.create_task(ops.noop, isolation="ray") for _ in range(count)]
    for task_id in ids:
        status = manager.wait(task_id, timeout=SAFETY_SECONDS)
        if status["status"] != "completed":
            raise AssertionError(f"a ray no-op task did not complete: {status}")
    return count / (time.perf_counter() - start)


def _bare(ray: Any, remote_noop: Any, count: int) -> float:
    start = time.perf_counter()
    left = count
    while left > 0:
        batch = min(IN_FLIGHT, left)
        refs = [remote_noop.remote() for _ in range(batch)]
        if not all(ray.get(refs, timeout=SAFETY_SECONDS)):
            raise AssertionError("a bare Ray no-op task did not return True")
        left -= batch
    return count / (time.perf_counter() - start)


# -- cancel ladder -----------------------------------------------------------------------


def _cancel_samples(manager: TaskManager, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "pending in Ray's queue": [],
        "cooperative": [],
        "interrupt after stop_grace": [],
        "forced cancel after 2 x stop_grace": [],
    }
    for _ in range(samples):
        # Pending: a blocker holds bench_slot; the second task waits in Ray's queue.
        blocker = manager.create_task(
            ops.spin_until_cancelled, isolation="ray", resources={"bench_slot": 1}
        )
        _until_status(manager, blocker, "running")
        before = _ray_slots(manager)
        queued = manager.create_task(ops.noop, isolation="ray", resources={"bench_slot": 1})
        _until_slots(manager, before + 1, "the queued task's submission")
        start = time.perf_counter()
        manager.cancel_task(queued)
        end = _until_slots(manager, before, "the pending task's slot")
        out["pending in Ray's queue"].append(end - start)
        manager.cancel_task(blocker)
        _until_slots(manager, 0, "the blocker's end")

        for name, operation in (
            ("cooperative", ops.spin_until_cancelled),
            ("interrupt after stop_grace", ops.spin_forever),
            ("forced cancel after 2 x stop_grace", ops.sleep_forever),
        ):
            task_id = manager.create_task(operation, isolation="ray")
            _wait(
                lambda task_id=task_id: (
                    manager.get_task_status(task_id).get("partial_result") is not None
                ),
                f"the {name} operation's start",
            )
            start = time.perf_counter()
            manager.cancel_task(task_id)
            end = _until_slots(manager, 0, f"the {name} slot")
            out[name].append(end - start)
    return out


# -- create_task -> running --------------------------------------------------------------


def _start_samples(manager: TaskManager, samples: int) -> list[float]:
    """One at a time; after a warm-up, since the forced cancels ended workers."""
    _through_manager(manager, 20)
    found: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        task_id = manager.create_task(ops.spin_until_cancelled, isolation="ray")
        end = _until_status(manager, task_id, "running")
        found.append(end - start)
        manager.cancel_task(task_id)
        _until_slots(manager, 0, "the slot")
    return found


def _one_after_another(
    manager: TaskManager, ray: Any, remote_noop: Any, samples: int
) -> dict[str, list[float]]:
    """End to end, one task at a time: ``create_task`` + ``wait`` against ``.remote()``
    + ``ray.get``, in alternating blocks of ten."""
    found: dict[str, list[float]] = {"ray": [], "bare": []}
    for _ in range(max(1, samples // 10)):
        for _ in range(10):
            start = time.perf_counter()
            status = manager.wait(manager.create_task(ops.noop, isolation="ray"), SAFETY_SECONDS)
            found["ray"].append(time.perf_counter() - start)
            if status["status"] != "completed":
                raise AssertionError(f"a ray no-op task did not complete: {status}")
        for _ in range(10):
            start = time.perf_counter()
            ray.get(remote_noop.remote(), timeout=SAFETY_SECONDS)
            found["bare"].append(time.perf_counter() - start)
    return found


def run(sizes: Sizes) -> list[Part]:
    if importlib.util.find_spec("ray") is None:
        return [
            Part(
                scenario="isolation='ray' on a private local cluster",
                status="not measured",
                target=f"≥ {TARGET_RATIO:g}x bare Ray",
                result="skipped: pip install 'storycore-tasks[ray]'",
                reason="ray is not installed",
            )
        ]
    with _private_ray_environment():
        return _measure(sizes)


def _measure(sizes: Sizes) -> list[Part]:
    import ray

    rounds, count = sizes.ray_rounds, sizes.ray_tasks
    backend = RayBackend(
        address="local",
        start_local={
            "num_cpus": 2,
            "resources": {"bench_slot": 1},
            "object_store_memory": 100 << 20,
        },
        max_in_flight=IN_FLIGHT,
    )
    started = time.perf_counter()
    with TaskManager(ray=backend, stop_grace=STOP_GRACE) as manager:
        backend.connect()
        up_seconds = time.perf_counter() - started
        remote_noop = ray.remote(num_cpus=1, max_retries=0)(ops.bare_noop)
        # Warm-up: both paths start their workers and import benchmarks.ops.
        _through_manager(manager, 40)
        _bare(ray, remote_noop, 40)
        rates = alternate(
            {
                "ray": lambda: _through_manager(manager, count),
                "bare": lambda: _bare(ray, remote_noop, count),
            },
            rounds,
        )
        cancels = _cancel_samples(manager, sizes.ray_cancel_samples)
        starts = _start_samples(manager, sizes.ray_start_samples)
        sequential = _one_after_another(manager, ray, remote_noop, sizes.ray_start_samples)
        ray_stats: dict[str, Any] = manager.get_stats()["ray"]
    ours, bare = median(rates["ray"]), median(rates["bare"])
    ratio = ours / bare
    config = {
        "cluster": "address='local', 1 node, num_cpus=2, bench_slot=1",
        "stop_grace_seconds": STOP_GRACE,
        "cluster_up_seconds": round(up_seconds, 2),
    }
    parts = [
        Part(
            scenario=f"isolation='ray' throughput, {count:,} no-op tasks per round, "
            f"{IN_FLIGHT} in flight (max_in_flight={IN_FLIGHT}), private local cluster",
            status="measured",
            measured=f"{ours:,.0f} tasks/s (median of {rounds} rounds)",
            baseline=f"bare Ray tasks (.remote() + ray.get, batches of {IN_FLIGHT}), same "
            f"cluster: {bare:,.0f} tasks/s",
            ratios={"throughput": round(ratio, 3)},
            figures={"tasks_per_second": [round(x, 1) for x in rates["ray"]], "ray": ray_stats},
            baseline_figures={"tasks_per_second": [round(x, 1) for x in rates["bare"]]},
            config={**config, "tasks_per_round": count, "rounds": rounds},
            target=f"≥ {TARGET_RATIO:g}x bare Ray",
            result=verdict(ratio >= TARGET_RATIO),
        )
    ]
    for name, samples in cancels.items():
        ms = summarize(samples, 1e3)
        parts.append(
            Part(
                scenario=f"isolation='ray' cancel, {name}: cancel_task -> Ray slot free",
                status="measured",
                measured=f"p50 {ms['p50']:.1f} ms, max {ms['max']:.1f} ms (n={ms['n']})",
                figures={"latency_ms": ms},
                config=config,
                target="report",
                result="report",
            )
        )
    ours_ms = summarize(sequential["ray"], 1e3, digits=2)
    bare_ms = summarize(sequential["bare"], 1e3, digits=2)
    parts.append(
        Part(
            scenario="isolation='ray' one no-op task after another, end to end (create_task "
            "+ wait)",
            status="measured",
            measured=f"p50 {ours_ms['p50']:.2f} ms, p99 {ours_ms['p99']:.2f} ms (n={ours_ms['n']})",
            baseline=f"a bare Ray task (.remote() + ray.get), same cluster: p50 "
            f"{bare_ms['p50']:.2f} ms, p99 {bare_ms['p99']:.2f} ms",
            figures={"latency_ms": ours_ms},
            baseline_figures={"latency_ms": bare_ms},
            config=config,
            target="report",
            result="report",
        )
    )
    start_ms = summarize(starts, 1e3, digits=2)
    parts.append(
        Part(
            scenario="isolation='ray' create_task -> running, warm cluster, one at a time",
            status="measured",
            measured=f"p50 {start_ms['p50']:.2f} ms, p99 {start_ms['p99']:.2f} ms "
            f"(n={start_ms['n']})",
            figures={"latency_ms": start_ms},
            config=config,
            target="report",
            result="report",
        )
    )
    return parts
