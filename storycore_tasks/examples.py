"""Example operations, so a fresh install has something to run:

    storycore-tasks serve --no-auth --operations storycore_tasks.examples:OPERATIONS
    storycore-tasks submit examples.render --params '{"frames": 20}' --wait

Each takes its params as a JSON object, reports progress, and stops early (keeping what
it did) when cancelled or timed out:

- ``examples.render``: renders ``frames`` frames (default 10), ``seconds_per_frame``
  each (default 0.2); partial result ``{"frames_rendered": n}``.
- ``examples.storyboard``: writes ``scenes`` scenes (default 8), one per ``seconds``
  (default 0.5); every finished scene is kept as the partial result, so a timeout
  returns the scenes so far.
- ``examples.count_words``: counts the words of ``text`` at once.
- ``examples.fail``: raises ``ValueError(message)``, to see an error and its remedy.

They are plain functions with the signature every operation has, ``(params, task)``:
copy one to start your own module (``--operations mypackage.tasks:OPERATIONS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors import TaskContext

__all__ = ["OPERATIONS", "count_words", "fail", "render", "storyboard"]

_MAX_STEPS = 100_000
_MAX_SECONDS_PER_STEP = 60.0


def _count(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_STEPS:
        raise ValueError(
            f"params.{name} must be a whole number from 0 to {_MAX_STEPS}, got {value!r}"
        )
    return value


def _seconds(params: Mapping[str, Any], name: str, default: float) -> float:
    value = params.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= _MAX_SECONDS_PER_STEP
    ):
        raise ValueError(
            f"params.{name} must be a number of seconds from 0 to {_MAX_SECONDS_PER_STEP:g}, "
            f"got {value!r}"
        )
    return float(value)


def render(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Render ``frames`` frames, reporting progress and the frames done so far."""
    frames = _count(params, "frames", 10)
    pause = _seconds(params, "seconds_per_frame", 0.2)
    for frame in range(1, frames + 1):
        if task.wait_cancelled(pause):
            return {"frames_rendered": frame - 1, "stopped": True}
        task.update_progress(frame / frames)
        task.partial_result = {"frames_rendered": frame}
    return {"frames_rendered": frames, "video": f"render-{frames}-frames.mp4"}


def storyboard(params: Mapping[str, Any], task: TaskContext) -> dict[str, Any]:
    """Write ``scenes`` scenes; every finished one is kept as the partial result."""
    wanted = _count(params, "scenes", 8)
    pause = _seconds(params, "seconds", 0.5)
    scenes: list[str] = []
    while len(scenes) < wanted:
        if task.wait_cancelled(pause):
            break
        scenes.append(f"scene {len(scenes) + 1}")
        task.update_progress(len(scenes) / wanted)
        task.partial_result = {"scenes": list(scenes)}
    return {"scenes": scenes}


def count_words(params: Mapping[str, Any], task: TaskContext) -> dict[str, int]:
    """Count the words of ``params["text"]``."""
    text = params.get("text", "")
    if not isinstance(text, str):
        raise ValueError(f"params.text must be a string, got {type(text).__name__}")
    return {"words": len(text.split())}


def fail(params: Mapping[str, Any], task: TaskContext) -> None:
    """Raise ``ValueError(params["message"])``: a failed task and its error."""
    raise ValueError(str(params.get("message", "this example operation always fails")))


OPERATIONS = {
    "examples.render": render,
    "examples.storyboard": storyboard,
    "examples.count_words": count_words,
    "examples.fail": fail,
}
"""The example operations by name: ``--operations storycore_tasks.examples:OPERATIONS``."""
