"""A checkpoint's state as JSON text, checked in the operation that gives it.

A leaf module (the standard library only): a child process checks and encodes its
checkpoints as the host does, so ``task.checkpoint(state)`` refuses a state that is not
JSON data in the operation itself, with a ``TypeError`` naming the type, in every
isolation. The text is what travels (to the registry, to a child's host, to the store)
and what a later attempt's ``task.resume_from`` is decoded from, so every attempt reads
the state back exactly as a durable store would (tuples as lists, keys as strings).
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["decode_checkpoint", "encode_checkpoint"]

_encoder_options: dict[str, Any] = {"allow_nan": False, "ensure_ascii": False}


def _refuse(value: Any) -> Any:
    raise TypeError(
        f"task.checkpoint(state): a {type(value).__qualname__} is not JSON data; a "
        "checkpoint holds numbers, strings, booleans, None, lists and dicts with string "
        "keys (convert it, e.g. a set to a sorted list, a path to str)"
    )


def encode_checkpoint(state: Any) -> str:
    """``state``'s JSON text; a :class:`TypeError` naming what is not JSON data."""
    try:
        text = json.dumps(state, separators=(",", ":"), default=_refuse, **_encoder_options)
    except ValueError as exc:  # NaN or infinity, or a value that contains itself
        raise TypeError(f"task.checkpoint(state): {exc}; {_what_json_holds(state)}") from None
    except RecursionError:
        raise TypeError("task.checkpoint(state): the state is nested too deep") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError(
            "task.checkpoint(state): a str in the state is not valid Unicode (a lone "
            "surrogate, as os.fsdecode makes of undecodable bytes); encode it first"
        ) from None
    return text


def _what_json_holds(state: Any) -> str:
    if isinstance(state, float) and not math.isfinite(state):
        return "a checkpoint holds finite numbers only"
    return "a checkpoint holds finite numbers, strings, booleans, None, lists and dicts"


def decode_checkpoint(text: str | None) -> Any:
    """The state a checkpoint's text holds (None for no text)."""
    return None if text is None else json.loads(text)
