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
* ``schema_version`` records the layout; :data:`MIGRATIONS` brings an older file up to
  date, and a newer file is refused with :class:`StoreVersionError`.
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

import json
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from actors._enums import Isolation, TaskPriority, TaskStatus
from actors._errors import (
    RecordsNotStoredError,
    StoreError,
    StoreLockedError,
    StoreOpenError,
    StoreVersionError,
    StoreWriteError,
)
from actors._options import OptionKind, TaskOptions, options_of
from actors._outcome import Outcome, TimedOut
from actors._policies import RetryPolicy
from actors._records import TaskRecord
from actors._storage.codec import decode_outcome, encode_json, encode_outcome
from actors._storage.store import StoredState, StoreStats
from actors.logs import library_logger

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteStore"]

_log = library_logger("actors.store")

# The columns of a task's own fields; each stored task option (actors._options) adds one
# column of its own name, written and read by its kind (_KINDS).
_TASK_COLUMNS = (
    "seq",
    "task_id",
    "operation",
    "named",
    "params",
    "status",
    "attempt",
    "progress",
    "created_at",
    "updated_at",
    "started_at",
    "ended_at",
    "result",
    "partial_result",
    "outcome",
    "scheduled_for",
    "attempt_outcomes",
    "injected_faults",
)


def _encode_task_ids(ids: tuple[str, ...]) -> str | None:
    return encode_json(list(ids)) if ids else None  # no dependencies: NULL


def _decode_task_ids(text: str) -> tuple[str, ...]:
    ids = json.loads(text)
    if not isinstance(ids, list):
        raise ValueError(f"a list of task ids is {type(ids).__name__}")
    return tuple(ids)


def _decode_retry(text: str) -> RetryPolicy:
    return RetryPolicy.from_json(json.loads(text))


def _same(value: Any) -> Any:
    return value


# How each kind of option is kept in its column: (encode, decode), applied to a value that
# is not None (None is NULL, and NULL reads back as the option's default). text and
# isolation are TEXT, seconds and megabytes REAL, priority INTEGER, datetime ISO-8601
# TEXT, retry and task_ids JSON TEXT.
_KINDS: dict[OptionKind, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "text": (_same, _same),
    "seconds": (float, float),
    "megabytes": (float, float),
    "priority": (int, TaskPriority),
    "isolation": (operator.attrgetter("value"), Isolation),
    "datetime": (datetime.isoformat, datetime.fromisoformat),
    "retry": (lambda policy: encode_json(policy.to_json()), _decode_retry),
    "task_ids": (_encode_task_ids, _decode_task_ids),
}

_OPTIONS = options_of(stored=True)
_OPTION_NAMES = tuple(declared.name for declared in _OPTIONS)
_OPTION_VALUES = operator.attrgetter(*_OPTION_NAMES)  # one call for every stored value
_ENCODERS = tuple(_KINDS[declared.kind][0] for declared in _OPTIONS)
_DECODERS = tuple(
    (declared.name, _KINDS[declared.kind][1], declared.default) for declared in _OPTIONS
)
_COLUMNS = _TASK_COLUMNS + _OPTION_NAMES

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
}
"""Statements that bring a database from version ``n - 1`` to ``n``, keyed by ``n``.
A new layout adds an entry; released entries never change."""

SCHEMA_VERSION = max(MIGRATIONS)

# The columns a task's life changes; the others are written once, when it is created.
_CHANGING = (
    "status",
    "attempt",
    "progress",
    "updated_at",
    "started_at",
    "ended_at",
    "result",
    "partial_result",
    "outcome",
    "scheduled_for",
    "attempt_outcomes",
    "injected_faults",
)
# Upserts update a row in place (not INSERT OR REPLACE, which deletes and re-inserts).
_DELETE = "DELETE FROM tasks WHERE seq = ?"
_COUNTERS = ("created", "completed", "failed", "cancelled", "timed_out")
_RETIRE = f"UPDATE retired SET {', '.join(f'{c} = {c} + ?' for c in _COUNTERS)}"
# Rows per statement: a commit of up to this many rows (the common case) is a single
# statement in autocommit mode, one call into SQLite, so the GIL is released and taken
# back once instead of once per statement and per row (under load, taking it back is
# what a commit costs most).
_ROWS_PER_STATEMENT = 16


_PATH_CHECK_SECONDS = 1.0  # how often the path itself is compared with the open file


