"""``RayAnswers`` without a cluster: Ray's ``wait`` and ``get`` over answers this test
sets (``Answers``, a stand-in for Ray's object store, not for the class under test).

What the Ray back-end relies on: every watched task's answer is delivered once, hinted
or not (a worker that died silently is found by the poll); a task watched while the
thread sleeps with nothing in flight is still delivered (the watch wakes it); an answer
that came another way (unwatched) is never fetched; a failed ``get`` is delivered as
that task's error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from actors._execution.ray_answers import Answer, RayAnswers

BOUND = 10.0  # seconds: an upper bound for a loaded machine, never a duration we expect


class Answers:
    """``ray.wait`` / ``ray.get`` over refs whose values the test sets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self.fetched: list[str] = []

    def set(self, ref: str, value: Any) -> None:
        with self._lock:
            self._values[ref] = value

    def wait(
        self, refs: list[str], num_returns: int, timeout: float
    ) -> tuple[list[str], list[str]]:
        with self._lock:
            ready = [ref for ref in refs if ref in self._values]
        if not ready and timeout:
            threading.Event().wait(timeout)  # as Ray's wait: up to the timeout
        return ready, [ref for ref in refs if ref not in ready]

    def get(self, refs: Any) -> Any:
        with self._lock:
            many = isinstance(refs, list)
            wanted = refs if many else [refs]
            self.fetched += wanted
            values = [self._values[ref] for ref in wanted]
        for value in values:
            if isinstance(value, BaseException):
                raise value
        return values if many else values[0]


class Delivered:
    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.answers: list[Answer] = []

    def __call__(self, batch: list[Answer]) -> None:
        with self.changed:
            self.answers += batch
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[Answer]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.answers) >= count, BOUND), self.answers
            return list(self.answers)


@pytest.fixture
def ray() -> Answers:
    return Answers()


@pytest.fixture
def delivered() -> Delivered:
    return Delivered()


@pytest.fixture
def answers(ray: Answers, delivered: Delivered) -> Iterator[RayAnswers]:
    made = RayAnswers(ray, delivered, "test")
    try:
        yield made
    finally:
        made.close()


def test_an_answer_no_hint_announced_is_found_by_the_poll(
    ray: Answers, delivered: Delivered, answers: RayAnswers
) -> None:
    for number in range(20):
        answers.watch(f"r{number}", f"owner{number}")
    for number in range(20):
        ray.set(f"r{number}", number)
    got = delivered.wait_for(20)
    assert sorted(got, key=lambda a: a[1]) == [(f"owner{n}", n, None) for n in range(20)]


def test_a_watch_while_nothing_is_in_flight_wakes_the_thread(
    ray: Answers, delivered: Delivered, answers: RayAnswers
) -> None:
    for round_number in range(20):  # each time the thread has gone back to sleep idle
        ref = f"r{round_number}"
        ray.set(ref, round_number)
        answers.watch(ref, round_number)
        assert delivered.wait_for(round_number + 1)[-1] == (round_number, round_number, None)


def test_a_hinted_answer_is_fetched_and_an_unwatched_one_never(
    ray: Answers, delivered: Delivered, answers: RayAnswers
) -> None:
    answers.watch("gone", "other way")
    answers.unwatch("gone")
    answers.watch("kept", "owner")
    ray.set("gone", "never fetched")
    ray.set("kept", "value")
    answers.hint("kept")
    assert delivered.wait_for(1) == [("owner", "value", None)]
    answers.watch("last", "last owner")  # a later delivery: "gone" had its chances
    ray.set("last", 1)
    assert delivered.wait_for(2)[1] == ("last owner", 1, None)
    assert "gone" not in ray.fetched


def test_a_failed_answer_is_that_tasks_error_and_the_others_still_arrive(
    ray: Answers, delivered: Delivered, answers: RayAnswers
) -> None:
    failure = RuntimeError("worker died")
    answers.watch("bad", "bad owner")
    answers.watch("good", "good owner")
    ray.set("bad", failure)
    ray.set("good", 7)
    answers.hint("bad")
    answers.hint("good")
    got = {owner: (value, error) for owner, value, error in delivered.wait_for(2)}
    assert got == {"bad owner": (None, failure), "good owner": (7, None)}
