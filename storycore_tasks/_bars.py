"""The progress bars the demo and the ``submit --wait`` / ``watch`` commands draw: one
row per task, its name, bar, percentage, time and state (rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["task_bars"]


def task_bars(
    console: Console, *, transient: bool, disable: bool = False, name_width: int = 0
) -> Progress:
    """A rich ``Progress`` whose tasks carry a ``state`` field (``pending``, ...)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    name = f"{{task.description:<{name_width}}}" if name_width else "{task.description}"
    return Progress(
        TextColumn(name, markup=False),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%", markup=False),
        TimeElapsedColumn(),
        TextColumn("{task.fields[state]}", markup=False),
        console=console,
        transient=transient,
        disable=disable,
    )