def _upsert(rows: int) -> str:
    values = ", ".join([f"({', '.join('?' for _ in _COLUMNS)})"] * rows)
    return (
        f"INSERT INTO tasks ({', '.join(_COLUMNS)}) VALUES {values} "
        f"ON CONFLICT (seq) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _CHANGING)}"
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
        # The file as opened (a descriptor of our own, its device and inode), and why
        # writing stopped once it was deleted or replaced under the open connection.
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._next_path_check = 0.0
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
                version = self._schema_version(connection)
                self._configure(connection, new=version == 0)
                self._migrate(connection, version)
                self._check_columns(connection)
                state = self._load(connection)
            except BaseException as exc:
                connection.close()  # releases the lock at once, not at garbage collection
                error = self._open_error(exc)
                if error is exc:
                    raise
                raise error from exc
            self._connection = connection
            self._lost = None
            try:
                self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
                opened = os.fstat(self._fd)
                self._identity = (opened.st_dev, opened.st_ino)
            except OSError:
                self._fd = None  # cannot watch the file; writing works as before
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
        values = [value for record in records for value in _row(record)]
        rows = len(records)
        width = len(_COLUMNS)
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
                    connection.execute(_UPSERTS[1], _row(record))
                except _DATA_ERRORS as exc:
                    rejected[record.task_id] = _printable(f"{type(exc).__name__}: {exc}")
            _retire(connection, gone)
        return rejected

    def _check_file(self) -> None:
        """After a commit: is the file at the path still the one this connection writes?
        Deleted or replaced while open, every write goes to an inode nobody will read
        again, so from then on every commit fails, naming the path.

        Every commit looks at the open file's link count (an fstat, about 1 µs: deleted,
        or replaced by a rename, it has no name left); at most once a second it also
        compares the path's device and inode (the file moved away, another put there)."""
        fd = self._fd
        if fd is None:
            return
        what = None
        try:
            if os.fstat(fd).st_nlink == 0:
                what = "deleted or replaced"
            else:
                now = time.monotonic()
                if now >= self._next_path_check:
                    self._next_path_check = now + _PATH_CHECK_SECONDS
                    try:
                        found = os.stat(self._path)
                    except FileNotFoundError:
                        what = "moved away or deleted"
                    else:
                        if (found.st_dev, found.st_ino) != self._identity:
                            what = "replaced by another file"
        except OSError:
            return  # cannot look (a permission change): the file itself may be fine
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
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

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

    def _schema_version(self, connection: sqlite3.Connection) -> int:
        """The file's schema version (0 for a new, empty file), read without writing."""
        tables = {
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if not tables:
            return 0
        if "schema_version" not in tables:
            raise StoreOpenError(
                self.location,
                f"{self.location} is a SQLite database of another program (tables: "
                f"{', '.join(sorted(tables))}); give the task manager its own file",
            )
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        if row is None or not isinstance(row[0], int):
            raise StoreOpenError(
                self.location, f"{self.location} has no readable schema version; it is damaged"
            )
        version: int = row[0]
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                self.location,
                f"the task database {self.location} has schema version {version}, written by "
                f"a newer storycore-tasks; this one reads up to version {SCHEMA_VERSION}. "
                "Upgrade storycore-tasks, or open another file.",
            )
        return version

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
        if isinstance(exc, _MigrationError):
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
        row = connection.execute(f"SELECT {', '.join(_COUNTERS)} FROM retired").fetchone()
        retired = dict(zip(_COUNTERS, row, strict=True))
        cursor = connection.execute(f"SELECT {', '.join(_COLUMNS)} FROM tasks ORDER BY seq")
        records = []
        for row in cursor:
            try:
                records.append(_record(row))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise StoreOpenError(
                    self.location,
                    f"task {row[1]!r} in {self.location} cannot be read ({exc}); the file "
                    "was changed by another program or is damaged",
                ) from exc
        next_seq = records[-1].seq + 1 if records else 0
        return StoredState(records=records, retired=retired, next_seq=next_seq)

    def _check_columns(self, connection: sqlite3.Connection) -> None:
        """Every column the store writes is in the file: a stored option declared
        without its migration fails here, naming the fix, before anything is written."""
        present = {row[1] for row in connection.execute("PRAGMA table_info(tasks)")}
        missing = [column for column in _COLUMNS if column not in present]
        if missing:
            raise StoreOpenError(
                self.location,
                f"the task database {self.location} has no column for {', '.join(missing)}: "
                "a stored task option needs a migration (actors._storage.sqlite.MIGRATIONS) "
                "that adds its column",
            )

    def _migrate(self, connection: sqlite3.Connection, version: int) -> None:
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
                raise _MigrationError(target) from exc


class _MigrationError(Exception):
    def __init__(self, target: int) -> None:
        super().__init__(f"migration to schema version {target} failed")
        self.target = target


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
        connection.execute(_RETIRE, _tally(gone))


def _tally(records: list[TaskRecord]) -> tuple[int, ...]:
    """How the records ended, in :data:`_COUNTERS` order."""
    statuses = [r.status for r in records]
    return (
        len(records),
        statuses.count(TaskStatus.COMPLETED),
        statuses.count(TaskStatus.FAILED),
        statuses.count(TaskStatus.CANCELLED),
        sum(isinstance(r.outcome, TimedOut) for r in records),
    )


def _row(record: TaskRecord) -> tuple[Any, ...]:
    """The record's values in :data:`_COLUMNS` order."""
    params_json = record.params_json
    if params_json is None:
        raise ValueError(f"task {record.task_id} reached the durable store without JSON params")
    return (
        record.seq,
        record.task_id,
        record.operation_name,
        int(record.named),
        params_json,
        record.status.value,
        record.attempt,
        record.progress,
        record.created_at,
        record.updated_at,
        record.started_at,
        record.ended_at,
        record.result_json if record.has_result else None,
        record.partial_json if record.has_partial_result else None,
        encode_outcome(record.outcome),
        record.scheduled_for,
        encode_json([encode_outcome(o) for o in record.attempt_outcomes])
        if record.attempt_outcomes
        else None,
        encode_json([list(entry) for entry in record.injected_faults])
        if record.injected_faults
        else None,
        *(record.stored_options or _encode_options(record)),
    )


def _encode_options(record: TaskRecord) -> tuple[Any, ...]:
    """The stored options' column values, in :data:`_OPTION_NAMES` order; kept on the
    record, whose options never change, for its later commits."""
    values = _OPTION_VALUES(record.options)
    if len(_ENCODERS) == 1:
        values = (values,)  # attrgetter of one name gives the value itself
    encoded = tuple(
        None if value is None else encode(value)
        for encode, value in zip(_ENCODERS, values, strict=True)
    )
    record.stored_options = encoded
    return encoded


def _options(values: tuple[Any, ...]) -> TaskOptions:
    """The options a row's option columns hold (NULL: the option's default). Not checked
    again: the store wrote them from checked options."""
    return TaskOptions.trusted(
        {
            name: default if value is None else decode(value)
            for (name, decode, default), value in zip(_DECODERS, values, strict=True)
        }
    )


def _record(row: tuple[Any, ...]) -> TaskRecord:
    width = len(_TASK_COLUMNS)
    (
        seq,
        task_id,
        operation,
        named,
        params,
        status,
        attempt,
        progress,
        created_at,
        updated_at,
        started_at,
        ended_at,
        result,
        partial,
        outcome,
        scheduled_for,
        attempt_outcomes,
        injected_faults,
    ) = row[:width]
    result_value = None if result is None else json.loads(result)
    partial_value = None if partial is None else json.loads(partial)
    params_value = json.loads(params)
    if not isinstance(params_value, dict):
        raise ValueError(f"params are {type(params_value).__name__}, not a JSON object")
    stored_options = row[width:]
    return TaskRecord(
        task_id=task_id,
        operation_name=operation,
        params=params_value,
        options=_options(stored_options),
        stored_options=stored_options,
        seq=seq,
        created_at=created_at,
        updated_at=updated_at,
        named=bool(named),
        status=TaskStatus(status),
        attempt=attempt,
        progress=progress,
        started_at=started_at,
        ended_at=ended_at,
        result=result_value,
        has_result=result is not None,
        partial_result=partial_value,
        has_partial_result=partial is not None,
        outcome=decode_outcome(outcome, result_value),
        params_json=params,
        result_json=result,
        partial_json=partial,
        scheduled_for=scheduled_for,
        attempt_outcomes=()
        if attempt_outcomes is None
        else tuple(_outcome(text) for text in json.loads(attempt_outcomes)),
        injected_faults=()
        if injected_faults is None
        else tuple((int(attempt), str(fault)) for attempt, fault in json.loads(injected_faults)),
    )


def _outcome(text: str) -> Outcome:
    outcome = decode_outcome(text, None)
    if outcome is None:
        raise ValueError("an attempt's outcome is missing")
    return outcome
