"""Listing pages answered by the registry's table from its seq-ordered indexes.

A page (``TaskTable.page``, ``TaskRuntime.page``, ``GET /v1/tasks``) lists tasks in
submission order after a cursor naming a task's ``seq``. These tests pin that paging
through gives exactly the unpaged listing, that a page reads only its own records, and
that the runtime answers the same through the registry and after shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import (
    Cancelled,
    Completed,
    Isolation,
    Outcome,
    Raised,
    StopReason,
    TaskOptions,
    TaskPriority,
    TaskStatus,
)
from actors._core.table import TaskTable
from actors.lowlevel import TaskSpec
from storycore_tasks import TaskManager

USERS = ("ada", "bob", None)
FILTERS: list[TaskStatus | None] = [None, *TaskStatus]


def _operation(params: Any, task: Any) -> None:
    return None


def _spec(task_id: str, seq: int, user: str | None, priority: TaskPriority) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        operation=_operation,
        operation_name="tests.op",
        params={},
        options=TaskOptions(user=user, priority=priority, isolation=Isolation.THREAD),
        seq=seq,
        created_at=float(seq),
    )


class _CountingRecords(dict[str, Any]):
    """The table's record dict, counting lookups and refusing a walk over every record."""

    def __init__(self, records: dict[str, Any]) -> None:
        super().__init__(records)
        self.reads = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("a page walked every record")

    def values(self) -> Any:
        raise AssertionError("a page walked every record")

    def items(self) -> Any:
        raise AssertionError("a page walked every record")


def _expected(table: TaskTable, status: TaskStatus | None, user: str | None) -> list[str]:
    """The unpaged listing in submission order: what the route sorted before."""
    records = sorted(table.list(status, None, user), key=lambda r: r.seq)
    return [r.task_id for r in records]


def _paged(table: TaskTable, status: TaskStatus | None, user: str | None, size: int) -> list[str]:
    seen: list[str] = []
    after = -1
    for _ in range(len(table) + 2):
        page = table.page(status, after, size, user)
        assert len(page.records) <= size
        seen.extend(r.task_id for r in page.records)
        if page.next_after is None:
            return seen
        assert page.records, "a page that promises more is not empty"
        assert page.next_after == page.records[-1].seq
        after = page.next_after
    raise AssertionError("paging did not end")


# One step on a random table: add, start, finish, retry, or drop the ended ones.
_steps = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "run", "finish", "retry", "retain"]),
        st.integers(0, 10_000),
        st.sampled_from(USERS),
        st.sampled_from(list(TaskPriority)),
    ),
    max_size=60,
)
_OUTCOMES: list[Outcome] = [
    Completed(1),
    Raised("ValueError", "bad", "Traceback ..."),
    Cancelled(StopReason.CANCEL_REQUESTED),
]


def _build(steps: list[tuple[str, int, str | None, TaskPriority]]) -> TaskTable:
    table = TaskTable()
    ids: list[str] = []
    now = 1.0
    # Seqs reach the registry out of order (submitting threads race to it).
    seqs = iter(sorted(range(len(steps)), key=lambda i: (i * 7919) % (len(steps) or 1)))
    for kind, pick, user, priority in steps:
        now += 1.0
        if kind == "add":
            seq = next(seqs)
            ids.append(f"t{seq}")
            table.add(_spec(f"t{seq}", seq, user, priority))
            continue
        next(seqs)
        if not ids:
            continue
        task_id = ids[pick % len(ids)]
        if kind == "run":
            table.mark_running(task_id, now)
        elif kind == "finish":
            record = table.get(task_id)
            if record is not None and record.status is TaskStatus.PENDING:
                table.finish(task_id, _OUTCOMES[2], now)
            else:
                table.finish(task_id, _OUTCOMES[pick % 3], now)
        elif kind == "retry":
            table.retry(task_id, _OUTCOMES[1], now, now + 5.0)
        else:
            table.remove_ended_before(now - (pick % 10))
    return table


@settings(max_examples=150, deadline=None)
@given(_steps, st.integers(1, 7), st.sampled_from(FILTERS), st.sampled_from(USERS))
def test_paging_through_yields_the_unpaged_listing(
    steps: list[tuple[str, int, str | None, TaskPriority]],
    size: int,
    status: TaskStatus | None,
    user: str | None,
) -> None:
    """Any page size, any status filter, for one owner or all: the pages concatenated are
    exactly the listing in submission order, each task once."""
    table = _build(steps)
    assert _paged(table, status, user, size) == _expected(table, status, user)


@settings(max_examples=60, deadline=None)
@given(_steps)
def test_pages_survive_a_rebuild(steps: list[tuple[str, int, str | None, TaskPriority]]) -> None:
    """After the table rebuilds its indexes from the records (a registry restart), pages
    are those of the table before it."""
    table = _build(steps)
    before = {(s, u): _paged(table, s, u, 3) for s in FILTERS for u in USERS}
    table.rebuild()
    assert {(s, u): _paged(table, s, u, 3) for s in FILTERS for u in USERS} == before


