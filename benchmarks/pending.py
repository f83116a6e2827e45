"""B5, B8, B9: scenarios whose features have not landed yet, listed as pending rows.

Each returns the row the table shows until its feature lands; then the scenario gets a
module of its own and this placeholder goes.
"""

from __future__ import annotations

from benchmarks.report import Part, pending_part
from benchmarks.sizes import Sizes

__all__ = ["run_b5", "run_b8", "run_b9"]


def run_b5(sizes: Sizes) -> list[Part]:
    target = "zero threads / processes left over after the grace"
    return [
        pending_part(
            "resources after 100 hard stops (thread mode)",
            target,
            "hard stops",
            mode="thread",
        ),
        pending_part(
            "resources after 100 hard stops (process mode)",
            target,
            "process workers with hard stops",
            mode="process",
        ),
    ]


def run_b8(sizes: Sizes) -> list[Part]:
    return [
        pending_part(
            "durability: throughput with the SQLite store vs the in-memory store",
            "≥ 0.5 x in-memory",
            "the SQLite store",
        )
    ]


def run_b9(sizes: Sizes) -> list[Part]:
    return [
        pending_part(
            "process mode per-task overhead with a warm pool vs thread mode",
            "≤ 2 ms extra per task",
            "process mode",
            mode="process",
        )
    ]
