"""SeqIndex, the task table's paging index, against a sorted list of (seq, id) as the
model: any mix of adds (mostly at the end, sometimes before the front) and removals
(mostly the oldest) pages exactly as the model does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors._core.seq_index import SeqIndex

_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(min_value=0, max_value=3_000)),
        st.tuples(st.just("remove_oldest"), st.just(0)),
        st.tuples(st.just("remove_any"), st.integers(min_value=0, max_value=10_000)),
    ),
    max_size=400,
)


@settings(max_examples=200, deadline=None)
@given(steps=_STEPS, after=st.integers(min_value=-1, max_value=3_000), limit=st.integers(1, 50))
def test_pages_match_a_sorted_model(steps: list[tuple[str, int]], after: int, limit: int) -> None:
    index = SeqIndex()
    model: list[tuple[int, str]] = []
    used: set[int] = set()
    for kind, value in steps:
        if kind == "add":
            if value in used:  # seqs are unique in a runtime
                continue
            used.add(value)
            index.add(value, f"t{value}")
            model.append((value, f"t{value}"))
            model.sort()
        elif model:
            seq, task_id = model[0] if kind == "remove_oldest" else model[value % len(model)]
            index.remove(seq, task_id)
            model.remove((seq, task_id))
        assert len(index) == len(model)
    ids, more = index.page(after, limit)
    later = [task_id for seq, task_id in model if seq > after]
    assert ids == later[:limit]
    assert more == (len(later) > limit)


def test_many_removals_from_the_front_compact_and_keep_paging() -> None:
    index = SeqIndex()
    for seq in range(5_000):
        index.add(seq, f"t{seq}")
    for seq in range(4_000):
        index.remove(seq, f"t{seq}")
    assert len(index) == 1_000
    assert index.page(-1, 3) == (["t4000", "t4001", "t4002"], True)
    assert index.page(4_997, 5) == (["t4998", "t4999"], False)


def test_removing_an_unknown_id_raises_key_error() -> None:
    index = SeqIndex()
    index.add(1, "a")
    with pytest.raises(KeyError):
        index.remove(2, "b")
    with pytest.raises(KeyError):
        index.remove(1, "b")
    assert index.page(-1, 10) == (["a"], False)
