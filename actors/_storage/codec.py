"""JSON for the durable store: params, results, partial results and outcomes.

Strict JSON (no NaN or Infinity), so every stored value can be read back by any JSON
reader, including the HTTP service's clients. A value is stored as its JSON text and read
back decoded, so a process that restarts reads exactly what the first one reported.

Every value that comes from user code (params, results, partial results) also keeps two
rules in every store mode, checked where the value enters the runtime: its text is valid
Unicode (no lone surrogate such as ``os.fsdecode(b"\\xff")`` makes, which neither UTF-8
nor SQLite can carry), and it is nested at most :data:`MAX_NESTING` levels deep (so no
reader that recurses, the service's included, can run out of stack on it). The checks
raise only :class:`UnstorableValueError`; they ride on the JSON encoding the store does
anyway, and look at the nesting only when the text has enough brackets to be too deep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, assert_never

from actors._errors import UnstorableValueError
from actors._outcome import (
    Cancelled,
    Completed,
    Crashed,
    DependencyFailed,
    Interrupted,
    Outcome,
    Raised,
    ResourceExhausted,
    ResultNotStorable,
    Stalled,
    StopReason,
    TimedOut,
)
from actors.validation import lone_surrogate

__all__ = [
    "MAX_NESTING",
    "check_value",
    "decode_outcome",
    "encode_json",
    "encode_outcome",
    "normalized",
]

MAX_NESTING = 100
"""How many containers (lists, dicts) deep a value from user code may be nested: ``{}``
is 1 deep, ``{"a": [1]}`` 2. Deeper values are refused (params) or not stored (a result
fails the task with RESULT_NOT_SERIALIZABLE, a partial result is skipped)."""

_encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
_decode = json.JSONDecoder().decode
_COMPLETED = '{"kind":"completed"}'  # a completed task's outcome: its result has a column


def _lenient_default(value: Any) -> Any:
    # What the service's envelope makes of a non-JSON value (see to_jsonable): its
    # contents are checked too; any other object is shown as its repr, so not looked in.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Enum):
        return value.value
    return None


# The same rules, for values the memory store keeps as they are: NaN, sets, tuple keys
# and arbitrary objects are allowed there (the service shows them as text).
_lenient = json.JSONEncoder(
    allow_nan=True,
    ensure_ascii=False,
    skipkeys=True,
    separators=(",", ":"),
    default=_lenient_default,
)


def encode_json(value: Any) -> str:
    """The JSON text of ``value`` (runtime data: outcomes, policies); TypeError or
    ValueError when it has none."""
    return _encoder.encode(value)


def normalized(value: Any) -> tuple[Any, str]:
    """``value`` as a durable store reads it back (tuples become lists, keys strings),
    with its JSON text. :class:`UnstorableValueError` (a TypeError and a ValueError)
    when it is not strict JSON, not valid Unicode, or nested too deep."""
    kind = type(value)
    # Values that read back as themselves need no decoding: None (every no-op result),
    # strings, booleans, integers, finite floats (exact types only: an IntEnum reads back
    # as a plain int), and the empty dict (every create_task without params).
    if value is None:
        return None, "null"
    if kind is bool or kind is int:
        return value, _encoder.encode(value)
    if kind is str:
        text = _encoder.encode(value)
        _check_text(text, value)
        return value, text
    if kind is float and math.isfinite(value):
        return value, _encoder.encode(value)
    if kind is dict and not value:
        return {}, "{}"
    text = _encode(_encoder, value)
    _check_text(text, value)
    return _decode(text), text


def check_value(value: Any) -> None:
    """The rules every store mode keeps (valid Unicode, :data:`MAX_NESTING`), for a value
    the memory store keeps as it is (so not necessarily JSON). Raises
    :class:`UnstorableValueError`."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float:
        return
    if kind is str:
        if not value.isascii():
            _check_text(value, value)
        return
    if kind is dict and not value:
        return
    try:
        text = _lenient.encode(value)
    except ValueError as exc:
        if "Circular reference" not in str(exc):
            raise _not_json(exc, value) from None
        # A value that contains itself: JSON has no text for it, but the memory store
        # keeps it and the service cuts it at the cycle. Looked at without the encoder.
        _check_walking(value)
        return
    except RecursionError:
        raise _too_deep(value) from None
    except Exception as exc:  # a user Mapping's own failure
        raise _not_json(exc, value) from None
    _check_text(text, value)


def _encode(encoder: json.JSONEncoder, value: Any) -> str:
    try:
        return encoder.encode(value)
    except RecursionError:
        # The C encoder's own limit depends on how deep the calling thread already is.
        raise _too_deep(value) from None
    except Exception as exc:  # TypeError, ValueError; or a user Mapping's own failure
        raise _not_json(exc, value) from None


def _not_json(exc: Exception, value: Any) -> UnstorableValueError:
    return UnstorableValueError(
        f"{exc}; only JSON data can be stored (numbers, strings, booleans, None, "
        "lists and dicts with string keys)",
        type_name=type(value).__qualname__,
    )


def _check_text(text: str, value: Any) -> None:
    """``text`` is ``value``'s JSON text (or the string itself): valid Unicode, and no
    deeper than MAX_NESTING (looked at only when it has that many brackets)."""
    bad = lone_surrogate(text)
    if bad is not None:
        raise UnstorableValueError(
            f"it contains {bad!r}, a lone surrogate, which is not valid Unicode and "
            "cannot be stored or sent as UTF-8 (a file name decoded with "
            "os.fsdecode() makes these); pass text, e.g. "
            "os.fsencode(name).decode('utf-8', 'backslashreplace')",
            type_name=type(value).__qualname__,
        )
    if text.count("[") + text.count("{") > MAX_NESTING:
        try:
            too_deep = _deeper_than(value, MAX_NESTING)
        except Exception as exc:  # a user Mapping whose values() fails
            raise UnstorableValueError(
                f"looking into it failed: {exc!r}", type_name=type(value).__qualname__
            ) from None
        if too_deep:
            raise _too_deep(value)


