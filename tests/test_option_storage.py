"""One ``TaskOptions`` from ``create_task`` to the store: the spec, the record and the
snapshot carry it resolved, and the SQLite columns, the status dict and the CLI's flags
are derived from the declarations, so every check here walks ``options_of(...)`` and a
new option is covered without another line."""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import typing
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors._storage.sqlite_rows as sqlite_rows
from actors import (
    Isolation,
    ManualClock,
    RetryPolicy,
    SqliteStore,
    StoreOpenError,
    TaskContext,
    TaskOptions,
    TaskPriority,
    TaskRuntime,
    UnknownOptionError,
)
from actors._options import Option, OptionKind, options_of
from actors._records import TaskRecord
from actors._resources import Resources
from storycore_tasks import TaskManager, cli
from storycore_tasks import manager as manager_module

WAIT = 15.0

# A value of each kind that is not any option's default, and a strategy for many.
NON_DEFAULT: dict[OptionKind, Any] = {
    "text": "zoë ✓ 漢字",
    "seconds": 12.5,
    "megabytes": 256.0,
    "priority": TaskPriority.HIGH,
    "isolation": Isolation.PROCESS,
    "datetime": datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2))),
    "retry": RetryPolicy(max_attempts=4, backoff=0.5, max_backoff=8.0, jitter=False),
    "task_ids": ("dep-a", "dep-b"),
    "resources": Resources({"gpu": 2, "vram_gb": 24.5}),
}
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_seconds = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
STRATEGIES: dict[OptionKind, st.SearchStrategy[Any]] = {
    "text": st.none() | _text,
    "seconds": st.none() | _seconds,
    "megabytes": st.none() | st.floats(min_value=1.0, max_value=1e6),
    "priority": st.sampled_from(list(TaskPriority)),
    "isolation": st.sampled_from(list(Isolation)),  # a stored one is resolved: never None
    "datetime": st.none()
    | st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)
    ),
    "retry": st.none()
    | st.builds(
        RetryPolicy,
        max_attempts=st.integers(1, 100),
        backoff=st.floats(0, 100),
        max_backoff=st.floats(0, 100),
        jitter=st.booleans(),
        retry_on=st.sampled_from([("ValueError",), ("Exception",), ("OSError", "KeyError")]),
        retry_on_timeout=st.booleans(),
    ),
    "task_ids": st.lists(st.uuids().map(str), max_size=5, unique=True).map(tuple),
    "resources": st.none()
    | st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
        st.floats(min_value=1e-3, max_value=1e9),
        min_size=1,
        max_size=5,
    ).map(Resources),
}


def _noop(params: Mapping[str, Any], task: TaskContext) -> None:
    return None


def _comparable(options: TaskOptions) -> dict[str, Any]:
    """The options by name; a retry policy as its JSON (its classes read back as names)."""
    values = {o.name: getattr(options, o.name) for o in options_of()}
    return {
        name: value.to_json() if isinstance(value, RetryPolicy) else value
        for name, value in values.items()
    }


def _record(options: TaskOptions, seq: int = 0) -> TaskRecord:
    return TaskRecord(
        task_id=f"task-{seq}",
        operation_name="tests.noop",
        params={},
        options=options,
        seq=seq,
        created_at=1000.0 + seq,
        updated_at=1000.0 + seq,
        named=True,
        params_json="{}",
    )


def _round_trip(path: Path, records: list[TaskRecord]) -> list[TaskRecord]:
    store = SqliteStore(path)
    store.open()
    try:
        store.write(records, ())
    finally:
        store.close()
    reopened = SqliteStore(path)
    try:
        return list(reopened.open().records)
    finally:
        reopened.close()


def test_every_kind_has_a_column_form_and_a_status_form() -> None:
    """A kind an option may take is one the store can keep and the status can show (and
    each test table here knows it), so declaring an option of any kind needs no code."""
    kinds = set(typing.get_args(OptionKind))
    assert set(sqlite_rows.KINDS) == kinds
    assert set(manager_module._SHOWN_KINDS) == kinds
    assert set(NON_DEFAULT) == kinds == set(STRATEGIES)


