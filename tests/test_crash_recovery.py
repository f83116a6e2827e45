"""Crash recovery of the SQLite store: a manager under load is killed with SIGKILL, again
and again, and every reopening of its database keeps every promise made before the kill.

A child process (``tests/crash_host.py``) runs a TaskManager on one SQLite file, creates
tasks from several threads while others run, polls their statuses, and reports each fact
on a line as soon as it happens. The parent kills it at a random moment, reopens the same
file with a TaskManager that registers the same operations, and checks, round after round
(state accumulates: each round also reopens everything the earlier ones left):

* every id that ``create_task`` returned is in the database (commit before the id);
* every status the child saw terminal reads the same after the restart, and every result
  it saw completed is byte-identical (as JSON); a terminal task never changes again;
* every cancellation ``cancel_task`` accepted reads ``cancelled`` after the restart;
* nothing is stuck: once the requeued tasks have run, no task reads ``running``, and the
  only ``pending`` ones are those whose operation is deliberately not registered yet
  (exactly ``get_stats()["store"]["awaiting_operation"]`` of them); registering it runs
  them;
* an operation that began had its RUNNING state committed first: it is never run twice
  (unless it is ``retry_on_interrupt``), its task never reads ``pending`` or
  "interrupted before it ran" afterwards, and ``attempt`` counts at least every start;
* tasks that died running fail with ``INTERRUPTED`` (was_running, attempt 1), except
  those of the ``retry_on_interrupt`` operation, which run again and complete;
* the counts add up: ``status_counts`` match the listed tasks and sum to ``total_tasks``,
  and the lifetime counters saved with the records agree with them.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from storycore_tasks import TaskManager
from tests import crash_host

ROUNDS = 24
BASE_SEED = 20_240_611
SELF_KILL_EVERY = 4
"""Every 4th round the child kills itself instead (see ``RoundPlan``)."""
KILL_AFTER_ACKS = (20, 250)
"""The parent kills the child once it has acknowledged this many tasks (drawn per
round), so the load is the same however busy the machine is ..."""
KILL_JITTER = (0.0, 0.08)
"""... plus this many seconds (drawn per round), so the kill falls at any moment of the
child's work, not just after an ``ack``."""
LOAD_DEADLINE = 30.0
"""Seconds a child may take from "go" to its last needed ``ack`` (it reopens a growing
file first)."""
RUN_DEADLINE = 20.0
"""Seconds the parent's manager may take to finish the tasks a kill left behind."""
REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL = ("completed", "failed", "cancelled")
NOT_RETRIED = (crash_host.QUICK, crash_host.SLOW, crash_host.PROGRESS, crash_host.FAIL)


