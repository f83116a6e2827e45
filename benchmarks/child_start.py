"""B11: a cold child start of process isolation, against a bare ``spawn``ed child.

Three contenders alternate in each of ``child_start_rounds`` rounds (the order rotating),
each started ``child_start_samples`` times one after another:

- **bare**: ``multiprocessing.get_context("spawn").Process(target=benchmarks.bare_child.hello)``
  (a module that imports nothing) started, timed until its one handshake byte arrives
  over a pipe, then joined (the join is not timed);
- **ours**: ``actors._execution.processes.ChildProcess`` started, timed until its
  ``Ready`` handshake (the constructor returns then), then closed (not timed);
- **first task**: a fresh ``TaskManager(num_workers=1, isolation="process")``, timed from
  its construction to the completion of its first task (:func:`benchmarks.ops.noop`):
  the manager's start, the cold child, and the task; the shutdown is not timed.

Each contender's figure for a round is the median of its samples. The extra cost of our
child over the bare one is the difference of the two medians in the same round; the
reported figure is the median over rounds. What a cold start of ours costs on top of an
interpreter is what the child imports (see tests/test_lean_child_imports.py).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

from actors._execution.processes import ChildProcess
from benchmarks import bare_child, ops
from benchmarks.harness import alternate, median, summarize
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_EXTRA_MS", "run"]

TARGET_EXTRA_MS = 60.0
SAFETY_SECONDS = 60.0


def _bare_start() -> float:
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe(duplex=False)
    start = time.perf_counter()
    process = context.Process(target=bare_child.hello, args=(child_end,), daemon=True)
    process.start()
    child_end.close()
    if not parent_end.poll(SAFETY_SECONDS) or parent_end.recv_bytes() != b"!":
        raise AssertionError("the bare child sent no handshake")
    seconds = time.perf_counter() - start
    parent_end.close()
    process.join(SAFETY_SECONDS)
    if process.exitcode != 0:
        raise AssertionError(f"the bare child exited with {process.exitcode}")
    process.close()
    return seconds


def _our_start() -> float:
    start = time.perf_counter()
    child = ChildProcess("bench-child")  # returns once the child said Ready
    seconds = time.perf_counter() - start
    child.close()
    return seconds


def _first_task() -> float:
    start = time.perf_counter()
    with TaskManager(num_workers=1, isolation="process") as manager:
        status = manager.wait(manager.create_task(ops.noop), timeout=SAFETY_SECONDS)
        seconds = time.perf_counter() - start
    if status["status"] != "completed":
        raise AssertionError(f"the first process task did not complete: {status}")
    return seconds


def run(sizes: Sizes) -> list[Part]:
    rounds, samples = sizes.child_start_rounds, sizes.child_start_samples
    raw: dict[str, list[float]] = {"bare": [], "ours": [], "first task": []}
    starts: dict[str, Callable[[], float]] = {
        "bare": _bare_start,
        "ours": _our_start,
        "first task": _first_task,
    }
    for start in starts.values():  # warm-up: the host's own imports, the page cache
        start()

    def contender(name: str) -> Callable[[], float]:
        def one_round() -> float:
            figures = [starts[name]() for _ in range(samples)]
            raw[name].extend(figures)
            return median(figures)

        return one_round

    medians = alternate({name: contender(name) for name in starts}, rounds)
    extra_ms = [(o - b) * 1e3 for o, b in zip(medians["ours"], medians["bare"], strict=True)]
    first_ms = [(f - b) * 1e3 for f, b in zip(medians["first task"], medians["bare"], strict=True)]
    extra, first_extra = median(extra_ms), median(first_ms)
    bare_ms, ours_ms, first = (summarize(raw[name], 1e3) for name in starts)
    bare_cell = (
        f"bare spawned child (imports nothing), start to handshake byte: p50 "
        f"{bare_ms['p50']:.1f} ms, p99 {bare_ms['p99']:.1f} ms"
    )
    config = {"rounds": rounds, "samples_per_round": samples, "start_method": "spawn"}
    return [
        Part(
            scenario=f"cold child start: ChildProcess to its Ready handshake "
            f"({rounds * samples} starts)",
            status="measured",
            mode="process",
            measured=f"p50 {ours_ms['p50']:.1f} ms, p99 {ours_ms['p99']:.1f} ms; extra "
            f"{extra:.1f} ms (median of {rounds} rounds)",
            baseline=bare_cell,
            ratios={"start time": round(median(medians["ours"]) / median(medians["bare"]), 3)},
            figures={
                "extra_ms": round(extra, 2),
                "extra_ms_per_round": [round(x, 2) for x in extra_ms],
                "start_ms": ours_ms,
            },
            baseline_figures={"start_ms": bare_ms},
            config=config,
            target=f"≤ {TARGET_EXTRA_MS:g} ms more than the bare child",
            result=verdict(extra <= TARGET_EXTRA_MS),
        ),
        Part(
            scenario=f"cold child start: a fresh manager's first process task, from "
            f"TaskManager(...) to its completion ({rounds * samples} managers)",
            status="measured",
            mode="process",
            measured=f"p50 {first['p50']:.1f} ms, p99 {first['p99']:.1f} ms; extra "
            f"{first_extra:.1f} ms (median of {rounds} rounds)",
            baseline=bare_cell,
            ratios={"time": round(median(medians["first task"]) / median(medians["bare"]), 3)},
            figures={
                "extra_ms": round(first_extra, 2),
                "extra_ms_per_round": [round(x, 2) for x in first_ms],
                "first_task_ms": first,
            },
            baseline_figures={"start_ms": bare_ms},
            config={**config, "workers": 1},
            target="report",
            result="report",
        ),
    ]