def test_a_page_reads_only_its_own_records() -> None:
    """Once a table has been paged, a page of 50 among 10,000 retained tasks reads 50
    records, wherever it starts and however sparse its status or owner is among the
    rest: the indexes answer it. (The first page a table is asked for builds them: see
    test_the_first_page_builds_the_indexes_and_later_changes_keep_them.)"""
    table = TaskTable()
    table.page(None, -1, 1)  # the indexes exist from here on, kept by every change
    for seq in range(10_000):
        owner = "rare" if seq % 100 == 0 else "common"
        table.add(_spec(f"t{seq}", seq, owner, TaskPriority.NORMAL))
    for seq in range(0, 10_000, 50):  # 200 completed, scattered through the others
        table.mark_running(f"t{seq}", 1.0)
        table.finish(f"t{seq}", Completed(seq), 2.0)
    counting = _CountingRecords(table._records)
    table._records = counting

    for status, user, after in [
        (None, None, 5_000),
        (TaskStatus.PENDING, "common", 9_000),
        (TaskStatus.COMPLETED, None, 2_000),
        (None, "rare", -1),
    ]:
        counting.reads = 0
        page = table.page(status, after, 50, user)
        assert len(page.records) == 50
        assert counting.reads == 50
        assert all(r.seq > after for r in page.records)
        assert [r.seq for r in page.records] == sorted(r.seq for r in page.records)


def test_page_refuses_a_limit_below_one() -> None:
    """A page of nothing is a caller's mistake, named as such."""
    with pytest.raises(ValueError, match="limit must be at least 1"):
        TaskTable().page(None, -1, 0)


def test_runtime_pages_through_the_registry_and_after_shutdown(
    make_manager: Callable[..., TaskManager],
) -> None:
    """TaskRuntime.page answers the same pages while the registry runs and, after
    shutdown, from the final table; owners see only their own tasks."""
    manager = make_manager()
    runtime = manager.runtime
    ids = [runtime.submit(_operation, user="ada" if i % 2 else "bob") for i in range(7)]
    for task_id in ids:
        runtime.wait(task_id, timeout=10.0)

    def pages(user: str | None) -> list[list[str]]:
        out: list[list[str]] = []
        after = -1
        while True:
            page = runtime.page(TaskStatus.COMPLETED, after=after, limit=2, user=user)
            out.append([s.task_id for s in page.tasks])
            if page.next_after is None:
                return out
            after = page.next_after

    live = {user: pages(user) for user in ("ada", "bob", None)}
    assert [t for page in live[None] for t in page] == ids
    assert [t for page in live["ada"] for t in page] == ids[1::2]
    assert [len(p) for p in live[None]] == [2, 2, 2, 1]
    manager.shutdown()
    assert {user: pages(user) for user in ("ada", "bob", None)} == live
    with pytest.raises(ValueError, match="limit"):
        runtime.page(limit=0)
    with pytest.raises(TypeError, match="after must be an int"):
        runtime.page(after="5", limit=1)  # type: ignore[arg-type]


def test_the_first_page_builds_the_indexes_and_later_changes_keep_them() -> None:
    """A table never paged keeps no seq index (nothing on the per-task path); its first
    page builds them from the records, and every later change keeps them, so pages
    before and after more changes equal a filter of the records in seq order."""
    table = TaskTable()
    for seq in range(300):
        owner = "rare" if seq % 7 == 0 else None
        table.add(_spec(f"t{seq}", seq, owner, TaskPriority.NORMAL))
        if seq % 3 == 0:
            table.mark_running(f"t{seq}", 1.0)
        if seq % 6 == 0:
            table.finish(f"t{seq}", Completed(seq), 2.0)
    assert table._by_seq == {}

    def expected(status: TaskStatus | None, user: str | None) -> list[int]:
        records = sorted(table._records.values(), key=lambda r: r.seq)
        return [
            r.seq
            for r in records
            if (status is None or r.status is status) and (user is None or r.options.user == user)
        ][:40]

    def paged(status: TaskStatus | None, user: str | None) -> list[int]:
        return [r.seq for r in table.page(status, -1, 40, user).records]

    cases = [(None, None), (TaskStatus.RUNNING, None), (TaskStatus.PENDING, "rare"), (None, "rare")]
    assert [paged(s, u) for s, u in cases] == [expected(s, u) for s, u in cases]
    for seq in range(1, 300, 3):
        table.mark_running(f"t{seq}", 3.0)
    table.remove_ended_before(5.0)
    assert [paged(s, u) for s, u in cases] == [expected(s, u) for s, u in cases]
