"""The scripted scenario behind ``storycore-tasks demo``.

Six StoryCore-like operations on four workers: two complete with progress, one times
out and keeps its partial result, one is cancelled while running, one is cancelled
while it is still pending, and one crashes its process (a segfault in native code) —
contained in a child process, so the host and every other task carry on. The lifecycle
log goes to the configured structlog output; the final status table is returned as text.

The operations are registered by name, so with a task database (``store``) the tasks
of every run are kept in it: a later run recovers them and reports how many it found.

Given a rich ``console`` (the CLI passes one when standard output is a terminal), the
scenario also shows a live progress bar per task, driven by the manager's events.

With ``ray=True`` (``storycore-tasks demo --ray``, the ``ray`` extra) the same six tasks
run with ``isolation="ray"`` on a private local Ray cluster the demo starts and stops
(``RayBackend(address="local")``, four slots): the crash is a segfault on a Ray node,
contained as ``WORKER_CRASHED``, and each task's status shows the node it ran on.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from actors import TaskContext, TaskEvent
from storycore_tasks._bars import task_bars
from storycore_tasks.manager import TaskManager

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["DEMO_OPERATIONS", "DemoReport", "format_status_table", "run_demo"]


def render_sequence(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Renders ``frames`` frames, reporting progress after each one."""
    frames = int(params["frames"])
    for frame in range(1, frames + 1):
        if task.wait_cancelled(params["seconds_per_frame"]):
            return {"frames_rendered": frame - 1, "stopped": True}
        task.update_progress(frame / frames)
        task.partial_result = {"frames_rendered": frame}
    return {"frames_rendered": frames, "video": f"{params['sequence']}.mp4"}


