"""Supervision policies in virtual time: retries with backoff, delayed tasks, and restart
intensity (a circuit breaker per operation).

Every wait is on a ManualClock (``clock.advance`` fires the timers that became due before
it returns); the actors are then synchronised with ``settle``, ``manager.wait`` or
``wait_until``, never with a sleep.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from structlog.testing import capture_logs

from actors import ManualClock, OperationUnavailableError, TaskContext
from actors.testing import wait_until
from storycore_tasks import ErrorCodes, RetryPolicy, TaskManager
from storycore_tasks.errors import error_from_exception
from tests.gates import RELEASE_TIMEOUT, Gate, settle

MakeManager = Callable[..., TaskManager]

BOUND = 10.0  # seconds: an upper bound for a loaded machine, never a duration we expect


class RenderError(Exception):
    """An application error, matched by its qualified name."""


class Scripted:
    """An operation that raises or returns, call by call, as scripted: each step is an
    exception class (raised with the message ``"attempt <n>"``) or a value to return; the
    last step repeats. It keeps every TaskContext it was given."""

    def __init__(self, *steps: Any) -> None:
        self.steps = steps
        self.calls = 0
        self.contexts: list[TaskContext] = []
        self._lock = threading.Lock()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        with self._lock:
            self.calls += 1
            number = self.calls
            self.contexts.append(task)
        step = self.steps[min(number, len(self.steps)) - 1]
        if isinstance(step, type) and issubclass(step, BaseException):
            raise step(f"attempt {number}")
        return step


class GateThenScript(Scripted):
    """Like Scripted, but the first call blocks (ignoring is_cancelled) until released."""

    def __init__(self, *steps: Any) -> None:
        super().__init__(*steps)
        self.entered = threading.Event()
        self.release_event = threading.Event()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        if self.calls == 0:
            self.entered.set()
            self.release_event.wait(RELEASE_TIMEOUT)
        return super().__call__(params, task)


def always_refused(params: Mapping[str, Any], task: TaskContext) -> None:
    """Module level, so a child process can import it: always a ConnectionRefusedError,
    whose message names the process that raised it."""
    raise ConnectionRefusedError(f"no route to {params['host']} from pid {os.getpid()}")


def status_of(manager: TaskManager, task_id: str) -> dict[str, Any]:
    found = manager.get_task_status(task_id)
    assert found is not None
    return found


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def scheduled_for(manager: TaskManager, task_id: str) -> float | None:
    snapshot = manager.runtime.snapshot(task_id)
    assert snapshot is not None
    return snapshot.scheduled_for


def wait_for(manager: TaskManager, task_id: str, status: str, attempt: int) -> dict[str, Any]:
    """Wait until the task reads ``status`` at ``attempt``, then settle the actors (so the
    supervisor has also armed whatever timer goes with that state)."""
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen["status"] = status_of(manager, task_id)
        return bool(seen["status"]["status"] == status and seen["status"]["attempt"] == attempt)

    assert wait_until(reached, timeout=BOUND), f"never {status} at attempt {attempt}: {seen}"
    settle(manager)
    return status_of(manager, task_id)


def no_jitter(**fields: Any) -> RetryPolicy:
    return RetryPolicy(**{"jitter": False, **fields})


def events(logs: list[dict[str, Any]], event: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event and all(e.get(k) == v for k, v in match.items())]


# -- retries -------------------------------------------------------------------------------


def test_retry_backs_off_exactly_and_completes_on_the_third_attempt(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Two ConnectionErrors then a result: after each failure the task reads pending with
    its attempt number and next_attempt_at = failure time + 1 s, then + 2 s (doubling); it
    does not start a moment before; it completes at attempt 3; each retry is logged."""
    op = Scripted(ConnectionError, ConnectionError, {"frames": 24})
    policy = no_jitter(max_attempts=3, backoff=1.0, retry_on=(ConnectionError,))
    with capture_logs() as logs:
        manager = make_manager(num_workers=1, clock=clock)
        task_id = manager.create_task(op, retry=policy)

        first = wait_for(manager, task_id, "pending", attempt=1)
        assert first["next_attempt_at"] == iso(clock.time() + 1.0)
        assert first["scheduled_for"] == first["next_attempt_at"]
        assert first["started_at"] is None
        assert "error" not in first
        assert scheduled_for(manager, task_id) == clock.time() + 1.0

        clock.advance(0.999)
        settle(manager)
        assert (status_of(manager, task_id)["status"], op.calls) == ("pending", 1)

        clock.advance(0.001)
        second = wait_for(manager, task_id, "pending", attempt=2)
        assert op.calls == 2
        assert second["next_attempt_at"] == iso(clock.time() + 2.0)
        assert scheduled_for(manager, task_id) == clock.time() + 2.0

        clock.advance(1.999)
        settle(manager)
        assert (status_of(manager, task_id)["status"], op.calls) == ("pending", 2)

        clock.advance(0.001)
        done = manager.wait(task_id, timeout=BOUND)
        manager.shutdown(wait=True, timeout=30)

    assert done["status"] == "completed"
    assert done["result"] == {"frames": 24}
    assert done["attempt"] == 3
    assert done["next_attempt_at"] is None
    assert op.calls == 3
    retries = events(logs, "task.retry_scheduled", task_id=task_id)
    assert [(e["attempt"], e["error"]) for e in retries] == [
        (1, "ConnectionError"),
        (2, "ConnectionError"),
    ]
    assert retries[0]["next_attempt_at"] == pytest.approx(clock.time() - 2.0, abs=1e-6)


