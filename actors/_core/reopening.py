"""Reopening an ended task for ``resume``: a place in the queue taken for it, the
registry asked to reopen it, and the place given back unless the registry did.

A reopened task waits for a slot as a new one does, so it takes a place under
``max_pending`` first. Whether it may be reopened is the registry's to decide (it owns
the record); on every answer but a reopened spec, and on any failure of the ask, the
place is given back, so a refused resume never shrinks the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors._core.admission import AdmissionGate
from actors._core.messages import Reopen
from actors._errors import QueueFullError, UnknownTaskError
from actors._records import TaskSpec
from actors._storage.store import CommitTicket

__all__ = ["reopen"]


def reopen(
    task_id: str,
    operation: Callable[..., object] | None,
    *,
    at: float,
    admission: AdmissionGate,
    durable: bool,
    ask_registry: Callable[[Reopen], Any],
) -> CommitTicket | None:
    """Under the submission lock: reopen ``task_id`` at ``at`` (wall-clock seconds) with
    ``operation`` (its name's registered function, None if none is). Returns the ticket
    its reopening is committed on (None without a durable store).

    Raises :class:`QueueFullError` when every place is taken, :class:`UnknownTaskError`
    when the registry does not know the task, and the registry's refusal (such as
    :class:`NotResumableError`) as it gave it."""
    if not admission.try_enter():
        raise QueueFullError(admission.capacity)
    ticket = CommitTicket(task_id) if durable else None
    try:
        # The registry reopens it and forwards it to the supervisor itself, so the task
        # is pending there before its start can reach it.
        answer = ask_registry(Reopen(task_id, at, operation, ticket))
    except BaseException:
        admission.leave()
        raise
    if not isinstance(answer, TaskSpec):
        admission.leave()
        if answer is None:
            raise UnknownTaskError(task_id)
        raise answer
    return ticket
