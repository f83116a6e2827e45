"""``SubmissionPath``, tested directly: a submission's steps over real parts (a spec
maker, circuit breakers, an admission gate) with plain pykka actors standing in for
the registry and the supervisor, which only collect what they are told."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors import ManualClock, OperationUnavailableError, QueueFullError, RuntimeClosedError
from actors._core.admission import AdmissionGate
from actors._core.messages import Register, Submit
from actors._core.submission import SpecMaker
from actors._core.submission_path import SubmissionPath
from actors._core.waiters import Waiters
from actors._enums import Isolation
from actors._operations import OperationRegistry
from actors._policies import CircuitBreakers, OperationLimits
from tests.collector import WAIT, Collector, told


def render(params: Any, task: Any) -> None:
    return None


def _told(ref: pykka.ActorRef[Any]) -> list[object]:
    return told(ref)


class Parts:
    def __init__(self, *, capacity: int = 2, durable: bool = False) -> None:
        self.clock = ManualClock()
        self.admission = AdmissionGate(capacity)
        self.breakers = CircuitBreakers(None)
        self.closed: str | None = None  # the refusal's reason, once "closed"
        operations = OperationRegistry()
        operations.register("render", render, retry_on_interrupt=False)
        specs = SpecMaker(
            operations=operations,
            clock=self.clock,
            durable=durable,
            isolation=Isolation.THREAD,
            limits=(None, None),
            retry=None,
        )
        # Started last: nothing after them can fail and leave their threads running.
        self.registry = Collector.start()
        self.supervisor = Collector.start()
        self.waiters = Waiters()
        self.path = SubmissionPath(
            specs=specs,
            breakers=self.breakers,
            clock=self.clock,
            admission=self.admission,
            max_pending=capacity,
            seq=itertools.count(7),
            lock=threading.Lock(),
            registry=self.registry,
            supervisor=self.supervisor,
            waiters=self.waiters,
            durable=durable,
            refusal=self._refusal,
        )

    def _refusal(self, consequence: str) -> RuntimeClosedError | None:
        if self.closed is None:
            return None
        return RuntimeClosedError(f"the runtime is shut down: {consequence}")

    def stop(self) -> None:
        self.registry.stop(timeout=WAIT)
        self.supervisor.stop(timeout=WAIT)


@pytest.fixture
def parts() -> Iterator[Parts]:
    made = Parts()
    try:
        yield made
    finally:
        made.stop()


def test_a_submission_registers_then_submits_one_spec(parts: Parts) -> None:
    path = parts.path
    parts.clock.advance(5.0)
    fields = path.fields("render", {"n": 1}, None, {"priority": 3})
    with path.lock:
        spec, ticket = path.admit("t1", fields)
        path.register_and_submit(spec, ticket)
    assert ticket is None  # the memory store: nothing to commit
    assert (spec.task_id, spec.seq, spec.created_at) == ("t1", 7, parts.clock.time())
    assert spec.options.priority.value == 3
    assert _told(parts.registry) == [Register(spec, None)]
    assert _told(parts.supervisor) == [Submit(spec)]
    assert parts.admission.waiting == 1
    # Registering until the registry holds it: a wait adds its waiter without asking.
    assert parts.waiters.watch_unless_ended("t1", {}.get) is not None
    parts.waiters.registered("t1")
    assert parts.waiters.watch_unless_ended("t1", {}.get) is None


def test_a_durable_submission_gets_a_commit_ticket() -> None:
    made = Parts(durable=True)
    try:
        fields = made.path.fields("render", {}, None, {})
        spec, ticket = made.path.admit("t1", fields)
        assert ticket is not None
        assert ticket.task_id == spec.task_id == "t1"
    finally:
        made.stop()


def test_a_full_queue_refuses_and_takes_no_place(parts: Parts) -> None:
    path = parts.path
    fields = path.fields("render", {}, None, {})
    path.admit("a", fields)
    path.admit("b", fields)
    with pytest.raises(QueueFullError):
        path.admit("c", fields)
    assert parts.admission.waiting == 2


def test_a_closed_runtime_refuses_before_taking_a_place(parts: Parts) -> None:
    parts.closed = "shut down"
    fields = parts.path.fields("render", {}, None, {})
    with pytest.raises(RuntimeClosedError, match="accepts no new task"):
        parts.path.admit("a", fields)
    assert parts.admission.waiting == 0


def test_an_open_breaker_refuses_the_operation_at_the_first_step(parts: Parts) -> None:
    parts.breakers.set_limits("render", OperationLimits(1, 60.0, 30.0))
    now = parts.clock.monotonic()
    parts.breakers.record("render", True, now)
    parts.breakers.record("render", True, now)  # more than max_failures=1: tripped
    with pytest.raises(OperationUnavailableError):
        parts.path.fields("render", {}, None, {})


def test_verdicts_free_the_place_of_a_task_that_was_not_queued(parts: Parts) -> None:
    path = parts.path
    fields = path.fields("render", {}, None, {})
    path.admit("a", fields)
    path.admit("b", fields)
    with pytest.raises(ValueError, match=r"unknown task ids \['gone'\]"):
        path.check_verdict("unknown", ["gone"])
    assert parts.admission.waiting == 1
    assert path.restarted_verdict() == ("failed", [])
    assert parts.admission.waiting == 0
    path.check_verdict("waiting", [])  # queued by the registry: its place is kept
    assert parts.admission.waiting == 0