def test_the_store_writes_a_column_per_stored_option() -> None:
    """The INSERT/UPSERT and SELECT name the task's own columns and then each stored
    option, by name, and nothing that is not stored."""
    stored = [o.name for o in options_of(stored=True)]
    assert sqlite_rows.TASK_COLUMNS + tuple(stored) == sqlite_rows.COLUMNS
    assert not {o.name for o in options_of(stored=False)} & set(sqlite_rows.COLUMNS)


def test_every_stored_option_has_its_column_in_a_new_file(tmp_path: Path) -> None:
    """A freshly migrated file has a column of each stored option's name."""
    path = tmp_path / "tasks.db"
    store = SqliteStore(path)
    store.open()
    store.close()
    with closing(sqlite3.connect(path)) as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(tasks)")}
    assert {o.name for o in options_of(stored=True)} <= columns


@pytest.mark.parametrize("declared", options_of(stored=True), ids=lambda o: o.name)
def test_each_stored_option_survives_a_real_sqlite_file(tmp_path: Path, declared: Option) -> None:
    """One option at a time at a value that is not its default (the others at theirs):
    what reopening the file reads back is what was written."""
    value = NON_DEFAULT[declared.kind]
    assert value != declared.default
    options = TaskOptions(isolation=Isolation.THREAD).replace(**{declared.name: value})
    (loaded,) = _round_trip(tmp_path / "tasks.db", [_record(options)])
    assert _comparable(options) == _comparable(loaded.options)
    assert getattr(loaded.options, declared.name) is not None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_stored_options_survive_a_real_sqlite_file(tmp_path: Path, data: st.DataObject) -> None:
    """Every stored option at once, at generated values (None, empty, unicode, extremes):
    the file gives back exactly the options each record carried."""
    records = []
    for seq in range(3):
        values = {
            o.name: data.draw(STRATEGIES[o.kind], label=o.name) for o in options_of(stored=True)
        }
        records.append(_record(TaskOptions(**values), seq))
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:  # a new file per example
        loaded = _round_trip(Path(folder) / "tasks.db", records)
    assert [_comparable(r.options) for r in records] == [_comparable(r.options) for r in loaded]


def test_a_file_missing_an_options_column_is_refused_naming_the_migration(
    tmp_path: Path,
) -> None:
    """A stored option whose column the file lacks (declared without its migration) is
    refused at open, naming the column and where the migration goes, and the file is
    left as it was."""
    path = tmp_path / "tasks.db"
    store = SqliteStore(path)
    store.open()
    store.close()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("ALTER TABLE tasks DROP COLUMN group_id")
        connection.commit()
    before = path.read_bytes()
    with pytest.raises(StoreOpenError, match=r"no column for group_id.*MIGRATIONS"):
        SqliteStore(path).open()
    assert path.read_bytes() == before


def test_options_resolved_and_trusted_are_not_checked_again() -> None:
    """The runtime's copy of already-checked options skips the checks (it is on every
    task's path), and an unknown name is still refused by name; replace() checks."""
    options = TaskOptions(timeout=5, delay=3)
    resolved = options.resolved(isolation=Isolation.PROCESS, delay=None)
    assert (resolved.timeout, resolved.isolation, resolved.delay) == (5.0, Isolation.PROCESS, None)
    assert options.delay == 3.0  # the original is unchanged
    with pytest.raises(UnknownOptionError, match="'timeot'"):
        options.resolved(timeot=1)
    with pytest.raises(UnknownOptionError, match="'colour'"):
        TaskOptions.trusted({"colour": "red"})
    assert TaskOptions.trusted({"user": "ana"}) == TaskOptions(user="ana")
    with pytest.raises(TypeError, match="timeout"):
        options.replace(timeout="5")


