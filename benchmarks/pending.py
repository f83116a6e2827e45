"""B8: the scenario whose feature (the SQLite store) has not landed yet, as a pending row.

It returns the row the table shows until the store lands; then the scenario gets a
module of its own and this placeholder goes (as B5 and B9 did once hard stops and
process isolation landed).
"""

from __future__ import annotations

from benchmarks.report import Part, pending_part
from benchmarks.sizes import Sizes

__all__ = ["run_b8"]


def run_b8(sizes: Sizes) -> list[Part]:
    return [
        pending_part(
            "durability: throughput with the SQLite store vs the in-memory store",
            "≥ 0.5 x in-memory",
            "the SQLite store",
        )
    ]
