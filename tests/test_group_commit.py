"""``GroupCommit``, tested directly against a real SqliteStore on a temporary file: when
a commit is due, what it writes, what it leaves out, and what it tells the tickets, with
no registry actor in between."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from actors import StoreWriteError
from actors._core.group_commit import COMMIT_BATCH, GroupCommit
from actors._core.messages import TaskPage
from actors._records import TaskRecord
from actors._storage.sqlite import SqliteStore
from actors._storage.store import CommitTicket, MemoryStore
from tests.records import make_record

SURROGATE = "\ud800"  # a lone surrogate: SQLite cannot encode it, so the store refuses it


def _record(task_id: str, seq: int, params_json: str = "{}") -> TaskRecord:
    return make_record(task_id, seq=seq, named=True, params_json=params_json)


def _stored(store: SqliteStore) -> dict[str, float]:
    """What the file holds: each stored task's progress, by id."""
    return {r.task_id: r.progress for r in store.reload().records}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "tasks.db")
    opened.open()
    try:
        yield opened
    finally:
        opened.close()


def test_progress_alone_waits_for_a_full_batch(store: SqliteStore) -> None:
    """Changes that are not urgent (progress) are not due on an empty inbox; a full batch
    is due even while messages are queued."""
    commits = GroupCommit(store, batch=3)
    records = [_record(f"t-{n}", n) for n in range(3)]
    for record in records[:2]:
        commits.changed(record, urgent=False)
    assert commits.pending
    assert commits.due(inbox_empty=True) is False
    assert commits.due(inbox_empty=False) is False
    commits.changed(records[2], urgent=False)
    assert commits.due(inbox_empty=False) is True
    assert commits.commit().error is None
    assert _stored(store) == {"t-0": 0.0, "t-1": 0.0, "t-2": 0.0}
    assert not commits.pending


def test_a_record_changed_twice_is_written_once_in_its_latest_state(store: SqliteStore) -> None:
    """Group commit: the records changed since the last commit, each in its latest state,
    count once towards the batch."""
    commits = GroupCommit(store, batch=2)
    record = _record("t-0", 0)
    commits.changed(record, urgent=False)
    record.progress = 0.5
    commits.changed(record, urgent=False)
    assert commits.statistics().changed == 1
    assert commits.due(inbox_empty=False) is False
    commits.commit()
    assert _stored(store) == {"t-0": 0.5}
    assert store.statistics().records_written == 1


def test_a_state_change_is_due_once_the_inbox_is_empty(store: SqliteStore) -> None:
    """An urgent change (a state change) is committed as soon as the inbox runs dry, not
    while messages are queued; a commit that worked clears the urgency."""
    commits = GroupCommit(store)
    commits.changed(_record("t-0", 0))
    assert commits.statistics().urgent is True
    assert commits.due(inbox_empty=False) is False
    assert commits.due(inbox_empty=True) is True
    commits.commit()
    assert commits.statistics().urgent is False
    commits.changed(_record("t-1", 1), urgent=False)  # progress after it: not urgent
    assert commits.due(inbox_empty=True) is False


def test_a_held_ticket_is_due_on_an_empty_inbox_and_released_by_the_commit(
    store: SqliteStore,
) -> None:
    """A ticket is released by the next commit (even with nothing to write), not before."""
    commits = GroupCommit(store)
    ticket = CommitTicket("t-0")
    commits.hold(ticket)
    assert commits.pending
    assert commits.due(inbox_empty=False) is False
    assert commits.due(inbox_empty=True) is True
    assert ticket.wait(0.0) is False
    assert commits.commit().error is None
    assert ticket.wait(0.0) is True
    assert ticket.error is None
    assert commits.statistics().tickets == 0


def test_the_default_batch_is_commit_batch(store: SqliteStore) -> None:
    commits = GroupCommit(store)
    for n in range(COMMIT_BATCH - 1):
        commits.changed(_record(f"t-{n}", n), urgent=False)
    assert commits.due(inbox_empty=False) is False
    commits.changed(_record("last", COMMIT_BATCH), urgent=False)
    assert commits.due(inbox_empty=False) is True


def test_a_task_is_uncommitted_until_its_change_is_committed(store: SqliteStore) -> None:
    commits = GroupCommit(store)
    record = _record("t-0", 0)
    assert commits.uncommitted("t-0") is False
    commits.changed(record)
    assert commits.uncommitted("t-0") is True
    commits.commit()
    assert commits.uncommitted("t-0") is False
    assert commits.clean


def test_a_refused_record_is_left_out_alone_while_the_others_commit(store: SqliteStore) -> None:
    """A record the store cannot encode is left out of its commit: only its own ticket
    gets StoreWriteError naming it, the others are written and their tickets released
    without error; it is logged once and not retried with later commits; queries leave
    it out; when it changes again (now encodable) it is written and no longer refused."""
    commits = GroupCommit(store)
    bad = _record("bad", 1, f'{{"n":"{SURROGATE}"}}')
    tickets = {name: CommitTicket(name) for name in ("good-1", "bad", "good-2")}
    commits.changed(_record("good-1", 0))
    commits.changed(bad)
    commits.changed(_record("good-2", 2))
    for ticket in tickets.values():
        commits.hold(ticket)
    with capture_logs() as logs:
        done = commits.commit()
        commits.changed(_record("good-3", 3))
        later = commits.commit()
    assert done.error is None
    assert list(done.refused) == ["bad"]
    assert later.refused == {}
    assert tickets["good-1"].error is None
    assert tickets["good-2"].error is None
    assert isinstance(tickets["bad"].error, StoreWriteError)
    assert f"task bad could not be stored in {store.location}" in str(tickets["bad"].error)
    assert sorted(_stored(store)) == ["good-1", "good-2", "good-3"]
    assert store.statistics().failed_writes == 1  # not retried by the later commit
    logged = [e for e in logs if e["event"] == "store.record_not_stored"]
    assert [(e["task_id"], e["log_level"]) for e in logged] == [("bad", "error")]
    # What a query may show of it: nothing.
    assert commits.refusing
    assert commits.refusal("bad") is not None
    assert commits.uncommitted("bad") is False
    snapshots = [bad.snapshot(), _record("good-1", 0).snapshot()]
    assert [s.task_id for s in commits.without_refused(snapshots)] == ["good-1"]
    page = commits.without_refused(TaskPage(snapshots, 7))
    assert ([s.task_id for s in page.tasks], page.next_after) == (["good-1"], 7)
    refused = commits.without_refused(bad.snapshot())
    assert isinstance(refused, StoreWriteError)
    assert "its latest state is not durable" in str(refused)
    assert commits.not_stored_error("good-1", "end") is None
    # Changed again, now encodable: written, and no longer refused.
    bad.params_json = "{}"
    commits.changed(bad)
    assert commits.commit().refused == {}
    assert not commits.refusing
    assert "bad" in _stored(store)


