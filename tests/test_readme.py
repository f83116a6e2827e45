"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_readme_has_examples() -> None:
    """The README shows runnable Python examples (so the test below checks something)."""
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block-{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(source: str) -> None:
    """Each ```python block of the README executes without error (its asserts included)."""
    # A block that calls logging.configure() changes structlog process-wide; the autouse
    # fixture in conftest.py resets it after the test.
    exec(compile(source, str(README), "exec"), {"__name__": "readme_example"})
