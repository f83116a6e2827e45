"""The ``storycore-tasks`` command: the demo scenario, its log and its status table.

``cli.main`` configures structlog for the whole process (that is its job); every test
restores structlog's defaults afterwards.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from storycore_tasks.cli import main

BANNER = "storycore-tasks demo: 6 tasks on 4 workers"
TABLE_MARKER = "Final status:"
DATABASE_NOTE = "The database kept"
TASK_NAMES = [
    "render intro",
    "narrate ch. 1",
    "llm storyboard",
    "render finale",
    "render credits",
    "denoise audio",
]
_CONSOLE_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<event>\S+)(?P<rest>.*)$")
_KEY_VALUE = re.compile(r"(\w+)=(\S+)")


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """cli.main configures structlog globally: put the defaults back after each test."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo keeps its tasks in ./storycore-demo.db: run it in a folder of the test's."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _split_output(out: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """(log lines, table rows by task name) from the demo's standard output."""
    assert out.startswith(BANNER), out[:200]
    _banner, _, rest = out.partition("\n")
    head, marker, table = rest.partition(TABLE_MARKER)
    assert marker == TABLE_MARKER, out
    table, _, _ = table.partition(DATABASE_NOTE)
    log_lines = [line for line in head.splitlines() if line.strip()]
    return log_lines, _parse_table(table)


def _parse_table(text: str) -> dict[str, dict[str, str]]:
    """Parse the fixed-width table using the dashed rule under its header."""
    lines = [line for line in text.splitlines() if line.strip()]
    header, rule, *rows = lines
    spans = [m.span() for m in re.finditer(r"-+", rule)]
    names = [header[a:b].strip() for a, b in spans]
    # The last column runs to the end of the line.
    spans[-1] = (spans[-1][0], 10_000)
    parsed: dict[str, dict[str, str]] = {}
    for row in rows:
        cells = dict(zip(names, (row[a:b].strip() for a, b in spans), strict=True))
        parsed[cells["task"]] = cells
    return parsed


def _parse_console_line(line: str) -> tuple[str, dict[str, str]]:
    """(event, key=value fields) of one ConsoleRenderer line."""
    match = _CONSOLE_LINE.match(line)
    assert match is not None, line
    return match["event"], dict(_KEY_VALUE.findall(match["rest"]))


def _check_table(rows: dict[str, dict[str, str]]) -> None:
    assert list(rows) == TASK_NAMES
    assert {name: row["status"] for name, row in rows.items()} == {
        "render intro": "completed",
        "narrate ch. 1": "completed",
        "llm storyboard": "failed",
        "render finale": "cancelled",
        "render credits": "cancelled",
        "denoise audio": "failed",
    }
    assert rows["render intro"]["progress"] == "100%"
    assert rows["narrate ch. 1"]["progress"] == "100%"
    assert rows["llm storyboard"]["error"] == "TIMEOUT"
    assert "scene" in rows["llm storyboard"]["result / partial result"]
    assert rows["render finale"]["error"] == "CANCELLED"
    assert rows["render credits"]["error"] == "CANCELLED"
    assert rows["render credits"]["progress"] == "0%"
    assert rows["denoise audio"]["error"] == "WORKER_CRASHED"  # a segfault, contained


def test_demo_prints_lifecycle_log_and_final_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo` prints the lifecycle log, then a table: 2 completed, 1 timeout, 2 cancelled,
    1 crashed child process."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out

    log_lines, rows = _split_output(out)
    _check_table(rows)
    events = [_parse_console_line(line) for line in log_lines]
    names = [event for event, _ in events]
    assert names.count("task.created") == 6
    assert names.count("supervisor.started") == 1
    assert names.count("supervisor.stopped") == 1
    assert names.count("task.completed") == 2
    assert names.count("task.timed_out") == 1
    assert names.count("task.cancelled") == 2
    assert names.count("task.failed") == 1


def test_demo_never_starts_the_task_cancelled_while_pending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`demo`: "render credits" is cancelled while pending, so its task never starts."""
    assert main(["demo"]) == 0
    log_lines, rows = _split_output(capsys.readouterr().out)
    assert rows["render credits"]["status"] == "cancelled"

    events = [_parse_console_line(line) for line in log_lines]
    # Tasks are created (and logged) in the scenario's order.
    created = [fields["task_id"] for event, fields in events if event == "task.created"]
    ids = dict(zip(TASK_NAMES, created, strict=True))
    started = {fields["task_id"] for event, fields in events if event == "task.started"}
    never_started = {ids["render credits"]}
    assert started == {ids[name] for name in TASK_NAMES} - never_started
    cancel_requests = {
        fields["task_id"]: fields["state"]
        for event, fields in events
        if event == "task.cancel_requested"
    }
    assert cancel_requests == {ids["render credits"]: "pending", ids["render finale"]: "running"}
    timed_out = [fields for event, fields in events if event == "task.timed_out"]
    assert [f["task_id"] for f in timed_out] == [ids["llm storyboard"]]
    assert timed_out[0]["has_partial_result"] == "True"


def test_demo_keeps_its_tasks_in_a_database_file_a_second_run_recovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """By default the demo writes ./storycore-demo.db (and says where); a second run
    opens it, logs registry.recovered with the first run's six terminal tasks, and says
    it kept them; --memory writes no file."""
    database = tmp_path / "storycore-demo.db"
    assert main(["demo"]) == 0
    first = capsys.readouterr().out
    assert str(database) in first.splitlines()[0]
    assert database.is_file()
    assert f"kept 0 task(s) from earlier runs and now holds these six too: {database}" in first

    assert main(["demo"]) == 0
    second = capsys.readouterr().out
    log_lines, rows = _split_output(second)
    _check_table(rows)
    recovered = [
        fields
        for event, fields in map(_parse_console_line, log_lines)
        if event == "registry.recovered"
    ]
    assert len(recovered) == 1
    assert recovered[0]["terminal"] == "6"
    assert recovered[0]["interrupted"] == "0"
    assert "kept 6 task(s) from earlier runs" in second

    other = tmp_path / "elsewhere"
    other.mkdir()
    chosen_db = other / "chosen.db"
    assert main(["demo", "--db", str(chosen_db)]) == 0
    assert chosen_db.is_file()
    capsys.readouterr()
    database.unlink()
    assert main(["demo", "--memory"]) == 0
    assert "memory only" in capsys.readouterr().out.splitlines()[0]
    assert not database.exists()


def test_console_script_demo_json_exits_0_with_json_log_lines(tmp_path: Path) -> None:
    """The installed `storycore-tasks demo --json` exits 0; every line of standard output
    is JSON (the log, then a demo.finished summary); the banner and the table for people
    go to standard error."""
    script = shutil.which("storycore-tasks")
    if script is not None:
        command = [script, "demo", "--json"]
    else:
        command = [
            sys.executable,
            "-c",
            "from storycore_tasks.cli import main; raise SystemExit(main(['demo', '--json']))",
        ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr

    _no_log, rows = _split_output(done.stderr)
    _check_table(rows)
    records = [json.loads(line) for line in done.stdout.splitlines()]
    summary = records.pop()
    assert summary["event"] == "demo.finished"
    assert [t["task"] for t in summary["tasks"]] == TASK_NAMES
    assert all("event" in r and "level" in r and "timestamp" in r for r in records)
    task_events = [r for r in records if r["event"].startswith("task.")]
    assert task_events
    assert all("task_id" in r for r in task_events)
    assert [r["event"] for r in records].count("task.created") == 6


def test_bad_usage_exits_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command is a usage error: SystemExit with code 2 and a usage message."""
    with pytest.raises(SystemExit) as exited:
        main(["nope"])
    assert exited.value.code == 2
    assert "usage: storycore-tasks" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Running without a command is a usage error: SystemExit with code 2."""
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "usage: storycore-tasks" in capsys.readouterr().err
