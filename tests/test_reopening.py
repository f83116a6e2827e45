"""``reopen``, tested directly: a resumed task takes a place in the queue, and gives it
back on every answer of the registry but a reopened spec (unknown, refused, or a
failed ask); a full queue refuses before the registry is asked."""

from __future__ import annotations

from typing import Any

import pytest

from actors._core.admission import AdmissionGate
from actors._core.messages import Reopen
from actors._core.reopening import reopen
from actors._enums import Isolation
from actors._errors import (
    ActorUnresponsiveError,
    NotResumableError,
    QueueFullError,
    UnknownTaskError,
)
from actors._options import TaskOptions
from actors._records import TaskSpec


def render(params: Any, task: Any) -> None:
    return None


def _spec(task_id: str) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        operation=render,
        operation_name="render",
        params={},
        options=TaskOptions(isolation=Isolation.THREAD),
        seq=0,
        created_at=0.0,
    )


class _Registry:
    """The registry's side of one ask: records the message and gives ``answer``."""

    def __init__(self, answer: Any = None, raises: BaseException | None = None) -> None:
        self.asked: list[Reopen] = []
        self._answer, self._raises = answer, raises

    def __call__(self, message: Reopen) -> Any:
        self.asked.append(message)
        if self._raises is not None:
            raise self._raises
        return self._answer


def _reopen(registry: _Registry, gate: AdmissionGate, *, durable: bool = False) -> Any:
    return reopen("t-1", render, at=12.5, admission=gate, durable=durable, ask_registry=registry)


def test_a_reopened_task_keeps_its_place_and_gets_a_ticket_when_durable() -> None:
    """The registry reopened it: its place stays taken; a durable store gives the
    ticket the message carried."""
    gate = AdmissionGate(2)
    registry = _Registry(answer=_spec("t-1"))
    ticket = _reopen(registry, gate, durable=True)
    assert gate.waiting == 1
    [message] = registry.asked
    assert (message.task_id, message.at, message.operation) == ("t-1", 12.5, render)
    assert ticket is not None
    assert message.ticket is ticket
    assert _reopen(_Registry(answer=_spec("t-1")), gate) is None  # not durable: no ticket


def test_an_unknown_task_gives_its_place_back() -> None:
    """None from the registry: UnknownTaskError, and the place is free again."""
    gate = AdmissionGate(1)
    with pytest.raises(UnknownTaskError):
        _reopen(_Registry(answer=None), gate)
    assert gate.waiting == 0


def test_a_refusal_is_raised_as_the_registry_gave_it_and_the_place_given_back() -> None:
    """The registry's NotResumableError is raised unchanged; the place is free again."""
    gate = AdmissionGate(1)
    refusal = NotResumableError("t-1", "it completed", "read its result")
    with pytest.raises(NotResumableError) as raised:
        _reopen(_Registry(answer=refusal), gate)
    assert raised.value is refusal
    assert gate.waiting == 0


def test_a_failed_ask_gives_the_place_back() -> None:
    """The ask itself failing (an unresponsive registry) frees the place too."""
    gate = AdmissionGate(1)
    with pytest.raises(ActorUnresponsiveError):
        _reopen(_Registry(raises=ActorUnresponsiveError("registry", "Reopen", 1.0)), gate)
    assert gate.waiting == 0


def test_a_full_queue_refuses_before_the_registry_is_asked() -> None:
    """Every place taken: QueueFullError, and the registry never hears of it."""
    gate = AdmissionGate(1)
    assert gate.try_enter()
    registry = _Registry(answer=_spec("t-1"))
    with pytest.raises(QueueFullError):
        _reopen(registry, gate)
    assert (registry.asked, gate.waiting) == ([], 1)
