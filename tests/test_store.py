"""The durable SQLite store: opening and refusing files, locking, URLs, strict JSON,
what survives a restart (or a kill), group commit and retention on disk.

A manager holds its database with an EXCLUSIVE lock, so every test inspects the file with
a plain sqlite3 connection only after that manager has shut down.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

import actors._storage.sqlite_schema
from actors import (
    ManualClock,
    SqliteStore,
    StoreLockedError,
    StoreOpenError,
    StoreVersionError,
    StoreWriteError,
    TaskContext,
)
from actors._storage.sqlite_schema import SCHEMA_VERSION
from actors.testing import wait_until
from storycore_tasks import ErrorCodes, TaskManager
from storycore_tasks.manager import is_task_id
from tests.gates import Gate, settle

# -- helpers ----------------------------------------------------------------------------


def echo(params: Mapping[str, Any], task: TaskContext) -> Any:
    return dict(params)


def noop(params: Mapping[str, Any], task: TaskContext) -> None:
    return None


def explode(params: Mapping[str, Any], task: TaskContext) -> None:
    raise ValueError("bad scene")


def returning(value: Any) -> Callable[[Mapping[str, Any], TaskContext], Any]:
    def operation(params: Mapping[str, Any], task: TaskContext) -> Any:
        return value

    return operation


def query(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read with a plain sqlite3 connection (the manager must be down)."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql, args).fetchall()


def execute(path: Path, sql: str, args: tuple[Any, ...] = ()) -> None:
    """Change the file behind the manager's back, as another program would."""
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(sql, args)
        connection.commit()


def dump(path: Path) -> list[str]:
    """The database's whole content (schema and rows) as SQL text."""
    with closing(sqlite3.connect(path)) as connection:
        return list(connection.iterdump())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def database_with_one_task(path: Path) -> str:
    """A store holding one completed task; returns its id."""
    with TaskManager(num_workers=1, store=path) as manager:
        task_id = manager.create_task(echo, {"scene": 1})
        manager.wait(task_id, timeout=10)
    return task_id


