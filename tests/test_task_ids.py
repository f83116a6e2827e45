"""``is_task_id``: exactly the canonical strings ``str(uuid.UUID(...))`` writes, checked
against the uuid module itself over arbitrary text and near misses."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from storycore_tasks.manager import is_task_id

HEX = "0123456789abcdefABCDEF"


def _canonical(text: str) -> bool:
    """The reference: what uuid parses and writes back unchanged."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


@given(st.uuids())
def test_every_uuid_as_create_task_writes_it_is_a_task_id(value: uuid.UUID) -> None:
    assert is_task_id(str(value))
    assert not is_task_id(str(value).upper()) or str(value) == str(value).upper()
    assert not is_task_id("{" + str(value) + "}")
    assert not is_task_id(str(value) + "\n")
    assert not is_task_id(value.hex)  # no hyphens


@given(
    st.text(alphabet=st.sampled_from(HEX + "-{}:un \n٣"), min_size=30, max_size=40)
    | st.text(max_size=40)
)
def test_is_task_id_agrees_with_the_uuid_module_on_any_text(text: str) -> None:
    assert is_task_id(text) == _canonical(text)


@given(st.uuids(), st.integers(min_value=0, max_value=35), st.sampled_from("G-Aé٣ 0"))
def test_one_changed_character_is_judged_as_the_uuid_module_does(
    value: uuid.UUID, at: int, character: str
) -> None:
    text = str(value)
    changed = text[:at] + character + text[at + 1 :]
    assert is_task_id(changed) == _canonical(changed)


def test_non_strings_are_not_task_ids() -> None:
    for value in (None, 42, b"0" * 36, uuid.uuid4(), ["x"]):
        assert not is_task_id(value)