@dataclass(frozen=True)
class RoundPlan:
    """How one round's child is loaded and killed, all drawn from ``BASE_SEED``.

    Most rounds the parent sends SIGKILL ``jitter`` seconds after the child's
    ``kill_after_acks``-th ``ack``. In a self-kill round the child SIGKILLs itself right
    after writing its ``self_kill_after``-th line of kind ``self_kill_kind``: just after
    ``create_task`` or ``cancel_task`` answered, a status read reported a result, or an
    operation began; the moment at which what that line reports is most at risk.
    """

    round: int
    seed: int
    kill_after_acks: int
    jitter: float
    self_kill_kind: str = "none"
    self_kill_after: int = 0

    @classmethod
    def draw(cls, round_index: int, rng: random.Random) -> RoundPlan:
        seed = rng.randrange(2**31)
        kill_after_acks = rng.randint(*KILL_AFTER_ACKS)
        jitter = rng.uniform(*KILL_JITTER)
        if round_index % SELF_KILL_EVERY != SELF_KILL_EVERY - 1:
            return cls(round_index, seed, kill_after_acks, jitter)
        kinds = crash_host.SELF_KILL_KINDS
        kind = kinds[round_index // SELF_KILL_EVERY % len(kinds)]
        after = rng.randint(1, 3) if kind == "cancel" else rng.randint(10, 150)
        return cls(round_index, seed, kill_after_acks, jitter, kind, after)

    @property
    def label(self) -> str:
        how = (
            f"parent kill after {self.kill_after_acks} acks + {self.jitter:.3f} s"
            if self.self_kill_kind == "none"
            else f"self-kill after {self.self_kill_after} {self.self_kill_kind!r} lines"
        )
        return f"round {self.round} (seed {self.seed}, {how}; base seed {BASE_SEED})"


@dataclass
class Child:
    """One child process and what it reported, line by complete line."""

    plan: RoundPlan
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    lines: list[str] = field(default_factory=list)
    loaded: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    @property
    def label(self) -> str:
        return self.plan.label

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        acks = 0
        for raw in stdout:
            if not raw.endswith(b"\n"):
                break  # cut by the kill: only complete lines are facts
            line = raw.decode()[:-1]
            self.lines.append(line)
            if line.startswith("ack "):
                acks += 1
                if acks == self.plan.kill_after_acks:
                    self.loaded.set()

    def go(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(b"go\n")
        stdin.flush()

    def reap(self) -> None:
        """Kill (if still alive) and wait, join the reader, close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.reader is not None:
            self.reader.join(timeout=30)
            assert not self.reader.is_alive(), f"{self.label}: the reader did not finish"
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@dataclass
class Ledger:
    """What the children reported, over all rounds, and the parent's last final view."""

    acked: dict[str, str] = field(default_factory=dict)  # id -> label of its round
    done: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (json, label)
    ended: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # (status, code, label)
    starts: Counter[str] = field(default_factory=Counter)
    cancels: dict[str, str] = field(default_factory=dict)  # id -> label
    final_view: dict[str, dict[str, Any]] = field(default_factory=dict)
    interrupted_total: int = 0
    retried_after_crash: int = 0

    def absorb(self, child: Child) -> list[str]:
        """Record a killed child's lines; returns the ids it acknowledged."""
        acked: list[str] = []
        for line in child.lines:
            kind, _, rest = line.partition(" ")
            if kind == "ack":
                acked.append(rest)
                self.acked[rest] = child.label
            elif kind == "start":
                self.starts[rest] += 1
            elif kind == "done":
                task_id, _, result = rest.partition(" ")
                self.done[task_id] = (result, child.label)
            elif kind == "end":
                task_id, status, code = rest.split(" ")
                self.ended[task_id] = (status, code, child.label)
            elif kind == "cancel":
                self.cancels[rest] = child.label
            elif kind == "ready":
                pass
            else:
                raise AssertionError(f"{child.label}: unexpected line {line!r}\n{child.stderr()}")
        return acked


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Every child started by the test is killed and reaped, whatever happens."""
    started: list[Child] = []
    yield started
    for child in started:
        child.reap()


def _spawn(db: Path, plan: RoundPlan, tmp_path: Path) -> Child:
    stderr_path = tmp_path / f"child-{plan.round}.stderr"
    args = [str(db), str(plan.seed), plan.self_kill_kind, str(plan.self_kill_after)]
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_host", *args],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    child = Child(plan=plan, proc=proc, stderr_path=stderr_path)
    child.reader = threading.Thread(target=child.read, name=f"crash-reader-{plan.round}")
    child.reader.start()
    return child


def _code(status: dict[str, Any]) -> str | None:
    error = status.get("error")
    return None if error is None else str(error["code"])


def _check_reopened(
    manager: TaskManager, ledger: Ledger, round_acked: list[str], label: str
) -> dict[str, dict[str, Any]]:
    """What holds the moment the database is reopened; returns the tasks by id."""
    opened = {s["task_id"]: s for s in manager.list_tasks()}
    missing = [task_id for task_id in ledger.acked if task_id not in opened]
    assert missing == [], f"{label}: acknowledged ids lost by the kill"
    for task_id in round_acked:  # the public lookup finds them too
        status = manager.get_task_status(task_id)
        assert status is not None, f"{label}: get_task_status({task_id}) is None"
        assert status["task_id"] == task_id

    # A terminal task never changes again: not when killed, not when reopened.
    for task_id, before in ledger.final_view.items():
        if before["status"] in TERMINAL:
            assert opened[task_id] == before, f"{label}: terminal task {task_id} changed"
    # What the child saw before the kill is what the database says after it.
    for task_id, (result, seen_in) in ledger.done.items():
        now = opened[task_id]
        assert now["status"] == "completed", f"{label}: {task_id} was completed in {seen_in}"
        assert json.dumps(now["result"], sort_keys=True) == result, (
            f"{label}: the result of {task_id} (completed in {seen_in}) changed"
        )
    # A cancellation cancel_task() accepted was committed before it answered.
    for task_id, seen_in in ledger.cancels.items():
        now = opened[task_id]
        assert (now["status"], _code(now)) == ("cancelled", "CANCELLED"), (
            f"{label}: cancel_task({task_id}) returned True in {seen_in}"
        )
    for task_id, (state, code, seen_in) in ledger.ended.items():
        now = opened[task_id]
        assert (now["status"], _code(now)) == (state, code), (
            f"{label}: {task_id} read {state}/{code} in {seen_in}"
        )

    # An operation that began had its RUNNING state committed first: without
    # retry_on_interrupt it has ended (INTERRUPTED at worst) and will not run again.
    for task_id, started in ledger.starts.items():
        now = opened[task_id]
        if now["operation"] in NOT_RETRIED:
            assert (now["status"] in TERMINAL, now["attempt"]) == (True, 1), (
                f"{label}: {task_id} began to run ({started}x) but reads {now}"
            )
    # Tasks committed whose id never reached the child's output: at most the one
    # create_task call each submitter thread had in flight at the kill.
    unseen = set(opened) - set(ledger.final_view) - set(ledger.acked)
    assert len(unseen) <= crash_host.SUBMITTERS, f"{label}: unexpected tasks {unseen}"

    # The retry operation is not registered yet: its unfinished tasks (pending, or
    # running when the child died) all wait for it, and none of them was given up.
    retry_tasks = [s for s in opened.values() if s["operation"] == crash_host.RETRY]
    waiting = [s for s in retry_tasks if s["status"] not in TERMINAL]
    assert [s["status"] for s in waiting] == ["pending"] * len(waiting), label
    stats = manager.get_stats()
    assert stats["store"]["awaiting_operation"] == len(waiting), label
    return opened


def _wait_all(manager: TaskManager, task_ids: list[str], deadline: float, label: str) -> None:
    for task_id in task_ids:
        remaining = max(0.0, deadline - time.monotonic())
        status = manager.wait(task_id, timeout=remaining)
        assert status["status"] in TERMINAL, f"{label}: {task_id} did not finish"


def _check_final(
    final: list[dict[str, Any]],
    stats: dict[str, Any],
    ledger: Ledger,
    awaiting: set[str],
    label: str,
) -> None:
    """What holds once the parent's manager has finished what it could and shut down."""
    by_status = Counter(s["status"] for s in final)
    counts = {state: n for state, n in stats["status_counts"].items() if n}
    assert counts == dict(by_status), label
    assert sum(stats["status_counts"].values()) == stats["total_tasks"], label
    assert stats["total_tasks"] == len(final), label
    lifetime = stats["lifetime_stats"]
    assert lifetime["total_created"] == stats["total_tasks"], label
    assert lifetime["total_completed"] == by_status["completed"], label
    assert lifetime["total_failed"] == by_status["failed"], label
    assert lifetime["total_cancelled"] == by_status["cancelled"], label
    timed_out = sum(1 for s in final if _code(s) == "TIMEOUT")
    assert lifetime["total_timed_out"] == timed_out, label

    # Nothing stuck: the only unfinished tasks are those left waiting for RETRY.
    assert by_status["running"] == 0, label
    pending = {s["task_id"] for s in final if s["status"] == "pending"}
    assert pending == awaiting, label

    for status in final:
        task_id, operation, attempt = status["task_id"], status["operation"], status["attempt"]
        started = ledger.starts[task_id]
        where = f"{label}: task {task_id} ({operation}, attempt {attempt}, started {started}x)"
        # Every start was committed (attempt + 1) before the operation was called.
        assert attempt >= started, where
        if status["status"] == "completed":
            assert attempt >= 1, where
        if _code(status) == "INTERRUPTED":
            details = status["error"]["details"]
            # It had started (RUNNING was committed before the operation ran), its
            # operation may not run twice, and it is not the retry_on_interrupt one.
            assert operation in NOT_RETRIED, where
            assert (details["was_running"], details["attempt"], attempt) == (True, 1, 1), where
            assert status["status"] == "failed", where
        if operation in NOT_RETRIED:
            assert started <= 1, f"{where}: an operation without retry_on_interrupt ran twice"
            assert attempt <= 1, where
            if started:
                assert status["status"] in TERMINAL, where
        elif status["status"] != "pending":
            assert status["status"] in ("completed", "cancelled"), where


def _reopen_and_check(
    db: Path,
    ledger: Ledger,
    round_acked: list[str],
    parent_starts: list[str],
    register_retry: bool,
    label: str,
) -> None:
    parent_starts.clear()
    manager = TaskManager(num_workers=8, store=db, operations=crash_host.OPERATIONS)
    try:
        opened = _check_reopened(manager, ledger, round_acked, label)
        deadline = time.monotonic() + RUN_DEADLINE
        unfinished = [s["task_id"] for s in opened.values() if s["status"] not in TERMINAL]
        requeued = [i for i in unfinished if opened[i]["operation"] != crash_host.RETRY]
        waiting = [i for i in unfinished if opened[i]["operation"] == crash_host.RETRY]
        _wait_all(manager, requeued, deadline, label)
        if register_retry:
            manager.register_operation(crash_host.RETRY, crash_host.retry, retry_on_interrupt=True)
            _wait_all(manager, waiting, deadline, label)
            ledger.retried_after_crash += sum(1 for i in waiting if opened[i]["attempt"] > 0)
            awaiting: set[str] = set()
        else:
            awaiting = set(waiting)
        assert manager.get_stats()["store"]["awaiting_operation"] == len(awaiting), label
    finally:
        manager.shutdown(wait=True, timeout=30)
    final = manager.list_tasks()  # answered from the final records after shutdown
    ledger.starts.update(line.removeprefix("start ") for line in parent_starts)
    _check_final(final, manager.get_stats(), ledger, awaiting, label)
    ledger.final_view = {s["task_id"]: s for s in final}
    if register_retry:
        # Each waiting RETRY task ran exactly once more, from the start, and completed.
        for task_id in waiting:
            now, before = ledger.final_view[task_id], opened[task_id]
            assert (now["status"], now["attempt"]) == ("completed", before["attempt"] + 1), (
                f"{label}: {task_id} read {before} at the reopening, then {now}"
            )
    ledger.interrupted_total = sum(1 for s in final if _code(s) == "INTERRUPTED")


def _kill(child: Child) -> None:
    """Let the child work until its moment, see it die of SIGKILL, and reap it."""
    plan, label = child.plan, child.label
    child.go()
    if plan.self_kill_kind == "none":
        if not child.loaded.wait(LOAD_DEADLINE):
            child.reap()
            acks = sum(1 for line in child.lines if line.startswith("ack "))
            pytest.fail(f"{label}: only {acks} acks in {LOAD_DEADLINE} s\n{child.stderr()}")
        time.sleep(plan.jitter)  # the random moment of the kill
        assert child.proc.poll() is None, f"{label}: the child died early\n{child.stderr()}"
        child.proc.send_signal(signal.SIGKILL)
    else:
        try:
            child.proc.wait(timeout=LOAD_DEADLINE)
        except subprocess.TimeoutExpired:
            child.reap()
            pytest.fail(f"{label}: the child did not kill itself\n{child.stderr()}")
    child.reap()
    assert child.proc.returncode == -signal.SIGKILL, f"{label}\n{child.stderr()}"
    errors = [line for line in child.lines if line.startswith("error")]
    assert errors == [], f"{label}: the child reported {errors}\n{child.stderr()}"
    if plan.self_kill_kind != "none":
        kind = f"{plan.self_kill_kind} "
        # Its last words: the chosen line, as many times as planned (the kill is sent
        # while the child holds its output lock, so no line can follow it).
        seen = sum(1 for line in child.lines if line.startswith(kind))
        assert seen == plan.self_kill_after, label


def test_sigkill_at_random_moments_loses_nothing_acknowledged(
    tmp_path: Path, children: list[Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    """24 rounds of: load a child manager, SIGKILL it at a random moment, reopen the same
    database in the parent and check every promise the child's answers made."""
    db = tmp_path / "tasks.db"
    rng = random.Random(BASE_SEED)
    plans = [RoundPlan.draw(i, rng) for i in range(ROUNDS)]
    ledger = Ledger()
    parent_starts: list[str] = []
    monkeypatch.setattr(crash_host, "sink", parent_starts.append)

    children.append(_spawn(db, plans[0], tmp_path))
    for round_index, plan in enumerate(plans):
        child = children[round_index]
        _kill(child)
        if round_index + 1 < ROUNDS:
            # Its imports overlap the checks below; it opens the file only on "go".
            children.append(_spawn(db, plans[round_index + 1], tmp_path))

        round_acked = ledger.absorb(child)
        # Every other round leaves RETRY's tasks waiting for the next child; the last
        # round registers it, so the test ends with every task terminal.
        register_retry = round_index % 2 == 1 or round_index == ROUNDS - 1
        _reopen_and_check(db, ledger, round_acked, parent_starts, register_retry, plan.label)

    # The rounds did exercise what they claim to (so the checks above were not vacuous).
    final = ledger.final_view
    print(
        f"acked {len(ledger.acked)}, stored {len(final)}, done lines {len(ledger.done)}, "
        f"interrupted {ledger.interrupted_total}, retried {ledger.retried_after_crash}, "
        f"accepted cancels {len(ledger.cancels)}, "
        f"statuses {dict(Counter(s['status'] for s in final.values()))}"
    )
    assert all(s["status"] in TERMINAL for s in final.values())
    assert len(ledger.done) >= 200
    assert ledger.interrupted_total >= 1, "no kill ever caught an operation running"
    assert ledger.retried_after_crash >= 1, "no retry_on_interrupt task was ever resumed"
