"""Status reads without a round trip: the registry's :class:`TaskBoard`, tested directly
and through a manager whose registry is held busy (so a read that needed its thread
could not return), with every guarantee of the asking path pinned over many rounds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import Completed, TaskContext
from actors._core.board import ASK_REGISTRY, TaskBoard
from actors._core.messages import ProgressReady
from actors._core.table import TaskTable
from actors._enums import TaskStatus
from actors._execution.published import Published
from actors._records import TaskRecord, TaskSnapshot
from actors._storage.sqlite import SqliteStore
from actors.testing import wait_until
from storycore_tasks import TaskManager
from tests import process_ops
from tests.gates import Gate
from tests.records import make_record, make_spec

MakeManager = Callable[..., TaskManager]
WAIT = 30.0
ROUNDS = 200
STORES = ["memory", "durable"]
ORDER = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}


def quick(params: Mapping[str, Any], task: TaskContext) -> Any:
    return {"n": params.get("n")}


def counting(params: Mapping[str, Any], task: TaskContext) -> Any:
    for step in range(1, 21):
        task.update_progress(step / 20)
        task.partial_result = {"step": step}
    return {"steps": 20}


def new_manager(
    make_manager: MakeManager, store: str, tmp_path: Path, **kwargs: Any
) -> TaskManager:
    if store == "durable":
        kwargs["store"] = tmp_path / "tasks.db"
    return make_manager(**kwargs)


class _StuckDrain(Published):
    """A progress message whose drain holds the registry's thread until released: a real
    registry, kept busy as if it waited for the interpreter lock for ever."""

    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self._entered = entered
        self._release = release

    def drain(self) -> tuple[float | None, Any, bool]:
        self._entered.set()
        self._release.wait(WAIT)
        return None, None, False


@contextmanager
def registry_held(manager: TaskManager, task_id: str) -> Iterator[None]:
    """While inside, the registry's thread is stuck in a handler."""
    entered, release = threading.Event(), threading.Event()
    manager.runtime._registry.tell(ProgressReady(task_id, _StuckDrain(entered, release)))
    assert entered.wait(WAIT)
    try:
        yield
    finally:
        release.set()


# -- the board itself -------------------------------------------------------------------


def _record(task_id: str, status: TaskStatus = TaskStatus.PENDING, *, seq: int = 0) -> TaskRecord:
    record = make_record(task_id, seq=seq)
    record.status = status
    return record


def _board_with(*task_ids: str) -> tuple[TaskBoard, TaskTable]:
    """A board over a table whose tasks are running (a pending task is never read from
    the board)."""
    table = TaskTable()
    for seq, task_id in enumerate(task_ids):
        table.add(make_spec(task_id, seq=seq))
        table.mark_running(task_id, 1.0)
    return TaskBoard(table), table


def _snapshot(board: TaskBoard, task_id: str) -> TaskSnapshot:
    found = board.read(task_id)
    assert isinstance(found, TaskSnapshot), found
    return found


def _get(table: TaskTable, task_id: str) -> TaskRecord:
    record = table.get(task_id)
    assert record is not None
    return record


def test_a_published_record_is_read_as_an_immutable_snapshot_of_that_moment() -> None:
    board, table = _board_with("a")
    record = _get(table, "a")
    board.publish(record)
    first = _snapshot(board, "a")
    assert first == record.snapshot()
    record.progress = 0.5  # the registry changes its record afterwards
    assert board.read("a") == first  # nothing seen until it is published again
    board.publish(record)
    second = _snapshot(board, "a")
    assert second.progress == 0.5
    assert second == record.snapshot()


def test_pending_unknown_and_unpublished_tasks_are_answered_by_the_registry() -> None:
    """A pending task, an id not in the table (its Register may still be queued) and a
    record never published (durable: not committed yet) all need the registry."""
    board, table = _board_with("a")
    assert board.read("a") is ASK_REGISTRY  # running, but not published yet
    table.add(make_spec("p", seq=5))
    board.publish(_get(table, "p"))
    assert board.read("p") is ASK_REGISTRY  # pending
    assert board.read("unknown") is ASK_REGISTRY


