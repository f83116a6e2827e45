"""The peer rows of ``python -m benchmarks --peers`` (issue 17): B1, B2, B8 and B9's
workloads run through storycore-tasks and through the peers of :mod:`benchmarks.peers`
in the same run, the contenders alternating round by round (the order rotating,
:func:`benchmarks.harness.alternate`). Each row's ratio is to
``ThreadPoolExecutor(4)`` of the same round (the median of the per-round ratios); the
targets of issue 17 compare ours with a peer the same way (ours / the peer, per round).
Every pool is created, warmed with one task, and shut down outside the timed region.

- **B1**: ``peer_tasks`` no-op tasks with a timeout, all submitted, then waited for one
  by one (``wait(id)`` on each, ``result()`` on each future); ours also in the form of B1
  (submit all, wait for the last, the lifetime counters confirming every one ended).
- **B2**: one status read of a completed task, each call timed on its own, while four
  tasks of the same pool spin in pure Python in its four worker threads.
- **B8**: ``peer_durable_tasks`` no-op tasks submitted by 4 threads at once, until every
  one ended: ours with the SQLite store and with the in-memory one, huey ``SqliteHuey``.
- **B9**: process isolation: ``peer_process_tasks`` no-op tasks submitted, then waited for
  each; and a cold start, from creating the pool to the first task's result.

A peer that is not installed gives a row that says ``skipped: pip install
storycore-tasks[bench]``; the rest is measured all the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from benchmarks import ops, peers
from benchmarks.durability import _run_once as storycore_durable_run
from benchmarks.harness import alternate, median, percentile, wait_all_done
from benchmarks.peers import INSTALL_HINT, Pool, Spin
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["b1", "b2", "b8", "b9"]

WORKERS = 4
SUBMITTERS = 4
BASELINE = "ThreadPoolExecutor(4)"
OURS = "storycore-tasks"
B2_TARGET_P99_MS = 1.0
B9_COLD_TARGET_MS = 100.0

F = TypeVar("F")
PoolFactory = Callable[[], AbstractContextManager[Pool]]
ThreadFactory = Callable[[Spin], AbstractContextManager[Pool]]

# name -> (a pool of WORKERS threads whose spinners run the given Spin, the module it needs)
THREAD_POOLS: dict[str, tuple[ThreadFactory, str | None]] = {
    BASELINE: (lambda spin: peers.thread_pool_executor(WORKERS, spin), None),
    OURS: (lambda spin: peers.storycore(WORKERS, spin), None),
    "huey MemoryHuey": (lambda spin: peers.huey_memory(WORKERS, spin), "huey"),
    "dramatiq StubBroker": (lambda spin: peers.dramatiq_stub(WORKERS, spin), "dramatiq"),
}


def _available(factories: Mapping[str, tuple[F, str | None]]) -> tuple[dict[str, F], list[str]]:
    """The factories whose module is installed, and the names of the others."""
    present = {
        name: factory
        for name, (factory, module) in factories.items()
        if module is None or not peers.missing(module)
    }
    return present, [name for name in factories if name not in present]


def _ratio(values: list[float], baseline: list[float]) -> float:
    return median([v / b for v, b in zip(values, baseline, strict=True)])


def _skipped(scenario: str, names: list[str], target: str = "report (peer)") -> list[Part]:
    return [peers.skipped_part(f"{scenario}: {name}", target, [name.split()[0]]) for name in names]


def _peer_verdict(checks: list[tuple[str, float | None, float]]) -> str:
    """``met`` / ``not met`` over (peer, our ratio to it, the ratio wanted); a check
    whose peer is missing makes it ``skipped``."""
    if any(ratio is None for _, ratio, _ in checks):
        return f"skipped: {INSTALL_HINT}"
    return verdict(all(ratio is not None and ratio >= wanted for _, ratio, wanted in checks))


# -- B1 ----------------------------------------------------------------------------------


def _submit_then_wait_each(factory: PoolFactory, count: int, modes: dict[str, str]) -> float:
    with factory() as pool:
        modes[pool.name] = pool.mode
        start = time.perf_counter()
        handles = [pool.submit() for _ in range(count)]
        for handle in handles:
            pool.wait(handle)
        elapsed = time.perf_counter() - start
    return count / elapsed


def _noop_operation(params: Any, task: Any) -> None:
    return None


def _storycore_wait_last(count: int) -> float:
    """B1's own form: submit all, wait for the last, the counters confirming the rest."""
    with TaskManager(num_workers=WORKERS, max_pending=max(count, 100_000)) as manager:
        manager.wait(manager.create_task(_noop_operation, timeout=60.0), timeout=60.0)
        start = time.perf_counter()
        last_id = ""
        for _ in range(count):
            last_id = manager.create_task(_noop_operation, timeout=peers.TASK_TIMEOUT_SECONDS)
        wait_all_done(manager, last_id, terminal=count + 1)
        elapsed = time.perf_counter() - start
    return count / elapsed


