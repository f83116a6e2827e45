"""B1 in CPU time across source trees: what one no-op task with a timeout costs, timed.

``python -m benchmarks.cpu_per_task TREE [TREE ...]`` runs B1's workload (the one
:mod:`benchmarks.instructions` counts) from each source tree, in alternating rounds,
once with ``--small`` and once with ``--large`` tasks, and takes the CPU time (user and
system, of the whole process: every thread) of the difference over the difference of
sizes, so the interpreter's start, the imports and the manager's start and stop cancel
out. It prints each tree's median over the rounds and its ratio to the first tree's.

Why CPU time and not tasks per second: the CPU a task costs is what "not slower" asks
about, and on a shared machine it moves less with other jobs' load than wall time does
(it still moves: caches and the GIL's hand-offs are shared). Each run is pinned to one
CPU (``--cpu``, with ``taskset`` when it is installed), as the suite's B1 is not: the
figures compare trees, they are not B1's throughput.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.instructions import WORKLOAD

__all__ = ["cpu_per_task", "cpu_seconds", "main"]


def cpu_seconds(tree: Path, tasks: int, cpu: int | None = None) -> float:
    """The CPU seconds (user + system) of one run of the workload from ``tree``."""
    with tempfile.TemporaryDirectory(prefix="b1-cpu-") as scratch:
        script = Path(scratch) / "workload.py"
        script.write_text(WORKLOAD)
        command = [sys.executable, str(script), str(tree), str(tasks)]
        if cpu is not None and shutil.which("taskset") is not None:
            command = ["taskset", "-c", str(cpu), *command]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            command,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=scratch,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_per_task(tree: Path, small: int, large: int, cpu: int | None = None) -> float:
    """CPU seconds per task of ``tree`` in one round (see the module docstring)."""
    if large <= small:
        raise ValueError(f"--large ({large}) must be more than --small ({small})")
    return (cpu_seconds(tree, large, cpu) - cpu_seconds(tree, small, cpu)) / (large - small)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cpu_per_task", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("trees", nargs="+", type=Path, help="source trees of this project")
    parser.add_argument("--small", type=int, default=2000, help="tasks in the first run")
    parser.add_argument("--large", type=int, default=22000, help="tasks in the second run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU each run is pinned to")
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in args.trees]
    for tree in trees:
        if not (tree / "storycore_tasks" / "__init__.py").is_file():
            parser.error(f"{tree} is not a source tree of storycore-tasks")
    figures: dict[Path, list[float]] = {tree: [] for tree in trees}
    for round_number in range(args.rounds):
        # Alternating the order each round, so a drift in the machine's load is shared.
        for tree in trees if round_number % 2 == 0 else trees[::-1]:
            figures[tree].append(cpu_per_task(tree, args.small, args.large, args.cpu))
    first = statistics.median(figures[trees[0]])
    for tree in trees:
        median = statistics.median(figures[tree])
        rounds = ", ".join(f"{value * 1e6:.1f}" for value in figures[tree])
        print(
            f"{tree}\t{median * 1e6:.1f} µs CPU/task (median of {args.rounds}: {rounds})"
            f"\t{first / median:.3f}x the first tree's speed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
