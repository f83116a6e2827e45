"""Hardening of the store and of what reaches it (issue 14, findings 2, 3, 4, 8 and 11):
one bad value or record never blocks the others, nothing is answered that is not
committed, user data cannot make an actor of the runtime fail, and a database file
deleted under a running manager is reported instead of written to.

Real parts only: real SQLite files (one on a small tmpfs for the full disk), real
managers and actors, a real HTTP service on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from actors import (
    MAX_NESTING,
    Isolation,
    ManualClock,
    RecordsNotStoredError,
    SqliteStore,
    StoreWriteError,
    TaskContext,
    TaskOptions,
    UnstorableValueError,
)
from actors._core.messages import GetSnapshot, GetStats, Register
from actors._core.registry import RegistryActor
from actors._core.table import TaskTable
from actors._records import TaskRecord, TaskSpec
from actors._storage.codec import check_value, normalized
from actors._storage.store import CommitTicket
from storycore_tasks import ErrorCodes, TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from tests.gates import Gate
from tests.service_harness import running_service

WAIT = 15.0
SURROGATE = "\ud800"
FS_NAME = os.fsdecode(b"\xff.wav")  # how Python decodes a file name that is not UTF-8


def nested(depth: int) -> list[Any]:
    """A list ``depth`` containers deep: nested(1) == []."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def echo(params: Mapping[str, Any], task: TaskContext) -> Any:
    return dict(params)


def fs_name(params: Mapping[str, Any], task: TaskContext) -> str:
    return FS_NAME


def deep_result(params: Mapping[str, Any], task: TaskContext) -> list[Any]:
    return nested(int(params.get("depth", 5000)))


def deep_partial(params: Mapping[str, Any], task: TaskContext) -> str:
    task.partial_result = {"frames": 10}
    task.partial_result = nested(int(params.get("depth", 5000)))
    return "rendered"


def surrogate_partial(params: Mapping[str, Any], task: TaskContext) -> str:
    task.partial_result = {"file": FS_NAME}
    return "rendered"


def raise_fs_name(params: Mapping[str, Any], task: TaskContext) -> None:
    raise FileNotFoundError(f"no such clip: {FS_NAME}")


OPERATIONS: dict[str, Callable[[Mapping[str, Any], TaskContext], Any]] = {
    "echo": echo,
    "fs_name": fs_name,
    "deep_result": deep_result,
    "deep_partial": deep_partial,
    "surrogate_partial": surrogate_partial,
    "raise_fs_name": raise_fs_name,
}


def in_deep_stack(levels: int, call: Callable[[], Any]) -> Any:
    """``call()`` from ``levels`` Python frames down (a thread already deep in its stack)."""
    if levels <= 0:
        return call()
    return in_deep_stack(levels - 1, call)


# -- the codec: one set of rules, only its own error ---------------------------------------


def test_the_codec_bounds_nesting_at_max_nesting_in_every_mode() -> None:
    """MAX_NESTING levels are kept, one more is refused, by the durable (normalized) and
    the memory (check_value) rules alike, with UnstorableValueError naming the limit."""
    assert normalized(nested(MAX_NESTING))[0] == nested(MAX_NESTING)
    check_value(nested(MAX_NESTING))
    check_value({"k": nested(MAX_NESTING - 1)})
    for check in (normalized, check_value):
        with pytest.raises(UnstorableValueError, match=f"more than {MAX_NESTING} levels"):
            check(nested(MAX_NESTING + 1))
        with pytest.raises(UnstorableValueError, match=f"more than {MAX_NESTING} levels"):
            check({"k": nested(MAX_NESTING)})


@pytest.mark.parametrize("depth", [600, 5000, 100_000])
def test_a_deep_value_raises_only_the_codecs_error_even_deep_in_a_stack(depth: int) -> None:
    """However deep the value and however deep the calling thread already is, the
    codec raises UnstorableValueError, never RecursionError (which json's C encoder
    raises at a depth that depends on the caller's stack)."""
    value = nested(depth)
    with pytest.raises(UnstorableValueError):
        in_deep_stack(sys.getrecursionlimit() - 100, lambda: normalized(value))
    with pytest.raises(UnstorableValueError):
        in_deep_stack(sys.getrecursionlimit() - 100, lambda: check_value(value))