def _throughput_rows(
    scenario: str,
    figures: dict[str, list[float]],
    modes: dict[str, str],
    config: dict[str, Any],
    targets: dict[str, tuple[str, str, dict[str, float]]],
    rounds: int,
) -> list[Part]:
    """One row per contender but the baseline: tasks/s, ratio to the baseline of each
    round. ``targets``: name -> (target cell, result cell, extra ratios)."""
    baseline = figures[BASELINE]
    baseline_cell = f"{BASELINE}: {median(baseline):,.0f} tasks/s"
    parts = []
    for name, rates in figures.items():
        if name == BASELINE:
            continue
        target, result, extra = targets.get(name, ("report (peer)", "report", {}))
        ratios = [r / b for r, b in zip(rates, baseline, strict=True)]
        mode = modes.get(name, name)
        parts.append(
            Part(
                scenario=f"{scenario}: {name} ({mode})",
                status="measured",
                mode="process" if "process" in mode.lower() else "thread",
                measured=f"{median(rates):,.0f} tasks/s (median of {rounds})",
                baseline=baseline_cell,
                ratios={"throughput": round(median(ratios), 4), **extra},
                figures={
                    "tasks_per_second_per_round": [round(x) for x in rates],
                    "median_tasks_per_second": round(median(rates)),
                    "ratio_per_round": [round(x, 4) for x in ratios],
                },
                baseline_figures={"tasks_per_second_per_round": [round(x) for x in baseline]},
                config={**config, "contender": name, "peer_mode": mode},
                target=target,
                result=result,
            )
        )
    return parts


def b1(sizes: Sizes) -> list[Part]:
    count, rounds = sizes.peer_tasks, sizes.peer_rounds
    factories, absent = _available(THREAD_POOLS)
    modes: dict[str, str] = {}

    def each(factory: ThreadFactory) -> Callable[[], float]:
        return lambda: _submit_then_wait_each(lambda: factory(Spin.new()), count, modes)

    runs = {name: each(factory) for name, factory in factories.items()}
    wait_last = f"{OURS}, submit all then wait the last"
    runs[wait_last] = lambda: _storycore_wait_last(count)
    modes[wait_last] = f"TaskManager(num_workers={WORKERS}), thread isolation, timeout=60"
    figures = alternate(runs, rounds)

    ours = figures[OURS]
    huey = _ratio(ours, figures["huey MemoryHuey"]) if "huey MemoryHuey" in figures else None
    dram = (
        _ratio(ours, figures["dramatiq StubBroker"]) if "dramatiq StubBroker" in figures else None
    )
    extra = {k: round(v, 4) for k, v in (("vs huey", huey), ("vs dramatiq", dram)) if v is not None}
    result = _peer_verdict([("huey", huey, 1.0), ("dramatiq", dram, 2.0)])
    scenario = f"peers, {count:,} no-op tasks with a timeout, submit all then wait each"
    config = {"tasks": count, "workers": WORKERS, "rounds": rounds, "timeout": 60.0}
    parts = _throughput_rows(
        scenario,
        figures,
        modes,
        config,
        {
            OURS: ("≥ huey MemoryHuey and ≥ 2 x dramatiq (same-run ratios)", result, extra),
            wait_last: ("report", "report", {}),
        },
        rounds,
    )
    return parts + _skipped(scenario, absent)


# -- B2 ----------------------------------------------------------------------------------


