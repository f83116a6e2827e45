"""The SQLite task store: one file, WAL mode, one writing connection, held exclusively.

* Exclusive locking: the connection takes the database's write lock when it opens and
  holds it until it closes, so a second runtime opening the same file (in this process
  or another one) fails at once with :class:`StoreLockedError`, never as a second writer.
  A killed process's lock goes with it.
* ``synchronous=NORMAL`` in WAL mode: a committed transaction survives the death of the
  process (``kill -9``); ``synchronous="full"`` also survives a power cut, at one fsync
  per commit.
* ``auto_vacuum=INCREMENTAL`` and :meth:`reclaim` after retention deletes, so the file
  does not grow without bound under steady load.
* ``schema_version`` records the layout; the migrations (``sqlite_schema.MIGRATIONS``)
  bring an older file up to date, and a newer file is refused with
  :class:`StoreVersionError`. A task's row is ``sqlite_rows``.
* One record never blocks the others: a record whose data cannot be bound (text that is
  not valid Unicode) is found on a slow path and left out, the rest is committed, and
  :class:`RecordsNotStoredError` names it.
* After each commit the open file is checked (its link count; at most once a second
  also the path's device and inode): deleted or replaced under the running manager,
  every later commit fails with :class:`StoreWriteError` naming the path, instead of
  writing to a file nobody will read.
* Every failed write is counted in ``statistics().failed_writes``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from actors._errors import (
    RecordsNotStoredError,
    StoreError,
    StoreLockedError,
    StoreOpenError,
    StoreWriteError,
)
from actors._records import TaskRecord
from actors._storage.file_watch import FileWatch
from actors._storage.sqlite_rows import CHANGING, COLUMNS, COUNTERS, from_row, tally, to_row
from actors._storage.sqlite_schema import MigrationError, check_columns, file_version, migrate
from actors._storage.store import StoredState, StoreStats
from actors.logs import library_logger

__all__ = ["SqliteStore"]

_log = library_logger("actors.store")

# Upserts update a row in place (not INSERT OR REPLACE, which deletes and re-inserts).
_DELETE = "DELETE FROM tasks WHERE seq = ?"
_RETIRE = f"UPDATE retired SET {', '.join(f'{c} = {c} + ?' for c in COUNTERS)}"
# Rows per statement: a commit of up to this many rows (the common case) is a single
# statement in autocommit mode, one call into SQLite, so the GIL is released and taken
# back once instead of once per statement and per row (under load, taking it back is
# what a commit costs most).
_ROWS_PER_STATEMENT = 16


def _upsert(rows: int) -> str:
    values = ", ".join([f"({', '.join('?' for _ in COLUMNS)})"] * rows)
    return (
        f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES {values} "
        f"ON CONFLICT (seq) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in CHANGING)}"
    )


_UPSERTS = [""] + [_upsert(n) for n in range(1, _ROWS_PER_STATEMENT + 1)]
_SYNCHRONOUS = ("normal", "full")


class SqliteStore:
    """Task records in a SQLite file at ``path`` (created, with its folder, if missing).

    Args:
        path: the database file.
        synchronous: ``"normal"`` (survives a killed process) or ``"full"`` (also
            survives a power cut; one fsync per commit).
    """

    durable = True

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "normal") -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
        if str(path) in ("", ":memory:"):
            raise ValueError(
                "a SqliteStore needs a file path; for a store that keeps nothing, pass "
                "store=None (the memory store)"
            )
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self._path = Path(path)
        self._synchronous = synchronous
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # guards open/close against a concurrent statistics()
        self._commits = 0
        self._failed_writes = 0
        # The file as opened, and why writing stopped once it was deleted or replaced
        # under the open connection.
        self._watch = FileWatch(self._path)
        self._lost: str | None = None
        self._written = 0
        self._deleted = 0

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """``sqlite:///relative/tasks.db`` or ``sqlite:////absolute/tasks.db`` (the path
        follows the third slash, as in SQLAlchemy), with an optional
        ``?synchronous=full``."""
        parts = urlsplit(url)
        if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
            raise ValueError(
                f"unsupported store URL {url!r}; use sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db"
            )
        options = parse_qs(parts.query)
        unknown = set(options) - {"synchronous"}
        if unknown:
            raise ValueError(
                f"unknown store URL option(s) {sorted(unknown)} in {url!r}; the only one is "
                "synchronous=normal|full"
            )
        synchronous = options.get("synchronous", ["normal"])[-1].lower()
        return cls(unquote(parts.path[1:]), synchronous=synchronous)

    @property
    def location(self) -> str:
        return str(self._path)

    # -- the Store protocol --------------------------------------------------------------

    def open(self) -> StoredState:
        with self._lock:
            if self._connection is not None:
                raise RuntimeError(f"the store {self.location} is already open")
            connection = self._connect()
            try:
                # Nothing is written before the file is known to be ours and readable: a
                # refused file is left exactly as it was.
                version = file_version(connection, self.location)
                self._configure(connection, new=version == 0)
                migrate(connection, version)
                check_columns(connection, self.location)
                state = self._load(connection)
            except BaseException as exc:
                connection.close()  # releases the lock at once, not at garbage collection
                error = self._open_error(exc)
                if error is exc:
                    raise
                raise error from exc
            self._connection = connection
            self._lost = None
            self._watch.start()  # a file it cannot open is not watched; writing works
            return state

    def reload(self) -> StoredState:
        connection = self._connection
        if connection is None:
            raise RuntimeError(f"the store {self.location} is not open")
        try:
            return self._load(connection)
        except sqlite3.Error as exc:
            raise StoreOpenError(
                self.location, f"cannot read the task database {self.location} again: {exc}"
            ) from exc

    def write(self, records: Iterable[TaskRecord], deleted: Iterable[TaskRecord]) -> None:
        """One transaction. A record whose data cannot be encoded for the file is left
        out and the others are written: then :class:`RecordsNotStoredError` names it.
        Every failed write is counted in ``failed_writes``."""
        connection = self._connection
        if connection is None:
            raise RuntimeError(f"the store {self.location} is not open")
        if self._lost is not None:
            self._failed_writes += 1  # never written to a file nobody will read again
            raise StoreWriteError(self.location, self._lost)
        records = list(records)
        gone = list(deleted)
        if not records and not gone:
            return
        rejected: dict[str, str] = {}
        try:
            try:
                self._write_all(connection, records, gone)
            except _DATA_ERRORS:
                # One record (or more) cannot be encoded: find it, write the others.
                rejected = self._write_each(connection, records, gone)
        except sqlite3.Error as exc:
            self._failed_writes += 1
            raise StoreWriteError(
                self.location,
                f"writing to the task database {self.location} failed: {exc}. The change "
                "is not durable; check free disk space and the file's health.",
            ) from exc
        self._check_file()
        self._commits += 1
        self._written += len(records) - len(rejected)
        self._deleted += len(gone)
        if rejected:
            self._failed_writes += len(rejected)
            raise RecordsNotStoredError(self.location, rejected)

    def _write_all(
        self, connection: sqlite3.Connection, records: list[TaskRecord], gone: list[TaskRecord]
    ) -> None:
        values = [value for record in records for value in to_row(record)]
        rows = len(records)
        width = len(COLUMNS)
        if not gone and rows <= _ROWS_PER_STATEMENT:
            connection.execute(_UPSERTS[rows], values)  # its own transaction
            return
        with _transaction(connection):
            for start in range(0, rows, _ROWS_PER_STATEMENT):
                chunk = values[start * width : (start + _ROWS_PER_STATEMENT) * width]
                connection.execute(_UPSERTS[len(chunk) // width], chunk)
            _retire(connection, gone)

    def _write_each(
        self, connection: sqlite3.Connection, records: list[TaskRecord], gone: list[TaskRecord]
    ) -> dict[str, str]:
        """The slow path, one statement per record, in one transaction; returns the
        records left out, with why (data errors only: an I/O error fails the whole)."""
        rejected: dict[str, str] = {}
        with _transaction(connection):
            for record in records:
                try:
                    connection.execute(_UPSERTS[1], to_row(record))
                except _DATA_ERRORS as exc:
                    rejected[record.task_id] = _printable(f"{type(exc).__name__}: {exc}")
            _retire(connection, gone)
        return rejected

    def _check_file(self) -> None:
        """After a commit: is the file at the path still the one this connection writes?
        Deleted or replaced while open, every write goes to an inode nobody will read
        again, so from then on every commit fails, naming the path (the checks and how
        often each is made: actors._storage.file_watch)."""
        what = self._watch.check(time.monotonic())
        if what is None:
            return
        self._lost = (
            f"the task database {self.location} was {what} while this task manager had it "
            "open; nothing written since is durable (it goes to a file that is no longer "
            "there). Stop the manager and restore the file, or start it on a new one."
        )
        self._failed_writes += 1
        _log.error("store.file_lost", location=self.location, error=self._lost)
        raise StoreWriteError(self.location, self._lost)

    def reclaim(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            # execute() would step the pragma once, which frees a single page; a script
            # runs it to the end.
            connection.executescript("PRAGMA incremental_vacuum;")
        except sqlite3.Error as exc:
            self._failed_writes += 1
            raise StoreWriteError(
                self.location, f"reclaiming space in {self.location} failed: {exc}"
            ) from exc

    def statistics(self) -> StoreStats:
        return StoreStats(
            kind="sqlite",
            location=self.location,
            durable=True,
            commits=self._commits,
            records_written=self._written,
            records_deleted=self._deleted,
            failed_writes=self._failed_writes,
        )

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()  # releases the exclusive lock
        self._watch.stop()

    # -- internals -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        location = self.location
        if self._path.is_dir():
            raise StoreOpenError(
                location, f"the task database path {location} is a folder; name a file in it"
            )
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            # timeout=0: a file another runtime holds fails at once instead of waiting.
            # isolation_level=None: this module writes BEGIN and COMMIT itself.
            # check_same_thread=False: opened by the caller, then written only by the
            # registry actor's thread; never two threads at once.
            connection = sqlite3.connect(
                location,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=64,  # the upserts of 1 to 16 rows stay prepared
            )
            # Locks taken from now on are held until close(): the first read keeps other
            # writers out, the first write keeps everyone out.
            connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        except (OSError, sqlite3.Error) as exc:
            raise StoreOpenError(
                location,
                f"cannot open the task database {location}: {exc}. Check that its folder "
                "exists and is writable.",
            ) from exc
        return connection

    def _configure(self, connection: sqlite3.Connection, *, new: bool) -> None:
        if new:
            # Only possible before the first table exists.
            connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        connection.execute("PRAGMA journal_size_limit=16777216")
        # Takes the write lock now, and (exclusive mode) keeps it until close().
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("COMMIT")

    def _open_error(self, exc: BaseException) -> BaseException:
        """The error ``open`` raises for ``exc``: a StoreError naming the file."""
        location = self.location
        if isinstance(exc, StoreError) or not isinstance(exc, Exception):
            return exc
        if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in str(exc) or "busy" in str(exc)
        ):
            return StoreLockedError(
                location,
                f"the task database {location} is open in another task manager (in this "
                "process or another one). A database has one writer: shut that manager "
                "down first, or give this one its own file.",
            )
        if isinstance(exc, MigrationError):
            return StoreOpenError(
                location,
                f"upgrading the task database {location} to schema version {exc.target} "
                f"failed ({exc.__cause__}); the file was left at version {exc.target - 1}",
            )
        if isinstance(exc, sqlite3.DatabaseError):
            return StoreOpenError(
                location,
                f"cannot read the task database {location} ({exc}): the file is damaged or "
                "is not a SQLite database. Restore it from a backup or move it aside to "
                "start an empty one.",
            )
        return StoreOpenError(location, f"cannot open the task database {location}: {exc}")

    def _load(self, connection: sqlite3.Connection) -> StoredState:
        row = connection.execute(f"SELECT {', '.join(COUNTERS)} FROM retired").fetchone()
        retired = dict(zip(COUNTERS, row, strict=True))
        cursor = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM tasks ORDER BY seq")
        records = []
        for row in cursor:
            try:
                records.append(from_row(row))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise StoreOpenError(
                    self.location,
                    f"task {row[1]!r} in {self.location} cannot be read ({exc}); the file "
                    "was changed by another program or is damaged",
                ) from exc
        next_seq = records[-1].seq + 1 if records else 0
        return StoredState(records=records, retired=retired, next_seq=next_seq)


# What binding a record's values can raise when the record's own data is the problem
# (a str that is not valid Unicode, an int SQLite cannot hold, a value too big), as
# opposed to the file's (sqlite3.OperationalError: disk full, I/O error, locked).
_DATA_ERRORS = (
    UnicodeError,
    ValueError,
    TypeError,
    OverflowError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction (the connection is in autocommit mode): committed when
    the block ends, rolled back when it raises."""
    connection.execute("BEGIN")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _retire(connection: sqlite3.Connection, gone: list[TaskRecord]) -> None:
    """Delete the rows retention removed and add them to the retired counts."""
    if gone:
        connection.executemany(_DELETE, [(r.seq,) for r in gone])
        connection.execute(_RETIRE, tally(gone))
