"""The code stays ruff clean and mypy --strict clean (the suite enforces it, so CI does)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.type_check import mypy_strict

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_check_is_clean() -> None:
    """ruff finds nothing in the packages, the tests and the benchmarks."""
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    """Every file is formatted as ruff formats it."""
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean(mypy_cache: Path) -> None:
    """actors/ and storycore_tasks/ type-check under mypy --strict."""
    result = mypy_strict("actors", "storycore_tasks", cwd=ROOT, cache_dir=mypy_cache)
    assert result.returncode == 0, result.stdout + result.stderr
