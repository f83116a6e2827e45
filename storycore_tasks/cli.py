"""The ``storycore-tasks`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from storycore_tasks import logging as task_logging
from storycore_tasks.demo import run_demo

__all__ = ["DEMO_DATABASE", "main"]

DEMO_DATABASE = "storycore-demo.db"
"""Where ``storycore-tasks demo`` keeps its tasks unless told otherwise (``--db``,
``--memory``): a file in the current folder."""


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
    storage = demo.add_mutually_exclusive_group()
    storage.add_argument(
        "--db",
        default=DEMO_DATABASE,
        metavar="PATH",
        help=f"the task database the demo keeps its tasks in (default: ./{DEMO_DATABASE}; "
        "every run adds its six tasks, kept for an hour)",
    )
    storage.add_argument(
        "--memory", action="store_true", help="keep the tasks in memory only (write no file)"
    )
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
            store = None if args.memory else Path(args.db)
            where = "memory only" if store is None else f"task database {store.resolve()}"
            print(f"storycore-tasks demo: 6 tasks on 4 workers ({where})\n", flush=True)
            report = run_demo(store=store)
            print("\nFinal status:\n" + report.table, flush=True)
            if store is not None:
                print(
                    f"\nThe database kept {report.earlier_tasks} task(s) from earlier runs "
                    f"and now holds these six too: {store.resolve()}",
                    flush=True,
                )
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
