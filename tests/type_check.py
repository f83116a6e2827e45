"""mypy --strict run the way the tests run it: in a child process, against the sources
of this tree, with one cache shared by every check of the session.

Each check of a user's script reads the whole of ``actors`` and ``storycore_tasks`` (and
the standard library's stubs) before its own file; with a cache made fresh for the
session, only the first check pays for that. The sources do not change during a run, so
a warm cache gives the answer a cold one does (mypy keys it on the options as well).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import actors

PROJECT_ROOT = Path(actors.__file__).resolve().parent.parent


def mypy_strict(*targets: str, cwd: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    """``mypy --strict TARGETS`` with the project's configuration, run in ``cwd``."""
    env = dict(os.environ)
    # The editable install is an import hook mypy cannot follow: point it at the sources.
    env["MYPYPATH"] = str(PROJECT_ROOT)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--cache-dir",
            str(cache_dir),
            *targets,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env=env,
    )