def test_a_failed_write_keeps_every_change_and_releases_the_tickets_with_its_error(
    tmp_path: Path,
) -> None:
    """The file is deleted under the store, so every write fails: the held tickets get
    the StoreWriteError, the changes are kept (still uncommitted, tried again by the next
    commit), the failure is counted, and a query's answer about an uncommitted task
    becomes the error while one about a committed task is answered."""
    path = tmp_path / "tasks.db"
    store = SqliteStore(path)
    store.open()
    try:
        commits = GroupCommit(store)
        committed = _record("committed", 0)
        commits.changed(committed)
        assert commits.commit().error is None
        path.unlink()
        lost = _record("lost", 1)
        commits.changed(lost)
        ticket = CommitTicket("lost")
        commits.hold(ticket)
        with capture_logs() as logs:
            done = commits.commit()
        assert isinstance(done.error, StoreWriteError)
        assert ticket.wait(0.0) is True
        assert ticket.error is done.error
        assert commits.uncommitted("lost") is True
        assert commits.pending  # kept for the next commit
        assert commits.statistics().urgent is True
        assert (commits.statistics().commits, commits.statistics().failed_commits) == (1, 1)
        assert [e["log_level"] for e in logs if e["event"] == "store.commit_failed"] == ["error"]
        answer = commits.answer_after_failure(lost.snapshot(), done.error)
        assert isinstance(answer, StoreWriteError)
        assert "not durable yet" in str(answer)
        page = commits.answer_after_failure(TaskPage([lost.snapshot()], None), done.error)
        assert isinstance(page, StoreWriteError)
        kept = committed.snapshot()
        assert commits.answer_after_failure(kept, done.error) is kept
        again = commits.commit()  # the file is still gone: it fails again, nothing lost
        assert isinstance(again.error, StoreWriteError)
        assert commits.uncommitted("lost") is True
        assert store.statistics().failed_writes >= 2
    finally:
        store.close()


def test_a_deletion_is_urgent_and_removes_the_record_from_the_file(store: SqliteStore) -> None:
    """Retention's deletions: a deleted record is no longer changed, the deletion is due
    on an empty inbox, and the commit forgets it in the file (counted as retired)."""
    commits = GroupCommit(store)
    gone = _record("gone", 0)
    gone.progress = 1.0
    commits.changed(gone)
    commits.changed(_record("kept", 1))
    commits.commit()
    commits.changed(gone, urgent=False)
    commits.deleted([gone])
    assert commits.uncommitted("gone") is False
    assert commits.statistics().deleted == 1
    assert commits.due(inbox_empty=True) is True
    assert commits.commit().error is None
    assert _stored(store) == {"kept": 0.0}
    assert store.statistics().records_deleted == 1
    assert commits.clean


def test_the_memory_store_has_no_group_commit() -> None:
    """The registry keeps no GroupCommit with the memory store: making one is a mistake
    that names the store."""
    with pytest.raises(ValueError, match=":memory: is not a durable store"):
        GroupCommit(MemoryStore())


# Random sequences of changes and commits: after each commit that worked, the file holds
# exactly the latest committed state of every record changed so far.
_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("change"),
            st.integers(0, 5),
            st.floats(0.0, 1.0, allow_nan=False),
            st.booleans(),
        ),
        st.tuples(st.just("commit"), st.just(0), st.just(0.0), st.just(False)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(steps=_steps, batch=st.integers(1, 4))
def test_the_file_holds_the_last_committed_changes(
    steps: list[tuple[str, int, float, bool]], batch: int
) -> None:
    """Whatever the interleaving of changes and commits (and whenever a commit is due by
    the batch rule, committed then too), the stored content equals the model's last
    committed state, and the uncommitted tasks are exactly those changed since."""
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "tasks.db")
        store.open()
        try:
            commits = GroupCommit(store, batch=batch)
            records: dict[str, TaskRecord] = {}
            committed: dict[str, float] = {}
            changed: dict[str, float] = {}
            for kind, n, progress, urgent in steps:
                if kind == "change":
                    task_id = f"t-{n}"
                    record = records.setdefault(task_id, _record(task_id, n))
                    record.progress = progress
                    commits.changed(record, urgent=urgent)
                    changed[task_id] = progress
                    if not commits.due(inbox_empty=False):
                        continue
                    assert len(changed) >= batch
                assert commits.commit().error is None
                committed.update(changed)
                changed.clear()
                assert _stored(store) == committed
            assert {t for t in records if commits.uncommitted(t)} == set(changed)
            assert commits.pending is bool(changed)
        finally:
            store.close()
