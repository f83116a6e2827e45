"""The SQLite store's layout: its tables, the schema version a file records, and the
migrations that bring an older file up to date.

* :data:`MIGRATIONS` holds the statements of each version; a new layout adds an entry,
  released entries never change. :data:`SCHEMA_VERSION` is the newest.
* :func:`file_version` reads a file's version without writing: 0 for a new, empty file;
  another program's database, a damaged version or a newer one is refused.
* :func:`migrate` runs the missing steps, one transaction each, so a failing step leaves
  the file at the last version that worked (:class:`MigrationError` names the step).
* :func:`check_columns` refuses a file without a column the store writes
  (``sqlite_rows.COLUMNS``): a stored option declared without its migration.
"""

from __future__ import annotations

import sqlite3

from actors._errors import StoreOpenError, StoreVersionError
from actors._storage.sqlite_rows import COLUMNS

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "MigrationError",
    "check_columns",
    "file_version",
    "migrate",
]

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # Version 1: every record in one table, keyed by submission order. No index on
    # task_id: the runtime reads every record once when it opens the file and answers
    # from memory; writes and deletes go by seq (an index on random UUIDs would cost
    # more than the rest of an insert).
    1: (
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "INSERT INTO schema_version (version) VALUES (0)",
        # What retention deleted, by how it ended: the lifetime counters are these plus
        # a count of the rows, so no commit but a cleanup has to touch this table.
        """CREATE TABLE retired (
            created INTEGER NOT NULL,
            completed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            cancelled INTEGER NOT NULL,
            timed_out INTEGER NOT NULL
        )""",
        "INSERT INTO retired VALUES (0, 0, 0, 0, 0)",
        """CREATE TABLE tasks (
            seq INTEGER PRIMARY KEY,
            task_id TEXT NOT NULL,
            operation TEXT NOT NULL,
            named INTEGER NOT NULL,
            params TEXT NOT NULL,
            user TEXT,
            timeout REAL,
            priority INTEGER NOT NULL,
            isolation TEXT NOT NULL,
            memory_limit_mb REAL,
            cpu_time_limit REAL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            progress REAL NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            ended_at REAL,
            result TEXT,
            partial_result TEXT,
            outcome TEXT,
            scheduled_for REAL,
            retry TEXT,
            attempt_outcomes TEXT,
            depends_on TEXT,
            group_id TEXT
        )""",
    ),
    # Version 2: the faults a test injected into a task's attempts (actors._execution.faults).
    2: ("ALTER TABLE tasks ADD COLUMN injected_faults TEXT",),
    # Version 3: what a task asks for by name (actors._resources.Resources), as JSON.
    3: ("ALTER TABLE tasks ADD COLUMN resources TEXT",),
}
"""Statements that bring a database from version ``n - 1`` to ``n``, keyed by ``n``.
A new layout adds an entry; released entries never change."""

SCHEMA_VERSION = max(MIGRATIONS)


class MigrationError(Exception):
    """The step to schema version ``target`` failed (its cause is the SQLite error) and
    was rolled back: the file is at ``target - 1``."""

    def __init__(self, target: int) -> None:
        super().__init__(f"migration to schema version {target} failed")
        self.target = target


def file_version(connection: sqlite3.Connection, location: str) -> int:
    """The file's schema version (0 for a new, empty file), read without writing."""
    tables = {
        name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if not tables:
        return 0
    if "schema_version" not in tables:
        raise StoreOpenError(
            location,
            f"{location} is a SQLite database of another program (tables: "
            f"{', '.join(sorted(tables))}); give the task manager its own file",
        )
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    if row is None or not isinstance(row[0], int):
        raise StoreOpenError(location, f"{location} has no readable schema version; it is damaged")
    version: int = row[0]
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            location,
            f"the task database {location} has schema version {version}, written by "
            f"a newer storycore-tasks; this one reads up to version {SCHEMA_VERSION}. "
            "Upgrade storycore-tasks, or open another file.",
        )
    return version


def migrate(connection: sqlite3.Connection, version: int) -> None:
    """Bring the file from ``version`` to :data:`SCHEMA_VERSION`, one transaction per
    step, so a failing step leaves the file at the last version that worked."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN")
        try:
            for statement in MIGRATIONS[target]:
                connection.execute(statement)
            connection.execute("UPDATE schema_version SET version = ?", (target,))
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            connection.execute("ROLLBACK")
            raise MigrationError(target) from exc


def check_columns(connection: sqlite3.Connection, location: str) -> None:
    """Every column the store writes is in the file: a stored option declared
    without its migration fails here, naming the fix, before anything is written."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(tasks)")}
    missing = [column for column in COLUMNS if column not in present]
    if missing:
        raise StoreOpenError(
            location,
            f"the task database {location} has no column for {', '.join(missing)}: "
            "a stored task option needs a migration (actors._storage.sqlite_schema.MIGRATIONS) "
            "that adds its column",
        )