def test_a_snapshot_carries_the_resolved_options_and_the_file_keeps_them(
    tmp_path: Path,
) -> None:
    """create_task's options arrive in the snapshot as one TaskOptions: the manager's
    default isolation and retry policy filled in, delay turned into scheduled_for and
    cleared. After reopening the SQLite file the snapshot carries the same object."""
    clock = ManualClock()
    retry = RetryPolicy(max_attempts=2, backoff=1.0, jitter=False, retry_on=("ValueError",))
    path = tmp_path / "tasks.db"
    with TaskManager(
        num_workers=1, store=path, clock=clock, retry=retry, operations={"noop": _noop}
    ) as manager:
        task_id = manager.create_task("noop", user="ana", timeout=9, priority="high", delay=30)
        snapshot = manager.runtime.snapshot(task_id)
        assert snapshot is not None
        assert snapshot.options == TaskOptions(
            user="ana",
            timeout=9,
            priority="high",
            isolation=Isolation.THREAD,
            retry=retry,
        )
        assert snapshot.scheduled_for == clock.time() + 30
        manager.cancel_task(task_id)
        ended = manager.runtime.snapshot(task_id)
        assert ended is not None
    with TaskManager(num_workers=1, store=path, clock=clock) as reopened:
        again = reopened.runtime.snapshot(task_id)
    assert again is not None
    assert _comparable(again.options) == _comparable(ended.options)


def test_the_status_shows_the_options_their_declaration_shows(
    make_manager: Callable[..., TaskManager],
) -> None:
    """The status dict has a key for each stored option not declared shown=False, its
    value in the kind's status form, and none for the others."""
    manager = make_manager(num_workers=1)
    first = manager.create_task(_noop, user="ana")
    manager.wait(first, timeout=WAIT)
    task_id = manager.create_task(
        _noop, user="ana", timeout=4, priority="critical", depends_on=[first]
    )
    status = manager.wait(task_id, timeout=WAIT)
    shown = {o.name for o in options_of(stored=True, shown=True)}
    hidden = {o.name for o in options_of()} - shown
    assert shown <= set(status)
    assert not hidden & set(status)
    today = {  # the options the status showed before they were derived, as it showed them
        "user": "ana",
        "timeout": 4.0,
        "priority": "critical",
        "isolation": "thread",
        "depends_on": [first],
        "group_id": None,
    }
    assert set(today) <= shown
    assert {name: status[name] for name in today} == today


def test_every_kind_the_status_shows_is_json() -> None:
    """The status form of every kind's value is plain JSON (str, number, list, dict)."""
    import json

    for kind, value in NON_DEFAULT.items():
        shown = manager_module._SHOWN_KINDS[kind](value)
        assert json.loads(json.dumps(shown)) == shown, kind


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("2031-05-06T07:08:09+02:00", "2031-05-06T07:08:09+02:00"),
        ("2031-05-06T05:08:09Z", "2031-05-06T05:08:09+00:00"),
    ],
)
def test_a_datetime_flag_is_parsed_checked_and_sent_as_iso_text(text: str, sent: str) -> None:
    """A CLI flag of the datetime kind (run_at's declaration here) parses ISO-8601,
    refuses a naive time by the option's own check, and sends the HTTP API ISO text."""
    (run_at,) = [o for o in options_of() if o.name == "run_at"]
    convert = cli._checked(run_at, cli._moment, sent=datetime.isoformat)
    assert convert(text) == sent
    with pytest.raises(argparse.ArgumentTypeError, match="naive"):
        convert("2031-05-06T07:08:09")
    with pytest.raises(argparse.ArgumentTypeError, match="not an ISO-8601 time"):
        convert("tomorrow")


def test_the_runtime_still_refuses_limits_for_a_thread_and_checks_its_own() -> None:
    """With the re-checks gone, what only the runtime can know is still refused: limits
    for a thread task; and its own limits are checked as the options of those names."""
    with pytest.raises(ValueError, match="memory_limit_mb must be"):
        TaskRuntime(memory_limit_mb=0)
    with pytest.raises(TypeError, match="cpu_time_limit"):
        TaskRuntime(cpu_time_limit="1")
    runtime = TaskRuntime(concurrency=1)
    try:
        with pytest.raises(ValueError, match="apply to a child process"):
            runtime.check_task(_noop, memory_limit_mb=64)
        with pytest.raises(ValueError, match="give delay or run_at, not both"):
            runtime.check_task(_noop, delay=1, run_at=datetime.now(UTC))
        with pytest.raises(ValueError, match="delay must be"):
            runtime.check_task(_noop, delay=-1)
    finally:
        runtime.shutdown()
