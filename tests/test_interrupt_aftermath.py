"""After the stop ladder interrupted a thread task, the process can still be profiled
and traced: an interrupt is drained, never cleared (clearing left CPython's eval
breaker signalled, and cProfile or ``sys.settrace`` in any thread then looped for ever).
Run in a process of its own (tests/interrupted_host.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_profiler_and_a_tracer_run_after_an_interrupt() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.interrupted_host"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["interrupted: 1", "profiled", "traced"], done.stdout
