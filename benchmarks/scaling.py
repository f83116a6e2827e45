"""B7: scaling: submit throughput and ``get_task_status`` p99 as retained records grow.

Two ``TaskManager(num_workers=4)`` in one process, retention far away: the *reference*
holds 1k retained records throughout (the 1k row, the baseline); the *grown* one goes
through the levels (1k, 10k, 100k, 1M retained records; quick: 1k and 10k), populated
with no-op tasks in batches of ``scaling_populate_batch``, each batch waited for. At
each level the two alternate for ``scaling_rounds`` rounds (the order rotating), one
round being:

* trim each to exactly its level: the oldest-ended records beyond it are removed with
  ``cleanup_old_tasks`` (a cutoff at the ``ended_at`` of the first record to keep), so
  earlier rounds' batches do not inflate the count;
* ``scaling_status_calls`` timed ``get_task_status`` calls on random retained ids of
  each, alternating call by call;
* one batch of ``scaling_batch`` no-op tasks (``timeout=60``, as in B1) on each, in
  turn, timed from the first ``create_task`` until all are terminal: the submit
  throughput (the time of the ``create_task`` calls alone is kept too).

A level's ratios are against the reference rounds of the same level: throughput is the
median of the per-round ratios, status p99 is the p99 of the grown manager's samples
over the p99 of the reference's. Alternating keeps a busy moment of the machine from
landing on one level only. Effects that are process-wide (the cyclic GC walking every
record, memory) touch both managers alike and so cancel out of the ratios; they show
in the reference's own figures per level, kept in ``latest.json``.

If populating up to a level would overrun the population budget, that level and the
ones above it are reported as not measured, with the population rate.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass, field
from typing import Any

from actors import TaskStatus
from benchmarks.harness import median, percentile, wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_FACTOR", "run"]

TARGET_FACTOR = 1.5
WORKERS = 4
TASK_TIMEOUT_SECONDS = 60.0
REFERENCE_LEVEL = 1_000
SEED = 7


def _noop_operation(params: Any, task: Any) -> None:
    return None


class _Grower:
    """The manager under test, the ids it was given (in creation order) and counters."""

    def __init__(self, manager: TaskManager) -> None:
        self.manager = manager
        self.ids: list[str] = []
        self.ended = 0
        self.populated = 0
        self.population_seconds = 0.0

    @property
    def population_rate(self) -> float | None:
        if self.populated == 0 or self.population_seconds <= 0.0:
            return None
        return self.populated / self.population_seconds

    def retained(self) -> int:
        return int(self.manager.get_stats()["total_tasks"])

    def run_batch(self, count: int) -> tuple[float, float]:
        """Create ``count`` no-op tasks and wait for them: (total seconds, create seconds)."""
        create = self.manager.create_task
        new_ids: list[str] = []
        start = time.perf_counter()
        for _ in range(count):
            new_ids.append(create(_noop_operation, timeout=TASK_TIMEOUT_SECONDS))
        created = time.perf_counter()
        self.ended += count
        wait_all_done(self.manager, new_ids[-1], terminal=self.ended)
        done = time.perf_counter()
        self.ids.extend(new_ids)
        return done - start, created - start

    def populate_to(self, level: int, batch: int, deadline: float) -> bool:
        """Grow to ``level`` retained records; False if ``deadline`` (perf_counter) passed."""
        while (missing := level - self.retained()) > 0:
            if time.perf_counter() > deadline:
                return False
            seconds, _ = self.run_batch(min(batch, missing))
            self.populated += min(batch, missing)
            self.population_seconds += seconds
        return True

    def trim_to(self, level: int) -> int:
        """Remove the oldest-ended records beyond ``level``; returns the count retained."""
        excess = self.retained() - level
        if excess > 0:
            oldest = self.manager.runtime.list(TaskStatus.COMPLETED, excess + 1)
            cutoff = oldest[excess].ended_at
            assert cutoff is not None
            clock = self.manager.runtime.clock
            self.manager.cleanup_old_tasks(max_age_seconds=max(0.0, clock.time() - cutoff))
        return self.retained()

    def random_id(self, level: int, rng: random.Random) -> str:
        """A random id among the newest ``level`` (skipping the oldest few, which the
        next trim may be about to remove)."""
        margin = min(100, level // 10)
        return self.ids[rng.randint(len(self.ids) - level + margin, len(self.ids) - 1)]

    def time_status(self, task_id: str) -> float:
        """Seconds one get_task_status call takes."""
        start = time.perf_counter()
        status = self.manager.get_task_status(task_id)
        elapsed = time.perf_counter() - start
        if status is None:
            raise AssertionError(f"retained task {task_id} is unknown to get_task_status")
        return elapsed


def _level_label(level: int) -> str:
    if level >= 1_000_000 and level % 1_000_000 == 0:
        return f"{level // 1_000_000}M"
    if level >= 1_000 and level % 1_000 == 0:
        return f"{level // 1_000}k"
    return str(level)


@dataclass(slots=True)
class _Samples:
    """What the rounds of one manager at one level produced (raw)."""

    throughput: list[float] = field(default_factory=list)
    create_rate: list[float] = field(default_factory=list)
    status: list[float] = field(default_factory=list)
    retained_at: list[int] = field(default_factory=list)

    def time_batch(self, grower: _Grower, batch: int) -> None:
        seconds, create_seconds = grower.run_batch(batch)
        self.throughput.append(batch / seconds)
        self.create_rate.append(batch / create_seconds)

    def figures(self) -> dict[str, Any]:
        return {
            "tasks_per_second_per_round": [round(x) for x in self.throughput],
            "median_tasks_per_second": round(median(self.throughput)),
            "median_create_calls_per_second": round(median(self.create_rate)),
            "status_p50_us": round(percentile(self.status, 50) * 1e6, 1),
            "status_p99_us": round(percentile(self.status, 99) * 1e6, 1),
            "status_max_us": round(max(self.status) * 1e6, 1),
            "status_calls": len(self.status),
            "retained_at_each_round": self.retained_at,
        }


@dataclass(slots=True)
class _Level:
    """One level: the grown manager's rounds and the reference's, alternated."""

    grown: _Samples = field(default_factory=_Samples)
    reference: _Samples = field(default_factory=_Samples)

    def ratios(self) -> dict[str, float]:
        per_round = [
            g / r for g, r in zip(self.grown.throughput, self.reference.throughput, strict=True)
        ]
        return {
            "throughput": round(median(per_round), 3),
            "status p99": round(
                percentile(self.grown.status, 99) / percentile(self.reference.status, 99), 3
            ),
        }


def _manager(sizes: Sizes) -> TaskManager:
    return TaskManager(
        num_workers=WORKERS,
        max_task_age=10 * 365 * 86400.0,
        max_pending=max(100_000, sizes.scaling_batch, sizes.scaling_populate_batch),
    )


def run(sizes: Sizes) -> list[Part]:
    rng = random.Random(SEED)
    levels = sizes.scaling_levels
    config = {
        "workers": WORKERS,
        "reference_level": REFERENCE_LEVEL,
        "batch": sizes.scaling_batch,
        "rounds": sizes.scaling_rounds,
        "status_calls_per_round": sizes.scaling_status_calls,
        "populate_batch": sizes.scaling_populate_batch,
        "population_budget_seconds": sizes.scaling_population_budget_seconds,
    }
    results: dict[int, _Level] = {}
    skipped: dict[int, str] = {}
    with _manager(sizes) as reference_manager, _manager(sizes) as grown_manager:
        reference, grown = _Grower(reference_manager), _Grower(grown_manager)
        reference.populate_to(REFERENCE_LEVEL, sizes.scaling_populate_batch, float("inf"))
        budget_end = time.perf_counter() + sizes.scaling_population_budget_seconds
        for level in levels:
            missing = level - grown.retained()
            rate = grown.population_rate
            if skipped or (
                rate is not None
                and missing > 0
                and missing / rate > budget_end - time.perf_counter()
            ):
                skipped[level] = _too_slow(rate)
                continue
            if not grown.populate_to(level, sizes.scaling_populate_batch, budget_end):
                skipped[level] = _too_slow(grown.population_rate)
                continue
            results[level] = _measure_level(reference, grown, level, sizes, rng)
        population = {
            "populated_tasks": grown.populated,
            "population_seconds": round(grown.population_seconds, 1),
            "population_tasks_per_second": round(grown.population_rate or 0.0),
        }
    return _parts(levels, results, skipped, {**config, **population})


def _measure_level(
    reference: _Grower, grown: _Grower, level: int, sizes: Sizes, rng: random.Random
) -> _Level:
    """The alternated rounds at one level (see the module docstring)."""
    result = _Level()
    contenders = [(reference, REFERENCE_LEVEL, result.reference), (grown, level, result.grown)]
    for round_index in range(sizes.scaling_rounds):
        for grower, size, samples in contenders:
            samples.retained_at.append(grower.trim_to(size))
        # Status calls alternate one by one (the order flipping each pair), so a noisy
        # moment of the machine lands on both managers alike.
        for call in range(sizes.scaling_status_calls):
            pair = contenders if call % 2 == 0 else contenders[::-1]
            for grower, size, samples in pair:
                samples.status.append(grower.time_status(grower.random_id(size, rng)))
        # Batches alternate per round, the order rotating, after a full collection each.
        for grower, _, samples in contenders if round_index % 2 == 0 else contenders[::-1]:
            gc.collect()
            samples.time_batch(grower, sizes.scaling_batch)
    return result


def _too_slow(rate: float | None) -> str:
    shown = "unknown" if rate is None else f"{rate:,.0f} tasks/s"
    return f"not measured (population too slow: {shown})"


def _cell(figures: dict[str, Any]) -> str:
    return (
        f"{figures['median_tasks_per_second']:,} tasks/s; "
        f"status p99 {figures['status_p99_us']:,.0f} µs"
    )


def _parts(
    levels: tuple[int, ...],
    results: dict[int, _Level],
    skipped: dict[int, str],
    config: dict[str, Any],
) -> list[Part]:
    reference = _Samples()
    for measured in results.values():
        reference.throughput += measured.reference.throughput
        reference.create_rate += measured.reference.create_rate
        reference.status += measured.reference.status
        reference.retained_at += measured.reference.retained_at
    ref_label = _level_label(REFERENCE_LEVEL)
    parts: list[Part] = []
    if reference.throughput:
        parts.append(
            Part(
                scenario=f"scaling, {ref_label} records retained (reference manager, "
                "alternated with every level below)",
                status="measured",
                mode="thread",
                measured=_cell(reference.figures()),
                figures={
                    **reference.figures(),
                    "per_level": {
                        _level_label(n): r.reference.figures() for n, r in results.items()
                    },
                },
                config={**config, "level": REFERENCE_LEVEL},
                target="baseline",
                result="baseline",
            )
        )
    for level in levels:
        label = _level_label(level)
        scenario = f"scaling, {label} records retained: submit throughput and status p99"
        top = level == levels[-1] and level >= 1_000_000
        target = f"≤ {TARGET_FACTOR} x the {ref_label} figures" if top else "report"
        if level in skipped:
            parts.append(
                Part(
                    scenario=scenario,
                    status="not measured",
                    target=target,
                    result=skipped[level],
                    reason=skipped[level],
                    config={**config, "level": level},
                )
            )
            continue
        result = results[level]
        ratios = result.ratios()
        verdict_text = "report"
        if top:
            verdict_text = verdict(
                ratios["throughput"] >= 1.0 / TARGET_FACTOR
                and ratios["status p99"] <= TARGET_FACTOR
            )
        parts.append(
            Part(
                scenario=scenario,
                status="measured",
                mode="thread",
                measured=_cell(result.grown.figures()),
                baseline=f"{ref_label} reference, same rounds: "
                + _cell(result.reference.figures()),
                ratios=ratios,
                figures=result.grown.figures(),
                baseline_figures=result.reference.figures(),
                config={**config, "level": level},
                target=target,
                result=verdict_text,
            )
        )
    return parts
