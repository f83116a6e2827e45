"""``DependencyGraph``, tested directly: who waits on whom, what a completion releases
and what a failure fails, without a registry or a supervisor."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import Isolation, TaskOptions
from actors._core.dependencies import DependencyGraph, results_of, unmet
from actors._enums import TaskStatus
from actors._outcome import DependencyFailed
from actors._records import TaskRecord


def test_a_task_is_released_when_its_last_dependency_completes() -> None:
    graph = DependencyGraph()
    graph.wait_for("c", ("a", "b"), {"a", "b"})
    first = graph.resolved("a", completed=True)
    assert first.released == []
    assert first.failed == []
    assert graph.remaining("c") == {"b"}
    second = graph.resolved("b", completed=True)
    assert second.released == [("c", ("a", "b"))]  # with every id, for their results
    assert not graph.is_waiting("c")
    assert len(graph) == 0


def test_a_failed_dependency_fails_every_dependent_once() -> None:
    """A failure fails the dependents; their other dependencies forget them, so a later
    end of those releases or fails nothing twice."""
    graph = DependencyGraph()
    graph.wait_for("x", ("a", "b"), {"a", "b"})
    graph.wait_for("y", ("a",), {"a"})
    resolution = graph.resolved("a", completed=False)
    assert sorted(resolution.failed) == ["x", "y"]
    assert resolution.released == []
    assert not graph.has_dependents("b")
    later = graph.resolved("b", completed=True)
    assert later.released == []
    assert later.failed == []


def test_forget_removes_a_cancelled_task_everywhere() -> None:
    graph = DependencyGraph()
    graph.wait_for("x", ("a", "b"), {"a", "b"})
    graph.forget("x")
    assert not graph.has_dependents("a")
    assert not graph.has_dependents("b")
    assert graph.resolved("a", completed=True).released == []


def test_misuse_is_refused() -> None:
    graph = DependencyGraph()
    with pytest.raises(ValueError, match="nothing left to wait for"):
        graph.wait_for("x", ("a",), set())
    graph.wait_for("x", ("a",), {"a"})
    with pytest.raises(ValueError, match="already waiting"):
        graph.wait_for("x", ("a",), {"a"})


@settings(max_examples=200, deadline=None)
@given(
    edges=st.lists(
        st.tuples(st.integers(0, 5), st.frozensets(st.integers(6, 11), min_size=1, max_size=4)),
        max_size=6,
        unique_by=lambda e: e[0],
    ),
    ends=st.lists(
        st.tuples(st.integers(6, 11), st.booleans()), max_size=12, unique_by=lambda e: e[0]
    ),
)
def test_resolutions_agree_with_a_model(
    edges: list[tuple[int, frozenset[int]]], ends: list[tuple[int, bool]]
) -> None:
    """Over random graphs and orders of ends, a task is released exactly when all its
    dependencies completed and none failed first, and failed exactly when one failed
    while it still waited; never both, never twice."""
    graph = DependencyGraph()
    deps = {f"t{t}": {f"d{d}" for d in ds} for t, ds in edges}
    for task_id, ids in deps.items():
        graph.wait_for(task_id, tuple(sorted(ids)), set(ids))
    released: list[str] = []
    failed: list[str] = []
    ended: dict[str, bool] = {}
    for dependency, completed in ends:
        ended[f"d{dependency}"] = completed
        resolution = graph.resolved(f"d{dependency}", completed=completed)
        released += [task_id for task_id, _ in resolution.released]
        failed += resolution.failed
    assert len(released) == len(set(released))
    assert len(failed) == len(set(failed))
    assert not set(released) & set(failed)
    for task_id, ids in deps.items():
        order = [f"d{d}" for d, _ in ends if f"d{d}" in ids]
        first_failure = next((i for i, d in enumerate(order) if not ended[d]), None)
        all_done = set(order) == ids
        if first_failure is not None:
            assert task_id in failed
        elif all_done:
            assert task_id in released
        else:
            assert graph.is_waiting(task_id)
            assert graph.remaining(task_id) == ids - set(order)


def _ended(task_id: str, status: TaskStatus, result: object = None) -> TaskRecord:
    return TaskRecord(
        task_id=task_id,
        operation_name="tests.noop",
        params={},
        options=TaskOptions(isolation=Isolation.THREAD),
        seq=0,
        created_at=1.0,
        updated_at=1.0,
        status=status,
        result=result,
    )


def test_unmet_names_the_first_dependency_that_did_not_complete() -> None:
    """Completed dependencies are met, unfinished ones remain, and the first that ended
    otherwise (an unknown one counts as cancelled) is the failure."""
    records = {
        "done": _ended("done", TaskStatus.COMPLETED),
        "running": _ended("running", TaskStatus.RUNNING),
        "failed": _ended("failed", TaskStatus.FAILED),
    }
    assert unmet(records.get, ("done", "running")) == ({"running"}, None)
    remaining, failure = unmet(records.get, ("running", "failed", "gone"))
    assert remaining == {"running"}  # the ones before the failure
    assert failure == DependencyFailed("failed", "failed")
    assert unmet(records.get, ("gone",))[1] == DependencyFailed("gone", "cancelled")


def test_results_of_gives_each_dependency_result_by_id() -> None:
    records = {"a": _ended("a", TaskStatus.COMPLETED, result={"n": 1})}
    assert results_of(records.get, ("a", "gone")) == {"a": {"n": 1}, "gone": None}
