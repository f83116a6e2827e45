"""The ``storycore-tasks`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from storycore_tasks import logging as task_logging
from storycore_tasks.demo import run_demo

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="storycore-tasks",
        description="StoryCore's actor-model task supervisor.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a short scripted scenario and print its lifecycle log and status table",
    )
    demo.add_argument("--json", action="store_true", help="log JSON lines instead of text")
    demo.add_argument(
        "--log-level",
        default="info",
        choices=task_logging.LEVELS,
        help="lowest log level shown (default: info; debug shows progress events)",
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        try:
            task_logging.configure(json=args.json, level=args.log_level, stream=sys.stdout)
            print("storycore-tasks demo: 6 tasks on 4 workers\n", flush=True)
            table = run_demo()
            print("\nFinal status:\n" + table, flush=True)
        except BrokenPipeError:
            # The reader went away (``| head``): stop quietly, as the Python docs advise.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        return 0
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse exits
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
