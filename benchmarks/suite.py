"""The table of scenarios (issue 7's B1..B9, B10: the HTTP service, B11: a cold child
start, B12: the HTTP service under concurrency, B13: coroutine operations; B14:
``isolation="ray"``, opt-in because it starts a Ray cluster) and running a selection of
them.

Each scenario runs with lifecycle logging quiet (B1 sets its own logging per variant)
and inside a leak check: a scenario that leaves a thread or an actor behind is an error,
as is one that raises. Either is recorded in its row, and the suite carries on. With
``peers`` (``--peers``), B1, B2, B8 and B9 add their peer rows
(:mod:`benchmarks.peer_rows`) after their own, inside the same leak check.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import (
    async_ops,
    cancel,
    child_start,
    durability,
    hard_stops,
    http_load,
    memory,
    peer_rows,
    process_overhead,
    ray_overhead,
    scaling,
    service,
    status_latency,
    throughput,
    timeouts,
)
from benchmarks.harness import no_leaks, quiet_logging
from benchmarks.report import Part, ScenarioResult
from benchmarks.sizes import Sizes

__all__ = ["OPT_IN", "SCENARIOS", "Scenario", "run_scenarios"]


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    run: Callable[[Sizes], list[Part]]
    peers: Callable[[Sizes], list[Part]] | None = None  # its rows with --peers


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("B1", "throughput of no-op tasks with a timeout set", throughput.run, peer_rows.b1),
    Scenario("B2", "get_task_status latency", status_latency.run, peer_rows.b2),
    Scenario("B3", "timeout precision", timeouts.run),
    Scenario("B4", "cancel latency", cancel.run),
    Scenario("B5", "resources after hard stops", hard_stops.run),
    Scenario("B6", "memory per retained terminal record", memory.run),
    Scenario("B7", "scaling with retained records", scaling.run),
    Scenario("B8", "durability: the SQLite store", durability.run, peer_rows.b8),
    Scenario("B9", "process mode per-task overhead", process_overhead.run, peer_rows.b9),
    Scenario("B10", "the HTTP service's overhead", service.run),
    Scenario("B11", "a cold child start of process isolation", child_start.run),
    Scenario("B12", "the HTTP service under concurrency", http_load.run),
    Scenario("B13", "coroutine operations on the event loop", async_ops.run),
)

# Run only when named (``--only B14``): it starts a private Ray cluster (the ray extra;
# seconds to start, hundreds of MB), which a run of the whole suite should not.
OPT_IN: tuple[Scenario, ...] = (
    Scenario("B14", "isolation='ray' against bare Ray tasks", ray_overhead.run),
)


def run_scenarios(
    selected: list[Scenario], sizes: Sizes, *, peers: bool = False
) -> list[ScenarioResult]:
    """Run each scenario in turn (with its peer rows if ``peers``), reporting progress
    on standard error."""
    results: list[ScenarioResult] = []
    for scenario in selected:
        print(f"[{scenario.id}] {scenario.title} ...", file=sys.stderr, flush=True)
        gc.collect()
        start = time.perf_counter()
        parts: list[Part] = []
        error: str | None = None
        try:
            with no_leaks(), quiet_logging():
                parts = scenario.run(sizes)
                if peers and scenario.peers is not None:
                    print(f"[{scenario.id}] peers ...", file=sys.stderr, flush=True)
                    parts += scenario.peers(sizes)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        print(f"[{scenario.id}] done in {seconds:.1f} s", file=sys.stderr, flush=True)
        results.append(ScenarioResult(scenario.id, scenario.title, parts, seconds, error))
    return results
