"""The benchmark suite runs (``python -m benchmarks --quick``) and reports every scenario.

It asserts that the suite runs, lists B1..B13, measures every one of them (B2/B4/B5/B9/B11
in thread and process mode, B8 with the SQLite store, B12 with its load generator, B13
with coroutine operations), and
prints its table; without ``--peers`` it has no peer rows (tests/test_benchmarks_peers.py
runs those). It asserts
no speed: the figures depend on the machine, and the targets are tracked in
BENCHMARKS.md, not in CI.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from numbers import Real
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_IDS = [f"B{n}" for n in range(1, 14)]
MEASURED = set(SCENARIO_IDS)  # every feature a scenario needs has landed
PROCESS_PARTS = {"B2", "B4", "B5", "B9", "B11"}  # scenarios with a measured process-mode part


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One quick run of the whole suite, shared by the tests of this module."""
    output = tmp_path_factory.mktemp("benchmarks")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    return result, output


@pytest.fixture(scope="module")
def report(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict[str, Any]:
    """latest.json of the quick run."""
    result, output = quick_run
    assert result.returncode == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads((output / "latest.json").read_text(encoding="utf-8"))
    return document


def _scenarios(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {scenario["id"]: scenario for scenario in report["scenarios"]}


def _numbers(value: Any) -> list[float]:
    """Every number inside a JSON value (bools excluded)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, Real):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def test_quick_run_exits_cleanly(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The quick suite exits 0 and writes latest.json and latest.md."""
    result, output = quick_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert (output / "latest.json").is_file()
    assert (output / "latest.md").is_file()


def test_every_scenario_is_listed_with_a_status(report: dict[str, Any]) -> None:
    """latest.json lists B1..B13 in order, each measured or pending, none in error."""
    assert [s["id"] for s in report["scenarios"]] == SCENARIO_IDS
    statuses = {s["id"]: s["status"] for s in report["scenarios"]}
    assert set(statuses.values()) <= {"measured", "pending"}, statuses
    assert all(s["error"] is None for s in report["scenarios"])


def test_every_part_is_measured(report: dict[str, Any]) -> None:
    """No scenario is pending any more: every part of every scenario is measured."""
    for scenario in report["scenarios"]:
        assert scenario["status"] == "measured", scenario["id"]
        assert scenario["parts"], scenario["id"]
        for part in scenario["parts"]:
            assert part["status"] == "measured", (scenario["id"], part)


def test_durability_reports_the_ratio_and_commits_per_task(report: dict[str, Any]) -> None:
    """B8 measures the SQLite store against the in-memory one, with several submitters
    and with one: a throughput ratio and the commits per task of each round."""
    parts = _scenarios(report)["B8"]["parts"]
    assert [p["config"]["submitters"] for p in parts] == [4, 1]
    for part in parts:
        assert part["ratios"]["throughput"] > 0
        assert all(c > 0 for c in part["figures"]["commits_per_task_per_round"]), part


def test_process_mode_parts_are_measured(report: dict[str, Any]) -> None:
    """B2 (process-mode load), B4 (forced), B5, B9 and B11 have measured process-mode parts,
    and B5 measures thread mode too."""
    scenarios = _scenarios(report)
    for scenario_id in PROCESS_PARTS:
        process_parts = [p for p in scenarios[scenario_id]["parts"] if p["mode"] == "process"]
        assert process_parts, f"{scenario_id} has no process-mode part"
        for part in process_parts:
            assert part["status"] == "measured", (scenario_id, part)
            assert _numbers(part["figures"]), (scenario_id, part)
    assert {p["mode"] for p in scenarios["B5"]["parts"]} == {"thread", "process"}


def test_measured_parts_carry_numbers(report: dict[str, Any]) -> None:
    """Every measured part has figures with numbers in them and a verdict."""
    measured = [
        (s["id"], p) for s in report["scenarios"] for p in s["parts"] if p["status"] == "measured"
    ]
    assert {scenario_id for scenario_id, _ in measured} == MEASURED
    for scenario_id, part in measured:
        assert _numbers(part["figures"]), (scenario_id, part)
        assert part["result"] in {"met", "not met", "report", "baseline"}, (scenario_id, part)
        assert part["measured"] != "—", (scenario_id, part)


def test_run_records_its_settings(report: dict[str, Any]) -> None:
    """latest.json records the mode, the Python version, the machine, sizes and a timestamp."""
    assert report["mode"] == "quick"
    assert report["python"] == sys.version.split()[0]
    assert report["machine"]["nproc"] >= 1
    assert report["sizes"]["throughput_tasks"] > 0
    assert report["timestamp"]


def test_table_is_printed(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The Markdown table goes to standard output, one or more lines per scenario."""
    result, output = quick_run
    lines = result.stdout.splitlines()
    assert lines[0] == "| id | scenario | measured | baseline | ratio | target | result |"
    for scenario_id in SCENARIO_IDS:
        assert any(line.startswith(f"| {scenario_id} |") for line in lines), scenario_id
    assert (output / "latest.md").read_text(encoding="utf-8") == result.stdout


def test_http_under_concurrency_reports_rates_and_ratios(report: dict[str, Any]) -> None:
    """B12 measures status reads and creates under concurrent clients against the bare
    route: positive requests/s and p99 per round, finite positive ratios, a verdict."""
    parts = _scenarios(report)["B12"]["parts"]
    assert len(parts) == 2
    for part in parts:
        assert all(r > 0 for r in part["figures"]["requests_per_second_per_round"]), part
        assert all(p > 0 for p in part["figures"]["p99_ms_per_round"]), part
        assert all(r > 0 for r in part["baseline_figures"]["requests_per_second_per_round"])
        assert all(math.isfinite(v) and v > 0 for v in part["ratios"].values()), part
        assert part["result"] in {"met", "not met"}, part
        assert part["config"]["clients"] > 1


def test_no_peer_rows_without_the_flag(report: dict[str, Any]) -> None:
    """Without --peers the suite runs no peer: no row is a peer row."""
    assert report["peers"] is False
    assert not [
        p["scenario"]
        for s in report["scenarios"]
        for p in s["parts"]
        if p["scenario"].startswith("peers")
    ]


def test_instruction_counts_read_callgrinds_total_and_refuse_a_bad_tree(tmp_path: Path) -> None:
    """``python -m benchmarks.instructions``: the total is read from callgrind's output
    (either spelling), and a path that is not a source tree is refused before any run."""
    from benchmarks.instructions import instructions_per_task, main, parse_total

    assert parse_total(b"version: 1\ncmd: python\nsummary: 123456\n") == 123456
    assert parse_total(b"events: Ir\ntotals: 42\n") == 42
    with pytest.raises(ValueError, match="no 'summary:'"):
        parse_total(b"events: Ir\n")
    with pytest.raises(ValueError, match="must be more than"):
        instructions_per_task(tmp_path, 3000, 1000)
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path)])
    assert exited.value.code == 2


def test_cpu_per_task_times_this_tree_and_refuses_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m benchmarks.cpu_per_task``: a source tree's CPU per task is read from
    two real runs of B1's workload and shown with its ratio to the first tree; a path
    that is not a source tree, or sizes the wrong way round, are refused before any run."""
    from benchmarks.cpu_per_task import cpu_per_task, cpu_seconds, main

    tree = Path(__file__).resolve().parent.parent
    assert cpu_seconds(tree, 20) > 0.0
    with pytest.raises(ValueError, match="must be more than"):
        cpu_per_task(tree, 300, 100)
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path)])
    assert exited.value.code == 2
    assert main([str(tree), "--small", "20", "--large", "220", "--rounds", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tree}\t")
    assert "µs CPU/task" in line
    assert line.endswith("1.000x the first tree's speed")
