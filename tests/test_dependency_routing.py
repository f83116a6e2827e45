"""``DependencyRouting``, tested directly: what the supervisor is told about a task with
dependencies, and which failures the registry is handed to record, with a dict of
records for the lookup and a list for what is told."""

from __future__ import annotations

from actors import Isolation, TaskOptions
from actors._core.dependency_routing import DependencyRouting
from actors._core.messages import DependenciesMet, DropBlocked, Submit, SubmitBlocked
from actors._enums import TaskStatus
from actors._outcome import DependencyFailed
from actors._records import TaskRecord, TaskSpec
from tests.records import make_record, make_spec


def _record(
    task_id: str, status: TaskStatus, *, result: object = None, user: str | None = None
) -> TaskRecord:
    record = make_record(task_id, options=TaskOptions(isolation=Isolation.THREAD, user=user))
    record.status = status
    record.result = result
    return record


def _dependent(task_id: str, *depends_on: str, user: str | None = None) -> TaskSpec:
    options = TaskOptions(isolation=Isolation.THREAD, depends_on=depends_on, user=user)
    return make_spec(task_id, options=options)


def _routing(records: dict[str, TaskRecord]) -> tuple[DependencyRouting, list[object]]:
    told: list[object] = []
    return DependencyRouting(records.get, told.append), told


def test_a_task_whose_dependencies_completed_is_submitted_with_their_results() -> None:
    records = {"a": _record("a", TaskStatus.COMPLETED, result={"n": 1})}
    routing, told = _routing(records)
    spec = _dependent("c", "a")
    assert routing.route(spec) == ("ready", None)
    [submitted] = told
    assert isinstance(submitted, Submit)
    assert submitted.spec.task_id == "c"
    assert submitted.spec.dependency_results == {"a": {"n": 1}}
    assert len(routing) == 0


def test_a_waiting_task_is_blocked_then_released_by_its_last_dependency() -> None:
    records = {
        "a": _record("a", TaskStatus.RUNNING),
        "b": _record("b", TaskStatus.PENDING),
    }
    routing, told = _routing(records)
    spec = _dependent("c", "a", "b")
    assert routing.route(spec) == ("waiting", None)
    assert told == [SubmitBlocked(spec)]
    assert len(routing) == 1
    assert routing.has_dependents("a")
    records["a"] = _record("a", TaskStatus.COMPLETED, result=1)
    assert routing.ended(records["a"]) == []
    assert len(told) == 1  # b is still to finish
    records["b"] = _record("b", TaskStatus.COMPLETED, result=2)
    assert routing.ended(records["b"]) == []
    assert told[1:] == [DependenciesMet("c", {"a": 1, "b": 2})]
    assert len(routing) == 0


def test_a_failed_dependency_drops_the_dependent_and_hands_back_its_failure() -> None:
    records = {"a": _record("a", TaskStatus.RUNNING)}
    routing, told = _routing(records)
    spec = _dependent("c", "a")
    routing.route(spec)
    records["a"] = _record("a", TaskStatus.FAILED)
    assert routing.ended(records["a"]) == [("c", DependencyFailed("a", "failed"))]
    assert told == [SubmitBlocked(spec), DropBlocked("c")]
    assert not routing.has_dependents("a")


def test_a_dependency_that_already_failed_fails_the_task_at_once() -> None:
    """Blocked and dropped (the supervisor knows it only as dropped), never submitted;
    the registry records the failure it is handed."""
    records = {"a": _record("a", TaskStatus.CANCELLED)}
    routing, told = _routing(records)
    spec = _dependent("c", "a")
    assert routing.route(spec) == ("failed", DependencyFailed("a", "cancelled"))
    assert told == [SubmitBlocked(spec), DropBlocked("c")]
    assert len(routing) == 0


def test_another_users_task_and_a_missing_one_read_as_unknown() -> None:
    records = {
        "mine": _record("mine", TaskStatus.COMPLETED, user="ada"),
        "theirs": _record("theirs", TaskStatus.COMPLETED, user="bob"),
    }
    routing, told = _routing(records)
    assert routing.unknown(_dependent("c", "mine", "theirs", "gone", user="ada")) == [
        "theirs",
        "gone",
    ]
    assert routing.unknown(_dependent("d", "mine", "theirs")) == []  # no user: any task
    assert told == []


def test_a_forgotten_task_is_not_released_later() -> None:
    records = {"a": _record("a", TaskStatus.RUNNING)}
    routing, told = _routing(records)
    routing.route(_dependent("c", "a"))
    routing.forget("c")  # cancelled while it waited
    records["a"] = _record("a", TaskStatus.COMPLETED)
    assert routing.ended(records["a"]) == []
    assert len(told) == 1  # only the SubmitBlocked of the route


def test_rederive_releases_drops_and_waits_as_the_records_now_say() -> None:
    """After a rebuild: one pending task's dependency completed meanwhile (released),
    one's failed (dropped, its failure handed back), one's still runs (waits again)."""
    records = {
        "done": _record("done", TaskStatus.COMPLETED, result="r"),
        "failed": _record("failed", TaskStatus.FAILED),
        "running": _record("running", TaskStatus.RUNNING),
    }
    pending = []
    for task_id, dependency in (("x", "done"), ("y", "failed"), ("z", "running")):
        options = TaskOptions(isolation=Isolation.THREAD, depends_on=(dependency,))
        pending.append(make_record(task_id, options=options))
    routing, told = _routing(records)
    failures = routing.rederive([*pending, _record("plain", TaskStatus.PENDING)])
    assert failures == [("y", DependencyFailed("failed", "failed"))]
    assert told == [DependenciesMet("x", {"done": "r"}), DropBlocked("y")]
    assert len(routing) == 1
    assert routing.has_dependents("running")
