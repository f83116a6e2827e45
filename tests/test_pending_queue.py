"""``PendingQueue``, tested directly: every place a pending task waits, one owner, one
cancel. The supervisor is a message handler over it; these tests pin its rules without
an actor or a timer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors._core.pending import PendingQueue
from actors._enums import Isolation, TaskPriority
from actors._options import TaskOptions
from actors._records import TaskRecord, TaskSpec


def _operation(params: Any, task: Any) -> None:
    return None


def _spec(
    task_id: str, *, priority: TaskPriority = TaskPriority.NORMAL, seq: int = 0, op: str = "a"
) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        operation=_operation,
        operation_name=op,
        params={},
        options=TaskOptions(priority=priority, isolation=Isolation.THREAD),
        seq=seq,
        created_at=0.0,
    )


def _record(task_id: str, op: str = "later") -> TaskRecord:
    return TaskRecord.from_spec(_spec(task_id, op=op))


def test_ready_tasks_pop_by_priority_then_fifo() -> None:
    """Highest priority first; within one priority, lowest seq (oldest) first."""
    queue: PendingQueue[object] = PendingQueue()
    queue.push_ready(_spec("n1", seq=1))
    queue.push_ready(_spec("h2", priority=TaskPriority.HIGH, seq=2))
    queue.push_ready(_spec("n0", seq=0))
    queue.push_ready(_spec("l3", priority=TaskPriority.LOW, seq=3))
    order = []
    while (spec := queue.pop_ready()) is not None:
        order.append(spec.task_id)
    assert order == ["h2", "n0", "n1", "l3"]
    assert len(queue) == 0


def test_has_ready_in_answers_per_lane() -> None:
    """A lane with a ready task says so; one that never had any, or whose tasks were
    all taken, does not (the supervisor skips those pools)."""
    queue: PendingQueue[object] = PendingQueue(lane_of=lambda spec: spec.operation_name)
    assert not queue.has_ready_in("a")
    queue.push_ready(_spec("t1", op="a"))
    assert queue.has_ready_in("a")
    assert not queue.has_ready_in("b")
    assert queue.pop_ready("a") is not None
    assert not queue.has_ready_in("a")


def test_remove_finds_a_task_in_every_place() -> None:
    """The one cancel: remove says where the task waited, and hands back a delayed
    task's timer handle so its owner can cancel the timer."""
    queue: PendingQueue[str] = PendingQueue()
    queue.push_ready(_spec("r"))
    queue.delay(_spec("d"), "timer-of-d")
    assert queue.hold(_spec("h", op="flaky")) is True
    queue.block(_spec("b"))
    queue.await_operation(_record("w"))
    assert queue.statistics().total == 5
    removed = {task_id: queue.remove(task_id) for task_id in ("r", "d", "h", "b", "w")}
    assert {task_id: r.place for task_id, r in removed.items() if r} == {
        "r": "ready",
        "d": "delayed",
        "h": "held",
        "b": "blocked",
        "w": "awaiting",
    }
    assert removed["d"] is not None
    assert removed["d"].handle == "timer-of-d"
    assert queue.remove("r") is None
    assert len(queue) == 0
    assert queue.pop_ready() is None  # the removed ready task's stale entry is skipped


def test_a_task_is_in_one_place_at_most() -> None:
    """Queueing a task that is already pending anywhere is a bug: it raises, naming it."""
    queue: PendingQueue[object] = PendingQueue()
    queue.block(_spec("x"))
    with pytest.raises(ValueError, match=r"task x is already pending \(blocked\)"):
        queue.push_ready(_spec("x"))


def test_held_tasks_come_back_in_order_and_only_for_their_operation() -> None:
    """hold says when the first task of an operation is held (arm its cool-down);
    release puts that operation's tasks back among the ready ones, others stay held."""
    queue: PendingQueue[object] = PendingQueue()
    assert queue.hold(_spec("f1", op="flaky", seq=1)) is True
    assert queue.hold(_spec("f2", op="flaky", seq=2)) is False
    assert queue.hold(_spec("o1", op="other", seq=3)) is True
    assert queue.remove("f1") is not None
    assert queue.release("flaky") == 1
    assert queue.has_held("other")
    assert not queue.has_held("flaky")
    popped = queue.pop_ready()
    assert popped is not None
    assert popped.task_id == "f2"
    assert queue.pop_ready() is None
    assert queue.statistics().held == 1


def test_awaiting_records_are_taken_per_operation_in_order() -> None:
    queue: PendingQueue[object] = PendingQueue()
    for task_id in ("a1", "a2", "a3"):
        queue.await_operation(_record(task_id, op="render"))
    queue.await_operation(_record("n1", op="narrate"))
    assert queue.remove("a2") is not None
    assert [r.task_id for r in queue.take_awaiting("render")] == ["a1", "a3"]
    assert queue.take_awaiting("render") == []
    assert queue.statistics().awaiting == 1


def test_many_cancellations_do_not_grow_the_heap_without_bound() -> None:
    """Removed ready tasks leave heap entries behind; they are compacted away."""
    queue: PendingQueue[object] = PendingQueue()
    for seq in range(20_000):
        queue.push_ready(_spec(f"t{seq}", seq=seq))
        assert queue.remove(f"t{seq}") is not None
    assert len(queue._heap) <= 2 * len(queue._ready) + 1024 + 1


