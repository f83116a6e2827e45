"""The Python examples of the README and of the documentation pages run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.type_check import mypy_strict

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_PAGES = sorted((ROOT / "docs").rglob("*.md"))
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _examples(page: Path) -> list[tuple[str, str]]:
    """(id, source) of each ```python block of ``page``; the id names the page."""
    name = page.relative_to(ROOT).as_posix()
    blocks = FENCE.findall(page.read_text(encoding="utf-8"))
    return [(f"{name}:{index}", block) for index, block in enumerate(blocks)]


EXAMPLES = [example for page in [README, *DOC_PAGES] for example in _examples(page)]
BLOCKS = [source for _, source in EXAMPLES]
IDS = [example_id for example_id, _ in EXAMPLES]
PYTEST_FILE = re.compile(r"# (test_\w+)\.py\n")
MYPY_FILE = re.compile(r"# (\w+)\.py: checked by mypy --strict\n")


def test_the_readme_has_an_example() -> None:
    """The README itself shows a runnable example (the quick start's first task)."""
    assert _examples(README)


def test_the_docs_have_examples() -> None:
    """The pages show runnable Python examples (so the test below checks something),
    those that moved out of the README included: every concept with an example has one."""
    pages = {example_id.split(":")[0] for example_id in IDS}
    assert len(BLOCKS) >= 15
    for page in [
        "docs/getting-started.md",
        "docs/concepts/store.md",
        "docs/concepts/policies.md",
        "docs/concepts/self-healing.md",
        "docs/concepts/logging.md",
        "docs/how-to/storycore.md",
        "docs/how-to/http-service.md",
        "docs/how-to/testing.md",
    ]:
        assert page in pages


@pytest.mark.parametrize("source", BLOCKS, ids=IDS)
def test_readme_example_runs(source: str) -> None:
    """Each ```python block of the README and the docs executes without error (its
    asserts included)."""
    # A block that calls logging.configure() changes structlog process-wide; the autouse
    # fixture in conftest.py resets it after the test.
    exec(compile(source, "readme_example", "exec"), {"__name__": "readme_example"})


PYTEST_FILES = [(i, block) for i, block in EXAMPLES if PYTEST_FILE.match(block)]


def test_the_readme_shows_a_pytest_file() -> None:
    """The "Test your operations" page shows a test file (so the test below runs)."""
    assert any(example_id.startswith("docs/how-to/testing.md") for example_id, _ in PYTEST_FILES)


@pytest.mark.parametrize(
    "source", [block for _, block in PYTEST_FILES], ids=[i for i, _ in PYTEST_FILES]
)
def test_readme_pytest_file_passes(source: str, pytester: pytest.Pytester) -> None:
    """A block that is a pytest file (first line ``# test_x.py``) passes when run by
    pytest with the plugin's fixtures, every test in it."""
    match = PYTEST_FILE.match(source)
    assert match is not None
    pytester.makepyfile(**{match.group(1): source})
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    tests = len(re.findall(r"^def test_", source, re.MULTILINE))
    result.assert_outcomes(passed=tests)


TYPED_FILES = [(i, block) for i, block in EXAMPLES if MYPY_FILE.match(block)]


def test_the_getting_started_page_shows_a_typed_example() -> None:
    """Getting started has a typed example (so the test below checks something)."""
    assert any(example_id.startswith("docs/getting-started.md") for example_id, _ in TYPED_FILES)


@pytest.mark.parametrize(
    "source", [block for _, block in TYPED_FILES], ids=[i for i, _ in TYPED_FILES]
)
def test_typed_example_passes_mypy_strict(source: str, tmp_path: Path, mypy_cache: Path) -> None:
    """A block marked ``# name.py: checked by mypy --strict`` type-checks as a user's
    file would: typed operations (``Mapping[str, Any]``, ``TaskContext``) are accepted by
    ``create_task``, and the optional status must be handled."""
    match = MYPY_FILE.match(source)
    assert match is not None
    example = tmp_path / f"{match.group(1)}.py"
    example.write_text(source, encoding="utf-8")
    result = mypy_strict(str(example), cwd=tmp_path, cache_dir=mypy_cache)
    assert result.returncode == 0, result.stdout + result.stderr