def _status_timed(
    pool: Pool, spin: Spin, calls: int, modes: dict[str, str], samples: list[float]
) -> float:
    """p99 seconds of ``calls`` status reads of a completed task while every worker of
    ``pool`` spins; the samples go to ``samples``."""
    modes[pool.name] = pool.mode
    done = pool.submit()
    pool.wait(done)
    try:
        for _ in range(WORKERS):
            pool.submit_spin()
        for _ in range(WORKERS):
            if not spin.started.acquire(timeout=60):
                raise TimeoutError(f"the spinners of {pool.name} did not all start")
        taken = []
        for _ in range(calls):
            start = time.perf_counter()
            pool.status(done)
            taken.append(time.perf_counter() - start)
    finally:
        spin.release.set()
    samples.extend(taken)
    return percentile(taken, 99)


def b2(sizes: Sizes) -> list[Part]:
    calls, rounds = sizes.peer_status_calls, sizes.peer_rounds
    present, absent = _available(THREAD_POOLS)
    modes: dict[str, str] = {}
    samples: dict[str, list[float]] = {name: [] for name in present}

    def contender(name: str) -> Callable[[], float]:
        def once() -> float:
            spin = Spin.new()
            with present[name](spin) as pool:
                return _status_timed(pool, spin, calls, modes, samples[name])

        return once

    p99s = alternate({name: contender(name) for name in present}, rounds)
    baseline = p99s[BASELINE]
    base_us = percentile(samples[BASELINE], 99) * 1e6
    parts = []
    for name in present:
        if name == BASELINE:
            continue
        raw = samples[name]
        p50, p99 = percentile(raw, 50) * 1e6, percentile(raw, 99) * 1e6
        ours = name == OURS
        parts.append(
            Part(
                scenario=f"peers, status of one completed task while {WORKERS} workers spin in "
                f"CPU-bound Python (threads): {name} ({modes[name]})",
                status="measured",
                mode="thread",
                measured=f"p50 {p50:,.1f} µs, p99 {p99:,.1f} µs "
                f"({len(raw):,} calls over {rounds} rounds)",
                baseline=f"{BASELINE} future.done(): p99 {base_us:,.1f} µs",
                ratios={"p99": round(_ratio(p99s[name], baseline), 3)},
                figures={
                    "latency_us": {"p50": round(p50, 1), "p99": round(p99, 1), "n": len(raw)},
                    "p99_us_per_round": [round(x * 1e6, 1) for x in p99s[name]],
                },
                baseline_figures={"p99_us_per_round": [round(x * 1e6, 1) for x in baseline]},
                config={
                    "workers": WORKERS,
                    "calls_per_round": calls,
                    "rounds": rounds,
                    "contender": name,
                    "peer_mode": modes[name],
                },
                target=f"p99 ≤ {B2_TARGET_P99_MS:g} ms" if ours else "report (peer)",
                result=verdict(p99 <= B2_TARGET_P99_MS * 1000) if ours else "report",
            )
        )
    return parts + _skipped("peers, status under CPU-bound load", absent)


# -- B8 ----------------------------------------------------------------------------------


