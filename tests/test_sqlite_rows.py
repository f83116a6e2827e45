"""A task's row in the SQLite store (actors/_storage/sqlite_rows.py), tested as plain
functions: each option kind's column form, a record to its row and back, the columns
against the table the migrations make, and the retired tally. Everything that walks the
options walks ``options_of(stored=True)``, so a new stored option is covered here without
another line."""

from __future__ import annotations

import sqlite3
import typing
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from actors import Isolation, RetryPolicy, StopReason, TaskOptions, TaskPriority, TaskStatus
from actors._options import Option, OptionKind, options_of
from actors._outcome import Cancelled, Completed, Outcome, Raised, Stalled, TimedOut
from actors._records import TaskRecord
from actors._resources import Resources
from actors._storage.codec import encode_json, encode_outcome
from actors._storage.sqlite_rows import (
    CHANGING,
    COLUMNS,
    COUNTERS,
    KINDS,
    OPTION_NAMES,
    TASK_COLUMNS,
    decode_options,
    encode_options,
    from_row,
    tally,
    to_row,
)
from actors._storage.sqlite_schema import MIGRATIONS, SCHEMA_VERSION

# A value of each kind that is not any option's default.
SAMPLES: dict[OptionKind, Any] = {
    "text": "zoë ✓ 漢字",
    "seconds": 12.5,
    "megabytes": 256.0,
    "priority": TaskPriority.HIGH,
    "isolation": Isolation.PROCESS,
    "datetime": datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2))),
    # retry_on as names, sorted: as a policy reads back (classes are kept by name).
    "retry": RetryPolicy(
        max_attempts=4,
        backoff=0.5,
        max_backoff=8.0,
        jitter=False,
        retry_on=("OSError", "ValueError"),
        retry_on_timeout=True,
    ),
    "task_ids": ("dep-a", "dep-b"),
    "resources": Resources({"gpu": 1, "render.license": 0.5}),
}
# The Python type SQLite hands back for each declared column type.
SQL_TYPES = {"TEXT": str, "REAL": float, "INTEGER": int}
STORED = options_of(stored=True)


