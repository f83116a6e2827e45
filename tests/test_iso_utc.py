"""``iso_utc``, how StoryCore shows a moment: exactly what the datetime writes for every
moment a datetime holds, however its seconds are kept between calls, and the first or
last moment (or None for NaN) beyond that."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from storycore_tasks.errors import iso_utc

FIRST = datetime.min.replace(tzinfo=UTC).isoformat()
LAST = datetime.max.replace(tzinfo=UTC).isoformat()


def _reference(timestamp: float) -> str | None:
    """The first round's implementation: the datetime's own, edges included."""
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        if math.isnan(timestamp):
            return None
        return LAST if timestamp > 0 else FIRST


# Moments of the years a datetime holds (and a little beyond, both ways), whole and
# fractional, with fractions near a microsecond's half and near a whole second.
MOMENTS = (
    st.floats(min_value=-7e10, max_value=2.6e11, allow_nan=False)
    | st.integers(min_value=-62_135_596_800, max_value=253_402_300_799).map(float)
    | st.tuples(
        st.integers(min_value=-(10**10), max_value=10**10),
        st.sampled_from([0.0, 0.5e-6, 1.5e-6, 2.5e-6, 0.9999995, 0.99999949, 1e-7, 0.4999995]),
        st.booleans(),
    ).map(lambda t: t[0] + (t[1] if t[2] else -t[1]))
)


@given(MOMENTS)
def test_a_moment_reads_as_the_datetime_writes_it(timestamp: float) -> None:
    assert iso_utc(timestamp) == _reference(timestamp)


@given(st.lists(MOMENTS, min_size=2, max_size=20))
def test_moments_in_any_order_read_the_same_as_each_alone(timestamps: list[float]) -> None:
    """The seconds kept from earlier moments never change a later one's text."""
    assert [iso_utc(t) for t in timestamps] == [_reference(t) for t in timestamps]


def test_the_edges_and_the_odd_values() -> None:
    assert iso_utc(None) is None
    assert iso_utc(math.nan) is None
    assert iso_utc(math.inf) == LAST
    assert iso_utc(-math.inf) == FIRST
    assert iso_utc(1e300) == LAST
    assert iso_utc(-1e300) == FIRST
    assert iso_utc(0.0) == "1970-01-01T00:00:00+00:00"
    assert iso_utc(1.5) == "1970-01-01T00:00:01.500000+00:00"
    assert iso_utc(-0.25) == "1969-12-31T23:59:59.750000+00:00"
    assert iso_utc(1_796_775_000.0000004) == _reference(1_796_775_000.0000004)