_CONTAINERS = (list, dict, tuple, Mapping, set, frozenset)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` deep in ``value`` (no recursion)."""
    if not isinstance(value, _CONTAINERS):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        items = container.values() if isinstance(container, Mapping) else container
        for item in items:
            if isinstance(item, _CONTAINERS):
                stack.append((item, depth + 1))
    return False


def _check_walking(value: Any) -> None:
    """The two rules for a value with a cycle, by a walk that enters each container once
    (a container met again is where the service cuts the value)."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(value, 1)]
    try:
        while stack:
            container, depth = stack.pop()
            if id(container) in seen:
                continue
            if depth > MAX_NESTING:
                raise _too_deep(value)
            seen.add(id(container))
            items: Any = container
            if isinstance(container, Mapping):
                items = [*container.keys(), *container.values()]
            for item in items:
                if isinstance(item, str):
                    if not item.isascii():
                        _check_text(item, value)
                elif isinstance(item, _CONTAINERS):
                    stack.append((item, depth + 1))
    except UnstorableValueError:
        raise
    except Exception as exc:  # a user Mapping's own failure
        raise _not_json(exc, value) from None


def _too_deep(value: Any) -> UnstorableValueError:
    return UnstorableValueError(
        f"it is nested more than {MAX_NESTING} levels deep (lists and dicts inside each "
        "other); flatten it",
        type_name=type(value).__qualname__,
    )


def encode_outcome(outcome: Outcome | None) -> str | None:
    """The failure fact as JSON; None for no outcome. A completed task's result lives in
    its own column, so its outcome is stored as just the kind."""
    if outcome is None:
        return None
    fields: dict[str, Any]
    match outcome:
        case Completed():
            return _COMPLETED
        case Raised():
            fields = {
                "kind": "raised",
                "exception_type": outcome.exception_type,
                "message": outcome.message,
                "traceback": outcome.traceback,
                "exception_mro": list(outcome.exception_mro),
            }
        case TimedOut():
            fields = {
                "kind": "timed_out",
                "timeout_seconds": outcome.timeout_seconds,
                "has_partial_result": outcome.has_partial_result,
                "partial_result": outcome.partial_result,
            }
            if outcome.has_checkpoint:  # files written before the field read alike
                fields["has_checkpoint"] = True
                fields["checkpoint"] = outcome.checkpoint
        case Stalled():
            fields = {
                "kind": "stalled",
                "heartbeat_timeout": outcome.heartbeat_timeout,
                "silent_seconds": outcome.silent_seconds,
                "progress": outcome.progress,
                "has_partial_result": outcome.has_partial_result,
                "partial_result": outcome.partial_result,
                "has_checkpoint": outcome.has_checkpoint,
                "checkpoint": outcome.checkpoint,
            }
        case Cancelled():
            fields = {"kind": "cancelled", "reason": outcome.reason.value}
        case Crashed():
            fields = {"kind": "crashed", "exit_code": outcome.exit_code, "signal": outcome.signal}
            for name in ("reason", "node_id", "ray_error"):  # only when set: older files alike
                if getattr(outcome, name) is not None:
                    fields[name] = getattr(outcome, name)
        case ResourceExhausted():
            fields = {
                "kind": "resource_exhausted",
                "limit": outcome.limit,
                "value": outcome.value,
                "message": outcome.message,
            }
        case Interrupted():
            fields = {
                "kind": "interrupted",
                "was_running": outcome.was_running,
                "attempt": outcome.attempt,
                "last_seen_at": outcome.last_seen_at,
                "recovered_at": outcome.recovered_at,
            }
            if outcome.cause != "process_stopped":  # files written before the field read alike
                fields["cause"] = outcome.cause
        case DependencyFailed():
            fields = {
                "kind": "dependency_failed",
                "dependency_id": outcome.dependency_id,
                "dependency_status": outcome.dependency_status,
            }
        case ResultNotStorable():
            fields = {
                "kind": "result_not_storable",
                "type_name": outcome.type_name,
                "message": outcome.message,
            }

        case _:
            assert_never(outcome)
    return _encoder.encode(fields)


def decode_outcome(text: str | None, result: Any) -> Outcome | None:
    """The outcome :func:`encode_outcome` wrote; ``result`` fills a Completed one."""
    if text is None:
        return None
    fields = _decode(text)
    if not isinstance(fields, dict):
        raise ValueError(f"an outcome must be a JSON object, got {type(fields).__name__}")
    kind = fields.pop("kind")
    if kind == "completed":
        return Completed(result)
    if kind == "raised":
        fields["exception_mro"] = tuple(fields.get("exception_mro", ()))
        return Raised(**fields)
    if kind == "timed_out":
        return TimedOut(**fields)
    if kind == "stalled":
        return Stalled(**fields)
    if kind == "cancelled":
        return Cancelled(StopReason(fields["reason"]))
    if kind == "crashed":
        return Crashed(**fields)
    if kind == "resource_exhausted":
        return ResourceExhausted(**fields)
    if kind == "interrupted":
        return Interrupted(**fields)
    if kind == "dependency_failed":
        return DependencyFailed(**fields)
    if kind == "result_not_storable":
        return ResultNotStorable(**fields)
    raise ValueError(f"unknown outcome kind {kind!r} in the store")