def _table() -> sqlite3.Connection:
    """An in-memory database with every migration run, as a new file gets."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    for version in range(1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version]:
            connection.execute(statement)
    return connection


def _declared_types(connection: sqlite3.Connection) -> dict[str, str]:
    return {row[1]: row[2] for row in connection.execute("PRAGMA table_info(tasks)")}


def _options() -> TaskOptions:
    """Every stored option at its sample (a value that is not its default)."""
    return TaskOptions(isolation=Isolation.THREAD).replace(
        **{declared.name: SAMPLES[declared.kind] for declared in STORED}
    )


def _record(
    *,
    seq: int = 7,
    status: TaskStatus = TaskStatus.COMPLETED,
    outcome: Outcome | None = None,
    options: TaskOptions | None = None,
) -> TaskRecord:
    """A record with every field the row holds set to a value that is not its default."""
    result = {"frames": 120, "name": "zoë"}
    partial = {"frames": 60}
    params = {"scene": 3, "title": "✓"}
    return TaskRecord(
        task_id=f"task-{seq}",
        operation_name="tests.render",
        params=params,
        options=_options() if options is None else options,
        seq=seq,
        created_at=1000.0,
        updated_at=1010.5,
        named=True,
        status=status,
        attempt=2,
        progress=1.0,
        started_at=1001.25,
        ended_at=1010.5,
        result=result,
        has_result=True,
        partial_result=partial,
        has_partial_result=True,
        outcome=Completed(result) if outcome is None else outcome,
        scheduled_for=1000.5,
        attempt_outcomes=(Raised("ValueError", "bad frame", "Traceback ...", ("ValueError",)),),
        injected_faults=((1, "raise ValueError('bad frame')"),),
        params_json=encode_json(params),
        result_json=encode_json(result),
        partial_json=encode_json(partial),
    )


def test_every_kind_has_a_sample() -> None:
    """Each kind an option may take has a sample here, so no kind goes untested."""
    assert set(SAMPLES) == set(typing.get_args(OptionKind)) == set(KINDS)


@pytest.mark.parametrize("declared", STORED, ids=lambda o: o.name)
def test_each_stored_options_kind_round_trips_through_its_column_form(declared: Option) -> None:
    """encode then decode gives back the value, and the encoded form is of the type its
    column is declared with in the table the migrations make."""
    encode, decode = KINDS[declared.kind]
    value = SAMPLES[declared.kind]
    encoded = encode(value)
    with closing(_table()) as connection:
        declared_type = _declared_types(connection)[declared.name]
    assert type(encoded) is SQL_TYPES[declared_type]
    assert value == decode(encoded)


def test_an_empty_task_id_list_is_null_and_reads_back_as_the_default() -> None:
    """No dependencies is NULL in the column (not "[]"), and NULL is the default ()."""
    encode, _ = KINDS["task_ids"]
    assert encode(()) is None
    (depends_on,) = [o for o in STORED if o.kind == "task_ids"]
    assert depends_on.default == ()


def test_null_option_columns_read_back_as_each_options_default() -> None:
    """A row's NULL option columns are the options' declared defaults."""
    options = decode_options((None,) * len(OPTION_NAMES))
    assert {o.name: getattr(options, o.name) for o in STORED} == {o.name: o.default for o in STORED}


def test_the_columns_are_the_task_columns_then_each_stored_option() -> None:
    """COLUMNS is the task's own columns, then one per stored option in declaration
    order, no name twice, and no option that is not stored."""
    assert TASK_COLUMNS + tuple(o.name for o in STORED) == COLUMNS
    assert tuple(o.name for o in STORED) == OPTION_NAMES
    assert len(set(COLUMNS)) == len(COLUMNS)
    assert not {o.name for o in options_of(stored=False)} & set(COLUMNS)


def test_the_columns_are_exactly_the_tables() -> None:
    """Every column the row holds is in the table the migrations make, and the table has
    no column the row leaves out."""
    with closing(_table()) as connection:
        assert set(_declared_types(connection)) == set(COLUMNS)


def test_the_changing_columns_are_the_tasks_own_and_exclude_what_never_changes() -> None:
    """An update rewrites only the columns a task's life changes: never its identity,
    its params, its creation time or its options."""
    assert set(CHANGING) <= set(TASK_COLUMNS)
    assert not set(CHANGING) & {"seq", "task_id", "operation", "named", "params", "created_at"}
    assert not set(CHANGING) & set(OPTION_NAMES)


def test_a_row_holds_each_value_in_its_named_column() -> None:
    """Position by position, the row's values are the record's fields its columns name."""
    record = _record()
    by_column = dict(zip(COLUMNS, to_row(record), strict=True))
    assert by_column == {
        "seq": 7,
        "task_id": "task-7",
        "operation": "tests.render",
        "named": 1,
        "params": record.params_json,
        "status": "completed",
        "attempt": 2,
        "progress": 1.0,
        "created_at": 1000.0,
        "updated_at": 1010.5,
        "started_at": 1001.25,
        "ended_at": 1010.5,
        "result": record.result_json,
        "partial_result": record.partial_json,
        "outcome": encode_outcome(record.outcome),
        "scheduled_for": 1000.5,
        "attempt_outcomes": encode_json([encode_outcome(o) for o in record.attempt_outcomes]),
        "injected_faults": encode_json([[1, "raise ValueError('bad frame')"]]),
        "checkpoint": None,  # the record has no checkpoint and no sign of life yet
        "checkpointed_at": None,
        "last_heartbeat_at": None,
        **{
            o.name: KINDS[o.kind][0](getattr(record.options, o.name))
            for o in STORED  # every sample is not None
        },
    }


def test_a_record_round_trips_through_its_row() -> None:
    """from_row(to_row(record)) is the record, field for field."""
    record = _record(options=TaskOptions(isolation=Isolation.PROCESS, user="ann"))
    assert from_row(to_row(record)) == record


def test_a_record_with_every_option_set_round_trips_through_its_row() -> None:
    """Every stored option at a value that is not its default reads back as written."""
    record = _record()
    loaded = from_row(to_row(record))
    assert loaded == record
    assert {o.name: getattr(loaded.options, o.name) for o in STORED} == {
        o.name: SAMPLES[o.kind] for o in STORED
    }


def test_a_row_fits_the_real_table_and_reads_back_as_the_record() -> None:
    """Inserted by COLUMNS into the table the migrations make (its NOT NULLs and types)
    and selected by COLUMNS, the row is the record again."""
    record = _record(options=TaskOptions(isolation=Isolation.PROCESS, user="ann"))
    with closing(_table()) as connection:
        connection.execute(
            f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
            to_row(record),
        )
        (row,) = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM tasks").fetchall()
    assert from_row(row) == record


def test_a_pending_records_empty_fields_are_null() -> None:
    """A record with no result, partial result, outcome or history stores NULLs, and
    reads back without them (has_result False, not a result of None)."""
    record = _record(status=TaskStatus.PENDING)
    record.has_result = record.has_partial_result = False
    record.result = record.partial_result = record.outcome = None
    record.result_json = record.partial_json = None
    record.attempt_outcomes = record.injected_faults = ()
    by_column = dict(zip(COLUMNS, to_row(record), strict=True))
    nulls = ("result", "partial_result", "outcome", "attempt_outcomes", "injected_faults")
    assert [by_column[c] for c in nulls] == [None] * len(nulls)
    assert from_row(to_row(record)) == record


def test_options_are_encoded_once_and_kept_on_the_record() -> None:
    """The first row encodes the options onto the record; later rows reuse them (the
    options never change), so what is kept is what the row holds."""
    record = _record()
    assert record.stored_options is None
    first = to_row(record)
    kept = record.stored_options
    assert kept is not None
    assert first[len(TASK_COLUMNS) :] == kept == encode_options(_record())
    record.stored_options = ("kept",) * len(OPTION_NAMES)
    assert to_row(record)[len(TASK_COLUMNS) :] == record.stored_options


def test_a_record_without_json_params_is_refused_by_name() -> None:
    """A record that reaches the durable store without its params' JSON text is an
    error naming the task, not a row with NULL params."""
    record = _record()
    record.params_json = None
    with pytest.raises(ValueError, match="task-7 reached the durable store without JSON"):
        to_row(record)


@pytest.mark.parametrize(
    ("column", "text", "error"),
    [
        ("params", "[1, 2]", "params are list, not a JSON object"),
        ("depends_on", '{"a": 1}', "a list of task ids is dict"),
        ("attempt_outcomes", "[null]", "an attempt's outcome is missing"),
    ],
)
def test_a_row_that_cannot_be_read_raises_value_error(column: str, text: str, error: str) -> None:
    """A value another program wrote in the wrong shape is a ValueError saying what is
    wrong (the store turns it into StoreOpenError naming the task)."""
    row = list(to_row(_record()))
    row[COLUMNS.index(column)] = text
    with pytest.raises(ValueError, match=error):
        from_row(tuple(row))


def test_tally_counts_the_records_by_how_they_ended() -> None:
    """The retired counts: every record, then completed, failed, cancelled, and the
    timeouts and the stalls among the failed."""
    records = [
        _record(seq=0, status=TaskStatus.COMPLETED),
        _record(seq=1, status=TaskStatus.FAILED, outcome=TimedOut(5.0)),
        _record(seq=2, status=TaskStatus.FAILED, outcome=Raised("E", "m", "t")),
        _record(seq=3, status=TaskStatus.CANCELLED, outcome=Cancelled(StopReason.CANCEL_REQUESTED)),
        _record(seq=4, status=TaskStatus.FAILED, outcome=TimedOut(1.0)),
        _record(seq=5, status=TaskStatus.FAILED, outcome=Stalled(2.0, 2.5)),
    ]
    assert COUNTERS == ("created", "completed", "failed", "cancelled", "timed_out", "stalled")
    assert tally(records) == (6, 1, 4, 1, 2, 1)
    assert tally([]) == (0, 0, 0, 0, 0, 0)


def test_a_datetime_keeps_its_offset_and_microseconds() -> None:
    """The datetime kind is ISO-8601 text that keeps the offset and the microseconds."""
    encode, decode = KINDS["datetime"]
    when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert encode(when) == "2031-05-06T07:08:09.123456+00:00"
    assert decode(encode(when)) == when