@pytest.mark.parametrize("value", [SURROGATE, FS_NAME, {"name": FS_NAME}, [{"k": [SURROGATE]}]])
def test_a_lone_surrogate_is_refused_by_every_mode(value: Any) -> None:
    """Text that is not valid Unicode (it cannot be encoded as UTF-8, so neither SQLite nor
    the service can carry it) is refused, and the message shows it escaped."""
    for check in (normalized, check_value):
        with pytest.raises(UnstorableValueError, match="lone surrogate") as raised:
            check(value)
        str(raised.value).encode("utf-8")  # the message itself is valid text


def test_the_memory_rules_still_allow_what_the_service_shows_as_text() -> None:
    """check_value keeps the memory store's freedom (NaN, sets, tuple keys, any object)
    and looks inside sets and mappings for the same two rules."""
    check_value({"n": float("nan"), "tags": {1, 2}, (1, 2): "pair", "clip": object()})
    with pytest.raises(UnstorableValueError, match="lone surrogate"):
        check_value({"tags": {FS_NAME}})


# -- finding 2: a lone surrogate in params, a result, an error message ----------------------


def test_params_with_a_lone_surrogate_are_refused_at_create_and_block_nobody(
    tmp_path: Path,
) -> None:
    """create_task refuses them with UnstorableValueError (a TypeError and a ValueError,
    so VALIDATION_ERROR) naming the problem; nothing was written, no write failed, and
    every later create of anyone commits and survives a restart."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=2, store=path, operations=OPERATIONS) as manager:
        for params in ({"name": SURROGATE}, {"clip": {"files": [FS_NAME]}}):
            with pytest.raises(UnstorableValueError, match="lone surrogate"):
                manager.create_task("echo", params)
        with pytest.raises(ValueError, match="user contains"):
            manager.create_task("echo", {}, user=FS_NAME)
        after = [manager.create_task("echo", {"n": n}) for n in range(3)]
        for task_id in after:
            assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
        stats = manager.get_stats()
        assert stats["store"]["failed_writes"] == 0
        assert stats["status_counts"]["completed"] == 3
    with TaskManager(store=path, operations=OPERATIONS) as reopened:
        assert sorted(s["task_id"] for s in reopened.list_tasks()) == sorted(after)


def test_a_result_from_fsdecode_fails_the_task_clearly_and_says_so_after_a_restart(
    tmp_path: Path,
) -> None:
    """An operation returning a surrogate-escaped file name: the task is FAILED with
    RESULT_NOT_SERIALIZABLE (never reported completed), the next tasks commit, and after a
    restart the task reads the same failure, not INTERRUPTED."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=1, store=path, operations=OPERATIONS) as manager:
        bad = manager.create_task("fs_name")
        ended = manager.wait(bad, timeout=WAIT)
        good = manager.create_task("echo", {"n": 1})
        assert manager.wait(good, timeout=WAIT)["result"] == {"n": 1}
        assert manager.get_stats()["store"]["failed_writes"] == 0
    assert ended["status"] == "failed"
    assert ended["error"]["code"] == ErrorCodes.RESULT_NOT_SERIALIZABLE
    assert "lone surrogate" in ended["error"]["message"]
    with TaskManager(store=path, operations=OPERATIONS) as reopened:
        assert reopened.get_task_status(bad) == ended
        assert reopened.get_task_status(good)["status"] == "completed"  # type: ignore[index]


