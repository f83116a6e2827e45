"""What a record may keep of the values an operation hands over.

A result, a partial result and a checkpoint come from user code; each is checked here
against the rules every store keeps (JSON-able, and with a durable store normalised to
what a reload would give back) before the registry applies it. A value that breaks
them is reported and replaced by a fact, never raised into the registry: user data
cannot fail the actor that owns every record. The codec raises nothing but
``UnstorableValueError``, so that is all these catch.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from actors._errors import UnstorableValueError
from actors._outcome import Completed, Outcome, ResultNotStorable
from actors._storage.codec import check_value, normalized
from actors.logs import library_logger

__all__ = ["CheckedPartial", "checked_checkpoint", "checked_partial", "storable_outcome"]

# The registry's logger: these checks are part of what the registry records and logs.
_log = library_logger("actors.registry")


def storable_outcome(task_id: str, outcome: Outcome) -> tuple[Outcome, str | None]:
    """A completed outcome as a durable store keeps it: its result decoded from its
    JSON (with the text), or, for a result that is not JSON, a ResultNotStorable fact.
    Other outcomes pass unchanged, with no text."""
    if not isinstance(outcome, Completed):
        return outcome, None
    if outcome.result_json is not None:  # checked on the operation's thread
        return outcome, outcome.result_json
    try:
        value, text = normalized(outcome.result)
    except UnstorableValueError as exc:
        _log.warning("task.result_not_storable", task_id=task_id, type=exc.type_name)
        return ResultNotStorable(type_name=exc.type_name, message=str(exc)), None
    return Completed(value, text), text


class CheckedPartial(NamedTuple):
    """A partial result after its check: ``kept`` False when it broke the rules (the
    previous partial result stays); ``text`` its JSON with a durable store."""

    kept: bool
    value: Any
    text: str | None


def checked_partial(task_id: str, partial: Any, *, durable: bool) -> CheckedPartial:
    """Check a partial result where it is applied, not where it is set: an operation may
    set one in a tight loop, and only the latest of each drain is kept."""
    try:
        if durable:
            value, text = normalized(partial)
            return CheckedPartial(True, value, text)
        check_value(partial)
    except UnstorableValueError as exc:
        _log.warning(
            "task.partial_result_not_storable",
            task_id=task_id,
            type=exc.type_name,
            error=str(exc),
        )
        return CheckedPartial(False, None, None)
    return CheckedPartial(True, partial, None)


def checked_checkpoint(task_id: str, text: str) -> tuple[Any, str] | ValueError:
    """A checkpoint's (state, text), checked by the rules every store mode keeps (its
    JSON was checked in the operation); or the error that says why it cannot be kept."""
    try:
        state = json.loads(text)
        check_value(state)
    except ValueError as exc:  # UnstorableValueError is one too
        _log.warning("task.checkpoint_not_storable", task_id=task_id, error=str(exc))
        return exc
    return state, text
