"""actors._storage.codec: what a durable store keeps of a value, and the fast paths for the
values nearly every task has (no params, a None or scalar result)."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import Completed
from actors._storage.codec import decode_outcome, encode_outcome, normalized


class Level(enum.IntEnum):
    HIGH = 3


def reference(value: Any) -> tuple[Any, str]:
    """What normalized() means: the value as strict JSON writes and reads it back."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return json.loads(text), text


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_normalized_reads_back_as_strict_json_does(value: Any) -> None:
    """normalized(value): the value and text of a strict JSON round trip, for any JSON
    value (tuples become lists), fast paths included."""
    got_value, got_text = normalized(value)
    want_value, want_text = reference(value)
    assert got_text == want_text
    assert got_value == want_value
    assert type(got_value) is type(want_value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (None, "null")),
        ({}, ({}, "{}")),
        (True, (True, "true")),
        (7, (7, "7")),
        (1.5, (1.5, "1.5")),
        ('é"', ('é"', '"é\\""')),
        (Level.HIGH, (3, "3")),  # an IntEnum reads back as a plain int
    ],
)
def test_normalized_fast_paths_keep_the_round_trip_meaning(
    value: Any, expected: tuple[Any, str]
) -> None:
    """normalized: None, {}, scalars and an int subclass give what the round trip gives."""
    got = normalized(value)
    assert got == expected
    assert type(got[0]) is type(expected[0])


def test_normalized_returns_a_new_empty_dict_each_time() -> None:
    """normalized({}): a fresh dict, so one task's params are never another's."""
    first, _ = normalized({})
    second, _ = normalized({})
    first["changed"] = 1
    assert second == {}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, object(), {1j: 1}])
def test_normalized_refuses_what_is_not_strict_json(value: Any) -> None:
    """normalized: NaN, infinities and non-JSON values raise (the callers name the fix)."""
    with pytest.raises((TypeError, ValueError)):
        normalized(value)


def test_a_completed_outcome_round_trips_through_its_constant_text() -> None:
    """encode_outcome(Completed): the same text as before, read back with its result."""
    text = encode_outcome(Completed({"frames": 3}))
    assert json.loads(text or "") == {"kind": "completed"}
    assert decode_outcome(text, {"frames": 3}) == Completed({"frames": 3})