def _from_threads(submit: Callable[[], Any], count: int) -> tuple[float, list[Any]]:
    """Submit ``count`` tasks from :data:`SUBMITTERS` threads released at once; returns
    the start time (taken as they are released) and every handle."""
    per_thread = count // SUBMITTERS
    handles: list[list[Any]] = [[] for _ in range(SUBMITTERS)]
    ready = threading.Barrier(SUBMITTERS + 1)

    def run(index: int) -> None:
        ready.wait()
        into = handles[index]
        for _ in range(per_thread):
            into.append(submit())

    threads = [
        threading.Thread(target=run, args=(i,), name=f"bench-peer-submit-{i}")
        for i in range(SUBMITTERS)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return start, [h for batch in handles for h in batch]


def _tpe_from_threads(count: int) -> float:
    with peers.thread_pool_executor(WORKERS, Spin.new()) as pool:
        start, handles = _from_threads(pool.submit, count)
        for handle in handles:
            pool.wait(handle)
        elapsed = time.perf_counter() - start
    return len(handles) / elapsed


def _huey_sqlite_run(count: int) -> float:
    """huey ``SqliteHuey`` (a fresh file), its consumer of 4 thread workers: tasks/s
    from the first enqueue until the last task has run (each counts itself)."""
    from huey import SqliteHuey

    total = (count // SUBMITTERS) * SUBMITTERS
    lock = threading.Lock()
    ran = [0]
    all_ran = threading.Event()

    def counted() -> None:
        with lock:
            ran[0] += 1
            if ran[0] == total + 1:  # the warm-up task and every timed one
                all_ran.set()

    with peers.temporary_database("huey.db") as path:
        huey = SqliteHuey("bench", filename=str(path), utc=False)
        task = huey.task(timeout=peers.TASK_TIMEOUT_SECONDS)(counted)
        try:
            with peers.huey_consumer(huey, WORKERS):
                task()
                start, _ = _from_threads(task, count)
                if not all_ran.wait(peers.WAIT_SECONDS):
                    raise TimeoutError(f"huey SqliteHuey ran {ran[0]} of {total + 1} tasks")
                elapsed = time.perf_counter() - start
        finally:
            huey.storage.close()
    return total / elapsed


def _ours_durable(count: int) -> float:
    with peers.temporary_database("tasks.db") as path:
        rate: float = storycore_durable_run(count, WORKERS, SUBMITTERS, path)["rate"]
    return rate


B8_HUEY = "huey SqliteHuey"
B8_DURABLE = f"{OURS}, SQLite store"
B8_MEMORY = f"{OURS}, in-memory store"


def b8(sizes: Sizes) -> list[Part]:
    count, rounds = sizes.peer_durable_tasks, sizes.peer_rounds
    runs: dict[str, Callable[[], float]] = {
        BASELINE: lambda: _tpe_from_threads(count),
        B8_DURABLE: lambda: _ours_durable(count),
        B8_MEMORY: lambda: storycore_durable_run(count, WORKERS, SUBMITTERS, None)["rate"],
    }
    absent = peers.missing("huey")
    if not absent:
        runs[B8_HUEY] = lambda: _huey_sqlite_run(count)
    figures = alternate(runs, rounds)
    durable = figures[B8_DURABLE]
    memory = _ratio(durable, figures[B8_MEMORY])
    huey = _ratio(durable, figures[B8_HUEY]) if B8_HUEY in figures else None
    extra = {"vs in-memory": round(memory, 4)}
    if huey is not None:
        extra["vs huey SqliteHuey"] = round(huey, 4)
    modes = {
        B8_DURABLE: f"TaskManager(num_workers={WORKERS}, store=<file>), synchronous=normal, "
        "named no-op, timeout=60",
        B8_MEMORY: f"TaskManager(num_workers={WORKERS}), named no-op, timeout=60",
        B8_HUEY: f"SqliteHuey (WAL, fsync=False), consumer with {WORKERS} thread workers in "
        "process, polling 1 to 10 ms; no timeouts",
    }
    scenario = f"peers, durable: {count:,} no-op tasks from {SUBMITTERS} submitting threads"
    config = {"tasks": count, "workers": WORKERS, "submitters": SUBMITTERS, "rounds": rounds}
    result = _peer_verdict([("in-memory", memory, 0.5), ("huey", huey, 2.0)])
    parts = _throughput_rows(
        scenario,
        figures,
        modes,
        config,
        {B8_DURABLE: ("≥ 0.5 x in-memory and ≥ 2 x huey SqliteHuey", result, extra)},
        rounds,
    )
    return parts + _skipped(scenario, [B8_HUEY] if absent else [])


# -- B9 ----------------------------------------------------------------------------------

B9_DEFAULT = f"{OURS}, default max_tasks_per_child"
B9_REUSED = f"{OURS}, children reused"
PEBBLE = "pebble ProcessPool"
PPE = "ProcessPoolExecutor(4)"


def _cold_start(factory: PoolFactory) -> float:
    """Seconds from creating the pool to its first no-op task's result (the factory
    warms with one task: that is the one timed)."""
    start = time.perf_counter()
    with factory():
        return time.perf_counter() - start


def _cold_storycore() -> float:
    start = time.perf_counter()
    with TaskManager(num_workers=WORKERS, isolation="process") as manager:
        status = manager.wait(manager.create_task(ops.noop, timeout=60.0), timeout=60.0)
        seconds = time.perf_counter() - start
    if status["status"] != "completed":
        raise AssertionError(f"the first process task did not complete: {status}")
    return seconds


def b9(sizes: Sizes) -> list[Part]:
    count, rounds, samples = sizes.peer_process_tasks, sizes.peer_rounds, sizes.peer_cold_starts
    throughput: dict[str, tuple[PoolFactory, str | None]] = {
        BASELINE: (lambda: peers.thread_pool_executor(WORKERS, Spin.new()), None),
        B9_DEFAULT: (lambda: peers.storycore_process(WORKERS, peers.DEFAULT), None),
        B9_REUSED: (lambda: peers.storycore_process(WORKERS, None), None),
        PEBBLE: (lambda: peers.pebble_process_pool(WORKERS), "pebble"),
        PPE: (lambda: peers.process_pool_executor(WORKERS), None),
    }
    present, absent = _available(throughput)
    modes: dict[str, str] = {}
    names = {B9_DEFAULT: OURS, B9_REUSED: OURS}

    def timed(name: str) -> Callable[[], float]:
        def once() -> float:
            inner: dict[str, str] = {}
            rate = _submit_then_wait_each(present[name], count, inner)
            modes[name] = inner[names.get(name, name)]
            return rate

        return once

    figures = alternate({name: timed(name) for name in present}, rounds)
    pebble_ratio = _ratio(figures[B9_DEFAULT], figures[PEBBLE]) if PEBBLE in figures else None
    extra = {"vs pebble": round(pebble_ratio, 4)} if pebble_ratio is not None else {}
    reused_extra = (
        {"vs pebble": round(_ratio(figures[B9_REUSED], figures[PEBBLE]), 4)}
        if PEBBLE in figures
        else {}
    )
    scenario = f"peers, process isolation: {count:,} no-op tasks, submit all then wait each"
    config = {"tasks": count, "workers": WORKERS, "rounds": rounds}
    target = "≥ 0.5 x pebble ProcessPool (timeouts)"
    parts = _throughput_rows(
        scenario,
        figures,
        modes,
        config,
        {
            B9_DEFAULT: (target, _peer_verdict([("pebble", pebble_ratio, 0.5)]), extra),
            B9_REUSED: ("report", "report", reused_extra),
        },
        rounds,
    )
    parts += _skipped(scenario, absent)

    cold: dict[str, Callable[[], float]] = {OURS: _cold_storycore}
    if PEBBLE in present:
        cold[PEBBLE] = lambda: _cold_start(present[PEBBLE])
    cold[PPE] = lambda: _cold_start(present[PPE])
    raw: dict[str, list[float]] = {name: [] for name in cold}

    def cold_round(name: str) -> Callable[[], float]:
        def once() -> float:
            taken = [cold[name]() for _ in range(samples)]
            raw[name].extend(taken)
            return median(taken)

        return once

    for start in cold.values():  # warm-up: the imports, the page cache
        start()
    medians = alternate({name: cold_round(name) for name in cold}, rounds)
    cold_scenario = f"peers, cold start to the first task, process isolation ({WORKERS} workers)"
    for name, per_round in medians.items():
        ours = name == OURS
        ms = median(per_round) * 1e3
        ratios = {f"vs {PPE}": round(_ratio(per_round, medians[PPE]), 3)} if name != PPE else {}
        parts.append(
            Part(
                scenario=f"{cold_scenario}: {name}",
                status="measured",
                mode="process",
                measured=f"{ms:,.1f} ms (median of {rounds} rounds of {samples}; p99 "
                f"{percentile(raw[name], 99) * 1e3:,.1f} ms)",
                baseline=f"{PPE}: {median(medians[PPE]) * 1e3:,.1f} ms",
                ratios=ratios,
                figures={
                    "median_ms": round(ms, 2),
                    "median_ms_per_round": [round(x * 1e3, 2) for x in per_round],
                },
                baseline_figures={"median_ms_per_round": [round(x * 1e3, 2) for x in medians[PPE]]},
                config={"workers": WORKERS, "rounds": rounds, "samples_per_round": samples},
                target=f"≤ {B9_COLD_TARGET_MS:g} ms" if ours else "report (peer)",
                result=verdict(ms <= B9_COLD_TARGET_MS) if ours else "report",
            )
        )
    return parts + _skipped(cold_scenario, [PEBBLE] if PEBBLE not in present else [])
