"""The progress bars the demo and the ``submit --wait`` / ``watch`` commands draw: one
row per task, its name, bar, percentage, time and state (rich)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.progress import Progress

__all__ = ["task_bars"]


_RANK = {"running": 0, "retry_scheduled": 1, "pending": 2}  # then every ended state


def task_bars(
    console: Console,
    *,
    transient: bool,
    disable: bool = False,
    name_width: int = 0,
    max_rows: int | None = None,
) -> Progress:
    """A rich ``Progress`` whose tasks carry a ``state`` field (``pending``, ...). With
    ``max_rows``, the bars are drawn running first, then pending, then ended ones (each
    in the order added), at most ``max_rows`` of them and a "+K more" line: a terminal
    never scrolls with hundreds of tasks."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    class RankedProgress(Progress):
        def get_renderables(self) -> Iterable[RenderableType]:
            from rich.text import Text

            assert max_rows is not None
            ranked = sorted(self.tasks, key=lambda task: (_rank(task.fields), task.id))
            yield self.make_tasks_table(ranked[:max_rows])
            if len(ranked) > max_rows:
                yield Text(f"+{len(ranked) - max_rows} more", style="dim")

    name = f"{{task.description:<{name_width}}}" if name_width else "{task.description}"
    kind = Progress if max_rows is None else RankedProgress
    return kind(
        TextColumn(name, markup=False),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%", markup=False),
        TimeElapsedColumn(),
        TextColumn("{task.fields[state]}", markup=False),
        console=console,
        transient=transient,
        disable=disable,
    )


def _rank(fields: Mapping[str, Any]) -> int:
    state = str(fields.get("state", "")).split(" ", 1)[0]
    return _RANK.get(state, len(_RANK))