def test_a_held_task_is_answered_by_the_registry_until_its_commit_publishes_it() -> None:
    board, table = _board_with("a")
    record = _get(table, "a")
    board.publish(record)
    board.hold("a")
    assert board.read("a") is ASK_REGISTRY
    table.finish("a", Completed("done"), 2.0)
    board.publish(record)  # the commit that covers the change
    assert _snapshot(board, "a").status is TaskStatus.COMPLETED


def test_a_removed_task_is_not_read_and_a_reset_shows_the_new_records() -> None:
    board, table = _board_with("a", "b")
    for task_id in "ab":
        table.finish(task_id, Completed(None), 2.0)
        board.publish(_get(table, task_id))
    assert table.remove_ended_before(3.0) == ["a", "b"]
    assert board.read("a") is ASK_REGISTRY  # the registry says it is unknown
    kept, fresh = _record("b", TaskStatus.RUNNING, seq=1), _record("d", TaskStatus.RUNNING, seq=2)
    table.reset([kept, fresh], {})
    board.reset([kept, fresh], held=["d"])
    assert _snapshot(board, "b") == kept.snapshot()
    assert board.read("d") is ASK_REGISTRY


def test_a_detour_sends_every_read_to_the_registry_until_it_ends() -> None:
    board, table = _board_with("a")
    record = _get(table, "a")
    board.publish(record)
    board.detour()
    board.detour()
    assert board.read("a") is ASK_REGISTRY
    board.end_detour()
    assert board.read("a") is ASK_REGISTRY
    board.end_detour()
    assert board.read("a") == record.snapshot()


def test_a_state_and_the_unchanging_fields_make_the_records_snapshot() -> None:
    """Every snapshot field comes from one of the two halves (none is dropped)."""
    record = _record("a", TaskStatus.COMPLETED)
    record.attempt, record.progress, record.result, record.has_result = 2, 1.0, {"x": 1}, True
    record.started_at, record.ended_at, record.updated_at = 10.0, 12.0, 12.0
    record.partial_result, record.has_partial_result, record.scheduled_for = [1], True, 3.0
    assert TaskSnapshot.from_state(record, record.state()) == record.snapshot()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["publish", "hold", "change"]))))
def test_the_board_shows_the_last_published_state_unless_held(ops: list[tuple[str, str]]) -> None:
    """Against a model: a read is the state last published for the id (never a change
    made since), or the registry's answer while a hold has not been lifted."""
    board, table = _board_with(*"abcd")
    published: dict[str, TaskSnapshot] = {}
    held: set[str] = set()
    for n, (task_id, op) in enumerate(ops):
        record = _get(table, task_id)
        if op == "publish":
            board.publish(record)
            published[task_id] = record.snapshot()
            held.discard(task_id)
        elif op == "hold":
            board.hold(task_id)
            held.add(task_id)
        else:
            record.attempt, record.progress = n, min(1.0, n / 100)
    for task_id in "abcd":
        found = board.read(task_id)
        if task_id in held or task_id not in published:
            assert found is ASK_REGISTRY
        else:
            assert found == published[task_id]


# -- through a manager --------------------------------------------------------------------


@pytest.mark.parametrize("store", STORES)
def test_status_and_wait_of_an_ended_task_need_no_turn_of_the_registry(
    make_manager: MakeManager, tmp_path: Path, store: str
) -> None:
    manager = new_manager(make_manager, store, tmp_path)
    task_id = manager.create_task(quick, {"n": 7})
    manager.wait(task_id, timeout=WAIT)
    with registry_held(manager, task_id):
        status = manager.get_task_status(task_id)
        assert status is not None
        assert status["status"] == "completed"
        assert manager.wait(task_id, timeout=WAIT)["result"] == {"n": 7}
        assert manager.get_task_result(task_id) == {"n": 7}


@pytest.mark.parametrize("store", STORES)
def test_a_status_read_right_after_create_task_sees_the_task(
    make_manager: MakeManager, tmp_path: Path, store: str
) -> None:
    manager = new_manager(make_manager, store, tmp_path, num_workers=2)
    for n in range(ROUNDS):
        task_id = manager.create_task(quick, {"n": n})
        status = manager.get_task_status(task_id)
        assert status is not None, f"round {n}: a task just created was not found"
        assert status["task_id"] == task_id
        assert status["status"] in {"pending", "running", "completed"}


