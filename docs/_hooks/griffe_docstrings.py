"""Griffe extension: the docstrings' reStructuredText habits, read as Markdown.

The code's docstrings use Sphinx roles (``:class:`Dispatcher```, ``:meth:`tick```) and
doctest examples (``>>> ...``). Markdown would show the roles as they are and fold the
examples into one quoted paragraph, so the API reference shows a role as the code it
names and an example as a code block.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):`~?([^`]+)`")
PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def markdown_docstring(text: str) -> str:
    """``text`` with each role as inline code and each doctest block fenced."""
    text = ROLE.sub(lambda match: f"`{match.group(1)}`", text)
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        prompt = PROMPT.match(lines[index])
        if prompt is None or lines[index].lstrip().startswith("..."):
            out.append(lines[index])
            index += 1
            continue
        # A doctest block: its prompts and their output, up to a blank line.
        indent = prompt.group(1)
        out.append(f"{indent}```pycon")
        while index < len(lines) and lines[index].strip():
            out.append(lines[index])
            index += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class SphinxHabits(griffe.Extension):
    """Rewrite each docstring as it is loaded."""

    def on_instance(
        self,
        *,
        node: ast.AST | griffe.ObjectNode,
        obj: griffe.Object,
        agent: griffe.Visitor | griffe.Inspector,
        **kwargs: Any,
    ) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
