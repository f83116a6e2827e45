"""B6: memory per retained terminal record, with small params and results.

``TaskManager(num_workers=4)`` with retention far away; :mod:`tracemalloc` starts after
the manager is built and before its first task. ``memory_records`` tasks with params
``{"i": n}`` returning ``n`` are created in batches of ``memory_batch`` (each waited for,
so the transient pending structures stay small and what remains is the retained
records). Once all are terminal and after ``gc.collect()``, the traced bytes still
allocated, divided by the record count, is the cost per record. The largest allocation
sites go to ``latest.json``.

The task ids are not kept by the benchmark (only each batch's last id), so the bytes
measured are the manager's, not the caller's.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from benchmarks.harness import wait_all_done
from benchmarks.report import Part, verdict
from benchmarks.sizes import Sizes
from storycore_tasks import TaskManager

__all__ = ["TARGET_BYTES", "run"]

TARGET_BYTES = 2048
WORKERS = 4
TOP_SITES = 8


def _echo(params: Any, task: Any) -> int:
    return int(params["i"])


def run(sizes: Sizes) -> list[Part]:
    count, batch = sizes.memory_records, sizes.memory_batch
    sites: list[dict[str, Any]] = []
    with TaskManager(num_workers=WORKERS, max_task_age=10 * 365 * 86400.0) as manager:
        gc.collect()
        tracemalloc.start()
        try:
            created = 0
            while created < count:
                last_id = ""
                for _ in range(min(batch, count - created)):
                    last_id = manager.create_task(_echo, {"i": created})
                    created += 1
                wait_all_done(manager, last_id, terminal=created)
            lifetime = manager.get_stats()["lifetime_stats"]
            retained = manager.get_stats()["total_tasks"]
            gc.collect()
            traced, peak = tracemalloc.get_traced_memory()
            snapshot = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        for stat in snapshot.statistics("lineno")[:TOP_SITES]:
            frame = stat.traceback[0]
            sites.append(
                {
                    "site": f"{_short(frame.filename)}:{frame.lineno}",
                    "bytes_per_record": round(stat.size / count, 1),
                    "blocks": stat.count,
                }
            )
        del snapshot
    if lifetime["total_completed"] != count or retained != count:
        raise AssertionError(f"expected {count} retained completed tasks: {lifetime}, {retained}")
    per_record = traced / count
    return [
        Part(
            scenario=f"memory per retained terminal record ({count:,} completed, small params "
            "and results)",
            status="measured",
            mode="thread",
            measured=f"{per_record:,.0f} B/record (tracemalloc, after gc)",
            figures={
                "bytes_per_record": round(per_record, 1),
                "traced_bytes": traced,
                "peak_bytes": peak,
                "top_sites": sites,
            },
            config={"records": count, "batch": batch, "workers": WORKERS},
            target=f"≤ {TARGET_BYTES // 1024} KB per record",
            result=verdict(per_record <= TARGET_BYTES),
        )
    ]


def _short(filename: str) -> str:
    for marker in ("/actors/", "/storycore_tasks/", "/benchmarks/", "/site-packages/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return filename.rsplit("/", 1)[-1]
