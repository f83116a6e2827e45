"""When an ended task may have a new attempt by ``resume_task``, and why not.

A pure rule over one record, kept apart from the registry that applies it so each
refusal (with the fix it names) is tested directly.
"""

from __future__ import annotations

from actors._enums import TaskStatus
from actors._errors import NotResumableError
from actors._records import TaskRecord

__all__ = ["why_not_resumable"]


def why_not_resumable(record: TaskRecord, operation_known: bool) -> NotResumableError | None:
    """Why ``record``'s task cannot have a new attempt by ``resume_task``, or None."""
    task_id, status = record.task_id, record.status
    if status is TaskStatus.COMPLETED:
        return NotResumableError(
            task_id, "it completed", "read its result; create a new task to run it again"
        )
    if not status.is_terminal:
        return NotResumableError(
            task_id,
            f"it is {status.value}",
            "only a failed or cancelled task can be resumed: wait for it to end, or "
            "cancel it first",
        )
    if not record.named:
        return NotResumableError(
            task_id,
            "its operation was given as a function, not by name",
            "register the operation by name (register_operation(name, fn)) and create "
            "the task by that name: only a named operation can be found again",
        )
    if record.checkpointed_at is None:
        return NotResumableError(
            task_id,
            "it has no checkpoint",
            "an operation that can go on calls task.checkpoint(state) as it works; "
            "create a new task to run this one again from the start",
        )
    if not operation_known:
        return NotResumableError(
            task_id,
            f"no operation is registered as {record.operation_name!r}",
            f"register it first (register_operation({record.operation_name!r}, fn))",
        )
    return None
