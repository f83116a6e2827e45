"""``python -m storycore_tasks``: the ``storycore-tasks`` command."""

from storycore_tasks.cli import main

if __name__ == "__main__":  # the guard also keeps spawned children from running the CLI
    raise SystemExit(main())
