"""Result rows, the Markdown table and ``latest.json``.

A scenario (B1..B12) yields one or more :class:`Part` rows: one per variant it measures
(logging on / off, idle / loaded, thread / process mode, each retained-record count).
A part is ``measured`` (it carries numbers), ``pending`` (its feature has not landed;
it carries the reason), ``not measured`` (it could not be measured honestly in the
time allowed, or its peer is not installed; it says why) or ``error``. The result
column reads ``met``, ``not met``, ``report`` (no target for this part), ``baseline``,
``pending (needs …)``, ``skipped: pip install …`` (a peer missing) or the reason it
was not measured.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Part",
    "PartStatus",
    "ScenarioResult",
    "machine_info",
    "pending_part",
    "render_markdown",
    "source_info",
    "to_json",
    "verdict",
]

PartStatus = Literal["measured", "pending", "not measured", "error"]


def verdict(met: bool) -> str:
    return "met" if met else "not met"


@dataclass(slots=True)
class Part:
    """One row of the table.

    ``measured`` and ``baseline`` are the human-readable cells; ``figures`` and
    ``baseline_figures`` hold the same numbers (and more) for ``latest.json``.
    ``ratios`` are supervisor / baseline figures measured in the same run.
    """

    scenario: str
    status: PartStatus
    target: str
    result: str
    measured: str = "—"
    baseline: str = "—"
    ratios: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    baseline_figures: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    mode: Literal["thread", "process", "async"] | None = None
    reason: str | None = None

    def ratio_cell(self) -> str:
        if not self.ratios:
            return "—"
        return ", ".join(f"{name} {value:.3g}x" for name, value in self.ratios.items())


def pending_part(
    scenario: str,
    target: str,
    needs: str,
    *,
    mode: Literal["thread", "process", "async"] | None = None,
) -> Part:
    """A row for a part the suite cannot measure yet: it needs ``needs``."""
    return Part(
        scenario=scenario,
        status="pending",
        target=target,
        result=f"pending (needs {needs})",
        mode=mode,
        reason=f"needs {needs}; this suite does not measure it yet",
    )


@dataclass(slots=True)
class ScenarioResult:
    """Everything one scenario produced, and how long it took."""

    id: str
    title: str
    parts: list[Part]
    seconds: float
    error: str | None = None

    @property
    def status(self) -> str:
        """``measured`` if any part carries numbers, ``error`` if the scenario failed,
        else ``pending``."""
        if self.error is not None:
            return "error"
        if any(p.status == "measured" for p in self.parts):
            return "measured"
        return "pending"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(results: list[ScenarioResult]) -> str:
    """The table: one line per part, in scenario order."""
    lines = [
        "| id | scenario | measured | baseline | ratio | target | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in results:
        parts = scenario.parts
        if scenario.error is not None:
            parts = [
                Part(
                    scenario=scenario.title,
                    status="error",
                    target="—",
                    result=f"error: {scenario.error}",
                )
            ]
        for part in parts:
            cells = [
                scenario.id,
                part.scenario,
                part.measured,
                part.baseline,
                part.ratio_cell(),
                part.target,
                part.result,
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def machine_info() -> dict[str, Any]:
    """CPU count, CPU model (from /proc/cpuinfo where there is one), Python, platform."""
    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "nproc": len(affinity(0)) if affinity is not None else os.cpu_count(),
        "cpu_model": cpu_model,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def source_info() -> dict[str, Any]:
    """The library's git commit and its uncommitted changes, so a table can be traced
    to the code it measured (empty values outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.rstrip("\n") if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "actors", "storycore_tasks")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "uncommitted_library_changes": [line[3:] for line in changed.splitlines()],
    }


def to_json(
    results: list[ScenarioResult],
    *,
    quick: bool,
    seconds: float,
    started: datetime,
    source: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``latest.json``: machine, run settings and every part's numbers."""
    return {
        "suite": "storycore-tasks benchmarks (issue 7)",
        "timestamp": started.astimezone(UTC).isoformat(),
        "mode": "quick" if quick else "full",
        "duration_seconds": round(seconds, 1),
        "python": sys.version.split()[0],
        "machine": machine_info(),
        "source": source,
        "scenarios": [
            {
                "id": r.id,
                "title": r.title,
                "status": r.status,
                "error": r.error,
                "seconds": round(r.seconds, 2),
                "parts": [asdict(p) for p in r.parts],
            }
            for r in results
        ],
    }
