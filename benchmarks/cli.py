"""The command line: ``python -m benchmarks [--quick] [--peers] [--only B1,B3] [--output DIR]``.

Runs the selected scenarios, writes ``latest.json`` and ``latest.md`` into the output
directory, and prints the Markdown table. The exit status is 0 when every scenario ran
(whether or not it met its target) and 1 when one of them failed or leaked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import machine_info, render_markdown, source_info, to_json
from benchmarks.sizes import FULL, QUICK
from benchmarks.suite import OPT_IN, SCENARIOS, Scenario, run_scenarios

__all__ = ["DEFAULT_OUTPUT", "main", "parse_args"]

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the storycore-tasks benchmark suite (issue 7).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run every scenario small (for CI: checks the suite runs, asserts no speed)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="add the peer rows (huey, dramatiq, pebble, ProcessPoolExecutor) to B1, B2, B8 "
        "and B9; a peer not installed reads 'skipped: pip install storycore-tasks[bench]'",
    )
    parser.add_argument(
        "--only",
        metavar="IDS",
        help="comma-separated scenario ids to run, e.g. B1,B3 (default: all but the opt-in "
        "B14, which starts a private Ray cluster and needs the ray extra)",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where latest.json and latest.md are written (default: {DEFAULT_OUTPUT})",
    )
    return parser.parse_args(argv)


def _select(only: str | None) -> list[Scenario]:
    if only is None:
        return list(SCENARIOS)
    wanted = [part.strip().upper() for part in only.split(",") if part.strip()]
    known = {s.id: s for s in SCENARIOS + OPT_IN}
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise SystemExit(
            f"--only: unknown scenario id(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    return [s for s in SCENARIOS + OPT_IN if s.id in wanted]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = _select(args.only)
    sizes = QUICK if args.quick else FULL
    machine = machine_info()
    print(
        f"storycore-tasks benchmarks ({'quick' if args.quick else 'full'}"
        f"{', with peers' if args.peers else ''}): "
        f"{', '.join(s.id for s in selected)} on {machine['nproc']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}",
        file=sys.stderr,
        flush=True,
    )
    started = datetime.now(UTC)
    source = source_info()  # the code imported now is the code measured
    load_before = _load_average()
    start = time.perf_counter()
    results = run_scenarios(selected, sizes, peers=args.peers)
    seconds = time.perf_counter() - start

    document = to_json(results, quick=args.quick, seconds=seconds, started=started, source=source)
    # Other processes on the machine bias every figure; the load averages say how busy
    # it was (the alternation of baselines is what keeps the ratios fair regardless).
    document["peers"] = args.peers
    document["machine"]["load_average_before"] = load_before
    document["machine"]["load_average_after"] = _load_average()
    document["sizes"] = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in _sizes_dict(sizes).items()
    }
    table = render_markdown(results)
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    (output / "latest.json").write_text(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (output / "latest.md").write_text(table, encoding="utf-8")

    print(table, end="")
    print(
        f"\n{len(results)} scenarios in {seconds:.1f} s; results in {output}",
        file=sys.stderr,
        flush=True,
    )
    return 1 if any(r.error is not None for r in results) else 0


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _sizes_dict(sizes: object) -> dict[str, object]:
    return {name: getattr(sizes, name) for name in getattr(sizes, "__slots__", ())}
