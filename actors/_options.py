"""``TaskOptions``: every per-task option, declared once, with its check next to it.

Each option is one field of a frozen, keyword-only dataclass; the field's ``metadata``
holds its :class:`Option` (what kind of value it is, whether a store keeps it, whether
the HTTP API and the CLI offer it, whether a task's status shows it, one line of
documentation). Everything else derives from that declaration: one ``TaskOptions``
travels from ``create_task`` through the spec, the record and the snapshot to the store;
the SQLite store has a column per stored option, written and read by the option's kind;
the HTTP request model and the CLI's ``submit`` flags are built from the options they
offer; the status dict shows the stored options it is told to; and an unknown option
anywhere gets an error that names it and lists the known ones.

The options a spec, a record or a snapshot carries are *resolved*: the runtime has
filled in its defaults (isolation, limits, retry policy) and turned ``delay``/``run_at``
into the task's start time, so they read None there (what is stored is what is carried).

A new option is its field here (with its check), its column (a migration) and its
documentation; nothing else lists the options by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from actors._enums import Isolation, TaskPriority
from actors._errors import NaiveRunAtError
from actors._policies import RetryPolicy
from actors._resources import Resources, check_resources
from actors.validation import (
    check_isolation,
    check_positive_number,
    check_priority,
    check_seconds,
    check_text,
)

__all__ = ["Option", "OptionKind", "TaskOptions", "UnknownOptionError", "option", "options_of"]

OptionKind = Literal[
    "text",
    "seconds",
    "megabytes",
    "priority",
    "isolation",
    "datetime",
    "retry",
    "task_ids",
    "resources",
]
"""What kind of value an option takes: the HTTP model and the CLI type it from this."""


@dataclass(frozen=True, slots=True)
class Option:
    """The declaration of one per-task option (the metadata of its field)."""

    kind: OptionKind
    doc: str
    check: Callable[[str, Any], Any]  # (name, value) -> the value to keep, or raise
    stored: bool = True  # a durable store keeps it (a column of its own)
    http: bool = True  # a field of POST /v1/tasks
    cli: bool = False  # a flag of the CLI's submit
    shown: bool = True  # a task's status dict (and the HTTP task view) shows it, if stored
    default: Any = None
    # Over HTTP: a number's upper bound (None: the library's own), or a list's length.
    http_max: float | None = None
    allow_zero: bool = False  # a number of seconds that may be 0 (else it must be > 0)
    name: str = ""  # filled in from the field's name


class UnknownOptionError(TypeError, ValueError):
    """An option name that is not a per-task option; names it and lists the known ones.
    A ``TypeError`` as an unexpected keyword argument is, and a ``ValueError`` as a bad
    key of a mapping (``create_group``'s items) is."""

    def __init__(self, names: Iterable[str], known: Iterable[str], where: str = "") -> None:
        self.names = sorted(names)
        self.known = sorted(known)
        place = f"{where}: " if where else ""
        plural = "s" if len(self.names) > 1 else ""
        super().__init__(
            f"{place}unknown task option{plural} {', '.join(map(repr, self.names))}; "
            f"the options are {', '.join(self.known)}"
        )


def option(
    kind: OptionKind,
    doc: str,
    check: Callable[[str, Any], Any],
    *,
    default: Any = None,
    stored: bool = True,
    http: bool = True,
    cli: bool = False,
    shown: bool = True,
    http_max: float | None = None,
    allow_zero: bool = False,
) -> Any:
    """Declare a :class:`TaskOptions` field."""
    declared = Option(
        kind,
        doc,
        check,
        stored=stored,
        http=http,
        cli=cli,
        shown=shown,
        default=default,
        http_max=http_max,
        allow_zero=allow_zero,
    )
    return field(default=default, metadata={"option": declared})


# -- checks: (name, value) -> kept value; each names the fix ------------------------------


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    check_text(name, value)  # valid Unicode: it is stored and sent
    return value


def _seconds(name: str, value: Any) -> float | None:
    return check_seconds(name, value, allow_none=True)


def _seconds_or_zero(name: str, value: Any) -> float | None:
    return check_seconds(name, value, allow_none=True, allow_zero=True)


def _megabytes(name: str, value: Any) -> float | None:
    # At most 4 EiB: a larger limit's bytes do not fit the kernel's 64-bit RLIMIT_AS.
    return None if value is None else check_positive_number(name, value, maximum=2.0**42)


def _priority(name: str, value: Any) -> TaskPriority:
    return check_priority(value)


def _isolation(name: str, value: Any) -> Isolation | None:
    return None if value is None else check_isolation(value)


def _datetime(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveRunAtError(value.isoformat())
    return value


def _retry(name: str, value: Any) -> RetryPolicy | None:
    if value is not None and not isinstance(value, RetryPolicy):
        raise TypeError(f"{name} must be a RetryPolicy or None, got {type(value).__name__}")
    return value


def _task_ids(name: str, value: Any) -> tuple[str, ...]:
    if value == ():
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        raise TypeError(f"{name} must be a list of task ids, got {type(value).__name__}")
    ids: list[str] = []
    for task_id in value:
        if not isinstance(task_id, str) or not task_id:
            raise TypeError(f"{name} must hold task id strings, got {task_id!r}")
        if task_id not in ids:
            ids.append(task_id)  # a repeated id is one dependency
    return tuple(ids)


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskOptions:
    """The options of one task, each checked on its own when the object is made (what
    depends on the runtime, such as a default isolation, is resolved by the runtime)."""

    user: str | None = option(
        "text",
        "who created the task (listings and status reads are filtered by it)",
        _text,
        http=False,  # the service sets it from the caller's token
    )
    timeout: float | None = option(
        "seconds",
        "seconds the operation may run; then it is stopped, keeping its partial result",
        _seconds,
        cli=True,
        http_max=7 * 86_400.0,  # a week over HTTP
    )
    priority: TaskPriority = option(
        "priority",
        "low, normal, high or critical: higher ones start first",
        _priority,
        default=TaskPriority.NORMAL,
        cli=True,
    )
    isolation: Isolation | None = option(
        "isolation",
        "thread, process or async (default: async for a coroutine function, else the manager's)",
        _isolation,
        cli=True,
    )
    memory_limit_mb: float | None = option(
        "megabytes",
        "the child process's address-space limit (process isolation)",
        _megabytes,
        cli=True,
        shown=False,  # the status dict has never shown the limits
        http_max=1_048_576.0,  # 1 TiB over HTTP
    )
    cpu_time_limit: float | None = option(
        "seconds",
        "the child process's CPU-time limit in seconds (process isolation)",
        _seconds,
        cli=True,
        shown=False,
        http_max=7 * 86_400.0,
    )
    resources: Resources | None = option(
        "resources",
        "what the task needs by name, such as {'gpu': 1}: held while it runs",
        check_resources,
        cli=True,
    )
    delay: float | None = option(
        "seconds",
        "seconds to wait before the task may start",
        _seconds_or_zero,
        stored=False,  # resolved into the task's start time, which is stored
        cli=True,
        http_max=366 * 86_400.0,  # a year over HTTP
        allow_zero=True,
    )
    run_at: datetime | None = option(
        "datetime",
        "when the task may start (an aware datetime)",
        _datetime,
        stored=False,
    )
    retry: RetryPolicy | None = option(
        "retry",
        "the retry policy (default: the manager's)",
        _retry,
        shown=False,  # the status shows its effect: attempt, next_attempt_at, attempt_errors
    )
    depends_on: tuple[str, ...] = option(
        "task_ids",
        "ids of tasks that must complete first",
        _task_ids,
        default=(),
        cli=True,
        http_max=1000,  # ids in one request
    )
    group_id: str | None = option(
        "text",
        "the group the task belongs to (set by create_group)",
        _text,
        http=False,
    )

    def __post_init__(self) -> None:
        for declared in _DECLARED:
            value = getattr(self, declared.name)
            if value is declared.default:
                continue  # every default is valid: the common case costs one identity check
            object.__setattr__(self, declared.name, declared.check(declared.name, value))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "") -> TaskOptions:
        """Options from a mapping of names (``create_group``'s items, a request body);
        an unknown name raises :class:`UnknownOptionError`."""
        return cls.trusted(cls.checked(values, where=where))

    @staticmethod
    def checked(values: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
        """The given options, each checked by its declaration (a default is valid as it
        is); an unknown name raises :class:`UnknownOptionError`. Only the names given are
        looked at: this is on every task's path."""
        if not _NAMES.issuperset(values):
            raise UnknownOptionError(values.keys() - _NAMES, _NAMES, where)
        checked = dict(values)
        for name, value in values.items():
            declared = _BY_NAME[name]
            if value is not declared.default:
                checked[name] = declared.check(name, value)
        return checked

    def replace(self, **changes: Any) -> TaskOptions:
        """A copy with ``changes``, each checked by its option."""
        return dataclasses.replace(self, **changes)

    def resolved(self, **changes: Any) -> TaskOptions:
        """A copy with ``changes`` the runtime has already checked (its own defaults, the
        limits it resolved, ``delay``/``run_at`` cleared): not checked again, since this
        is on every task's path. Callers outside the runtime use :meth:`replace`."""
        unknown = changes.keys() - _NAMES
        if unknown:
            raise UnknownOptionError(unknown, _NAMES)
        copy = _new(TaskOptions)
        for name in _FIELDS:
            _set(copy, name, changes[name] if name in changes else getattr(self, name))
        return copy

    @classmethod
    def trusted(cls, values: Mapping[str, Any]) -> TaskOptions:
        """Options from values that were checked when they were first given (a store
        reads back what it wrote), not checked again; a missing one takes its default.
        An unknown name raises :class:`UnknownOptionError`."""
        if not _NAMES.issuperset(values):
            raise UnknownOptionError(values.keys() - _NAMES, _NAMES)
        options = _new(cls)
        get = values.get
        for name, default in _DEFAULTS:
            _set(options, name, get(name, default))
        return options


def options_of(
    *,
    stored: bool | None = None,
    http: bool | None = None,
    cli: bool | None = None,
    shown: bool | None = None,
) -> tuple[Option, ...]:
    """The declared options, in declaration order; filtered by where they appear."""
    declared = _DECLARED
    if stored is not None:
        declared = tuple(o for o in declared if o.stored == stored)
    if http is not None:
        declared = tuple(o for o in declared if o.http == http)
    if cli is not None:
        declared = tuple(o for o in declared if o.cli == cli)
    if shown is not None:
        declared = tuple(o for o in declared if o.shown == shown)
    return declared


_DECLARED: tuple[Option, ...] = tuple(
    dataclasses.replace(f.metadata["option"], name=f.name) for f in dataclasses.fields(TaskOptions)
)
_FIELDS = tuple(declared.name for declared in _DECLARED)
_NAMES = frozenset(_FIELDS)
_BY_NAME = {declared.name: declared for declared in _DECLARED}
_DEFAULTS = tuple((declared.name, declared.default) for declared in _DECLARED)
_new = object.__new__
_set = object.__setattr__  # a frozen dataclass's fields are set around its __setattr__
