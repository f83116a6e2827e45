"""``assemble``, tested on the parts it returns: they are connected (a task told to the
registry and the supervisor runs and ends), they stop in their order and leave nothing
running, a drain with a failed supervisor does not wait, and a Ray back-end is checked
before anything starts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actors import ManualClock
from actors._core.assembly import NO_RAY_BACKEND, RuntimeParts, assemble, check_ray
from actors._core.messages import Register, Submit
from actors._core.settings import RuntimeSettings
from actors._core.teardown import Teardown
from actors._enums import Isolation, TaskStatus
from actors._errors import RayUnavailableError
from actors._ids import new_id
from actors._records import TaskSpec

WAIT = 10.0


def double(params: Any, task: Any) -> int:
    return int(params["n"]) * 2


def _settings() -> RuntimeSettings:
    return RuntimeSettings.checked(
        concurrency=2,
        max_pending=10,
        max_task_age=3600.0,
        cleanup_interval=300.0,
        clock=ManualClock(),
        ask_timeout=WAIT,
        stop_grace=1.0,
        isolation=Isolation.THREAD,
        max_tasks_per_child=None,
        memory_limit_mb=None,
        cpu_time_limit=None,
        store=None,
        retry=None,
        max_failures=None,
        failure_window=60.0,
        cooldown=None,
        max_restarts=3,
        restart_window=60.0,
    )


def _stop(parts: RuntimeParts, drained: threading.Event) -> Teardown:
    teardown = Teardown(parts.teardown_steps())
    teardown.start(drained)
    assert teardown.join(WAIT)
    return teardown


class _Assembled:
    """The parts of one test, stopped once: by the test, or after it."""

    def __init__(self) -> None:
        self.gave_up: list[str] = []
        self.parts = assemble(
            _settings(),
            owner=object(),
            ray=None,
            operations={"double": double},
            name="assembly-test",
            give_up=self.gave_up.append,
            closed=lambda: False,
        )
        self.stopped = False

    def stop(self, drained: threading.Event | None = None) -> None:
        if not self.stopped:
            self.stopped = True
            if drained is None:
                drained = self.parts.drain(cancel_pending=True)
            assert _stop(self.parts, drained).error is None


@pytest.fixture
def assembled() -> Iterator[_Assembled]:
    made = _Assembled()
    yield made
    made.stop()
    assert made.gave_up == []


def test_the_parts_are_connected(assembled: _Assembled) -> None:
    """A task told to the registry then the supervisor (as submit does) runs on the
    operation pool and its end reaches the registry's table."""
    parts = assembled.parts
    fields = parts.specs.fields("double", {"n": 21})
    spec = TaskSpec(
        task_id=new_id(), seq=next(parts.seq), created_at=parts.settings.clock.time(), **fields
    )
    assert parts.admission.try_enter()
    parts.registry.tell(Register(spec, None))
    parts.supervisor.tell(Submit(spec))
    ended = parts.queries.wait(spec.task_id, timeout=WAIT)
    assert (ended.status, ended.result) == (TaskStatus.COMPLETED, 42)


def test_the_parts_stop_in_their_order(assembled: _Assembled) -> None:
    """The teardown's steps are the actors, then the subscribers, then the threads;
    once they have run no actor or thread of the parts is left (the leak check)."""
    parts = assembled.parts
    assert [name for name, _ in parts.teardown_steps()] == ["actors", "subscribers", "threads"]
    assembled.stop()
    assert not parts.supervisor.is_alive()
    assert not parts.registry.is_alive()
    assert not parts.notifier.is_alive()


def test_a_drain_with_a_failed_supervisor_does_not_wait(assembled: _Assembled) -> None:
    """With the supervisor gone nothing will end any more: the drain is over at once,
    and the teardown still stops the rest."""
    parts = assembled.parts
    parts.supervisor.stop(block=True, timeout=WAIT)
    drained = parts.drain(cancel_pending=False)
    assert drained.is_set()
    assembled.stop(drained)


def test_a_ray_default_without_a_ray_back_end_is_refused() -> None:
    """isolation='ray' needs a RayBackend; the error says how to pass one."""
    with pytest.raises(RayUnavailableError) as raised:
        check_ray(None, Isolation.RAY)
    assert NO_RAY_BACKEND in str(raised.value)


def test_a_ray_back_end_must_be_a_ray_backend() -> None:
    """Anything else given as ``ray`` is refused, naming its type."""
    with pytest.raises(TypeError, match=r"ray must be a RayBackend.*got str"):
        check_ray("local", Isolation.THREAD)  # type: ignore[arg-type]
    check_ray(None, Isolation.THREAD)  # no Ray default, no back-end: fine