def narrate_chapter(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Narrates paragraph by paragraph."""
    paragraphs = list(params["paragraphs"])
    for done, _ in enumerate(paragraphs, start=1):
        task.wait_cancelled(0.05)
        task.update_progress(done / len(paragraphs))
    return {"audio": f"chapter-{params['chapter']}.wav", "paragraphs": len(paragraphs)}


def llm_pipeline(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Generates scenes until stopped; every finished scene is kept as a partial result."""
    scenes: list[str] = []
    while not task.wait_cancelled(0.1):
        scenes.append(f"scene {len(scenes) + 1}")
        task.partial_result = {"scenes": list(scenes)}
    return {"scenes": scenes}


def denoise_audio(params: Mapping[str, Any], task: TaskContext) -> None:
    """A native library that crashes: reads address 0, which is a segfault."""
    task.update_progress(0.1)
    ctypes.string_at(0)


DEMO_OPERATIONS = {
    "storycore.video.render": render_sequence,
    "storycore.audio.narrate": narrate_chapter,
    "storycore.llm.storyboard": llm_pipeline,
    "storycore.audio.denoise": denoise_audio,
}
"""The demo's operations, by the names its tasks are created (and stored) with."""


@dataclass(frozen=True, slots=True)
class DemoReport:
    table: str  # the final status table
    earlier_tasks: int  # tasks found in the database, from earlier runs
    statuses: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # by task name

    def summary(self) -> list[dict[str, Any]]:
        """One small dict per task, in the table's order: name, id, status, error code."""
        return [
            {
                "task": name,
                "task_id": status.get("task_id"),
                "status": status.get("status"),
                "error": (status.get("error") or {}).get("code"),
            }
            for name, status in self.statuses.items()
        ]


def run_demo(
    *,
    started: threading.Event | None = None,
    store: str | os.PathLike[str] | None = None,
    console: Console | None = None,
    ray: bool = False,
) -> DemoReport:
    """Run the scenario to the end. ``store``: the task database (None: memory only);
    ``console``: where to show live progress bars (None: none; needs rich); ``ray``: run
    every task on a private local Ray cluster (raises :class:`actors.RayNotInstalledError`,
    naming the extra, without it)."""
    running = started or threading.Event()
    bars = _ProgressBars(console) if console is not None else None
    backend = None
    if ray:
        from actors._execution.ray_backend import RayBackend

        # Four slots, as the four workers of the thread run: "render credits" waits.
        backend = RayBackend(address="local", start_local={"num_cpus": 4}, max_in_flight=4)

    def long_render(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
        running.set()
        return render_sequence(params, task)

    with TaskManager(
        num_workers=4,
        store=store,
        operations=DEMO_OPERATIONS,
        ray=backend,
        isolation="ray" if ray else "thread",
    ) as manager:
        earlier = manager.get_stats()["total_tasks"]
        if ray:  # a node cannot set the host's event: the finale is watched by its progress
            manager.register_operation("storycore.video.render_watched", render_sequence)
        else:
            manager.register_operation("storycore.video.render_watched", long_render)
        shown: AbstractContextManager[object] = nullcontext()
        if bars is not None:
            manager.subscribe(bars.on_event)
            shown = bars
        with shown:
            try:
                statuses = _scenario(manager, running, bars, ray=ray)
            except KeyboardInterrupt:
                # Ctrl-C: stop the running tasks too, so the manager stops at once
                # (leaving the block cancels only the pending ones).
                for task in manager.get_running_tasks():
                    manager.cancel_task(task["task_id"])
                raise
    return DemoReport(table=format_status_table(statuses), earlier_tasks=earlier, statuses=statuses)


def _scenario(
    manager: TaskManager, running: threading.Event, bars: _ProgressBars | None, *, ray: bool
) -> dict[str, dict[str, Any]]:
    ids = {
        "render intro": manager.create_task(
            "storycore.video.render",
            {"sequence": "intro", "frames": 8, "seconds_per_frame": 0.05},
            user="demo",
        ),
        "narrate ch. 1": manager.create_task(
            "storycore.audio.narrate", {"chapter": 1, "paragraphs": ["p"] * 6}, user="demo"
        ),
        "llm storyboard": manager.create_task(
            "storycore.llm.storyboard", {"prompt": "a lighthouse"}, user="demo", timeout=0.45
        ),
        "render finale": manager.create_task(
            "storycore.video.render_watched",
            {"sequence": "finale", "frames": 100, "seconds_per_frame": 0.05},
            user="demo",
        ),
        "render credits": manager.create_task(
            "storycore.video.render",
            {"sequence": "credits", "frames": 4, "seconds_per_frame": 0.05},
            user="demo",
        ),
        "denoise audio": manager.create_task(
            "storycore.audio.denoise",
            {"track": "narration"},
            user="demo",
            isolation="ray" if ray else "process",  # either way, the crash is contained
        ),
    }
    if bars is not None:
        for name, task_id in ids.items():
            bars.add(name, task_id)
    # Four workers are busy, so "render credits" waits: cancel it before it runs.
    manager.cancel_task(ids["render credits"])
    # Let the finale make some progress, then cancel it while it runs.
    if ray:
        _wait_for_progress(manager, ids["render finale"], timeout=60)
    else:
        running.wait(timeout=10)
    manager.wait(ids["narrate ch. 1"], timeout=60 if ray else 10)
    manager.cancel_task(ids["render finale"])
    statuses = {name: manager.wait(task_id, timeout=60) for name, task_id in ids.items()}
    if bars is not None:
        for status in statuses.values():
            bars.finish(status)
    return statuses


def _wait_for_progress(manager: TaskManager, task_id: str, *, timeout: float) -> None:
    """Until the task reports progress (or ends, or ``timeout`` seconds pass): a status
    read costs no round trip, so polling it every 10 ms is cheap."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = manager.get_task_status(task_id) or {}
        if status.get("status") not in ("pending", "running") or (status.get("progress") or 0) > 0:
            return
        time.sleep(0.01)


class _ProgressBars:
    """A live progress bar per task, moved by the manager's events (which arrive on
    threads of their own, possibly before ``add`` has named the task)."""

    def __init__(self, console: Console) -> None:
        # Without a terminal a live display cannot redraw: the table says it all.
        self._progress: Progress = task_bars(
            console, transient=not console.is_terminal, name_width=15
        )
        self._lock = threading.Lock()
        self._bars: dict[str, TaskID] = {}
        self._early: dict[str, list[TaskEvent]] = {}

    def __enter__(self) -> _ProgressBars:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def add(self, name: str, task_id: str) -> None:
        with self._lock:
            bar = self._progress.add_task(name, total=100, state="pending")
            self._bars[task_id] = bar
            for event in self._early.pop(task_id, []):
                self._show(bar, event)

    def on_event(self, event: TaskEvent) -> None:
        with self._lock:
            bar = self._bars.get(event.task_id)
            if bar is None:
                self._early.setdefault(event.task_id, []).append(event)
            else:
                self._show(bar, event)

    def _show(self, bar: TaskID, event: TaskEvent) -> None:
        if event.kind == "progress" and isinstance(event.data.get("progress"), int | float):
            self._progress.update(bar, completed=100 * event.data["progress"])
        elif event.kind == "started":
            self._progress.update(bar, state="running")
        elif event.kind == "completed":
            self._progress.update(bar, completed=100, state="completed")
            self._progress.stop_task(bar)
        elif event.kind in ("failed", "cancelled"):
            self._progress.update(bar, state=event.kind)
            self._progress.stop_task(bar)  # its clock stops too

    def finish(self, status: Mapping[str, Any]) -> None:
        """Show how the task ended: its status, and its error code."""
        state = status["status"]
        error = status.get("error")
        if error:
            state = f"{state}: {error['code']}"
            if "partial_result" in error["details"]:
                state += " (partial result kept)"
            if error["code"] == "WORKER_CRASHED":
                state += " (contained in its child process)"
        with self._lock:
            bar = self._bars[status["task_id"]]
            done = 100 if status["status"] == "completed" else 100 * status["progress"]
            self._progress.update(bar, completed=done, state=state)
            self._progress.stop_task(bar)


def format_status_table(statuses: Mapping[str, Mapping[str, Any]]) -> str:
    rows = [("task", "status", "progress", "error", "result / partial result")]
    for name, status in statuses.items():
        error = status.get("error")
        kept = status.get("result", status.get("partial_result", ""))
        if error and "partial_result" in error["details"]:
            kept = error["details"]["partial_result"]
        rows.append(
            (
                name,
                status["status"],
                f"{status['progress']:.0%}",
                error["code"] if error else "",
                _short(kept),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _short(value: Any, limit: int = 60) -> str:
    text = "" if value == "" else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
