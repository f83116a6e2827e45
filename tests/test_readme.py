"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

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


PYTEST_FILES = [block for block in BLOCKS if re.match(r"# (test_\w+\.py)\n", block)]


def test_the_readme_shows_a_pytest_file() -> None:
    """The "Testing your operations" page shows a test file (so the test below runs)."""
    assert PYTEST_FILES


@pytest.mark.parametrize(
    "source", PYTEST_FILES, ids=[f"file-{i}" for i in range(len(PYTEST_FILES))]
)
def test_readme_pytest_file_passes(source: str, pytester: pytest.Pytester) -> None:
    """A README block that is a pytest file (first line ``# test_x.py``) passes when run by
    pytest with the plugin's fixtures, every test in it."""
    match = re.match(r"# (test_\w+)\.py\n", source)
    assert match is not None
    pytester.makepyfile(**{match.group(1): source})
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    tests = len(re.findall(r"^def test_", source, re.MULTILINE))
    result.assert_outcomes(passed=tests)
