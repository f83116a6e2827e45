"""The registry's state objects and rules, tested directly with no actor in between:
the group index, the resume rule, the checks of what a record may keep, the release
gate (memory store and a real SQLite file) and the dependency graph's rederivation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import TaskOptions
from actors._core.board import ASK_REGISTRY, TaskBoard
from actors._core.dependencies import DependencyGraph
from actors._core.groups import GroupIndex
from actors._core.outbox import EventOutbox
from actors._core.release import ReleaseGate
from actors._core.resumption import why_not_resumable
from actors._core.storable import checked_checkpoint, checked_partial, storable_outcome
from actors._core.table import TaskTable
from actors._core.waiters import Waiters
from actors._enums import TaskStatus
from actors._errors import NotResumableError, UnstorableValueError
from actors._outcome import Completed, DependencyFailed, Outcome, Raised, ResultNotStorable
from actors._records import TaskRecord
from actors._storage.sqlite import SqliteStore
from actors._storage.store import CommitTicket, MemoryStore
from tests.records import make_record, make_spec


def _in_group(task_id: str, group_id: str | None, seq: int = 0) -> TaskRecord:
    return make_record(task_id, seq=seq, options=TaskOptions(group_id=group_id))


# -- GroupIndex --------------------------------------------------------------------------


def test_group_index_keeps_registration_order_and_drops_empty_groups() -> None:
    index = GroupIndex([_in_group("a", "g"), _in_group("b", None), _in_group("c", "g")])
    assert index.members("g") == ("a", "c")
    assert index.members("nope") == ()
    index.remove([_in_group("a", "g")])
    assert index.members("g") == ("c",)
    index.remove([_in_group("c", "g"), _in_group("b", None)])
    assert (index.members("g"), len(index)) == ((), 0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 9), st.sampled_from(["g1", "g2", None])),
        max_size=40,
    )
)
def test_group_index_matches_a_model_and_never_holds_an_empty_group(
    steps: list[tuple[bool, int, str | None]],
) -> None:
    """Random adds and removals (retention) against a dict-of-lists model."""
    index = GroupIndex()
    model: dict[str, list[str]] = {}
    added: dict[str, TaskRecord] = {}
    for add, n, group_id in steps:
        task_id = f"t{n}"
        if add and task_id not in added:
            record = _in_group(task_id, group_id, seq=n)
            added[task_id] = record
            index.add(record)
            if group_id is not None:
                model.setdefault(group_id, []).append(task_id)
        elif not add and task_id in added:
            record = added.pop(task_id)
            index.remove([record])
            if record.options.group_id is not None:
                model[record.options.group_id].remove(task_id)
                if not model[record.options.group_id]:
                    del model[record.options.group_id]
    assert {g: list(index.members(g)) for g in ("g1", "g2")} == {
        g: model.get(g, []) for g in ("g1", "g2")
    }
    assert len(index) == len(model)
    rebuilt = GroupIndex(added.values())
    assert {g: sorted(rebuilt.members(g)) for g in ("g1", "g2")} == {
        g: sorted(model.get(g, [])) for g in ("g1", "g2")
    }


# -- the resume rule ---------------------------------------------------------------------


def _ended(status: TaskStatus, *, named: bool = True, checkpointed: bool = True) -> TaskRecord:
    record = make_record("t1", named=named)
    record.status = status
    record.checkpointed_at = 5.0 if checkpointed else None
    return record


@pytest.mark.parametrize(
    ("record", "known", "reason"),
    [
        (_ended(TaskStatus.COMPLETED), True, "it completed"),
        (_ended(TaskStatus.RUNNING), True, "it is running"),
        (_ended(TaskStatus.PENDING), True, "it is pending"),
        (_ended(TaskStatus.FAILED, named=False), True, "not by name"),
        (_ended(TaskStatus.CANCELLED, checkpointed=False), True, "no checkpoint"),
        (_ended(TaskStatus.FAILED), False, "no operation is registered as 'tests.noop'"),
    ],
)
def test_why_not_resumable_names_the_reason_and_the_fix(
    record: TaskRecord, known: bool, reason: str
) -> None:
    refusal = why_not_resumable(record, known)
    assert isinstance(refusal, NotResumableError)
    assert reason in str(refusal)
    assert refusal.task_id == "t1"


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_a_failed_or_cancelled_named_checkpointed_task_may_resume(status: TaskStatus) -> None:
    assert why_not_resumable(_ended(status), True) is None


# -- what a record may keep --------------------------------------------------------------


def test_a_partial_result_that_is_not_json_is_not_kept_with_a_durable_store() -> None:
    assert checked_partial("t1", {1: object()}, durable=True).kept is False
    kept = checked_partial("t1", {"frames": (1, 2)}, durable=True)
    assert kept == (True, {"frames": [1, 2]}, '{"frames":[1,2]}')  # as a reload reads it


def test_a_partial_result_in_memory_is_kept_as_it_is_unless_it_breaks_the_rules() -> None:
    marker = object()
    assert checked_partial("t1", marker, durable=False) == (True, marker, None)
    assert checked_partial("t1", "\ud800", durable=False).kept is False


def test_a_checkpoint_that_breaks_the_rules_is_the_error_that_says_why() -> None:
    assert checked_checkpoint("t1", '{"frame": 600}') == ({"frame": 600}, '{"frame": 600}')
    assert isinstance(checked_checkpoint("t1", "{not json"), ValueError)
    assert isinstance(checked_checkpoint("t1", '"\\ud800"'), UnstorableValueError)


def test_a_completed_outcome_is_stored_as_json_or_becomes_result_not_storable() -> None:
    outcome, text = storable_outcome("t1", Completed((1, 2)))
    assert isinstance(outcome, Completed)
    assert (outcome.result, text) == ([1, 2], outcome.result_json)
    bad, none = storable_outcome("t1", Completed({1, 2}))
    assert isinstance(bad, ResultNotStorable)
    assert none is None
    assert bad.type_name == "set"
    raised = Raised.from_exception(ValueError("x"))
    assert storable_outcome("t1", raised) == (raised, None)


# -- the release gate --------------------------------------------------------------------


def _gate(store: Any, table: TaskTable) -> tuple[ReleaseGate, TaskBoard, Waiters]:
    board, waiters = TaskBoard(table), Waiters()
    outbox = EventOutbox(None, None, durable=store is not None and store.durable)
    return ReleaseGate(store, board, waiters, outbox), board, waiters


def test_with_the_memory_store_the_gate_is_open() -> None:
    table = TaskTable()
    gate, board, _ = _gate(MemoryStore(), table)
    record = table.add(make_spec("t1"))
    gate.changed(record)
    snapshot = board.read("t1")
    assert snapshot is not ASK_REGISTRY
    assert snapshot is not None
    ticket = CommitTicket("t1")
    gate.ticket(ticket)
    assert ticket.wait(0)
    assert ticket.error is None
    heard: list[BaseException | None] = []
    gate.after_commit("t1", heard.append)
    assert heard == [None]
    assert gate.reload() is None
    assert gate.unreadable() == ()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "tasks.db")
    store.open()
    try:
        yield store
    finally:
        store.close()


def test_with_a_durable_store_nothing_leaves_before_its_commit(sqlite: SqliteStore) -> None:
    table = TaskTable()
    gate, board, _ = _gate(sqlite, table)
    record = table.add(make_spec("t1", named=True, params_json="{}"))
    gate.changed(record)
    assert board.read("t1") is ASK_REGISTRY  # held: not committed
    ticket = CommitTicket("t1")
    gate.ticket(ticket)
    heard: list[BaseException | None] = []
    gate.after_commit("t1", heard.append)
    assert not ticket.wait(0)
    assert heard == []
    assert gate.commit() is None
    assert ticket.wait(0)
    assert ticket.error is None
    assert heard == [None]
    assert board.read("t1") not in (ASK_REGISTRY, None)
    assert [r.task_id for r in sqlite.reload().records] == ["t1"]


def test_settle_commits_before_a_query_answer_leaves(sqlite: SqliteStore) -> None:
    table = TaskTable()
    gate, _, _ = _gate(sqlite, table)
    gate.changed(table.add(make_spec("t1", named=True, params_json="{}")))
    # Not a query, more mail queued: the commit can wait for a fuller group.
    assert gate.settle("a", query=False, reads_records=False, inbox_empty=False) == "a"
    assert sqlite.reload().records == []
    assert gate.settle("b", query=True, reads_records=False, inbox_empty=False) == "b"
    assert [r.task_id for r in sqlite.reload().records] == ["t1"]


def test_a_terminal_waiter_is_set_only_once_the_end_is_committed(sqlite: SqliteStore) -> None:
    table = TaskTable()
    gate, _, _ = _gate(sqlite, table)
    gate.changed(table.add(make_spec("t1", named=True, params_json="{}")))
    gate.commit()
    table.mark_running("t1", 1.5, None, None)
    _, ended = table.finish("t1", Completed(7, "7"), 2.0)
    assert ended is not None
    gate.changed(ended)
    waiter = gate.terminal_waiter(ended)
    assert not waiter.wait(0)
    gate.commit()
    assert waiter.wait(0)
    assert waiter.snapshot is not None
    assert waiter.snapshot.status is TaskStatus.COMPLETED
    again = gate.terminal_waiter(ended)  # committed now: set at once
    assert again.wait(0)
    assert again.snapshot is not None


# -- the dependency graph after a restart ------------------------------------------------


def test_rederive_waits_again_releases_the_ready_and_fails_the_broken() -> None:
    table = TaskTable()
    ended: list[tuple[str, Outcome]] = [
        ("done", Completed(3)),
        ("failed", Raised("ValueError", "x", "")),
    ]
    for seq, (task_id, outcome) in enumerate(ended, start=1):
        table.add(make_spec(task_id, seq=seq))
        table.mark_running(task_id, 1.5, None, None)
        table.finish(task_id, outcome, 2.0)
    table.add(make_spec("running", seq=3))
    waits = table.add(make_spec("waits", seq=4, options=TaskOptions(depends_on=("running",))))
    ready = table.add(make_spec("ready", seq=5, options=TaskOptions(depends_on=("done",))))
    broken = table.add(
        make_spec("broken", seq=6, options=TaskOptions(depends_on=("done", "failed")))
    )
    graph = DependencyGraph()
    graph.wait_for("stale", ("x",), {"x"})  # forgotten by the rederivation
    found = graph.rederive(table.get, [waits, ready, broken])
    assert found.released == [("ready", {"done": 3})]
    assert found.failed == [("broken", DependencyFailed("failed", "failed"))]
    assert graph.remaining("waits") == {"running"}
    assert not graph.is_waiting("stale")
    assert len(graph) == 1
