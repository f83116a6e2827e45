"""A task's row in the SQLite store, and the retired counts' row: plain functions, no
connection.

* :data:`COLUMNS` names a task row's values in order: the task's own fields
  (:data:`TASK_COLUMNS`), then one column per stored task option
  (``actors._options.options_of(stored=True)``), of the option's own name.
* An option's column is written and read by its kind (:data:`KINDS`); a kind is one
  (encode, decode) pair, so a new option of a known kind needs no code here.
* :func:`to_row` and :func:`from_row` turn a :class:`TaskRecord` into its row and back;
  a record's encoded options are kept on it (``stored_options``): they never change.
* :func:`tally` is what retention's deletes add to the ``retired`` counts.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

from actors._enums import Isolation, TaskPriority, TaskStatus
from actors._options import OptionKind, TaskOptions, options_of
from actors._outcome import Outcome, TimedOut
from actors._policies import RetryPolicy
from actors._records import TaskRecord
from actors._resources import Resources
from actors._storage.codec import decode_outcome, encode_json, encode_outcome

__all__ = [
    "CHANGING",
    "COLUMNS",
    "COUNTERS",
    "KINDS",
    "OPTION_NAMES",
    "TASK_COLUMNS",
    "decode_options",
    "encode_options",
    "from_row",
    "tally",
    "to_row",
]

# The columns of a task's own fields; each stored task option (actors._options) adds one
# column of its own name, written and read by its kind (KINDS).
TASK_COLUMNS = (
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


def _decode_resources(text: str) -> Resources:
    amounts = json.loads(text)
    if not isinstance(amounts, dict):
        raise ValueError(f"a map of resources is {type(amounts).__name__}")
    return Resources(amounts)


def _same(value: Any) -> Any:
    return value


# How each kind of option is kept in its column: (encode, decode), applied to a value that
# is not None (None is NULL, and NULL reads back as the option's default). text and
# isolation are TEXT, seconds and megabytes REAL, priority INTEGER, datetime ISO-8601
# TEXT, retry, task_ids and resources JSON TEXT.
KINDS: dict[OptionKind, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "text": (_same, _same),
    "seconds": (float, float),
    "megabytes": (float, float),
    "priority": (int, TaskPriority),
    "isolation": (operator.attrgetter("value"), Isolation),
    "datetime": (datetime.isoformat, datetime.fromisoformat),
    "retry": (lambda policy: encode_json(policy.to_json()), _decode_retry),
    "task_ids": (_encode_task_ids, _decode_task_ids),
    "resources": (lambda resources: encode_json(resources.as_dict()), _decode_resources),
}

_OPTIONS = options_of(stored=True)
OPTION_NAMES = tuple(declared.name for declared in _OPTIONS)
_OPTION_VALUES = operator.attrgetter(*OPTION_NAMES)  # one call for every stored value
_ENCODERS = tuple(KINDS[declared.kind][0] for declared in _OPTIONS)
_DECODERS = tuple(
    (declared.name, KINDS[declared.kind][1], declared.default) for declared in _OPTIONS
)
COLUMNS = TASK_COLUMNS + OPTION_NAMES

# The columns a task's life changes; the others (and every option) are written once,
# when it is created.
_WRITTEN_ONCE = frozenset({"seq", "task_id", "operation", "named", "params", "created_at"})
CHANGING = tuple(column for column in TASK_COLUMNS if column not in _WRITTEN_ONCE)

# The ``retired`` table's counts, in order: what retention deleted, by how it ended.
COUNTERS = ("created", "completed", "failed", "cancelled", "timed_out")


def tally(records: list[TaskRecord]) -> tuple[int, ...]:
    """How the records ended, in :data:`COUNTERS` order."""
    statuses = [r.status for r in records]
    return (
        len(records),
        statuses.count(TaskStatus.COMPLETED),
        statuses.count(TaskStatus.FAILED),
        statuses.count(TaskStatus.CANCELLED),
        sum(isinstance(r.outcome, TimedOut) for r in records),
    )


def to_row(record: TaskRecord) -> tuple[Any, ...]:
    """The record's values in :data:`COLUMNS` order."""
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
        *(record.stored_options or encode_options(record)),
    )


def encode_options(record: TaskRecord) -> tuple[Any, ...]:
    """The stored options' column values, in :data:`OPTION_NAMES` order; kept on the
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


def decode_options(values: tuple[Any, ...]) -> TaskOptions:
    """The options a row's option columns hold (NULL: the option's default). Not checked
    again: the store wrote them from checked options."""
    return TaskOptions.trusted(
        {
            name: default if value is None else decode(value)
            for (name, decode, default), value in zip(_DECODERS, values, strict=True)
        }
    )


def from_row(row: tuple[Any, ...]) -> TaskRecord:
    """The record a row in :data:`COLUMNS` order holds. A value that cannot be read
    raises ValueError, KeyError, TypeError or AttributeError."""
    width = len(TASK_COLUMNS)
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
        options=decode_options(stored_options),
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
