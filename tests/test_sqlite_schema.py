"""The SQLite store's layout (actors/_storage/sqlite_schema.py) on in-memory databases:
the version a file records, the migration runner, and the column check, without a store.
Opening real files through the store is pinned in tests/test_store.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

import actors._storage.sqlite_schema as schema
from actors import StoreOpenError, StoreVersionError
from actors._storage.sqlite_rows import COLUMNS
from actors._storage.sqlite_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    MigrationError,
    check_columns,
    file_version,
    migrate,
)

WHERE = "/data/tasks.db"  # the location named in the errors


@pytest.fixture
def connection() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    yield connection
    connection.close()


def _version(connection: sqlite3.Connection) -> int:
    (version,) = connection.execute("SELECT version FROM schema_version").fetchone()
    assert isinstance(version, int)
    return version


def test_the_versions_are_one_to_the_newest_without_a_gap() -> None:
    """Every step from 1 to SCHEMA_VERSION has an entry, so the runner never skips one."""
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))


def test_an_empty_file_is_version_0_and_migrates_to_the_newest(
    connection: sqlite3.Connection,
) -> None:
    """A new file reads as version 0; migrate() runs every step and records the newest,
    and then the file has every column the store writes."""
    assert file_version(connection, WHERE) == 0
    migrate(connection, 0)
    assert _version(connection) == SCHEMA_VERSION
    assert file_version(connection, WHERE) == SCHEMA_VERSION
    check_columns(connection, WHERE)  # raises if a column is missing


def test_a_file_at_an_older_version_runs_only_the_missing_steps(
    connection: sqlite3.Connection,
) -> None:
    """From version 1, only the later steps run (running 1 again would fail: its
    tables exist)."""
    for statement in MIGRATIONS[1]:
        connection.execute(statement)
    connection.execute("UPDATE schema_version SET version = 1")
    migrate(connection, 1)
    assert _version(connection) == SCHEMA_VERSION


def test_a_failing_step_is_rolled_back_and_names_its_version(
    connection: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that fails raises MigrationError(target) caused by the SQLite error, and
    the file stays at the version before it, without that step's first statements."""
    migrate(connection, 0)
    newer = SCHEMA_VERSION + 1
    monkeypatch.setattr(
        schema, "MIGRATIONS", {**MIGRATIONS, newer: ("ALTER TABLE tasks ADD note TEXT", "NOT SQL")}
    )
    monkeypatch.setattr(schema, "SCHEMA_VERSION", newer)
    with pytest.raises(MigrationError) as raised:
        migrate(connection, SCHEMA_VERSION)
    assert raised.value.target == newer
    assert isinstance(raised.value.__cause__, sqlite3.Error)
    assert _version(connection) == SCHEMA_VERSION
    assert "note" not in {row[1] for row in connection.execute("PRAGMA table_info(tasks)")}


def test_a_newer_file_is_refused_naming_both_versions(connection: sqlite3.Connection) -> None:
    """A version above SCHEMA_VERSION was written by a newer release: StoreVersionError
    naming the file, its version and the newest this one reads."""
    migrate(connection, 0)
    connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreVersionError, match=f"schema version {SCHEMA_VERSION + 1}") as raised:
        file_version(connection, WHERE)
    assert raised.value.location == WHERE
    assert f"reads up to version {SCHEMA_VERSION}" in str(raised.value)


def test_another_programs_database_is_refused_naming_its_tables(
    connection: sqlite3.Connection,
) -> None:
    connection.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreOpenError, match=r"another program.*invoices"):
        file_version(connection, WHERE)


@pytest.mark.parametrize("insert", ["", "INSERT INTO schema_version VALUES ('two')"])
def test_a_missing_or_unreadable_version_is_refused_as_damaged(
    connection: sqlite3.Connection, insert: str
) -> None:
    connection.execute("CREATE TABLE schema_version (version)")
    if insert:
        connection.execute(insert)
    with pytest.raises(StoreOpenError, match="no readable schema version; it is damaged"):
        file_version(connection, WHERE)


def test_a_missing_column_is_refused_naming_it_and_the_migrations(
    connection: sqlite3.Connection,
) -> None:
    """A column the store writes but the file lacks (a stored option declared without
    its migration) is named, with where the migration goes."""
    migrate(connection, 0)
    connection.execute(f"ALTER TABLE tasks DROP COLUMN {COLUMNS[-1]}")
    with pytest.raises(StoreOpenError) as raised:
        check_columns(connection, WHERE)
    assert f"has no column for {COLUMNS[-1]}" in str(raised.value)
    assert "actors._storage.sqlite_schema.MIGRATIONS" in str(raised.value)