@pytest.mark.parametrize("store", STORES)
def test_after_cancel_task_returns_the_task_reads_cancelled(
    make_manager: MakeManager, tmp_path: Path, store: str
) -> None:
    """Pending and running tasks alike, over many rounds: the read after ``cancel_task``
    is never the state before it."""
    manager = new_manager(make_manager, store, tmp_path, num_workers=1, stop_grace=0.01)
    for n in range(ROUNDS // 4):
        gate = Gate()
        running = manager.create_task(gate)
        pending = manager.create_task(quick, {"n": n})
        assert gate.entered.wait(WAIT)
        for task_id in (pending, running):
            assert manager.cancel_task(task_id) is True
            status = manager.get_task_status(task_id)
            assert status is not None
            assert status["status"] == "cancelled", (n, status)
        gate.release()
        manager.wait(running, timeout=WAIT)


@pytest.mark.parametrize("store", STORES)
def test_concurrent_readers_see_each_task_move_forward_and_whole(
    make_manager: MakeManager, tmp_path: Path, store: str
) -> None:
    """Readers in four threads poll tasks that report progress as fast as they can: each
    task's status never goes back, progress never falls, and a completed read always has
    its result (a snapshot is never half of a change)."""
    manager = new_manager(make_manager, store, tmp_path, num_workers=4)
    ids = [manager.create_task(counting) for _ in range(40)]
    problems: list[str] = []
    done = threading.Event()

    def read() -> None:
        last: dict[str, tuple[int, float]] = {}
        while not done.is_set():
            for task_id in ids:
                status = manager.get_task_status(task_id)
                if status is None:
                    problems.append(f"{task_id} unknown")
                    continue
                rank, progress = ORDER[status["status"]], float(status["progress"])
                before = last.get(task_id, (0, 0.0))
                if rank < before[0] or progress < before[1]:
                    problems.append(f"{task_id} went back: {before} -> {(rank, progress)}")
                if status["status"] == "completed" and status.get("result") != {"steps": 20}:
                    problems.append(f"{task_id} completed without its result: {status}")
                last[task_id] = (rank, progress)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for task_id in ids:
            assert manager.wait(task_id, timeout=WAIT)["result"] == {"steps": 20}
    finally:
        done.set()
        for reader in readers:
            reader.join(WAIT)
    assert problems == []


class RecordingStore(SqliteStore):
    """A real SQLite store that also notes each state it wrote, after the write."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.committed: set[tuple[str, str]] = set()

    def write(self, records: Any, deleted: Any) -> None:
        records = list(records)
        super().write(records, deleted)
        self.committed.update((r.task_id, r.status.value) for r in records)


def test_a_durable_read_never_shows_a_state_the_file_does_not_hold(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    """Each state a status read returns was written by a commit before the read: the
    board shows only committed states."""
    store = RecordingStore(tmp_path / "tasks.db")
    manager = make_manager(store=store, num_workers=2)
    seen: set[str] = set()
    for n in range(ROUNDS // 4):
        task_id = manager.create_task(counting if n % 2 else quick, {"n": n})
        while True:
            status = manager.get_task_status(task_id)
            assert status is not None
            seen.add(status["status"])
            assert (task_id, status["status"]) in store.committed, (n, status["status"])
            if status["status"] == "completed":
                break
    assert "completed" in seen


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_an_operation_seen_to_have_started_reads_running(
    make_manager: MakeManager, tmp_path: Path, store: str, isolation: str
) -> None:
    """Once the caller has seen an operation's side effect, a status read says running
    (never pending): its start reached the registry before the operation was called."""
    manager = new_manager(make_manager, store, tmp_path, num_workers=2, isolation=isolation)
    rounds = ROUNDS // 4 if isolation == "thread" else 10
    for n in range(rounds):
        marker = tmp_path / f"started-{n}"
        task_id = manager.create_task(process_ops.touch_then_wait_cancel, {"path": str(marker)})
        assert wait_until(marker.exists, timeout=WAIT)
        status = manager.get_task_status(task_id)
        assert status is not None
        assert status["status"] == "running", (n, status["status"])
        assert manager.cancel_task(task_id) is True
        assert manager.wait(task_id, timeout=WAIT)["status"] == "cancelled"
