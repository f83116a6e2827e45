"""``python -m benchmarks --peers`` (issue 17) runs its peer rows and reports them.

One quick run of B1, B2, B8 and B9 with ``--peers`` in a subprocess: every contender
has a measured row naming the peer's mode, with positive rates and finite ratios, and
the targets of issue 17 carry a verdict. A second run with the peers made
unimportable shows the rows that need them as skipped, the rest measured, exit 0.
Like tests/test_benchmarks.py, it asserts no speed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import peers

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = "skipped: pip install storycore-tasks[bench]"
VERDICTS = {"met", "not met"}


def _run(output: Path, *, hide_peers: bool) -> dict[str, Any]:
    """The quick peers run's latest.json (``hide_peers``: with huey, dramatiq and pebble
    unimportable, as when the bench extra is not installed)."""
    hide = "import sys; [sys.modules.__setitem__(m, None) for m in sys.argv[1:4]]; " * hide_peers
    code = f"{hide}import sys; from benchmarks.cli import main; sys.exit(main(sys.argv[4:]))"
    only = "B1,B9" if hide_peers else "B1,B2,B8,B9"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            *peers.PEER_MODULES,
            "--quick",
            "--peers",
            "--only",
            only,
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads((output / "latest.json").read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("peers"), hide_peers=False)


def _peer_parts(report: dict[str, Any], scenario_id: str) -> list[dict[str, Any]]:
    (scenario,) = (s for s in report["scenarios"] if s["id"] == scenario_id)
    assert scenario["error"] is None, scenario
    return [p for p in scenario["parts"] if p["scenario"].startswith("peers")]


def _contenders(parts: list[dict[str, Any]]) -> set[str]:
    return {p["config"]["contender"] for p in parts if "contender" in p["config"]}


def _finite_positive(values: dict[str, float]) -> bool:
    return bool(values) and all(math.isfinite(v) and v > 0 for v in values.values())


def test_the_run_records_that_peers_were_asked_for(report: dict[str, Any]) -> None:
    """latest.json says the run had --peers."""
    assert report["peers"] is True


def test_b1_has_a_row_per_contender_with_positive_rates(report: dict[str, Any]) -> None:
    """B1's peer rows: ours (wait each, wait last), huey MemoryHuey and dramatiq, each
    with positive tasks/s per round, finite ratios and the peer's mode named."""
    parts = _peer_parts(report, "B1")
    assert _contenders(parts) == {
        "storycore-tasks",
        "storycore-tasks, submit all then wait the last",
        "huey MemoryHuey",
        "dramatiq StubBroker",
    }
    for part in parts:
        assert part["status"] == "measured", part
        assert all(r > 0 for r in part["figures"]["tasks_per_second_per_round"]), part
        assert _finite_positive(part["ratios"]), part
        assert part["config"]["peer_mode"], part
    (ours,) = (p for p in parts if p["config"]["contender"] == "storycore-tasks")
    assert set(ours["ratios"]) == {"throughput", "vs huey", "vs dramatiq"}
    assert ours["result"] in VERDICTS


def test_b2_reads_status_under_load_for_every_contender(report: dict[str, Any]) -> None:
    """B2's peer rows: a status read of a completed task while the pool's workers spin,
    timed for ours, huey and dramatiq; p50 ≤ p99, both positive; ours has a verdict."""
    parts = _peer_parts(report, "B2")
    assert _contenders(parts) == {"storycore-tasks", "huey MemoryHuey", "dramatiq StubBroker"}
    for part in parts:
        latency = part["figures"]["latency_us"]
        assert 0 < latency["p50"] <= latency["p99"], part
        assert latency["n"] == part["config"]["calls_per_round"] * part["config"]["rounds"]
        assert _finite_positive(part["ratios"]), part
    (ours,) = (p for p in parts if p["config"]["contender"] == "storycore-tasks")
    assert ours["result"] in VERDICTS


def test_b8_compares_our_store_with_huey_sqlite(report: dict[str, Any]) -> None:
    """B8's peer rows: ours with the SQLite and the in-memory store, huey SqliteHuey;
    the durable row carries its ratios to both and a verdict."""
    parts = _peer_parts(report, "B8")
    assert _contenders(parts) == {
        "storycore-tasks, SQLite store",
        "storycore-tasks, in-memory store",
        "huey SqliteHuey",
    }
    for part in parts:
        assert all(r > 0 for r in part["figures"]["tasks_per_second_per_round"]), part
    (durable,) = (p for p in parts if p["config"]["contender"] == "storycore-tasks, SQLite store")
    assert set(durable["ratios"]) == {"throughput", "vs in-memory", "vs huey SqliteHuey"}
    assert _finite_positive(durable["ratios"])
    assert durable["result"] in VERDICTS


def test_b9_measures_process_pools_and_cold_starts(report: dict[str, Any]) -> None:
    """B9's peer rows: process-isolation throughput of ours (default and reused
    children), pebble and ProcessPoolExecutor; a cold start row for ours, pebble and
    ProcessPoolExecutor with a positive time; ours' rows have verdicts."""
    parts = _peer_parts(report, "B9")
    throughput = [p for p in parts if "contender" in p["config"]]
    assert _contenders(throughput) == {
        "storycore-tasks, default max_tasks_per_child",
        "storycore-tasks, children reused",
        "pebble ProcessPool",
        "ProcessPoolExecutor(4)",
    }
    for part in throughput:
        assert part["mode"] == "process", part
        assert all(r > 0 for r in part["figures"]["tasks_per_second_per_round"]), part
        assert _finite_positive(part["ratios"]), part
    cold = [p for p in parts if "cold start" in p["scenario"]]
    assert len(cold) == 3
    assert all(p["figures"]["median_ms"] > 0 for p in cold)
    verdicts = [p["result"] for p in parts if p["target"] not in {"report", "report (peer)"}]
    assert len(verdicts) == 2
    assert set(verdicts) <= VERDICTS


def test_missing_peers_give_skipped_rows_and_the_rest_measured(tmp_path: Path) -> None:
    """With huey, dramatiq and pebble unimportable, their rows (and ours' verdicts
    against them) read 'skipped: pip install storycore-tasks[bench]'; our own rows and
    ProcessPoolExecutor's are still measured, and the run exits 0."""
    report = _run(tmp_path, hide_peers=True)
    b1, b9 = _peer_parts(report, "B1"), _peer_parts(report, "B9")
    skipped = [p for p in b1 + b9 if p["status"] == "not measured"]
    assert {p["scenario"].rpartition(": ")[2] for p in skipped} == {
        "huey MemoryHuey",
        "dramatiq StubBroker",
        "pebble ProcessPool",
    }
    assert all(p["result"] == SKIPPED for p in skipped)
    (ours_b1,) = (p for p in b1 if p["config"].get("contender") == "storycore-tasks")
    assert ours_b1["status"] == "measured"
    assert ours_b1["result"] == SKIPPED  # its target is against the missing peers
    assert "ProcessPoolExecutor(4)" in _contenders(b9)


def test_missing_names_only_modules_that_cannot_be_imported() -> None:
    """peers.missing keeps the modules that are not importable, in order."""
    absent = "storycore_tasks_no_such_peer"
    assert peers.missing("json", absent) == [absent]
