"""Specs and records built by hand, for the tests of the runtime's state objects."""

from __future__ import annotations

from typing import Any

from actors import Isolation, TaskOptions
from actors._records import TaskRecord, TaskSpec


def _noop(params: Any, task: Any) -> None:
    return None


def make_spec(task_id: str, *, seq: int = 0, **fields: Any) -> TaskSpec:
    """A thread task of a no-op operation; ``fields`` override the spec's other fields."""
    values: dict[str, Any] = {
        "operation": _noop,
        "operation_name": "tests.noop",
        "params": {},
        "options": TaskOptions(isolation=Isolation.THREAD),
        "created_at": 1.0,
    }
    values.update(fields)
    return TaskSpec(task_id=task_id, seq=seq, **values)


def make_record(task_id: str, *, seq: int = 0, **fields: Any) -> TaskRecord:
    """The registry's record of :func:`make_spec`'s spec, as it is registered."""
    return TaskRecord.from_spec(make_spec(task_id, seq=seq, **fields))
