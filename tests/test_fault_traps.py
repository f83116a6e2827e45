"""``FaultTraps``, tested directly: which message springs an armed registry fault, and
that each springs once."""

from __future__ import annotations

import pytest

from actors._core.messages import GetStats, InjectFault, Watch
from actors._core.traps import FaultTraps, task_of


def test_a_trap_springs_on_the_first_matching_message_only() -> None:
    traps = FaultTraps()
    traps.arm(InjectFault(RuntimeError("boom"), Watch, task_id="t-2"))
    traps.spring(GetStats())  # another type: nothing
    traps.spring(Watch("t-1"))  # another task: nothing
    with pytest.raises(RuntimeError, match="boom"):
        traps.spring(Watch("t-2"))
    assert traps.armed == []
    traps.spring(Watch("t-2"))  # disarmed: nothing


def test_a_trap_without_a_message_type_springs_at_once() -> None:
    traps = FaultTraps()
    with pytest.raises(ValueError, match="now"):
        traps.arm(InjectFault(ValueError("now")))
    assert traps.armed == []


def test_task_of_reads_the_task_id_or_the_specs() -> None:
    assert task_of(Watch("t-1")) == "t-1"
    assert task_of(GetStats()) is None