class PendingQueueMachine(RuleBasedStateMachine):
    """Random sequences of queue operations against a model: every task is in exactly
    the place the model says, statistics agree, and pops follow priority then seq."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: PendingQueue[int] = PendingQueue()
        self.model: dict[str, tuple[str, TaskSpec]] = {}
        self.seq = 0

    def _new(self, priority: TaskPriority, op: str) -> TaskSpec:
        self.seq += 1
        return _spec(f"t{self.seq}", priority=priority, seq=self.seq, op=op)

    priorities = st.sampled_from(list(TaskPriority))
    operations = st.sampled_from(["a", "b"])

    @rule(priority=priorities, op=operations)
    def push_ready(self, priority: TaskPriority, op: str) -> None:
        spec = self._new(priority, op)
        self.queue.push_ready(spec)
        self.model[spec.task_id] = ("ready", spec)

    @rule(priority=priorities, op=operations)
    def delay(self, priority: TaskPriority, op: str) -> None:
        spec = self._new(priority, op)
        self.queue.delay(spec, self.seq)
        self.model[spec.task_id] = ("delayed", spec)

    @rule(priority=priorities, op=operations)
    def block(self, priority: TaskPriority, op: str) -> None:
        spec = self._new(priority, op)
        self.queue.block(spec)
        self.model[spec.task_id] = ("blocked", spec)

    @precondition(lambda self: any(p == "ready" for p, _ in self.model.values()))
    @rule()
    def pop_ready(self) -> None:
        expected = min(
            (s for p, s in self.model.values() if p == "ready"),
            key=lambda s: (-s.options.priority, s.seq),
        )
        popped = self.queue.pop_ready()
        assert popped is not None
        assert popped.task_id == expected.task_id
        del self.model[expected.task_id]

    @precondition(lambda self: any(p == "ready" for p, _ in self.model.values()))
    @rule()
    def pop_and_hold(self) -> None:
        popped = self.queue.pop_ready()
        assert popped is not None
        first = not any(
            p == "held" and s.operation_name == popped.operation_name
            for p, s in self.model.values()
        )
        assert self.queue.hold(popped) is first
        self.model[popped.task_id] = ("held", popped)

    @rule(op=operations)
    def release(self, op: str) -> None:
        held = [s for p, s in self.model.values() if p == "held" and s.operation_name == op]
        assert self.queue.release(op) == len(held)
        for spec in held:
            self.model[spec.task_id] = ("ready", spec)

    @precondition(lambda self: any(p == "delayed" for p, _ in self.model.values()))
    @rule(data=st.data())
    def come_due(self, data: st.DataObject) -> None:
        task_id = data.draw(
            st.sampled_from(sorted(t for t, (p, _) in self.model.items() if p == "delayed"))
        )
        spec = self.queue.take_due(task_id)
        assert spec is not None
        assert spec.task_id == task_id
        self.queue.push_ready(spec)
        self.model[task_id] = ("ready", spec)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.model)))
        removed = self.queue.remove(task_id)
        assert removed is not None
        assert removed.place == self.model.pop(task_id)[0]
        assert self.queue.remove(task_id) is None

    @invariant()
    def places_agree(self) -> None:
        for task_id, (place, _) in self.model.items():
            assert self.queue.place_of(task_id) == place
        if any(place == "ready" for place, _ in self.model.values()):
            # The supervisor dispatches a pool only when this says so: never a false no.
            assert self.queue.has_ready_in(None)
        stats = self.queue.statistics()
        counted = {
            p: sum(1 for q, _ in self.model.values() if q == p)
            for p in ("ready", "delayed", "held", "blocked")
        }
        assert (stats.ready, stats.delayed, stats.held, stats.blocked) == (
            counted["ready"],
            counted["delayed"],
            counted["held"],
            counted["blocked"],
        )
        assert len(self.queue) == len(self.model)


TestPendingQueueMachine = PendingQueueMachine.TestCase
TestPendingQueueMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_ready_lanes_is_a_live_read_only_view_that_agrees_with_has_ready_in() -> None:
    """The dispatcher reads ready_lanes instead of calling has_ready_in: the view follows
    every push and pop (and a compaction) and cannot be written through."""
    queue: PendingQueue[object] = PendingQueue(lane_of=lambda spec: spec.operation_name)
    lanes = queue.ready_lanes
    for lane in ("a", "b"):
        assert bool(lanes.get(lane)) is queue.has_ready_in(lane) is False
    queue.push_ready(_spec("t1", op="a"))
    queue.push_ready(_spec("t2", op="a"))
    assert bool(lanes.get("a")) is queue.has_ready_in("a") is True
    assert bool(lanes.get("b")) is queue.has_ready_in("b") is False
    queue.remove("t1")
    assert queue.pop_ready("a") is not None
    assert bool(lanes.get("a")) is queue.has_ready_in("a") is False
    with pytest.raises(TypeError):
        lanes["a"] = []  # type: ignore[index]
