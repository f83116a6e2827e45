"""JSON for the durable store: params, results, partial results and outcomes.

Strict JSON (no NaN or Infinity), so every stored value can be read back by any JSON
reader, including the HTTP service's clients. A value is stored as its JSON text and read
back decoded, so a process that restarts reads exactly what the first one reported.
"""

from __future__ import annotations

import json
import math
from typing import Any

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
    StopReason,
    TimedOut,
)

__all__ = ["decode_outcome", "encode_json", "encode_outcome", "normalized"]

_encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
_decode = json.JSONDecoder().decode
_COMPLETED = '{"kind":"completed"}'  # a completed task's outcome: its result has a column


def encode_json(value: Any) -> str:
    """The JSON text of ``value``; TypeError or ValueError when it has none."""
    return _encoder.encode(value)


def normalized(value: Any) -> tuple[Any, str]:
    """``value`` as a durable store reads it back (tuples become lists, keys strings),
    with its JSON text. TypeError or ValueError when it is not JSON."""
    kind = type(value)
    # Values that read back as themselves need no decoding: None (every no-op result),
    # strings, booleans, integers, finite floats (exact types only: an IntEnum reads back
    # as a plain int), and the empty dict (every create_task without params).
    if value is None:
        return None, "null"
    if kind is str or kind is bool or kind is int:
        return value, _encoder.encode(value)
    if kind is float and math.isfinite(value):
        return value, _encoder.encode(value)
    if kind is dict and not value:
        return {}, "{}"
    text = _encoder.encode(value)
    return _decode(text), text


def encode_outcome(outcome: Outcome | None) -> str | None:
    """The failure fact as JSON; None for no outcome. A completed task's result lives in
    its own column, so its outcome is stored as just the kind."""
    if outcome is None:
        return None
    fields: dict[str, Any]
    if isinstance(outcome, Completed):
        return _COMPLETED
    if isinstance(outcome, Raised):
        fields = {
            "kind": "raised",
            "exception_type": outcome.exception_type,
            "message": outcome.message,
            "traceback": outcome.traceback,
            "exception_mro": list(outcome.exception_mro),
        }
    elif isinstance(outcome, TimedOut):
        fields = {
            "kind": "timed_out",
            "timeout_seconds": outcome.timeout_seconds,
            "has_partial_result": outcome.has_partial_result,
            "partial_result": outcome.partial_result,
        }
    elif isinstance(outcome, Cancelled):
        fields = {"kind": "cancelled", "reason": outcome.reason.value}
    elif isinstance(outcome, Crashed):
        fields = {"kind": "crashed", "exit_code": outcome.exit_code, "signal": outcome.signal}
        if outcome.reason is not None:
            fields["reason"] = outcome.reason
    elif isinstance(outcome, ResourceExhausted):
        fields = {
            "kind": "resource_exhausted",
            "limit": outcome.limit,
            "value": outcome.value,
            "message": outcome.message,
        }
    elif isinstance(outcome, Interrupted):
        fields = {
            "kind": "interrupted",
            "was_running": outcome.was_running,
            "attempt": outcome.attempt,
            "last_seen_at": outcome.last_seen_at,
            "recovered_at": outcome.recovered_at,
        }
        if outcome.cause != "process_stopped":  # files written before the field read alike
            fields["cause"] = outcome.cause
    elif isinstance(outcome, DependencyFailed):
        fields = {
            "kind": "dependency_failed",
            "dependency_id": outcome.dependency_id,
            "dependency_status": outcome.dependency_status,
        }
    else:
        fields = {
            "kind": "result_not_storable",
            "type_name": outcome.type_name,
            "message": outcome.message,
        }
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
