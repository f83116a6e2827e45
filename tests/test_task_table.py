"""TaskTable: the transition rules, listings, counters and retention of the registry's table.

The table is a plain single-writer object, so these tests drive it directly: no actor,
no thread, exact timestamps.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors import (
    Cancelled,
    Completed,
    Isolation,
    Outcome,
    Raised,
    StopReason,
    TableStats,
    TaskOptions,
    TaskPriority,
    TaskStatus,
    TimedOut,
)
from actors._core.table import FinishResult, TaskTable
from actors.lowlevel import TaskSpec

RAISED = Raised(exception_type="ValueError", message="bad frame", traceback="Traceback ...")
CANCELLED = Cancelled(StopReason.CANCEL_REQUESTED)
TERMINAL_OUTCOMES: list[Outcome] = [
    Completed("done"),
    RAISED,
    TimedOut(timeout_seconds=5.0),
    CANCELLED,
    Cancelled(StopReason.SHUTDOWN),
]
TERMINAL_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


def _operation(params: Any, task: Any) -> None:
    return None


def _spec(
    task_id: str,
    *,
    priority: TaskPriority = TaskPriority.NORMAL,
    seq: int = 0,
    created_at: float = 0.0,
) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        operation=_operation,
        operation_name="tests.op",
        params={},
        options=TaskOptions(priority=priority, isolation=Isolation.THREAD),
        seq=seq,
        created_at=created_at,
    )


def _running(table: TaskTable, task_id: str, at: float = 1.0) -> None:
    table.add(_spec(task_id))
    assert table.mark_running(task_id, at) is not None


def _ids(table: TaskTable, status: TaskStatus | None, limit: int | None = None) -> list[str]:
    return [record.task_id for record in table.list(status, limit)]


def _recount(table: TaskTable) -> tuple[dict[TaskStatus, int], dict[TaskPriority, int]]:
    """Status and priority counts recomputed from the records themselves."""
    records = list(table.iter_status(None))
    statuses = Counter(r.status for r in records)
    priorities = Counter(r.options.priority for r in records)
    return (
        {s: statuses.get(s, 0) for s in TaskStatus},
        {p: priorities.get(p, 0) for p in TaskPriority},
    )


def _assert_counts_match_records(table: TaskTable) -> None:
    stats = table.stats()
    statuses, priorities = _recount(table)
    assert (len(table), statuses, priorities) == (
        stats.total_tasks,
        stats.status_counts,
        stats.priority_counts,
    )


# -- transitions ----------------------------------------------------------------------------------


def test_a_task_goes_pending_then_running_then_completed() -> None:
    """Lifecycle: PENDING -> RUNNING (started_at) -> COMPLETED (result, progress 1.0, ended_at)."""
    table = TaskTable()
    record = table.add(_spec("a", created_at=10.0))
    assert (record.status, record.progress, record.updated_at) == (TaskStatus.PENDING, 0.0, 10.0)
    assert record is table.mark_running("a", 11.0)
    assert (
        record.status,
        record.started_at,
        record.updated_at,
    ) == (TaskStatus.RUNNING, 11.0, 11.0)
    assert (FinishResult.RECORDED, record) == table.finish("a", Completed({"frames": 3}), 12.5)
    snapshot = record.snapshot()
    assert (TaskStatus.COMPLETED, {"frames": 3}, True, 1.0, 12.5, Completed({"frames": 3})) == (
        snapshot.status,
        snapshot.result,
        snapshot.has_result,
        snapshot.progress,
        snapshot.ended_at,
        snapshot.outcome,
    )
    assert snapshot.duration_seconds == 1.5


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (RAISED, TaskStatus.FAILED),
        (TimedOut(timeout_seconds=5.0), TaskStatus.FAILED),
        (CANCELLED, TaskStatus.CANCELLED),
        (Cancelled(StopReason.SHUTDOWN), TaskStatus.CANCELLED),
    ],
)
def test_a_running_task_ends_in_the_status_of_its_outcome(
    outcome: Outcome, status: TaskStatus
) -> None:
    """Lifecycle: RUNNING -> FAILED (raised, timed out) | CANCELLED; no result is invented."""
    table = TaskTable()
    _running(table, "a")
    result, record = table.finish("a", outcome, 2.0)
    assert record is not None
    assert (FinishResult.RECORDED, status, False, None) == (
        result,
        record.status,
        record.has_result,
        record.result,
    )


def test_mark_running_only_moves_a_pending_task() -> None:
    """TaskTable.mark_running: None and no change for a running, terminal or unknown task."""
    table = TaskTable()
    _running(table, "running", at=1.0)
    table.add(_spec("ended"))
    table.finish("ended", CANCELLED, 2.0)
    assert [
        table.mark_running("running", 5.0),
        table.mark_running("ended", 5.0),
        table.mark_running("unknown", 5.0),
    ] == [None, None, None]
    running, ended = table.get("running"), table.get("ended")
    assert running is not None
    assert ended is not None
    assert (running.status, running.started_at) == (TaskStatus.RUNNING, 1.0)
    assert (ended.status, ended.started_at) == (TaskStatus.CANCELLED, None)
    assert (
        table.stats().status_counts[TaskStatus.PENDING],
        table.stats().status_counts[TaskStatus.RUNNING],
    ) == (0, 1)


def test_a_pending_task_can_be_cancelled_and_never_runs_afterwards() -> None:
    """Lifecycle: PENDING -> CANCELLED is final; mark_running afterwards changes nothing."""
    table = TaskTable()
    table.add(_spec("a"))
    result, record = table.finish("a", CANCELLED, 3.0)
    assert record is not None
    assert (
        result,
        record.status,
        record.outcome,
    ) == (FinishResult.RECORDED, TaskStatus.CANCELLED, CANCELLED)
    assert table.mark_running("a", 4.0) is None
    assert (
        record.status,
        record.started_at,
        _ids(table, TaskStatus.PENDING),
    ) == (TaskStatus.CANCELLED, None, [])


@pytest.mark.parametrize("outcome", [Completed("done"), RAISED, TimedOut(timeout_seconds=5.0)])
def test_a_pending_task_cannot_complete_fail_or_time_out_without_running(
    outcome: Outcome,
) -> None:
    """Lifecycle: PENDING goes only to RUNNING or CANCELLED; other outcomes do nothing."""
    table = TaskTable()
    table.add(_spec("a"))
    table.finish("a", outcome, 3.0)
    record = table.get("a")
    assert record is not None
    assert (
        record.status,
        record.outcome,
        _ids(table, TaskStatus.PENDING),
    ) == (TaskStatus.PENDING, None, ["a"])


@pytest.mark.parametrize("first", TERMINAL_OUTCOMES, ids=repr)
@pytest.mark.parametrize("later", TERMINAL_OUTCOMES, ids=repr)
def test_a_terminal_status_is_final(first: Outcome, later: Outcome) -> None:
    """Invariant 2: a later outcome never changes status, outcome or ended_at of a terminal task."""
    table = TaskTable()
    _running(table, "a")
    table.finish("a", first, 2.0)
    record = table.get("a")
    assert record is not None
    before = (record.status, record.outcome, record.ended_at, record.progress)
    stats_before = table.stats()
    result, _ = table.finish("a", later, 3.0)
    late_value_kept = isinstance(later, Completed) and not isinstance(first, Completed)
    expected = FinishResult.LATE_RESULT if late_value_kept else FinishResult.IGNORED
    assert expected == result
    assert before == (record.status, record.outcome, record.ended_at, record.progress)
    assert stats_before == table.stats()


def test_a_late_result_after_a_cancel_is_kept_once() -> None:
    """FinishResult.LATE_RESULT: a value returned after a cancel is kept as result, once only."""
    table = TaskTable()
    _running(table, "a")
    table.finish("a", CANCELLED, 2.0)
    assert table.finish("a", Completed("first"), 3.0)[0] == FinishResult.LATE_RESULT
    assert table.finish("a", Completed("second"), 4.0)[0] == FinishResult.IGNORED
    record = table.get("a")
    assert record is not None
    assert (
        record.status,
        record.outcome,
        record.result,
        record.has_result,
        record.ended_at,
        record.updated_at,
    ) == (TaskStatus.CANCELLED, CANCELLED, "first", True, 2.0, 3.0)
    assert (table.stats().total_completed, table.stats().total_cancelled) == (0, 1)


def test_a_late_result_after_a_timeout_keeps_the_timeout_fact() -> None:
    """FinishResult.LATE_RESULT after TimedOut: status failed, outcome TimedOut, result kept."""
    table = TaskTable()
    _running(table, "a")
    table.apply_progress("a", 0.5, "half", True, 1.5)
    table.finish("a", TimedOut(timeout_seconds=5.0), 6.0)
    assert table.finish("a", Completed("whole"), 7.0)[0] == FinishResult.LATE_RESULT
    record = table.get("a")
    assert record is not None
    assert (TaskStatus.FAILED, TimedOut(5.0, "half", True), "whole", 0.5) == (
        record.status,
        record.outcome,
        record.result,
        record.progress,
    )


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        ((True, {"chunks": 7}), TimedOut(5.0, {"chunks": 7}, True)),
        ((True, None), TimedOut(5.0, None, True)),  # None set on purpose is still a value
        ((False, None), TimedOut(5.0, None, False)),
    ],
)
def test_a_timeout_takes_the_partial_result_held_by_the_record(
    published: tuple[bool, Any], expected: TimedOut
) -> None:
    """TimedOut: the recorded fact carries the record's partial result, not the sender's."""
    has_partial, partial = published
    table = TaskTable()
    _running(table, "a")
    if has_partial:
        table.apply_progress("a", None, partial, True, 2.0)
    # Whatever the sender put in the fact is replaced by what the registry holds.
    table.finish("a", TimedOut(5.0, partial_result="stale", has_partial_result=True), 6.0)
    record = table.get("a")
    assert record is not None
    assert (TaskStatus.FAILED, expected) == (record.status, record.outcome)


def test_progress_and_partial_results_apply_only_to_running_tasks() -> None:
    """TaskTable.apply_progress: None and no change unless RUNNING; None/absent keep old values."""
    table = TaskTable()
    table.add(_spec("pending"))
    _running(table, "running", at=1.0)
    table.add(_spec("ended"))
    table.finish("ended", CANCELLED, 1.0)
    assert [
        table.apply_progress(task_id, 0.5, "p", True, 2.0)
        for task_id in ("pending", "ended", "unknown")
    ] == [None, None, None]
    for task_id in ("pending", "ended"):
        record = table.get(task_id)
        assert record is not None
        assert (
            record.progress,
            record.partial_result,
            record.has_partial_result,
        ) == (0.0, None, False)
    running = table.get("running")
    assert running is not None
    table.apply_progress("running", 0.25, "p1", True, 2.0)
    table.apply_progress("running", None, None, False, 3.0)  # neither: only the stamp moves
    assert (
        running.progress,
        running.partial_result,
        running.has_partial_result,
        running.updated_at,
    ) == (0.25, "p1", True, 3.0)
    table.apply_progress("running", 0.5, None, False, 4.0)
    table.apply_progress("running", None, "p2", True, 5.0)
    assert (
        running.progress,
        running.partial_result,
        running.has_partial_result,
        running.updated_at,
    ) == (0.5, "p2", True, 5.0)


def test_unknown_task_ids_are_ignored_and_duplicates_refused() -> None:
    """TaskTable: finish on an unknown id is IGNORED; add of a known id raises, changing nothing."""
    table = TaskTable()
    assert table.finish("ghost", Completed(1), 1.0) == (FinishResult.IGNORED, None)
    table.add(_spec("a", priority=TaskPriority.HIGH))
    stats_before = table.stats()
    with pytest.raises(ValueError, match="already registered"):
        table.add(_spec("a", priority=TaskPriority.LOW))
    assert stats_before == table.stats()
    record = table.get("a")
    assert record is not None
    assert record.options.priority == TaskPriority.HIGH


# -- listings -------------------------------------------------------------------------------------


def test_pending_tasks_are_listed_by_priority_then_fifo() -> None:
    """TaskTable.list(PENDING): highest priority first, submission order within one priority."""
    priorities = [
        TaskPriority.LOW,
        TaskPriority.NORMAL,
        TaskPriority.CRITICAL,
        TaskPriority.NORMAL,
        TaskPriority.HIGH,
        TaskPriority.LOW,
        TaskPriority.CRITICAL,
        TaskPriority.HIGH,
        TaskPriority.NORMAL,
    ]
    table = TaskTable()
    for seq, priority in enumerate(priorities):
        table.add(_spec(f"t{seq}", priority=priority, seq=seq))
    expected = [f"t{seq}" for seq, _ in sorted(enumerate(priorities), key=lambda e: -e[1])]
    assert expected == ["t2", "t6", "t4", "t7", "t1", "t3", "t8", "t0", "t5"]
    assert expected == _ids(table, TaskStatus.PENDING)
    assert expected[:4] == _ids(table, TaskStatus.PENDING, limit=4)
    table.mark_running("t6", 1.0)
    table.finish("t4", CANCELLED, 1.0)
    assert [i for i in expected if i not in ("t6", "t4")] == _ids(table, TaskStatus.PENDING)


def test_running_and_terminal_tasks_are_listed_in_start_and_end_order() -> None:
    """TaskTable.list: RUNNING in start order; each terminal status in the order tasks ended."""
    table = TaskTable()
    for seq in range(6):
        table.add(_spec(f"t{seq}", seq=seq))
    for task_id in ("t3", "t0", "t5", "t1", "t4"):
        table.mark_running(task_id, 1.0)
    table.finish("t5", CANCELLED, 2.0)
    table.finish("t2", CANCELLED, 3.0)  # still pending
    table.finish("t0", Completed(0), 4.0)
    table.finish("t3", CANCELLED, 5.0)
    assert (
        _ids(table, TaskStatus.RUNNING),
        _ids(table, TaskStatus.CANCELLED),
        _ids(table, TaskStatus.COMPLETED),
        _ids(table, TaskStatus.FAILED),
        _ids(table, TaskStatus.PENDING),
    ) == (["t1", "t4"], ["t5", "t2", "t3"], ["t0"], [], [])


# -- counters -------------------------------------------------------------------------------------


def test_counters_equal_a_recount_over_the_records() -> None:
    """TableStats: status/priority counts equal a recount; lifetime counters count every end."""
    table = TaskTable()
    for seq, priority in enumerate(list(TaskPriority) * 3):
        table.add(_spec(f"t{seq}", priority=priority, seq=seq))
    for seq in range(9):
        table.mark_running(f"t{seq}", 1.0)
    outcomes: list[Outcome] = [
        Completed(1),
        Completed(2),
        RAISED,
        TimedOut(3.0),
        TimedOut(4.0),
        CANCELLED,
        Cancelled(StopReason.SHUTDOWN),
    ]
    for seq, outcome in enumerate(outcomes):
        table.finish(f"t{seq}", outcome, 2.0 + seq)
    table.finish("t11", CANCELLED, 10.0)  # pending -> cancelled
    table.finish("t0", CANCELLED, 11.0)  # ignored: already terminal
    _assert_counts_match_records(table)
    assert (
        TableStats(
            total_tasks=12,
            status_counts={
                TaskStatus.PENDING: 2,
                TaskStatus.RUNNING: 2,
                TaskStatus.COMPLETED: 2,
                TaskStatus.FAILED: 3,
                TaskStatus.CANCELLED: 3,
            },
            priority_counts=dict.fromkeys(TaskPriority, 3),
            total_created=12,
            total_completed=2,
            total_failed=3,
            total_cancelled=3,
            total_timed_out=2,
        )
        == table.stats()
    )
    table.remove_ended_before(100.0)
    _assert_counts_match_records(table)
    assert (
        table.stats().total_tasks,
        table.stats().total_created,
        table.stats().total_completed,
        table.stats().total_failed,
        table.stats().total_cancelled,
        table.stats().total_timed_out,
    ) == (4, 12, 2, 3, 3, 2)


# -- retention ------------------------------------------------------------------------------------


def test_remove_ended_before_removes_exactly_the_tasks_that_ended_before_the_cutoff() -> None:
    """TaskTable.remove_ended_before: terminal tasks with ended_at < cutoff go; nothing else."""
    table = TaskTable()
    table.add(_spec("pending"))
    _running(table, "running", at=0.5)
    for task_id, at in (("e1", 1.0), ("e2", 2.0), ("e3", 3.0)):
        _running(table, task_id, at=0.5)
        table.finish(task_id, Completed(task_id), at)
    assert table.remove_ended_before(2.0) == ["e1"]  # strictly before: e2 ended at 2.0 stays
    assert table.remove_ended_before(2.0) == []
    assert table.remove_ended_before(1_000.0) == ["e2", "e3"]
    assert (_ids(table, None), table.get("e1")) == (["pending", "running"], None)
    _assert_counts_match_records(table)


def test_remove_ended_before_does_not_depend_on_the_order_tasks_ended_in() -> None:
    """remove_ended_before: ended_at < cutoff goes, even behind a later-stamped earlier finish."""
    # Finish stamps are taken on different threads (operation thread, supervisor), so the
    # registry can record a later stamp before an earlier one.
    table = TaskTable()
    _running(table, "late-stamp")
    _running(table, "early-stamp")
    table.finish("late-stamp", CANCELLED, 20.0)
    table.finish("early-stamp", Completed("x"), 10.0)
    assert table.remove_ended_before(15.0) == ["early-stamp"]


# -- the stateful model ---------------------------------------------------------------------------


@dataclass
class _Model:
    """What one task should look like, kept independently of the table."""

    priority: TaskPriority
    order: int
    created_at: float
    status: TaskStatus = TaskStatus.PENDING
    progress: float = 0.0
    partial: Any = None
    has_partial: bool = False
    result: Any = None
    has_result: bool = False
    outcome: Outcome | None = None
    started_at: float | None = None
    ended_at: float | None = None
    updated_at: float = 0.0


_GONE = _Model(TaskPriority.NORMAL, -1, 0.0, status=TaskStatus.CANCELLED)

outcomes = st.one_of(
    st.builds(Completed, st.integers(-5, 5)),
    st.just(RAISED),
    st.builds(
        TimedOut,
        timeout_seconds=st.sampled_from([0.5, 5.0]),
        partial_result=st.integers(0, 3),
        has_partial_result=st.booleans(),
    ),
    st.builds(Cancelled, st.sampled_from(StopReason)),
)


class TaskTableMachine(RuleBasedStateMachine):
    """Random add / mark_running / apply_progress / finish / remove_ended_before vs a model.

    Time never goes backwards here (out-of-order stamps are pinned separately), and
    pending tasks only get cancelled (the lifecycle rule is pinned separately).
    """

    @initialize()
    def setup(self) -> None:
        self.table = TaskTable()
        self.model: dict[str, _Model] = {}
        self.ended: list[str] = []
        self.started: list[str] = []
        self.now = 0.0
        self.added = 0
        self.lifetime = Counter[str]()

    # -- helpers ----------------------------------------------------------------------------

    def _pick(self, index: int, statuses: tuple[TaskStatus, ...] | None) -> str:
        """A known task in one of ``statuses`` (any if None), or an unknown id."""
        ids = [i for i, t in self.model.items() if statuses is None or t.status in statuses]
        ids.append("unknown")
        return ids[index % len(ids)]

    # -- rules ------------------------------------------------------------------------------

    @rule(step=st.sampled_from([0.0, 0.5, 1.0, 2.5]))
    def advance(self, step: float) -> None:
        self.now += step

    @rule(priority=st.sampled_from(TaskPriority))
    def add(self, priority: TaskPriority) -> None:
        task_id = f"t{self.added}"
        self.table.add(_spec(task_id, priority=priority, seq=self.added, created_at=self.now))
        self.model[task_id] = _Model(priority, self.added, self.now, updated_at=self.now)
        self.added += 1
        self.lifetime["created"] += 1

    @rule(index=st.integers(0, 1000))
    def mark_running(self, index: int) -> None:
        task_id = self._pick(index, None)
        record = self.table.mark_running(task_id, self.now)
        task = self.model.get(task_id)
        if task is None or task.status is not TaskStatus.PENDING:
            assert record is None
            return
        assert record is not None
        task.status = TaskStatus.RUNNING
        task.started_at = task.updated_at = self.now
        self.started.append(task_id)

    @rule(
        index=st.integers(0, 1000),
        progress=st.none() | st.sampled_from([0.0, 0.25, 1.0]),
        partial=st.none() | st.integers(0, 9),
        has_partial=st.booleans(),
    )
    def apply_progress(
        self, index: int, progress: float | None, partial: Any, has_partial: bool
    ) -> None:
        task_id = self._pick(index, None)
        record = self.table.apply_progress(task_id, progress, partial, has_partial, self.now)
        task = self.model.get(task_id)
        if task is None or task.status is not TaskStatus.RUNNING:
            assert record is None
            return
        assert record is not None
        if progress is not None:
            task.progress = progress
        if has_partial:
            task.partial, task.has_partial = partial, True
        task.updated_at = self.now

    @rule(index=st.integers(0, 1000), outcome=outcomes)
    def finish(self, index: int, outcome: Outcome) -> None:
        task_id = self._pick(index, (TaskStatus.RUNNING, *TERMINAL_STATUSES))
        self._finish(task_id, outcome)

    @rule(index=st.integers(0, 1000), reason=st.sampled_from(StopReason))
    def cancel_pending(self, index: int, reason: StopReason) -> None:
        self._finish(self._pick(index, (TaskStatus.PENDING,)), Cancelled(reason))

    def _finish(self, task_id: str, outcome: Outcome) -> None:
        result, record = self.table.finish(task_id, outcome, self.now)
        task = self.model.get(task_id)
        if task is None:
            assert (result, record) == (FinishResult.IGNORED, None)
            return
        assert record is not None
        if task.status.is_terminal:
            if isinstance(outcome, Completed) and not task.has_result:
                assert result == FinishResult.LATE_RESULT
                task.result, task.has_result = outcome.result, True
                task.updated_at = self.now
            else:
                assert result == FinishResult.IGNORED
            return
        assert result == FinishResult.RECORDED
        if isinstance(outcome, TimedOut):
            outcome = TimedOut(outcome.timeout_seconds, task.partial, task.has_partial)
        task.outcome = outcome
        task.ended_at = task.updated_at = self.now
        self.ended.append(task_id)
        if isinstance(outcome, Completed):
            task.status = TaskStatus.COMPLETED
            task.result, task.has_result, task.progress = outcome.result, True, 1.0
            self.lifetime["completed"] += 1
        elif isinstance(outcome, Cancelled):
            task.status = TaskStatus.CANCELLED
            self.lifetime["cancelled"] += 1
        else:
            task.status = TaskStatus.FAILED
            self.lifetime["failed"] += 1
            self.lifetime["timed_out"] += isinstance(outcome, TimedOut)

    @rule(back=st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]))
    def remove_ended_before(self, back: float) -> None:
        cutoff = self.now - back
        expected = [
            task_id
            for task_id in self.ended
            if (ended_at := self.model[task_id].ended_at) is not None and ended_at < cutoff
        ]
        # Which records go is the contract; the order of the returned ids is not.
        assert sorted(expected) == sorted(self.table.remove_ended_before(cutoff))
        for task_id in expected:
            del self.model[task_id]
        self.ended = [i for i in self.ended if i not in expected]

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def records_match_the_model(self) -> None:
        assert sorted(self.model) == sorted(r.task_id for r in self.table.iter_status(None))
        for task_id, task in self.model.items():
            record = self.table.get(task_id)
            assert record is not None
            assert (
                task.status,
                task.progress,
                task.partial,
                task.has_partial,
                task.result,
                task.has_result,
                task.outcome,
                task.started_at,
                task.ended_at,
                task.updated_at,
                task.created_at,
                task.priority,
            ) == (
                record.status,
                record.progress,
                record.partial_result,
                record.has_partial_result,
                record.result,
                record.has_result,
                record.outcome,
                record.started_at,
                record.ended_at,
                record.updated_at,
                record.created_at,
                record.options.priority,
            )

    @invariant()
    def counters_equal_a_recount(self) -> None:
        _assert_counts_match_records(self.table)
        statuses = Counter(t.status for t in self.model.values())
        priorities = Counter(t.priority for t in self.model.values())
        assert (
            TableStats(
                total_tasks=len(self.model),
                status_counts={s: statuses.get(s, 0) for s in TaskStatus},
                priority_counts={p: priorities.get(p, 0) for p in TaskPriority},
                total_created=self.lifetime["created"],
                total_completed=self.lifetime["completed"],
                total_failed=self.lifetime["failed"],
                total_cancelled=self.lifetime["cancelled"],
                total_timed_out=self.lifetime["timed_out"],
            )
            == self.table.stats()
        )

    @invariant()
    def listings_follow_the_documented_orders(self) -> None:
        pending = sorted(
            (t for t in self.model.items() if t[1].status is TaskStatus.PENDING),
            key=lambda item: (-item[1].priority, item[1].order),
        )
        assert [task_id for task_id, _ in pending] == _ids(self.table, TaskStatus.PENDING)
        running = [i for i in self.started if self.model.get(i, _GONE).status is TaskStatus.RUNNING]
        assert running == _ids(self.table, TaskStatus.RUNNING)
        for status in TERMINAL_STATUSES:
            expected = [i for i in self.ended if self.model[i].status is status]
            assert expected == _ids(self.table, status)


TaskTableMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, database=None
)
TestTaskTableAgainstAModel = TaskTableMachine.TestCase
TestTaskTableAgainstAModel.__doc__ = (
    "Transition rules, listing orders and counters hold after every random operation."
)