# -- opening a store ----------------------------------------------------------------------


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    """A new file is created at SCHEMA_VERSION, in WAL mode with incremental vacuum, and
    holds the task; a clean shutdown checkpoints it into the one file."""
    path = tmp_path / "tasks.db"
    task_id = database_with_one_task(path)
    assert query(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert query(path, "PRAGMA journal_mode") == [("wal",)]
    assert query(path, "PRAGMA auto_vacuum") == [(2,)]  # 2: incremental
    assert query(path, "SELECT task_id, status, result FROM tasks") == [
        (task_id, "completed", '{"scene":1}')
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.db"]


def make_newer(path: Path) -> None:
    database_with_one_task(path)
    execute(path, "UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))


def make_foreign(path: Path) -> None:
    execute(path, "CREATE TABLE notes (body TEXT)")
    execute(path, "INSERT INTO notes VALUES ('keep me')")


def test_a_newer_schema_is_refused_and_its_content_left_alone(tmp_path: Path) -> None:
    """A database written by a newer schema: StoreVersionError naming the file and both
    versions; no table or row of it changes."""
    path = tmp_path / "tasks.db"
    make_newer(path)
    before = dump(path)
    with pytest.raises(StoreVersionError) as raised:
        TaskManager(store=path)
    message = str(raised.value)
    assert str(path) in message
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"up to version {SCHEMA_VERSION}" in message
    assert raised.value.location == str(path)
    assert dump(path) == before


@pytest.mark.parametrize("make", [make_newer, make_foreign], ids=["newer", "foreign"])
def test_a_refused_file_is_byte_for_byte_unchanged(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    """A file the store refuses to open is not written at all."""
    path = tmp_path / "tasks.db"
    make(path)
    before = digest(path)
    with pytest.raises(StoreOpenError if make is make_foreign else StoreVersionError):
        TaskManager(store=path)
    assert digest(path) == before


def random_bytes(path: Path) -> tuple[Path, str]:
    path.write_bytes(os.urandom(16384))
    return path, "is damaged or is not a SQLite database"


def a_folder(path: Path) -> tuple[Path, str]:
    path.mkdir()
    return path, "is a folder"


def other_program(path: Path) -> tuple[Path, str]:
    make_foreign(path)
    return path, "another program (tables: notes)"


def damaged(column: str, text: str) -> Callable[[Path], tuple[Path, str]]:
    def build(path: Path) -> tuple[Path, str]:
        task_id = database_with_one_task(path)
        execute(path, f"UPDATE tasks SET {column} = ? WHERE task_id = ?", (text, task_id))
        return path, repr(task_id)

    return build


@pytest.mark.parametrize(
    "build",
    [
        random_bytes,
        a_folder,
        other_program,
        damaged("params", '{"scene": '),
        damaged("result", "{bad"),
        damaged("outcome", "not json"),
        damaged("outcome", '{"kind": "exploded"}'),
        damaged("status", "bogus"),
        damaged("outcome", "1"),
        damaged("params", "[1]"),
    ],
    ids=[
        "random-bytes",
        "folder",
        "other-program",
        "params-json",
        "result-json",
        "outcome-json",
        "outcome-kind",
        "status",
        "scalar-outcome",
        "params-not-an-object",
    ],
)
def test_an_unreadable_store_raises_store_open_error(
    tmp_path: Path, build: Callable[[Path], tuple[Path, str]]
) -> None:
    """Random bytes, a folder, another program's database or a damaged row: the manager
    refuses to start with StoreOpenError naming the file (and the task of a damaged row),
    leaving no thread behind (checked by the autouse leak fixture)."""
    path, expected = build(tmp_path / "tasks.db")
    with pytest.raises(StoreOpenError) as raised:
        TaskManager(store=path)
    message = str(raised.value)
    assert str(path) in message
    assert expected in message
    assert raised.value.location == str(path)
    assert not isinstance(raised.value, StoreLockedError)


def test_an_older_file_is_migrated_and_keeps_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one more migration step, an existing file is brought to the new version on
    open, its records read back unchanged, and it keeps working."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=2, store=path) as manager:
        ids = [manager.create_task(echo, {"n": n}, user="ann") for n in range(3)]
        for task_id in ids:
            manager.wait(task_id, timeout=10)
    with TaskManager(store=path) as manager:
        before = [manager.get_task_status(task_id) for task_id in ids]

    newer = SCHEMA_VERSION + 1
    migrations = {
        **actors._storage.sqlite_schema.MIGRATIONS,
        newer: (
            "ALTER TABLE tasks ADD COLUMN note TEXT",
            "CREATE INDEX tasks_by_status ON tasks (status)",
        ),
    }
    monkeypatch.setattr(actors._storage.sqlite_schema, "MIGRATIONS", migrations)
    monkeypatch.setattr(actors._storage.sqlite_schema, "SCHEMA_VERSION", newer)
    with TaskManager(store=path) as manager:
        assert [manager.get_task_status(task_id) for task_id in ids] == before
        extra = manager.create_task(echo, {"n": 3})
        manager.wait(extra, timeout=10)

    assert query(path, "SELECT version FROM schema_version") == [(newer,)]
    columns = [row[1] for row in query(path, "PRAGMA table_info(tasks)")]
    assert "note" in columns
    assert query(path, "SELECT count(*) FROM tasks") == [(4,)]
    with TaskManager(store=path) as manager:
        assert [manager.get_task_status(task_id) for task_id in ids] == before
        assert manager.get_task_result(extra) == {"n": 3}


def test_a_failing_migration_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration step that fails leaves the file at its old version, without the steps
    before it: StoreOpenError, and the old code still opens it."""
    path = tmp_path / "tasks.db"
    task_id = database_with_one_task(path)
    newer = SCHEMA_VERSION + 1
    migrations = {
        **actors._storage.sqlite_schema.MIGRATIONS,
        newer: ("ALTER TABLE tasks ADD COLUMN note TEXT", "THIS IS NOT SQL"),
    }
    with monkeypatch.context() as patch:
        patch.setattr(actors._storage.sqlite_schema, "MIGRATIONS", migrations)
        patch.setattr(actors._storage.sqlite_schema, "SCHEMA_VERSION", newer)
        with pytest.raises(StoreOpenError, match="syntax error"):
            TaskManager(store=path)
    assert query(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    assert "note" not in [row[1] for row in query(path, "PRAGMA table_info(tasks)")]
    with TaskManager(store=path) as manager:
        assert manager.get_task_result(task_id) == {"scene": 1}


# -- one writer ---------------------------------------------------------------------------

_OPEN_PROBE = textwrap.dedent(
    """
    import pathlib, sys
    from storycore_tasks import TaskManager
    try:
        manager = TaskManager(store=pathlib.Path(sys.argv[1]))
    except Exception as exc:
        print(type(exc).__name__)
        print(exc)
    else:
        manager.shutdown(wait=True)
        print("opened")
    """
)


def open_in_another_process(path: Path) -> list[str]:
    """What a TaskManager opening ``path`` in a new process says: the exception type and
    message, or ``opened``."""
    done = subprocess.run(
        [sys.executable, "-c", _OPEN_PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_second_manager_on_the_same_file_is_refused(tmp_path: Path) -> None:
    """While one manager has the file, a second one (in this process or another) fails at
    once with StoreLockedError naming the file, and the first carries on; once the first
    has shut down, the file opens again, in either process."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=1, store=path) as first:
        with pytest.raises(StoreLockedError) as raised:
            TaskManager(store=path)
        assert str(path) in str(raised.value)
        assert "open in another task manager" in str(raised.value)
        assert raised.value.location == str(path)

        kind, message = open_in_another_process(path)
        assert kind == "StoreLockedError"
        assert str(path) in message

        task_id = first.create_task(echo, {"still": "working"})
        assert first.wait(task_id, timeout=10)["status"] == "completed"

    assert open_in_another_process(path) == ["opened"]
    with TaskManager(store=path) as again:
        assert again.get_task_result(task_id) == {"still": "working"}


# -- store URLs and paths -------------------------------------------------------------------


def test_a_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///rel.db names rel.db in the working directory; missing folders are made."""
    monkeypatch.chdir(tmp_path)
    for url, expected in [
        ("sqlite:///rel.db", tmp_path / "rel.db"),
        ("sqlite:///sub/dir/rel.db", tmp_path / "sub" / "dir" / "rel.db"),
    ]:
        with TaskManager(num_workers=1, store=url) as manager:
            task_id = manager.create_task(echo, {"url": url})
            manager.wait(task_id, timeout=10)
        assert query(expected, "SELECT task_id FROM tasks") == [(task_id,)]


def test_an_absolute_url_and_a_path(tmp_path: Path) -> None:
    """sqlite:////abs/path.db (four slashes) and a pathlib.Path both name that file, and
    its missing folders are created."""
    absolute = tmp_path / "abs" / "tasks.db"
    url = f"sqlite:///{absolute}"
    assert url.startswith("sqlite:////")
    as_path = tmp_path / "a" / "b" / "tasks.db"
    for store, expected in [(url, absolute), (as_path, as_path)]:
        with TaskManager(num_workers=1, store=store) as manager:
            assert manager.get_stats()["store"]["location"] == str(expected)
            assert manager.get_stats()["store"]["durable"] is True
            task_id = manager.create_task(echo, {"x": 1})
            manager.wait(task_id, timeout=10)
        assert query(expected, "SELECT task_id FROM tasks") == [(task_id,)]


@pytest.mark.parametrize(("option", "level"), [("", 1), ("?synchronous=full", 2)])
def test_the_synchronous_option_reaches_sqlite(tmp_path: Path, option: str, level: int) -> None:
    """?synchronous=full sets PRAGMA synchronous=FULL (2); the default is NORMAL (1)."""
    store = SqliteStore.from_url(f"sqlite:///{tmp_path / 'tasks.db'}{option}")
    store.open()
    try:
        # The only way to see a connection's own setting is through that connection.
        connection = store._connection
        assert connection is not None
        assert connection.execute("PRAGMA synchronous").fetchone() == (level,)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://user@host/tasks", "is not a store URL"),
        ("sqlite://host/tasks.db", "unsupported store URL"),  # the path follows 3 slashes
        ("sqlite:tasks.db", "unsupported store URL"),
        ("sqlite:///tasks.db?journal=off", "unknown store URL option(s) ['journal']"),
        ("sqlite:///tasks.db?synchronous=off", "synchronous must be 'normal' or 'full'"),
        ("sqlite:///", "needs a file path"),
        ("sqlite:///:memory:", "needs a file path"),
        ("tasks.db", "is not a store URL"),  # a plain string is no path: use pathlib.Path
        ("/tmp/tasks.db", "is not a store URL"),
        ("", "is not a store URL"),
    ],
)
def test_bad_store_urls_raise_value_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    """A URL with another scheme, a host, an unknown option or value, no path, or no
    scheme at all: ValueError naming the problem, and no file is created."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=re.escape(problem)):
        TaskManager(store=url)
    assert list(tmp_path.iterdir()) == []


def test_a_store_of_another_type_raises_type_error() -> None:
    """store= takes None, a URL, a path or a Store; anything else is a TypeError."""
    with pytest.raises(TypeError, match="store must be"):
        TaskManager(store=42)  # type: ignore[arg-type]


# -- strict JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"tags": {"a", "b"}}, "Object of type set is not JSON serializable"),
        ({"clip": object()}, "Object of type object is not JSON serializable"),
        ({"gain": math.nan}, "Out of range float values are not JSON compliant"),
        ({"gain": math.inf}, "Out of range float values are not JSON compliant"),
        ({(1, 2): "pair"}, "keys must be str, int, float, bool or None, not tuple"),
    ],
    ids=["set", "object", "nan", "inf", "tuple-key"],
)
def test_params_that_are_not_json_are_refused(
    tmp_path: Path, make_manager: Callable[..., TaskManager], params: Any, problem: str
) -> None:
    """create_task raises TypeError naming the problem; no task is created or written,
    and the task already running is unaffected."""
    manager = make_manager(num_workers=1, store=tmp_path / "tasks.db")
    gate = Gate(result="ok")
    running = manager.create_task(gate, {"n": 1})
    gate.wait_entered()
    before = manager.get_stats()
    with pytest.raises(TypeError, match="params must be JSON data") as raised:
        manager.create_task(echo, params)
    assert problem in str(raised.value)
    after = manager.get_stats()
    assert after["total_tasks"] == before["total_tasks"]
    assert after["lifetime_stats"] == before["lifetime_stats"]
    assert after["store"]["records_written"] == before["store"]["records_written"]
    gate.release()
    assert manager.wait(running, timeout=10)["result"] == "ok"
    fine = manager.create_task(echo, {"n": 2})
    assert manager.wait(fine, timeout=10)["result"] == {"n": 2}
    assert manager.get_stats()["lifetime_stats"]["total_created"] == 2


def test_params_are_seen_as_json_reads_them_back(tmp_path: Path) -> None:
    """Int keys become strings and tuples lists, for the operation and after a restart."""
    path = tmp_path / "tasks.db"
    seen: list[Mapping[str, Any]] = []

    def keep(params: Mapping[str, Any], task: TaskContext) -> str:
        seen.append(params)
        return "ok"

    with TaskManager(num_workers=1, store=path) as manager:
        task_id = manager.create_task(keep, {1: "one", "pair": (1, 2)})  # type: ignore[dict-item]
        manager.wait(task_id, timeout=10)
    assert seen == [{"1": "one", "pair": [1, 2]}]
    with TaskManager(store=path) as manager:
        snapshot = manager.runtime.snapshot(task_id)
        assert snapshot is not None
        assert snapshot.params == {"1": "one", "pair": [1, 2]}


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(object(), "object"), (math.nan, "float"), ({"tags": {1, 2}}, "dict")],
    ids=["object", "nan", "set-inside"],
)
def test_a_result_that_is_not_json_fails_the_task(
    tmp_path: Path, value: Any, type_name: str
) -> None:
    """The task ends failed with RESULT_NOT_SERIALIZABLE naming the type, and reads the
    same after a restart."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=1, store=path) as manager:
        task_id = manager.create_task(returning(value))
        ended = manager.wait(task_id, timeout=10)
    assert ended["status"] == "failed"
    assert "result" not in ended
    error = ended["error"]
    assert error["code"] == ErrorCodes.RESULT_NOT_SERIALIZABLE
    assert f"returned a {type_name}," in error["message"]
    assert error["details"] == {"result_type": type_name}
    with TaskManager(store=path) as manager:
        assert manager.get_task_status(task_id) == ended
        assert manager.get_stats()["lifetime_stats"]["total_failed"] == 1


def test_tuples_come_back_as_lists_before_and_after_a_restart(tmp_path: Path) -> None:
    """The reported result is what the store will read back, so a restart changes
    nothing: tuples are lists (and int keys strings) from the start."""
    path = tmp_path / "tasks.db"
    expected = {"pair": [1, 2], "nested": [[3, 4], {"5": [6]}]}
    with TaskManager(num_workers=1, store=path) as manager:
        task_id = manager.create_task(returning({"pair": (1, 2), "nested": ((3, 4), {5: (6,)})}))
        assert manager.wait(task_id, timeout=10)["result"] == expected
        assert manager.get_task_result(task_id) == expected
    with TaskManager(store=path) as manager:
        assert manager.get_task_result(task_id) == expected


def test_a_partial_result_that_is_not_json_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """The earlier JSON partial result stays (also after a restart), a warning names the
    task and the type, and the task still completes."""
    path = tmp_path / "tasks.db"
    first_stored = threading.Event()

    def operation(params: Mapping[str, Any], task: TaskContext) -> str:
        task.partial_result = {"frames": 10}
        first_stored.wait(10)
        task.partial_result = {"frames": {11, 12}}
        return "rendered"

    with capture_logs() as logs:
        manager = TaskManager(num_workers=1, store=path)
        try:
            task_id = manager.create_task(operation)

            def first_partial_seen() -> bool:
                status = manager.get_task_status(task_id)
                return status is not None and status.get("partial_result") == {"frames": 10}

            assert wait_until(first_partial_seen, timeout=10)
            first_stored.set()
            ended = manager.wait(task_id, timeout=10)
        finally:
            manager.shutdown(wait=True, timeout=30)
    assert ended["status"] == "completed"
    assert ended["result"] == "rendered"
    assert ended["partial_result"] == {"frames": 10}
    warnings = [e for e in logs if e["event"] == "task.partial_result_not_storable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["task_id"] == task_id
    assert warnings[0]["type"] == "dict"
    assert "set is not JSON serializable" in warnings[0]["error"]
    with TaskManager(store=path) as manager:
        assert manager.get_task_status(task_id) == ended


# -- durability ---------------------------------------------------------------------------------

_SUBMIT_THEN_HANG = textwrap.dedent(
    """
    import pathlib, sys, threading
    from storycore_tasks import TaskManager
    never = threading.Event()
    manager = TaskManager(num_workers=1, store=pathlib.Path(sys.argv[1]))
    manager.register_operation("tests.store.hang", lambda params, task: never.wait())
    for n in range(3):
        print(manager.create_task("tests.store.hang", {"n": n}), flush=True)
    sys.stdin.read()  # until killed
    """
)


def run_then_kill(script: str, path: Path, *, lines: int) -> tuple[list[str], str]:
    """Run ``script`` with ``path`` in a new Python process, read ``lines`` lines it
    prints, then kill it with SIGKILL (no shutdown, no checkpoint); returns the lines
    and its standard error."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        read = [child.stdout.readline() for _ in range(lines)]
    finally:
        child.kill()
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return read, stderr


def test_a_task_is_durable_once_create_task_returns(tmp_path: Path) -> None:
    """A process that printed the ids create_task returned, then died by SIGKILL (no
    shutdown, no checkpoint): a new manager finds every one of those tasks."""
    path = tmp_path / "tasks.db"
    lines, stderr = run_then_kill(_SUBMIT_THEN_HANG, path, lines=3)
    ids = [line.strip() for line in lines]
    assert all(is_task_id(task_id) for task_id in ids), stderr

    with TaskManager(store=path) as manager:
        # Not registered here: all three wait for their operation, none has run to the end.
        assert manager.get_stats()["store"]["awaiting_operation"] == 3
        for n, task_id in enumerate(ids):
            snapshot = manager.runtime.snapshot(task_id)
            assert snapshot is not None
            assert snapshot.status == "pending"
            assert snapshot.operation_name == "tests.store.hang"
            assert snapshot.params == {"n": n}


def test_terminal_tasks_read_back_identically_after_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Completed (with result), failed (with error), timed out (with partial result) and
    cancelled tasks: status dicts, snapshots and listing order are all the same after a
    restart. No field legitimately differs: timestamps are stored as the floats the clock
    gave, values as the JSON they were normalised to, and outcomes field by field."""
    path = tmp_path / "tasks.db"
    manager = TaskManager(num_workers=4, clock=clock, store=path)
    try:
        completed = manager.create_task(echo, {"scene": 1}, user="alice", priority="high")
        failed = manager.create_task(explode, {"scene": 2}, priority="low")
        slow = Gate(result="late", partial={"frames": 12})
        timed_out = manager.create_task(slow, timeout=5.0)
        held = Gate(result="ignored")
        cancelled = manager.create_task(held, user="bob")
        slow.wait_entered()
        held.wait_entered()
        settle(manager)  # the partial result has reached the registry
        clock.advance(5.0)
        assert manager.wait(timed_out, timeout=10)["error"]["code"] == ErrorCodes.TIMEOUT
        assert manager.cancel_task(cancelled)
        assert manager.wait(cancelled, timeout=10)["status"] == "cancelled"
        assert manager.wait(completed, timeout=10)["status"] == "completed"
        assert manager.wait(failed, timeout=10)["status"] == "failed"
    finally:
        slow.release()
        held.release()
        manager.shutdown(wait=True, timeout=30)
    ids = [completed, failed, timed_out, cancelled]
    # Read once everything has settled (the released operations' late results included).
    before = [manager.get_task_status(task_id) for task_id in ids]
    snapshots = [manager.runtime.snapshot(task_id) for task_id in ids]
    listing = manager.list_tasks()
    assert before[2] is not None
    assert before[2]["error"]["details"]["partial_result"] == {"frames": 12}

    with TaskManager(store=path, clock=ManualClock(start_time=clock.time() + 1000.0)) as reopened:
        assert [reopened.get_task_status(task_id) for task_id in ids] == before
        assert [reopened.runtime.snapshot(task_id) for task_id in ids] == snapshots
        assert reopened.list_tasks() == listing
        assert reopened.get_stats()["status_counts"] == manager.get_stats()["status_counts"]


def test_lifetime_counters_survive_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    """The lifetime counters are read from the store, not recounted from the records that
    are left: they survive a restart even after every record was cleaned up."""
    path = tmp_path / "tasks.db"
    manager = TaskManager(num_workers=1, clock=clock, store=path)
    gate = Gate()
    try:
        timed_out = manager.create_task(gate, timeout=1.0)
        waiting = manager.create_task(noop)
        assert manager.cancel_task(waiting)
        gate.wait_entered()
        settle(manager)
        clock.advance(1.0)
        manager.wait(timed_out, timeout=10)
    finally:
        gate.release()
    for operation in (noop, noop, explode):
        manager.wait(manager.create_task(operation), timeout=10)
    clock.advance(10.0)
    assert manager.cleanup_old_tasks(0) == 5
    lifetime = manager.get_stats()["lifetime_stats"]
    manager.shutdown(wait=True, timeout=30)
    assert lifetime == {
        "total_created": 5,
        "total_completed": 2,
        "total_failed": 2,
        "total_cancelled": 1,
        "total_timed_out": 1,
        "total_stalled": 0,
    }
    assert query(path, "SELECT count(*) FROM tasks") == [(0,)]

    with TaskManager(num_workers=1, store=path) as manager:
        stats = manager.get_stats()
        assert stats["total_tasks"] == 0
        assert stats["lifetime_stats"] == lifetime
        manager.wait(manager.create_task(noop), timeout=10)
        assert manager.get_stats()["lifetime_stats"]["total_created"] == 6
    with TaskManager(store=path) as manager:
        assert manager.get_stats()["lifetime_stats"]["total_completed"] == 3


def test_concurrent_submitters_share_commits(tmp_path: Path) -> None:
    """Group commit: 8 threads x 200 tasks take far fewer commits than tasks."""
    threads_count, per_thread = 8, 200
    tasks = threads_count * per_thread
    with TaskManager(num_workers=4, store=tmp_path / "tasks.db") as manager:
        start = threading.Barrier(threads_count)
        ids: list[list[str]] = [[] for _ in range(threads_count)]

        def submit(mine: list[str]) -> None:
            start.wait(10)
            for n in range(per_thread):
                mine.append(manager.create_task(noop, {"n": n}))

        submitters = [threading.Thread(target=submit, args=(mine,)) for mine in ids]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join(60)
        all_ids = [task_id for mine in ids for task_id in mine]
        assert len(all_ids) == tasks
        for task_id in all_ids:
            manager.wait(task_id, timeout=10)
        store = manager.get_stats()["store"]
    # Every task changes at least three times (created, started, ended), and both
    # create_task and the start of an operation wait for a commit. One commit per change
    # would be >= 3 * tasks commits; fewer commits than tasks means more than three changes
    # per commit on average, which only batching can give. Measured: about 0.45 commits
    # per task (700 for 1600).
    assert store["commits"] < tasks, f"{store['commits']} commits for {tasks} tasks"
    # Each commit writes a changed record once, in its latest state: at most one row per
    # change, and every task written at least once.
    assert tasks <= store["records_written"] <= 3 * tasks, store


# -- retention on disk ------------------------------------------------------------------------


def test_cleanup_deletes_records_from_the_database(tmp_path: Path, clock: ManualClock) -> None:
    """cleanup_old_tasks removes the old records from the file too: a restart does not
    bring them back, and the counts agree."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=2, clock=clock, store=path) as manager:
        old = [manager.create_task(echo, {"n": n}) for n in range(5)]
        for task_id in old:
            manager.wait(task_id, timeout=10)
        clock.advance(100.0)
        recent = [manager.create_task(echo, {"n": n}) for n in range(5, 7)]
        for task_id in recent:
            manager.wait(task_id, timeout=10)
        clock.advance(10.0)
        assert manager.cleanup_old_tasks(max_age_seconds=50) == 5
        assert manager.get_stats()["store"]["records_deleted"] == 5

    assert {row[0] for row in query(path, "SELECT task_id FROM tasks")} == set(recent)
    with TaskManager(store=path) as manager:
        for task_id in old:
            assert manager.get_task_status(task_id) is None
        for task_id in recent:
            assert manager.get_task_status(task_id) is not None
        stats = manager.get_stats()
        assert stats["total_tasks"] == 2
        assert stats["status_counts"]["completed"] == 2
        assert stats["lifetime_stats"]["total_created"] == 7


def test_the_file_does_not_grow_under_steady_load(tmp_path: Path, clock: ManualClock) -> None:
    """24 rounds of (300 tasks with 3 KB params, wait, clean them all up): in the last 12
    rounds the database file is no larger than in the first 12, plus a little slack, and
    the WAL stays under a fixed bound."""
    path = tmp_path / "tasks.db"
    wal = tmp_path / "tasks.db-wal"
    blob = "x" * 3000
    one_round = 300 * len(blob)
    database: list[int] = []
    log: list[int] = []
    with TaskManager(num_workers=4, clock=clock, store=path) as manager:
        for round_number in range(24):
            ids = [
                manager.create_task(noop, {"round": round_number, "n": n, "blob": blob})
                for n in range(300)
            ]
            for task_id in ids:
                manager.wait(task_id, timeout=10)
            clock.advance(1.0)
            assert manager.cleanup_old_tasks(0) == 300
            manager.get_stats()  # a query: the deletion is committed before it answers
            database.append(path.stat().st_size)
            log.append(wal.stat().st_size if wal.exists() else 0)
    ((page_size,),) = query(path, "PRAGMA page_size")
    sizes = f"database file per round: {database}; WAL per round: {log} (bytes)"
    # Deleted records' pages are given back (incremental vacuum) or reused by the next
    # round: the file holds about one round of data from round 1 on. Its size on disk
    # moves only at checkpoints (the latest pages live in the WAL until then), so it
    # rises and falls over a cycle of several rounds; the last 12 rounds stay within the
    # range of the first 12 (plus 256 KiB of slack, 64 pages): no growth.
    assert max(database[12:]) <= max(database[:12]) + 256 * 1024, sizes
    assert database[-1] < 2 * one_round, sizes
    # The WAL is rewritten from its start after each automatic checkpoint (at 1000
    # pages); its size is a high-water mark: 1000 frames plus the commit that crossed the
    # line, which touches at most about one page per record of a round (a record is one
    # 3 KB page), twice over for the b-tree and pointer-map pages. Measured: 1200-1300
    # frames. Without checkpoints it would grow by over 1000 frames a round.
    frame = page_size + 24
    assert log[-1] <= (1000 + 2 * 300) * frame, f"{sizes}; {log[-1] // frame} frames"


def test_cleanup_gives_the_space_back(tmp_path: Path, clock: ManualClock) -> None:
    """After every record is cleaned up, the freed pages are returned to the file system
    (incremental vacuum), not kept on the free list."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=4, clock=clock, store=path) as manager:
        ids = [manager.create_task(noop, {"n": n, "blob": "x" * 3000}) for n in range(300)]
        for task_id in ids:
            manager.wait(task_id, timeout=10)
        clock.advance(1.0)
        assert manager.cleanup_old_tasks(0) == 300
    ((free,),) = query(path, "PRAGMA freelist_count")
    ((pages,),) = query(path, "PRAGMA page_count")
    assert free == 0, f"{free} of {pages} pages are free after the cleanup"


_CANCEL_THEN_HANG = textwrap.dedent(
    """
    import pathlib, sys, threading
    from storycore_tasks import TaskManager
    never = threading.Event()
    manager = TaskManager(num_workers=1, store=pathlib.Path(sys.argv[1]))
    manager.register_operation("tests.store.hang", lambda params, task: never.wait())
    running = manager.create_task("tests.store.hang", {"n": 0})
    pending = manager.create_task("tests.store.hang", {"n": 1})
    print(running, pending, manager.cancel_task(pending), manager.cancel_task(running),
          flush=True)
    sys.stdin.read()  # until killed
    """
)


def test_a_cancellation_is_durable_once_cancel_task_returns(tmp_path: Path) -> None:
    """A process cancelled a pending and a running task (cancel_task returned True), then
    died by SIGKILL: a new manager, with the operation registered, finds both cancelled
    and never runs them (without the commit the pending one would be queued again)."""
    path = tmp_path / "tasks.db"
    lines, stderr = run_then_kill(_CANCEL_THEN_HANG, path, lines=1)
    line = lines[0].split()
    assert len(line) == 4, stderr
    running, pending, *accepted = line
    assert accepted == ["True", "True"]

    calls: list[Any] = []

    def record(params: Mapping[str, Any], task: TaskContext) -> None:
        calls.append(params["n"])

    with TaskManager(store=path, operations={"tests.store.hang": record}) as manager:
        for task_id in (running, pending):
            status = manager.get_task_status(task_id)
            assert status is not None
            assert status["status"] == "cancelled"
            assert status["error"]["details"]["reason"] == "cancel_requested"
        assert manager.get_stats()["status_counts"]["cancelled"] == 2
    assert calls == []


class FailingStore(SqliteStore):
    """A real SQLite store whose writes fail while ``failing`` is set: a disk that is
    full for a while."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failing = threading.Event()

    def write(self, records: Any, deleted: Any) -> None:
        if self.failing.is_set():
            raise StoreWriteError(self.location, f"writing {self.location} failed: disk full")
        super().write(records, deleted)


def test_a_failed_commit_is_reported_and_retried(tmp_path: Path) -> None:
    """While the store cannot write, create_task raises StoreWriteError naming the file
    and the task it could not make durable is cancelled (not left running for a caller
    who got an error); the failure is logged; while it fails, a query about the changed
    task raises StoreWriteError too (nothing is shown that is not committed); once the
    store writes again, the change is committed by the next commit and new tasks work.
    The registry never stops."""
    store = FailingStore(tmp_path / "tasks.db")
    with TaskManager(num_workers=2, store=store) as manager:
        before = manager.create_task(echo, {"n": 0})
        assert manager.wait(before, timeout=10)["status"] == "completed"
        store.failing.set()
        with capture_logs() as logs, pytest.raises(StoreWriteError) as raised:
            manager.create_task(echo, {"n": 1})
        assert raised.value.location == str(tmp_path / "tasks.db")
        assert "disk full" in str(raised.value)
        assert any(e["event"] == "store.commit_failed" for e in logs)
        with pytest.raises(StoreWriteError, match="not durable yet"):
            manager.list_tasks()
        store.failing.clear()
        # The refused task never runs: cancelled by create_task, or, if its worker got to
        # it first, failed because its start could not be stored either.
        (refused,) = [s for s in manager.list_tasks() if s["task_id"] != before]
        refused = manager.wait(refused["task_id"], timeout=10)
        assert "result" not in refused
        if refused["status"] == "failed":
            assert "could not be stored" in refused["error"]["message"]
        else:
            assert refused["status"] == "cancelled"
        after = manager.create_task(echo, {"n": 2})
        assert manager.wait(after, timeout=10)["result"] == {"n": 2}
    with TaskManager(store=tmp_path / "tasks.db") as reopened:
        statuses = sorted(s["status"] for s in reopened.list_tasks())
    assert statuses == sorted([refused["status"], "completed", "completed"])


class RecordingStore(SqliteStore):
    """A real SQLite store that also notes the state of every record it commits."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.committed: list[tuple[str, str]] = []

    def write(self, records: Any, deleted: Any) -> None:
        records = list(records)
        super().write(records, deleted)
        self.committed.extend((r.task_id, r.status.value) for r in records)


class _Blocker:
    """Stands in for a task context in a ProgressReady: holds the registry busy in
    drain() until released, so the messages told meanwhile queue up behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def drain(self) -> tuple[None, None, bool]:
        self.entered.set()
        self.release.wait(30)
        return None, None, False


def test_a_query_answer_leaves_only_after_what_it_shows_is_committed(tmp_path: Path) -> None:
    """The registry commits before it answers a query, even while more messages wait in
    its mailbox (when the mailbox runs dry it commits anyway, so this pins the case where
    it does not): the snapshot saying "completed" is never ahead of the file."""
    from actors import Completed, Isolation, TaskOptions
    from actors._core.messages import (
        Finish,
        GetSnapshot,
        GetStats,
        MarkRunning,
        ProgressReady,
        Register,
    )
    from actors._core.registry import RegistryActor
    from actors._core.table import TaskTable
    from actors._records import TaskSpec

    store = RecordingStore(tmp_path / "tasks.db")
    store.open()
    clock = ManualClock()
    registry = RegistryActor.start(TaskTable(), clock, store)
    try:
        spec = TaskSpec(
            task_id="t-1",
            operation=noop,
            operation_name="tests.noop",
            params={},
            options=TaskOptions(isolation=Isolation.THREAD),
            seq=0,
            created_at=clock.time(),
            named=True,
            params_json="{}",
        )
        blocker = _Blocker()
        registry.tell(ProgressReady("t-1", blocker))  # type: ignore[arg-type]
        assert blocker.entered.wait(10)
        registry.tell(Register(spec))
        registry.tell(MarkRunning("t-1", clock.time()))
        registry.tell(Finish("t-1", Completed({"frames": 3}), clock.time()))
        answer = registry.ask(GetSnapshot("t-1"), block=False)
        registry.tell(GetStats())  # keeps the mailbox from running dry at the query
        blocker.release.set()
        snapshot = answer.get(timeout=10)
        assert snapshot.status == "completed"
        assert ("t-1", "completed") in store.committed
    finally:
        registry.stop(timeout=10)
        store.close()