def test_an_error_message_about_a_surrogate_file_name_is_stored_escaped(
    tmp_path: Path,
) -> None:
    """The same class: an exception whose text holds a surrogate (a file name from
    os.fsdecode) is recorded with it escaped (\\udcff), so the failure itself stores,
    survives a restart and can be sent."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=1, store=path, operations=OPERATIONS) as manager:
        task_id = manager.create_task("raise_fs_name")
        ended = manager.wait(task_id, timeout=WAIT)
        assert manager.get_stats()["store"]["failed_writes"] == 0
    assert ended["status"] == "failed"
    assert "no such clip: \\udcff.wav" in ended["error"]["message"]
    with TaskManager(store=path, operations=OPERATIONS) as reopened:
        assert reopened.get_task_status(task_id) == ended


def spec(task_id: str, seq: int, params_json: str, clock: ManualClock) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        operation=echo,
        operation_name="tests.echo",
        params={},
        options=TaskOptions(isolation=Isolation.THREAD),
        seq=seq,
        created_at=clock.time(),
        named=True,
        params_json=params_json,
    )


def test_a_record_the_store_cannot_encode_is_left_out_alone_and_not_retried(
    tmp_path: Path,
) -> None:
    """The commit mechanism itself, for a record that got past every check (here made
    directly): it is left out of its commit, its own creator gets StoreWriteError naming
    it, the records committed with it and after it are written, the failure is counted
    once and logged once (it is not retried with every later commit), and a query about
    it raises instead of showing a state no file holds."""
    path = tmp_path / "tasks.db"
    store = SqliteStore(path)
    store.open()
    clock = ManualClock()
    registry = RegistryActor.start(TaskTable(), clock, store)
    try:
        tickets = {name: CommitTicket(name) for name in ("good-1", "bad", "good-2")}
        with capture_logs() as logs:
            registry.tell(Register(spec("good-1", 0, "{}", clock), tickets["good-1"]))
            registry.tell(Register(spec("bad", 1, f'{{"n":"{SURROGATE}"}}', clock), tickets["bad"]))
            registry.tell(Register(spec("good-2", 2, "{}", clock), tickets["good-2"]))
            for ticket in tickets.values():
                assert ticket.wait(WAIT)
            later = CommitTicket("good-3")
            registry.tell(Register(spec("good-3", 3, "{}", clock), later))
            assert later.wait(WAIT)
            answer = registry.ask(GetSnapshot("bad"), timeout=WAIT)
            registry.ask(GetStats(), timeout=WAIT)
        assert tickets["good-1"].error is None
        assert tickets["good-2"].error is None
        assert later.error is None
        assert isinstance(tickets["bad"].error, StoreWriteError)
        assert "task bad could not be stored" in str(tickets["bad"].error)
        assert isinstance(answer, StoreWriteError)
        assert store.statistics().failed_writes == 1
        logged = [e for e in logs if e["event"] == "store.record_not_stored"]
        assert [(e["task_id"], e["log_level"]) for e in logged] == [("bad", "error")]
    finally:
        registry.stop(timeout=WAIT)
        store.close()
    reopened = SqliteStore(path)
    try:
        stored = sorted(r.task_id for r in reopened.open().records)
    finally:
        reopened.close()
    assert stored == ["good-1", "good-2", "good-3"]


def test_the_sqlite_store_writes_the_others_and_names_the_record_it_cannot_encode(
    tmp_path: Path,
) -> None:
    """SqliteStore.write: the encodable records of a commit are written (the batch of many
    rows too), the one that is not is named in RecordsNotStoredError and counted."""
    clock = ManualClock()
    store = SqliteStore(tmp_path / "tasks.db")
    store.open()
    try:
        records = [TaskRecord.from_spec(spec(f"t-{n}", n, "{}", clock)) for n in range(40)]
        records[17] = TaskRecord.from_spec(spec("t-17", 17, f'"{SURROGATE}"', clock))
        with pytest.raises(RecordsNotStoredError) as raised:
            store.write(records, [])
        assert list(raised.value.rejected) == ["t-17"]
        assert "surrogates not allowed" in raised.value.rejected["t-17"]
        assert store.statistics().failed_writes == 1
        assert store.statistics().records_written == 39
        assert len(store.reload().records) == 39
    finally:
        store.close()


# -- finding 4: results nested 5,000 deep -------------------------------------------------


@pytest.mark.parametrize("durable", [True, False], ids=["sqlite", "memory"])
def test_deep_results_fail_their_tasks_and_never_restart_the_registry(
    tmp_path: Path, durable: bool
) -> None:
    """Six operations returning a list nested 5,000 deep (more than the restart budget
    allows): each task is FAILED with RESULT_NOT_SERIALIZABLE naming the limit, the
    registry never restarts, and the manager goes on working."""
    store = tmp_path / "tasks.db" if durable else None
    with TaskManager(num_workers=2, store=store, operations=OPERATIONS) as manager:
        ids = [manager.create_task("deep_result", {"depth": 5000}) for _ in range(6)]
        for task_id in ids:
            ended = manager.wait(task_id, timeout=WAIT)
            assert ended["status"] == "failed"
            assert ended["error"]["code"] == ErrorCodes.RESULT_NOT_SERIALIZABLE
            assert f"more than {MAX_NESTING} levels" in ended["error"]["message"]
        after = manager.create_task("echo", {"n": 1})
        assert manager.wait(after, timeout=WAIT)["result"] == {"n": 1}
        assert manager.get_stats()["restarts"]["total"] == 0


@pytest.mark.parametrize("durable", [True, False], ids=["sqlite", "memory"])
def test_a_deep_partial_result_is_skipped_with_its_warning(tmp_path: Path, durable: bool) -> None:
    """A partial result nested 5,000 deep is not kept (the previous one stays), the
    existing warning names the task, and the task completes; no restart."""
    store = tmp_path / "tasks.db" if durable else None
    with (
        capture_logs() as logs,
        TaskManager(num_workers=1, store=store, operations=OPERATIONS) as manager,
    ):
        ids = [manager.create_task("deep_partial", {"depth": 5000}) for _ in range(5)]
        ended = [manager.wait(task_id, timeout=WAIT) for task_id in ids]
        assert manager.get_stats()["restarts"]["total"] == 0
    for status in ended:
        assert status["status"] == "completed"
        assert status["result"] == "rendered"
        assert status.get("partial_result") in (None, {"frames": 10})  # coalesced
    warned = {e["task_id"] for e in logs if e["event"] == "task.partial_result_not_storable"}
    assert warned == set(ids)


# -- finding 3: a full disk ---------------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (unmounted after it). Skipped when this machine
    does not let the test mount one (not root, no mount(8), or a container without the
    capability): the skip says which."""
    where = Path(tempfile.mkdtemp(prefix="storycore-full-disk-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:  # no mount(8), not permitted
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {exc!r}")
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(
            f"cannot mount a tmpfs for the full-disk test (mount exited {done.returncode}: "
            f"{done.stderr.strip()})"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True, timeout=30, check=False)
        shutil.rmtree(where, ignore_errors=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the file that holds the space."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                continue
    return filler


def test_with_a_full_disk_nothing_is_answered_that_is_not_committed(small_disk: Path) -> None:
    """The disk fills while a task runs: when it completes, its commit fails, so wait()
    and get_task_status() raise StoreWriteError naming the file (never `completed`),
    failed_writes counts it, and get_stats() still answers. Once space is free, the next
    commit writes it: both answer `completed`, and so does the file after a restart."""
    path = small_disk / "tasks.db"
    gate = Gate({"frames": 3})
    manager = TaskManager(num_workers=1, store=path, operations={"gate": gate})
    try:
        task_id = manager.create_task("gate")
        gate.wait_entered()
        filler = fill(small_disk)
        gate.release()
        with pytest.raises(StoreWriteError) as waited:
            manager.wait(task_id, timeout=WAIT)
        assert waited.value.location == str(path)
        with pytest.raises(StoreWriteError, match="not durable yet"):
            manager.get_task_status(task_id)
        assert manager.get_stats()["store"]["failed_writes"] >= 1
        filler.unlink()
        assert manager.wait(task_id, timeout=WAIT)["result"] == {"frames": 3}
        assert manager.get_task_status(task_id)["status"] == "completed"  # type: ignore[index]
    finally:
        gate.release()
        manager.shutdown(wait=True, timeout=30)
    with TaskManager(store=path, operations={"gate": gate}) as reopened:
        assert reopened.get_task_status(task_id)["result"] == {"frames": 3}  # type: ignore[index]


def test_an_end_that_never_committed_was_never_reported(small_disk: Path) -> None:
    """The disk stays full until the manager is gone: no caller was ever told
    `completed`, and the next manager finds the task unfinished (INTERRUPTED), which is
    what the file holds: the two agree."""
    path = small_disk / "tasks.db"
    gate = Gate("rendered")
    manager = TaskManager(num_workers=1, store=path, operations={"gate": gate})
    try:
        task_id = manager.create_task("gate")
        gate.wait_entered()
        filler = fill(small_disk)
        gate.release()
        with pytest.raises(StoreWriteError):
            manager.wait(task_id, timeout=WAIT)
        with pytest.raises(StoreWriteError, match="not durable yet"):
            manager.list_tasks()
        with pytest.raises(StoreWriteError, match="not durable yet"):
            manager.runtime.page(None, limit=50)  # the service's listing pages
    finally:
        gate.release()
        manager.shutdown(wait=True, timeout=30)
    filler.unlink()
    with TaskManager(store=path, operations={"gate": gate}) as reopened:
        status = reopened.get_task_status(task_id)
    assert status is not None
    assert (status["status"], status["error"]["code"]) == ("failed", "INTERRUPTED")


# -- finding 11: the database file deleted or replaced under a running manager ------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_file_lost_under_a_running_manager_fails_every_commit(
    tmp_path: Path, how: str
) -> None:
    """After the file at the path is deleted (or replaced by another file), no commit is
    acknowledged: create_task raises StoreWriteError naming the path and what happened,
    every failure is counted, and it is logged at error level once."""
    path = tmp_path / "tasks.db"
    with TaskManager(num_workers=1, store=path, operations=OPERATIONS) as manager:
        before = manager.create_task("echo", {"n": 0})
        assert manager.wait(before, timeout=WAIT)["status"] == "completed"
        if how == "deleted":
            path.unlink()
        else:
            other = tmp_path / "other.db"
            other.write_bytes(b"")
            os.replace(other, path)
        with capture_logs() as logs:
            for n in range(3):
                with pytest.raises(StoreWriteError) as raised:
                    manager.create_task("echo", {"n": n})
                assert raised.value.location == str(path)
                assert "was deleted or replaced" in str(raised.value)
        lost = [e for e in logs if e["event"] == "store.file_lost"]
        assert [e["log_level"] for e in lost] == ["error"]
        assert manager.get_stats()["store"]["failed_writes"] >= 3


# -- finding 8: what the service sends, in every store mode -------------------------------

TOKENS = {"alice-token": Principal("alice", "user"), "ops-token": Principal("ops", "admin")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["memory", "sqlite"])
def service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[TaskManager, httpx.Client]]:
    store = tmp_path / "tasks.db" if request.param == "sqlite" else None
    manager = TaskManager(num_workers=2, store=store, operations=OPERATIONS)
    tokens = TokenStore([(hash_token(t), p) for t, p in TOKENS.items()])
    try:
        with ExitStack() as stack:
            live = stack.enter_context(running_service(manager, ServiceConfig(tokens=tokens)))
            client = stack.enter_context(httpx.Client(base_url=live.url, timeout=WAIT))
            yield manager, client
    finally:
        manager.shutdown(wait=True, timeout=30)


def create(client: httpx.Client, body: Mapping[str, Any]) -> httpx.Response:
    # json.dumps escapes a lone surrogate as \\ud800: valid JSON text, as a client sends it.
    return client.post(
        "/v1/tasks",
        content=json.dumps(body).encode("ascii"),
        headers={**bearer("alice-token"), "Content-Type": "application/json"},
    )


def test_bad_params_are_a_validation_error_over_http(
    service: tuple[TaskManager, httpx.Client],
) -> None:
    """Params with a lone surrogate, or nested deeper than MAX_NESTING, answer 400
    VALIDATION_ERROR naming the problem; the service goes on creating tasks."""
    _, client = service
    for params, problem in (
        ({"name": SURROGATE}, "lone surrogate"),
        ({"deep": nested(600)}, f"more than {MAX_NESTING} levels"),
    ):
        response = create(client, {"operation": "echo", "params": params})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert problem in error["message"]
    assert create(client, {"operation": "echo", "params": {"n": 1}}).status_code == 202


def test_results_the_service_cannot_send_never_break_its_answers(
    service: tuple[TaskManager, httpx.Client],
) -> None:
    """Results nested 600 deep or holding a lone surrogate, and such partial results:
    GET /v1/tasks/{id} answers 200 (the result ones FAILED with RESULT_NOT_SERIALIZABLE,
    the partial ones completed without it), and GET /v1/tasks answers 200 for the owner
    and for an admin, listing every task."""
    manager, client = service
    bodies = [
        {"operation": "deep_result", "params": {"depth": 600}},
        {"operation": "fs_name"},
        {"operation": "deep_partial", "params": {"depth": 600}},
        {"operation": "surrogate_partial"},
        {"operation": "echo", "params": {"n": 1}},
    ]
    ids = []
    for body in bodies:
        response = create(client, body)
        assert response.status_code == 202, response.text
        ids.append(response.json()["data"]["task_id"])
    statuses = []
    for task_id in ids:
        manager.wait(task_id, timeout=WAIT)
        response = client.get(f"/v1/tasks/{task_id}", headers=bearer("alice-token"))
        assert response.status_code == 200, response.text
        statuses.append(response.json()["data"])
    for status in statuses[:2]:
        assert status["status"] == "failed"
        assert status["error"]["code"] == "RESULT_NOT_SERIALIZABLE"
    for status in statuses[2:]:
        assert status["status"] == "completed", status
    for token in ("alice-token", "ops-token"):
        listed = client.get("/v1/tasks", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert sorted(t["task_id"] for t in listed.json()["data"]["tasks"]) == sorted(ids)


class BrokenMapping(Mapping[str, Any]):
    """A user mapping whose iteration fails (user code the codec runs)."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("this mapping cannot be read")

    def __len__(self) -> int:
        return 1


def test_a_value_whose_own_code_fails_raises_only_the_codecs_error() -> None:
    """The codec turns a failure of user code inside a value (a Mapping that cannot be
    iterated) into UnstorableValueError too, so no actor can see anything else."""
    with pytest.raises(UnstorableValueError, match="not JSON serializable"):
        normalized({"broken": BrokenMapping()})  # strict: not JSON, never iterated
    with pytest.raises(UnstorableValueError, match="cannot be read"):
        check_value({"broken": BrokenMapping()})  # lenient: looked into, and it fails


def test_the_memory_rules_keep_a_value_that_contains_itself_and_look_inside_it() -> None:
    """The memory store keeps a cyclic value (the service cuts it at the cycle), but
    the two rules still hold inside it: a surrogate or a too deep part is refused."""
    cyclic: list[Any] = [1, {"name": "clip"}]
    cyclic.append(cyclic)
    check_value(cyclic)
    with pytest.raises(UnstorableValueError, match="lone surrogate"):
        check_value([*cyclic, {FS_NAME: 1}, cyclic])
    deep_cycle: list[Any] = [nested(MAX_NESTING)]
    deep_cycle.append(deep_cycle)
    with pytest.raises(UnstorableValueError, match=f"more than {MAX_NESTING} levels"):
        check_value(deep_cycle)
