"""B1 in instructions: what one no-op task with a timeout costs, counted, not timed.

``python -m benchmarks.instructions TREE [TREE ...]`` runs B1's workload (a
``TaskManager(num_workers=4)``, structlog dropping everything below WARNING, no-op tasks
created with ``timeout=60``, waited for at the end) under Valgrind's callgrind, once with
``--small`` and once with ``--large`` tasks, from each source tree given (a checkout of
this project at some commit: ``git worktree add /tmp/old COMMIT``). It prints the
instructions per task: the difference of the two runs' totals over the difference of
their sizes, so the interpreter's start, the imports and the manager's start and stop
cancel out.

Why counted: a timed A/B on a shared 2-vCPU machine moves by 5-10% with the load; the
instruction count of the same tree repeats within about 0.5% whatever else runs (the
workload is deterministic but for thread interleavings). It answers "did this change
add work per task", not "how fast is it" (B1 in the suite answers that). Needs
``valgrind`` (Debian's package); each tree takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["WORKLOAD", "instructions_per_task", "main", "parse_total"]

# The workload, run in a fresh interpreter with the tree first on sys.path.
WORKLOAD = """
import logging, sys
tree, count = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, tree)
import structlog
import storycore_tasks
assert storycore_tasks.__file__.startswith(tree), storycore_tasks.__file__
from storycore_tasks import TaskManager
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
def noop(params, task):
    return None
with TaskManager(num_workers=4) as manager:
    ids = [manager.create_task(noop, timeout=60) for _ in range(count)]
    for task_id in ids[-50:]:
        manager.wait(task_id, 300)
    # As B1: every task ended (a constant, not per task, so it cancels out).
    assert manager.get_stats()["status_counts"]["completed"] == count
"""

_TOTAL = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def parse_total(callgrind_output: bytes) -> int:
    """The total instruction count of a callgrind output file."""
    found = _TOTAL.search(callgrind_output)
    if found is None:
        raise ValueError("no 'summary:' or 'totals:' line in the callgrind output")
    return int(found.group(1))


def _count(tree: Path, tasks: int) -> int:
    with tempfile.TemporaryDirectory(prefix="b1-instructions-") as scratch:
        out = Path(scratch) / "callgrind.out"
        script = Path(scratch) / "workload.py"
        script.write_text(WORKLOAD)
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(script),
                str(tree),
                str(tasks),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=scratch,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        return parse_total(out.read_bytes())


def instructions_per_task(tree: Path, small: int, large: int) -> float:
    """Instructions per task of ``tree`` (see the module docstring)."""
    if large <= small:
        raise ValueError(f"--large ({large}) must be more than --small ({small})")
    return (_count(tree, large) - _count(tree, small)) / (large - small)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("trees", nargs="+", type=Path, help="source trees of this project")
    parser.add_argument("--small", type=int, default=1000, help="tasks in the first run")
    parser.add_argument("--large", type=int, default=3000, help="tasks in the second run")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed: apt-get install valgrind")
    for tree in args.trees:
        if not (tree / "storycore_tasks" / "__init__.py").is_file():
            parser.error(f"{tree} is not a source tree of storycore-tasks")
        per_task = instructions_per_task(tree.resolve(), args.small, args.large)
        print(f"{tree}\t{per_task:,.0f} instructions/task")
    return 0


if __name__ == "__main__":
    sys.exit(main())