def test_each_attempt_runs_in_a_fresh_worker_actor(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Every attempt spawns (and stops) its own worker actor and gets its own TaskContext."""
    op = Scripted(ConnectionError, ConnectionError, "ok")
    with capture_logs() as logs:
        manager = make_manager(num_workers=1, clock=clock)
        task_id = manager.create_task(op, retry=no_jitter(max_attempts=3, backoff=0.0))
        done = manager.wait(task_id, timeout=BOUND)
        manager.shutdown(wait=True, timeout=30)

    assert (done["status"], done["attempt"]) == ("completed", 3)
    assert len(events(logs, "worker.spawned", task_id=task_id)) == 3
    assert len(events(logs, "worker.stopped", task_id=task_id)) == 3
    assert len(op.contexts) == 3
    assert len({id(context) for context in op.contexts}) == 3  # all kept alive: ids unique


def test_exhausted_attempts_fail_with_every_attempts_error(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """After max_attempts failures the task is failed with the last error; details give
    the number of attempts and each attempt's error, in order."""
    op = Scripted(ConnectionError)
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(op, retry=no_jitter(max_attempts=3, backoff=1.0))
    wait_for(manager, task_id, "pending", attempt=1)
    clock.advance(1.0)
    wait_for(manager, task_id, "pending", attempt=2)
    clock.advance(2.0)
    failed = manager.wait(task_id, timeout=BOUND)

    assert failed["status"] == "failed"
    assert failed["attempt"] == 3
    assert failed["next_attempt_at"] is None
    error = failed["error"]
    assert error["code"] == "INTERNAL_ERROR"
    assert error["message"] == "Operation raised ConnectionError: attempt 3"
    assert error["details"]["attempts"] == 3
    assert error["details"]["attempt_errors"] == [
        {"code": "INTERNAL_ERROR", "message": f"Operation raised ConnectionError: attempt {n}"}
        for n in (1, 2, 3)
    ]
    assert op.calls == 3
    clock.advance(3600.0)  # no further attempt is armed
    settle(manager)
    assert op.calls == 3


def test_a_single_attempt_failure_has_no_attempt_details(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Without a retry policy a failure reports no attempts/attempt_errors details."""
    manager = make_manager(num_workers=1, clock=clock)
    failed = manager.wait(manager.create_task(Scripted(ConnectionError)), timeout=BOUND)
    assert (failed["status"], failed["attempt"]) == ("failed", 1)
    assert "attempts" not in failed["error"]["details"]
    assert "attempt_errors" not in failed["error"]["details"]


def test_max_backoff_caps_the_delay(make_manager: MakeManager, clock: ManualClock) -> None:
    """backoff 10 s doubling, capped at 15 s: the waits are 10, 15, 15."""
    policy = no_jitter(max_attempts=4, backoff=10.0, max_backoff=15.0)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in (1, 2, 3, 10)] == [10.0, 15.0, 15.0, 15.0]

    op = Scripted(ConnectionError)
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(op, retry=policy)
    for attempt, wait in ((1, 10.0), (2, 15.0), (3, 15.0)):
        pending = wait_for(manager, task_id, "pending", attempt=attempt)
        assert pending["next_attempt_at"] == iso(clock.time() + wait)
        clock.advance(wait)
    assert manager.wait(task_id, timeout=BOUND)["attempt"] == 4


def test_jitter_draws_the_delay_between_half_and_all_of_the_backoff() -> None:
    """With jitter the delay is base * uniform(0.5, 1.0) from the given generator."""
    policy = RetryPolicy(backoff=4.0, max_backoff=100.0, jitter=True)
    for attempt, base in ((1, 4.0), (2, 8.0), (3, 16.0), (6, 100.0)):
        expected = base * random.Random(attempt).uniform(0.5, 1.0)
        assert policy.delay(attempt, random.Random(attempt)) == expected
        rng = random.Random(1234)
        delays = [policy.delay(attempt, rng) for _ in range(500)]
        assert all(base / 2 <= d <= base for d in delays)
        assert min(delays) < base * 0.6
        assert max(delays) > base * 0.9


def test_jitter_spreads_tasks_that_failed_together(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Twenty tasks failing at the same instant come back at different times, each within
    [backoff/2, backoff] of the failure."""
    op = Scripted(ConnectionError)
    manager = make_manager(num_workers=4, clock=clock)
    policy = RetryPolicy(max_attempts=2, backoff=4.0, jitter=True)
    ids = [manager.create_task(op, retry=policy) for _ in range(20)]
    now = clock.time()
    waits = []
    for task_id in ids:
        wait_for(manager, task_id, "pending", attempt=1)
        at = scheduled_for(manager, task_id)
        assert at is not None
        waits.append(at - now)
    assert all(2.0 <= w <= 4.0 for w in waits), waits
    assert len(set(waits)) > 10


def test_retry_on_filters_by_class(make_manager: MakeManager, clock: ManualClock) -> None:
    """retry_on=(ConnectionError,): a ValueError fails at once, a ConnectionResetError (a
    subclass) is retried; one class alone is accepted in place of a tuple."""
    manager = make_manager(num_workers=2, clock=clock)
    policy = no_jitter(max_attempts=2, backoff=0.0, retry_on=(ConnectionError,))
    value_error = Scripted(ValueError, "never")
    reset = Scripted(ConnectionResetError, "reconnected")
    failed = manager.wait(manager.create_task(value_error, retry=policy), timeout=BOUND)
    retried = manager.wait(manager.create_task(reset, retry=policy), timeout=BOUND)

    assert (failed["status"], failed["attempt"], value_error.calls) == ("failed", 1, 1)
    assert failed["error"]["details"]["exception_type"] == "ValueError"
    assert "attempts" not in failed["error"]["details"]
    assert (retried["status"], retried["attempt"], retried["result"]) == (
        "completed",
        2,
        "reconnected",
    )

    single = RetryPolicy(retry_on=ConnectionError)  # type: ignore[arg-type]
    assert single.retry_on == (ConnectionError,)
    reset_again = Scripted(ConnectionResetError, "ok")
    policy = no_jitter(max_attempts=2, backoff=0.0, retry_on=ConnectionError)
    assert (
        manager.wait(manager.create_task(reset_again, retry=policy), timeout=BOUND)["attempt"] == 2
    )


@pytest.mark.parametrize(
    ("retry_on", "raised", "retried"),
    [
        (("tests.test_policies.RenderError",), RenderError, True),
        (("RenderError",), RenderError, False),  # names are qualified: no bare match
        (("ConnectionError",), ConnectionResetError, True),  # builtins: the bare name
        (("OSError",), ConnectionResetError, True),  # a base class by name
        (("ConnectionError",), TimeoutError, False),
    ],
)
def test_retry_on_by_qualified_name(
    make_manager: MakeManager,
    clock: ManualClock,
    retry_on: tuple[str, ...],
    raised: type[BaseException],
    retried: bool,
) -> None:
    """retry_on takes exception names as facts spell them: module.qualname, builtins bare."""
    manager = make_manager(num_workers=1, clock=clock)
    op = Scripted(raised, "ok")
    task_id = manager.create_task(
        op, retry=no_jitter(max_attempts=2, backoff=0.0, retry_on=retry_on)
    )
    done = manager.wait(task_id, timeout=BOUND)
    expected = ("completed", 2) if retried else ("failed", 1)
    assert (done["status"], done["attempt"]) == expected
    assert op.calls == expected[1]


@pytest.mark.parametrize("raised", [ValueError, KeyError, RenderError, ConnectionError])
def test_the_default_retry_on_retries_any_exception(
    make_manager: MakeManager, clock: ManualClock, raised: type[Exception]
) -> None:
    """The default retry_on=(Exception,) retries whatever an operation raises."""
    assert RetryPolicy().retry_on == (Exception,)
    manager = make_manager(num_workers=1, clock=clock)
    op = Scripted(raised, raised, "ok")
    done = manager.wait(
        manager.create_task(op, retry=no_jitter(max_attempts=3, backoff=0.0)), timeout=BOUND
    )
    assert (done["status"], done["attempt"], done["result"]) == ("completed", 3, "ok")


def test_a_timed_out_attempt_is_retried_only_after_its_operation_returned(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """retry_on_timeout: at the deadline the task reads pending with next_attempt_at =
    deadline + backoff; past that time the next attempt still waits for the stuck first
    operation to return (it holds the slot), then starts."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=3600.0)
    op = GateThenScript("late", "second")
    policy = no_jitter(max_attempts=2, backoff=1.0, retry_on_timeout=True)
    task_id = manager.create_task(op, timeout=5.0, retry=policy)
    op.entered.wait(BOUND)
    settle(manager)
    clock.advance(5.0)
    pending = wait_for(manager, task_id, "pending", attempt=1)
    assert pending["next_attempt_at"] == iso(clock.time() + 1.0)
    assert "error" not in pending

    clock.advance(10.0)  # well past the backoff, but the first operation has not returned
    settle(manager)
    stats = manager.get_stats()
    assert (stats["running"], stats["stopping"]) == (0, 1)
    assert (status_of(manager, task_id)["status"], op.calls) == ("pending", 0)

    op.release_event.set()
    done = manager.wait(task_id, timeout=BOUND)
    assert (done["status"], done["attempt"], done["result"]) == ("completed", 2, "second")
    assert op.calls == 2
    assert "error" not in done


def test_a_timed_out_attempt_whose_operation_returned_still_waits_out_the_backoff(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """retry_on_timeout: when the stuck operation returns before the backoff is over, the
    next attempt starts only when the clock reaches next_attempt_at."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=3600.0)
    op = GateThenScript("late", "second")
    policy = no_jitter(max_attempts=2, backoff=2.0, retry_on_timeout=True)
    task_id = manager.create_task(op, timeout=5.0, retry=policy)
    op.entered.wait(BOUND)
    settle(manager)
    clock.advance(5.0)
    pending = wait_for(manager, task_id, "pending", attempt=1)
    assert pending["next_attempt_at"] == iso(clock.time() + 2.0)

    op.release_event.set()
    assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=BOUND)
    settle(manager)
    assert manager.get_stats()["scheduled"] == 1
    clock.advance(1.999)
    settle(manager)
    assert (status_of(manager, task_id)["status"], op.calls) == ("pending", 1)
    clock.advance(0.001)
    done = manager.wait(task_id, timeout=BOUND)
    assert (done["status"], done["attempt"], done["result"]) == ("completed", 2, "second")


def test_a_timeout_is_not_retried_without_retry_on_timeout(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """retry_on_timeout=False (the default): a timeout fails the task at once, TIMEOUT."""
    manager = make_manager(num_workers=1, clock=clock)
    gate = Gate()
    task_id = manager.create_task(gate, timeout=2.0, retry=no_jitter(max_attempts=3))
    gate.wait_entered()
    settle(manager)
    clock.advance(2.0)
    failed = manager.wait(task_id, timeout=BOUND)
    assert (failed["status"], failed["attempt"]) == ("failed", 1)
    assert failed["error"]["code"] == "TIMEOUT"
    assert "attempts" not in failed["error"]["details"]
    gate.release()
    settle(manager)
    clock.advance(60.0)
    settle(manager)
    assert gate.calls == 1


def test_cancelling_during_the_backoff_stops_the_retries(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A task waiting out its backoff can be cancelled: True, it reads cancelled, and the
    clock passing next_attempt_at never runs it again."""
    op = Scripted(ConnectionError, "never")
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(op, retry=no_jitter(max_attempts=3, backoff=5.0))
    wait_for(manager, task_id, "pending", attempt=1)
    assert manager.get_stats()["scheduled"] == 1

    assert manager.cancel_task(task_id) is True
    cancelled = status_of(manager, task_id)
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"]["details"]["reason"] == "cancel_requested"
    assert cancelled["attempt"] == 1
    first_error = cancelled["error"]["details"]["attempt_errors"][0]
    assert first_error["message"] == "Operation raised ConnectionError: attempt 1"
    settle(manager)
    assert manager.get_stats()["scheduled"] == 0
    clock.advance(60.0)
    settle(manager)
    assert op.calls == 1
    assert status_of(manager, task_id)["status"] == "cancelled"
    assert manager.cancel_task(task_id) is False


def test_cancelling_a_timed_out_task_awaiting_its_retry(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A timed-out attempt waiting (for its operation to return) to be retried can be
    cancelled: it reads cancelled and no further attempt starts once the operation returns."""
    manager = make_manager(num_workers=1, clock=clock, stop_grace=3600.0)
    op = GateThenScript("late", "never")
    policy = no_jitter(max_attempts=3, backoff=1.0, retry_on_timeout=True)
    task_id = manager.create_task(op, timeout=5.0, retry=policy)
    op.entered.wait(BOUND)
    settle(manager)
    clock.advance(5.0)
    wait_for(manager, task_id, "pending", attempt=1)

    assert manager.cancel_task(task_id) is True
    assert status_of(manager, task_id)["status"] == "cancelled"
    op.release_event.set()
    assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=BOUND)
    clock.advance(60.0)
    settle(manager)
    assert op.calls == 1
    final = status_of(manager, task_id)
    assert (final["status"], final["attempt"]) == ("cancelled", 1)


def test_the_managers_retry_policy_is_the_default_and_a_task_policy_overrides_it(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """TaskManager(retry=...) applies to tasks that give none; a task's own policy wins."""
    manager = make_manager(num_workers=2, clock=clock, retry=no_jitter(max_attempts=2, backoff=0.0))
    default = manager.wait(manager.create_task(Scripted(ConnectionError)), timeout=BOUND)
    once = manager.wait(
        manager.create_task(Scripted(ConnectionError), retry=RetryPolicy(max_attempts=1)),
        timeout=BOUND,
    )
    thrice = manager.wait(
        manager.create_task(
            Scripted(ConnectionError), retry=no_jitter(max_attempts=3, backoff=0.0)
        ),
        timeout=BOUND,
    )
    assert [(s["status"], s["attempt"]) for s in (default, once, thrice)] == [
        ("failed", 2),
        ("failed", 1),
        ("failed", 3),
    ]

    plain = make_manager(num_workers=1, clock=clock)
    assert plain.wait(plain.create_task(Scripted(ConnectionError)), timeout=BOUND)["attempt"] == 1


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"max_attempts": 0}, ValueError, "max_attempts must be >= 1, got 0"),
        ({"max_attempts": -3}, ValueError, "max_attempts must be >= 1"),
        ({"max_attempts": True}, TypeError, "max_attempts must be an int, got bool"),
        ({"max_attempts": 2.0}, TypeError, "max_attempts must be an int, got float"),
        ({"max_attempts": "3"}, TypeError, "max_attempts must be an int, got str"),
        ({"backoff": -1.0}, ValueError, "backoff must be a finite number of seconds >= 0"),
        ({"backoff": math.nan}, ValueError, "backoff must be a finite number of seconds >= 0"),
        ({"backoff": math.inf}, ValueError, "backoff must be a finite number"),
        ({"backoff": "1"}, TypeError, "backoff must be a number of seconds, got str"),
        ({"backoff": False}, TypeError, "backoff must be a number of seconds, got bool"),
        ({"max_backoff": -0.5}, ValueError, "max_backoff must be a finite number"),
        ({"max_backoff": math.nan}, ValueError, "max_backoff must be a finite number"),
        ({"jitter": 1}, TypeError, "jitter and retry_on_timeout must be bools"),
        ({"retry_on_timeout": "yes"}, TypeError, "jitter and retry_on_timeout must be bools"),
        ({"retry_on": (42,)}, TypeError, "retry_on takes exception classes or their qualified"),
        ({"retry_on": ("",)}, TypeError, "retry_on takes exception classes"),
        ({"retry_on": (int,)}, TypeError, "retry_on takes exception classes"),
        ({"retry_on": (ValueError, None)}, TypeError, "got None"),
    ],
)
def test_retry_policy_validation(
    fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Bad RetryPolicy fields raise at construction with a message naming the field."""
    with pytest.raises(error) as raised:
        RetryPolicy(**fields)
    assert message in str(raised.value)


def test_a_retry_that_is_not_a_policy_is_refused(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """retry= must be a RetryPolicy, for a task and for the manager."""
    manager = make_manager(num_workers=1, clock=clock)
    with pytest.raises(TypeError, match="retry must be a RetryPolicy or None, got dict"):
        manager.create_task(Scripted("ok"), retry={"max_attempts": 3})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry must be a RetryPolicy or None, got int"):
        TaskManager(retry=3)  # type: ignore[arg-type]
    assert manager.get_stats()["total_tasks"] == 0


def test_a_policy_survives_json_and_pickle() -> None:
    """A policy is a value: to_json/from_json and pickle give an equal policy."""
    policy = RetryPolicy(
        max_attempts=5, backoff=0.5, max_backoff=8.0, retry_on=(ConnectionError, "x.Y")
    )
    assert policy.to_json()["retry_on"] == ["ConnectionError", "x.Y"]
    again = RetryPolicy.from_json(policy.to_json())
    assert again.to_json() == policy.to_json()
    assert pickle.loads(pickle.dumps(policy)).to_json() == policy.to_json()


def test_a_process_isolated_task_is_retried_by_exception_class_name(
    make_manager: MakeManager,
) -> None:
    """In process isolation the exception comes back as names only; retry_on still
    matches a base class (ConnectionRefusedError is a ConnectionError) and retries it."""
    assert pickle.loads(pickle.dumps(always_refused)) is always_refused  # importable by name
    manager = make_manager(num_workers=1, isolation="process")
    policy = no_jitter(max_attempts=2, backoff=0.0, retry_on=(ConnectionError,))
    task_id = manager.create_task(always_refused, {"host": "farm-7"}, retry=policy)
    failed = manager.wait(task_id, timeout=30)
    assert (failed["status"], failed["attempt"], failed["isolation"]) == ("failed", 2, "process")
    assert failed["error"]["details"]["exception_type"] == "ConnectionRefusedError"
    messages = [e["message"] for e in failed["error"]["details"]["attempt_errors"]]
    prefix = "Operation raised ConnectionRefusedError: no route to farm-7 from pid "
    assert len(messages) == 2
    assert all(m.startswith(prefix) for m in messages), messages
    assert all(int(m.removeprefix(prefix)) != os.getpid() for m in messages)  # in a child


# -- delayed tasks ---------------------------------------------------------------------------


def test_a_delayed_task_starts_when_the_clock_reaches_it(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """delay=30: pending with scheduled_for = now + 30 (ISO), not started at +29.9 s,
    started at +30 s."""
    op = Scripted("rendered")
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(op, delay=30)
    pending = status_of(manager, task_id)
    assert pending["status"] == "pending"
    assert pending["scheduled_for"] == iso(clock.time() + 30.0)
    assert pending["next_attempt_at"] is None  # not a retry
    assert pending["attempt"] == 0
    settle(manager)
    clock.advance(29.9)
    settle(manager)
    assert (status_of(manager, task_id)["status"], op.calls) == ("pending", 0)
    clock.advance(0.1)
    done = manager.wait(task_id, timeout=BOUND)
    assert (done["status"], done["result"], done["attempt"]) == ("completed", "rendered", 1)
    assert done["scheduled_for"] is None
    assert done["started_at"] == iso(clock.time())


def test_run_at_takes_an_aware_datetime(make_manager: MakeManager, clock: ManualClock) -> None:
    """run_at (any time zone) holds the task until that instant; a past one runs at once."""
    op = Scripted("ok")
    manager = make_manager(num_workers=1, clock=clock)
    when = datetime.fromtimestamp(clock.time() + 10, tz=timezone(timedelta(hours=2)))
    task_id = manager.create_task(op, run_at=when)
    assert status_of(manager, task_id)["scheduled_for"] == iso(clock.time() + 10.0)
    settle(manager)
    clock.advance(9.99)
    settle(manager)
    assert (status_of(manager, task_id)["status"], op.calls) == ("pending", 0)
    clock.advance(0.01)
    assert manager.wait(task_id, timeout=BOUND)["status"] == "completed"

    past = manager.create_task(op, run_at=datetime.fromtimestamp(clock.time() - 60, tz=UTC))
    assert manager.wait(past, timeout=BOUND)["status"] == "completed"  # the clock stood still


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"delay": -1.0}, ValueError, "delay"),
        ({"delay": math.nan}, ValueError, "delay"),
        ({"delay": "5"}, TypeError, "delay"),
        ({"run_at": datetime(2026, 1, 1, 12, 0)}, ValueError, "run_at must be an aware datetime"),
        ({"run_at": 1767225600.0}, TypeError, "run_at must be a datetime, got float"),
        (
            {"delay": 5.0, "run_at": datetime(2026, 1, 1, tzinfo=UTC)},
            ValueError,
            "give delay or run_at, not both",
        ),
    ],
)
def test_bad_delays_are_refused(
    make_manager: MakeManager,
    clock: ManualClock,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    """Negative or non-finite delays, naive or non-datetime run_at, and both at once are
    refused before a task exists."""
    manager = make_manager(num_workers=1, clock=clock)
    with pytest.raises(error, match=message):
        manager.create_task(Scripted("ok"), **kwargs)
    assert manager.get_stats()["total_tasks"] == 0


def test_a_zero_delay_runs_at_once(make_manager: MakeManager, clock: ManualClock) -> None:
    """delay=0 is no delay: nothing is scheduled and the task runs without the clock moving."""
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(Scripted("now"), delay=0)
    assert status_of(manager, task_id)["scheduled_for"] is None
    assert manager.wait(task_id, timeout=BOUND)["result"] == "now"


def test_cancelling_a_delayed_task(make_manager: MakeManager, clock: ManualClock) -> None:
    """A delayed task can be cancelled (True); it reads cancelled and never runs."""
    op = Scripted("never")
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(op, delay=30)
    settle(manager)
    assert manager.get_stats()["scheduled"] == 1
    assert manager.cancel_task(task_id) is True
    assert status_of(manager, task_id)["status"] == "cancelled"
    settle(manager)
    assert manager.get_stats()["scheduled"] == 0
    clock.advance(60.0)
    settle(manager)
    assert op.calls == 0
    assert status_of(manager, task_id)["status"] == "cancelled"


def test_stats_count_delayed_tasks_as_scheduled(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """get_stats: scheduled counts the delayed tasks, queue_size includes them."""
    manager = make_manager(num_workers=1, clock=clock)
    ids = [manager.create_task(Scripted(n), delay=10 * (n + 1)) for n in range(3)]
    settle(manager)
    stats = manager.get_stats()
    assert (stats["scheduled"], stats["queue_size"], stats["running"]) == (3, 3, 0)
    assert stats["status_counts"]["pending"] == 3
    clock.advance(10.0)
    manager.wait(ids[0], timeout=BOUND)
    settle(manager)
    assert (manager.get_stats()["scheduled"], manager.get_stats()["queue_size"]) == (2, 2)
    clock.advance(20.0)
    for task_id in ids[1:]:
        manager.wait(task_id, timeout=BOUND)
    settle(manager)
    assert (manager.get_stats()["scheduled"], manager.get_stats()["queue_size"]) == (0, 0)


def test_tasks_due_together_start_in_priority_order(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Delayed tasks that become due in one advance while the only worker is busy start by
    priority, FIFO within one, not in the order they were created."""
    manager = make_manager(num_workers=1, clock=clock)
    blocker = Gate()
    blocker_id = manager.create_task(blocker)
    blocker.wait_entered()
    order: list[str] = []

    def record(params: Mapping[str, Any], task: TaskContext) -> None:
        order.append(params["name"])

    plan = [
        ("low", "low"),
        ("normal-1", "normal"),
        ("critical", "critical"),
        ("normal-2", "normal"),
        ("high", "high"),
    ]
    ids = [
        manager.create_task(record, {"name": name}, priority=priority, delay=5.0)
        for name, priority in plan
    ]
    settle(manager)
    clock.advance(5.0)
    settle(manager)
    assert manager.get_stats()["scheduled"] == 0
    blocker.release()
    manager.wait(blocker_id, timeout=BOUND)
    for task_id in ids:
        manager.wait(task_id, timeout=BOUND)
    assert order == ["critical", "high", "normal-1", "normal-2", "low"]


def test_shutdown_cancels_delayed_and_backing_off_tasks_without_waiting(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """With a memory store, shutdown does not wait for a delay or a backoff (the clock is
    never advanced): those tasks are cancelled with reason shutdown."""
    op = Scripted("never")
    retried = Scripted(ConnectionError, "never")
    manager = make_manager(num_workers=1, clock=clock)
    delayed = manager.create_task(op, delay=3600)
    backing_off = manager.create_task(retried, retry=no_jitter(max_attempts=3, backoff=3600.0))
    wait_for(manager, backing_off, "pending", attempt=1)
    started = time.monotonic()
    manager.shutdown(wait=True, timeout=BOUND)  # TimeoutError if it waited for the clock
    assert time.monotonic() - started < BOUND
    assert clock.monotonic() == 0.0
    for task_id in (delayed, backing_off):
        final = status_of(manager, task_id)
        assert final["status"] == "cancelled"
        assert final["error"]["details"]["reason"] == "shutdown"
    assert (op.calls, retried.calls) == (0, 1)


def test_an_attempt_failing_during_shutdown_is_not_retried(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Once shutdown has begun a failed attempt ends the task (failed) instead of being
    queued for another attempt."""
    op = GateThenScript(ConnectionError, "never")
    manager = make_manager(num_workers=1, clock=clock)
    task_id = manager.create_task(op, retry=no_jitter(max_attempts=3, backoff=0.0))
    op.entered.wait(BOUND)
    manager.shutdown(wait=False)
    op.release_event.set()
    failed = manager.wait(task_id, timeout=BOUND)
    assert (failed["status"], failed["attempt"]) == ("failed", 1)
    manager.shutdown(wait=True, timeout=BOUND)
    assert op.calls == 1


# -- restart intensity (circuit breakers) --------------------------------------------------


def fail_n(manager: TaskManager, operation: str, n: int, **params: Any) -> None:
    for _ in range(n):
        task_id = manager.create_task(operation, {"fail": True, **params})
        assert manager.wait(task_id, timeout=BOUND)["status"] == "failed"


class Flaky:
    """A registered operation driven by its params: ``block`` waits (ignoring
    is_cancelled) for ``release``, ``fail`` raises ConnectionError; else it returns ``n``.
    ``started`` lists the ``n`` of every call, in order."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.entered = threading.Event()
        self.release_event = threading.Event()

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        self.started.append(params.get("n"))
        if params.get("block"):
            self.entered.set()
            self.release_event.wait(RELEASE_TIMEOUT)
        if params.get("fail"):
            raise ConnectionError(f"render farm down ({params.get('n')})")
        return params.get("n")


def test_too_many_failures_trip_the_operation(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """max_failures=2 in 10 s: the third failure trips the operation; new tasks of it are
    refused with retry_after = cooldown (SERVICE_UNAVAILABLE), others are unaffected; the
    trip is logged and shown in get_stats; after the cool-down it takes tasks again."""
    flaky = Flaky()
    with capture_logs() as logs:
        manager = make_manager(
            num_workers=1, clock=clock, max_failures=2, failure_window=10, cooldown=5
        )
        manager.register_operation("render.flaky", flaky)
        manager.register_operation("render.other", Flaky())
        fail_n(manager, "render.flaky", 2)
        assert manager.get_stats()["operations"]["render.flaky"]["state"] == "closed"
        assert manager.get_stats()["operations"]["render.flaky"]["recent_failures"] == 2
        fail_n(manager, "render.flaky", 1)  # the third is still accepted, and trips it

        with pytest.raises(OperationUnavailableError) as refused:
            manager.create_task("render.flaky", {"n": 4})
        assert refused.value.operation == "render.flaky"
        assert refused.value.retry_after == 5.0
        error = error_from_exception(refused.value)
        assert error.code is ErrorCodes.SERVICE_UNAVAILABLE
        assert error.http_status == 503
        assert error.to_dict()["details"] == {"operation": "render.flaky", "retry_after": 5.0}

        other = manager.create_task("render.other", {"n": "fine"})
        assert manager.wait(other, timeout=BOUND)["result"] == "fine"
        stats = manager.get_stats()["operations"]
        assert stats["render.flaky"] == {
            "state": "open",
            "recent_failures": 0,
            "trips": 1,
            "retry_after": 5.0,
        }
        assert stats["render.other"]["state"] == "closed"

        clock.advance(2.0)
        with pytest.raises(OperationUnavailableError) as later:
            manager.create_task("render.flaky", {"n": 5})
        assert later.value.retry_after == 3.0
        clock.advance(3.0)
        back = manager.create_task("render.flaky", {"n": 6})
        assert manager.wait(back, timeout=BOUND)["result"] == 6
        assert manager.get_stats()["operations"]["render.flaky"]["state"] == "closed"
        manager.shutdown(wait=True, timeout=30)

    tripped = events(logs, "operation.tripped")
    assert len(tripped) == 1
    assert tripped[0]["operation"] == "render.flaky"
    assert tripped[0]["retry_after"] == 5.0
    assert tripped[0]["trips"] == 1
    assert tripped[0]["log_level"] == "warning"
    assert flaky.started == [None, None, None, 6]


def test_failures_spread_over_more_than_the_window_do_not_trip(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Only failures within failure_window count: 3 failures 6 s apart (window 10 s) leave
    the operation closed; a fourth 1 s later (3 within 10 s) trips it."""
    manager = make_manager(num_workers=1, clock=clock, max_failures=2, failure_window=10)
    manager.register_operation("render.flaky", Flaky())
    for step in range(3):  # failures at 0, 6 and 12 s: never more than 2 within 10 s
        if step:
            clock.advance(6.0)
        fail_n(manager, "render.flaky", 1)
    state = manager.get_stats()["operations"]["render.flaky"]
    assert (state["state"], state["recent_failures"], state["trips"]) == ("closed", 2, 0)
    clock.advance(1.0)  # at 13 s: the failures at 6, 12 and 13 s are 3 within 10 s
    fail_n(manager, "render.flaky", 1)
    state = manager.get_stats()["operations"]["render.flaky"]
    assert (state["state"], state["trips"]) == ("open", 1)
    assert state["retry_after"] == 10.0  # cooldown defaults to the window


@pytest.mark.parametrize("trial_fails", [False, True])
def test_pending_tasks_of_a_tripped_operation_wait_for_a_trial(
    make_manager: MakeManager, clock: ManualClock, trial_fails: bool
) -> None:
    """Tasks queued before the trip are held (pending, counted in get_stats()["held"]),
    not failed. When the cool-down ends one trial task runs alone: if it succeeds the
    breaker closes (operation.recovered) and the held tasks run; if it fails the breaker
    trips again (trips == 2) and the rest stay held for another cool-down."""
    flaky = Flaky()
    with capture_logs() as logs:
        manager = make_manager(
            num_workers=1, clock=clock, max_failures=2, failure_window=10, cooldown=5
        )
        manager.register_operation("render.flaky", flaky)
        fail_n(manager, "render.flaky", 2)
        blocked = manager.create_task("render.flaky", {"block": True, "fail": True, "n": 0})
        flaky.entered.wait(BOUND)
        trial = manager.create_task("render.flaky", {"n": 1, "fail": trial_fails})
        held = [manager.create_task("render.flaky", {"n": n}) for n in (2, 3)]
        settle(manager)
        assert manager.get_stats()["held"] == 0  # queued behind the busy worker, not held

        flaky.release_event.set()  # the third failure trips the operation
        assert manager.wait(blocked, timeout=BOUND)["status"] == "failed"
        settle(manager)
        stats = manager.get_stats()
        assert (stats["held"], stats["queue_size"], stats["running"]) == (3, 3, 0)
        assert stats["operations"]["render.flaky"]["state"] == "open"
        assert [status_of(manager, t)["status"] for t in (trial, *held)] == ["pending"] * 3

        clock.advance(4.999)
        settle(manager)
        assert manager.get_stats()["held"] == 3
        assert flaky.started == [None, None, 0]

        clock.advance(0.001)  # the cool-down is over: the first held task is the trial
        trial_status = manager.wait(trial, timeout=BOUND)
        settle(manager)
        if not trial_fails:
            assert trial_status["status"] == "completed"
            assert [manager.wait(t, timeout=BOUND)["result"] for t in held] == [2, 3]
            assert flaky.started == [None, None, 0, 1, 2, 3]
            state = manager.get_stats()["operations"]["render.flaky"]
            assert (state["state"], state["trips"]) == ("closed", 1)
            assert manager.get_stats()["held"] == 0
        else:
            assert trial_status["status"] == "failed"
            stats = manager.get_stats()
            assert stats["held"] == 2
            assert stats["operations"]["render.flaky"]["state"] == "open"
            assert stats["operations"]["render.flaky"]["trips"] == 2
            assert stats["operations"]["render.flaky"]["retry_after"] == 5.0
            assert [status_of(manager, t)["status"] for t in held] == ["pending"] * 2
            assert flaky.started == [None, None, 0, 1]
            clock.advance(5.0)  # the next trial (n=2) succeeds and releases n=3
            assert [manager.wait(t, timeout=BOUND)["result"] for t in held] == [2, 3]
            assert manager.get_stats()["operations"]["render.flaky"]["state"] == "closed"
        manager.shutdown(wait=True, timeout=30)

    assert len(events(logs, "operation.tripped")) == (2 if trial_fails else 1)
    assert len(events(logs, "operation.recovered", operation="render.flaky")) == 1


def test_the_trial_runs_alone(make_manager: MakeManager, clock: ManualClock) -> None:
    """With free workers, a half-open operation still runs one trial at a time; the held
    tasks start only once it has succeeded."""
    flaky = Flaky()
    manager = make_manager(
        num_workers=3, clock=clock, max_failures=1, failure_window=10, cooldown=5
    )
    manager.register_operation("render.flaky", flaky)
    fail_n(manager, "render.flaky", 2)
    assert manager.get_stats()["operations"]["render.flaky"]["state"] == "open"
    clock.advance(5.0)
    trial = manager.create_task("render.flaky", {"n": 1, "block": True})
    flaky.entered.wait(BOUND)
    followers = [manager.create_task("render.flaky", {"n": n}) for n in (2, 3)]
    settle(manager)
    stats = manager.get_stats()
    assert (stats["running"], stats["held"]) == (1, 2)
    assert manager.get_stats()["operations"]["render.flaky"]["state"] == "half_open"
    flaky.release_event.set()
    assert manager.wait(trial, timeout=BOUND)["status"] == "completed"
    assert [manager.wait(t, timeout=BOUND)["result"] for t in followers] == [2, 3]


def test_cancelling_the_trial_lets_the_next_task_try(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A cancelled trial says nothing about the operation: the next held task becomes the
    trial, and its success closes the breaker."""
    flaky = Flaky()
    manager = make_manager(
        num_workers=2, clock=clock, max_failures=1, failure_window=10, cooldown=5
    )
    manager.register_operation("render.flaky", flaky)
    fail_n(manager, "render.flaky", 2)
    clock.advance(5.0)
    trial = manager.create_task("render.flaky", {"n": 1, "block": True})
    flaky.entered.wait(BOUND)
    follower = manager.create_task("render.flaky", {"n": 2})
    settle(manager)
    assert manager.get_stats()["held"] == 1
    assert manager.cancel_task(trial) is True
    settle(manager)
    assert manager.get_stats()["held"] == 1  # the trial still holds its slot until it returns
    flaky.release_event.set()
    assert manager.wait(follower, timeout=BOUND)["result"] == 2
    state = manager.get_stats()["operations"]["render.flaky"]
    assert (state["state"], state["trips"]) == ("closed", 1)


def test_an_operation_can_have_its_own_limits(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """register_operation(max_failures=..., ...) gives one operation a breaker while the
    manager has none: it trips; an operation registered without limits never does."""
    manager = make_manager(num_workers=1, clock=clock)
    manager.register_operation(
        "render.fragile", Flaky(), max_failures=1, failure_window=30, cooldown=3
    )
    manager.register_operation("render.sturdy", Flaky())
    fail_n(manager, "render.sturdy", 5)
    fail_n(manager, "render.fragile", 2)
    with pytest.raises(OperationUnavailableError) as refused:
        manager.create_task("render.fragile")
    assert refused.value.retry_after == 3.0
    assert (
        manager.wait(manager.create_task("render.sturdy", {"n": 1}), timeout=BOUND)["result"] == 1
    )
    operations = manager.get_stats()["operations"]
    assert list(operations) == ["render.fragile"]
    assert operations["render.fragile"]["trips"] == 1


def test_per_operation_limits_override_the_managers(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """An operation's own limits replace the manager's for it alone."""
    manager = make_manager(num_workers=1, clock=clock, max_failures=1, failure_window=10)
    manager.register_operation("render.tolerant", Flaky(), max_failures=5, failure_window=10)
    manager.register_operation("render.default", Flaky())
    fail_n(manager, "render.tolerant", 5)
    fail_n(manager, "render.default", 2)
    operations = manager.get_stats()["operations"]
    assert operations["render.tolerant"]["state"] == "closed"
    assert operations["render.default"]["state"] == "open"


def test_cancelled_tasks_do_not_count_as_failures(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """Cancelling running and pending tasks of an operation never trips its breaker; it
    trips only on real failures."""
    flaky = Flaky()
    manager = make_manager(num_workers=1, clock=clock, max_failures=1, failure_window=10)
    manager.register_operation("render.flaky", flaky)
    for _ in range(3):
        flaky.entered.clear()
        running = manager.create_task("render.flaky", {"block": True, "fail": True})
        flaky.entered.wait(BOUND)
        queued = manager.create_task("render.flaky", {"fail": True})
        assert manager.cancel_task(queued) is True
        assert manager.cancel_task(running) is True
        flaky.release_event.set()  # it now raises, but it is already cancelled
        assert wait_until(lambda: manager.get_stats()["stopping"] == 0, timeout=BOUND)
        flaky.release_event.clear()
        assert status_of(manager, running)["status"] == "cancelled"
    state = manager.get_stats()["operations"].get("render.flaky")
    assert state is None or (state["state"], state["recent_failures"]) == ("closed", 0)
    fail_n(manager, "render.flaky", 1)
    assert manager.get_stats()["operations"]["render.flaky"]["state"] == "closed"
    fail_n(manager, "render.flaky", 1)
    assert manager.get_stats()["operations"]["render.flaky"]["state"] == "open"


def test_a_timeout_counts_as_a_failure(make_manager: MakeManager, clock: ManualClock) -> None:
    """A timed-out attempt is a failure for the breaker, at the deadline."""
    manager = make_manager(num_workers=2, clock=clock, max_failures=1, failure_window=60)
    flaky = Flaky()
    manager.register_operation("render.slow", flaky)
    fail_n(manager, "render.slow", 1)
    stuck = manager.create_task("render.slow", {"block": True}, timeout=1.0)
    flaky.entered.wait(BOUND)
    settle(manager)
    clock.advance(1.0)
    assert manager.wait(stuck, timeout=BOUND)["error"]["code"] == "TIMEOUT"
    assert manager.get_stats()["operations"]["render.slow"]["state"] == "open"
    flaky.release_event.set()


def test_every_failed_attempt_of_a_retried_task_counts(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """The breaker sees attempts, not tasks: one task retried three times trips
    max_failures=2, and its own last attempts are held, not run."""
    flaky = Flaky()
    manager = make_manager(
        num_workers=1, clock=clock, max_failures=2, failure_window=60, cooldown=30
    )
    manager.register_operation("render.flaky", flaky)
    task_id = manager.create_task(
        "render.flaky", {"fail": True}, retry=no_jitter(max_attempts=5, backoff=0.0)
    )
    assert wait_until(lambda: manager.get_stats()["held"] == 1, timeout=BOUND)
    pending = status_of(manager, task_id)
    assert (pending["status"], pending["attempt"]) == ("pending", 3)
    assert len(flaky.started) == 3
    assert manager.get_stats()["operations"]["render.flaky"]["state"] == "open"


def test_cancelling_a_held_task_updates_the_held_count(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """A held task that is cancelled is no longer counted as held."""
    flaky = Flaky()
    manager = make_manager(num_workers=1, clock=clock, max_failures=1, failure_window=10)
    manager.register_operation("render.flaky", flaky)
    fail_n(manager, "render.flaky", 1)
    blocked = manager.create_task("render.flaky", {"block": True, "fail": True})
    flaky.entered.wait(BOUND)
    held = [manager.create_task("render.flaky", {"n": n}) for n in range(3)]
    flaky.release_event.set()
    manager.wait(blocked, timeout=BOUND)
    settle(manager)
    assert (manager.get_stats()["held"], manager.get_stats()["queue_size"]) == (3, 3)
    assert manager.cancel_task(held[0]) is True
    settle(manager)
    stats = manager.get_stats()
    assert (stats["held"], stats["queue_size"]) == (2, 2)
