"""RemoteCommits: the numbering and the host's answers that a child's or a Ray node's
checkpoint waits on, with a durable store (the child and node tests run it end to end)."""

from __future__ import annotations

import threading

import pytest

from actors._execution.published import NumberedWaiter, Published, RemoteCommits

WAIT = 10.0


def test_an_answer_covers_every_checkpoint_up_to_its_number() -> None:
    """Waiters are numbered 1, 2, 3; the answer for 2 releases 1 and 2, not 3."""
    commits = RemoteCommits()
    first, second, third = commits.waiter(), commits.waiter(), commits.waiter()
    assert [first.number, second.number, third.number] == [1, 2, 3]
    commits.answer(2, None)
    commits.wait(first, WAIT, "task-1")
    commits.wait(second, WAIT, "task-1")
    with pytest.raises(TimeoutError, match=r"task task-1: the host did not confirm within 0"):
        commits.wait(third, 0.0, "task-1")


def test_a_waiting_checkpoint_is_released_by_an_answer_from_another_thread() -> None:
    """The receiver's thread answers while the operation's thread waits."""
    commits = RemoteCommits()
    waiter = commits.waiter()
    waiting = threading.Event()
    released: list[BaseException | None] = []

    def operation() -> None:
        waiting.set()
        try:
            commits.wait(waiter, WAIT, "task-1")
            released.append(None)
        except BaseException as exc:
            released.append(exc)

    thread = threading.Thread(target=operation)
    thread.start()
    assert waiting.wait(WAIT)
    commits.answer(1, None)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert released == [None]


def test_an_older_answer_is_ignored_and_an_error_is_raised_with_its_reason() -> None:
    """The answer for 2 with an error stands; a late answer for 1 changes nothing."""
    commits = RemoteCommits()
    first, second = commits.waiter(), commits.waiter()
    commits.answer(2, "disk I/O error")
    commits.answer(1, None)
    for waiter in (first, second):
        with pytest.raises(RuntimeError, match="the checkpoint could not be kept: disk I/O"):
            commits.wait(waiter, WAIT, "task-1")


def test_the_number_sent_is_the_last_drained_waiters() -> None:
    """Published keeps the waiters of checkpoints it coalesced; the drained number is
    the last one's (0 when nothing waits)."""
    published = Published()
    commits = RemoteCommits()
    published.checkpoint('{"n": 1}', commits.waiter())
    published.checkpoint('{"n": 2}', commits.waiter())
    _, text, waiters = published.drain_signs()
    assert (text, NumberedWaiter.latest(waiters)) == ('{"n": 2}', 2)
    published.checkpoint('{"n": 3}')
    _, text, waiters = published.drain_signs()
    assert (text, NumberedWaiter.latest(waiters)) == ('{"n": 3}', 0)


def test_checkpoint_ships_then_waits_for_its_number_only_with_a_durable_store() -> None:
    """Without a wait it publishes and ships, and returns; with one, the published
    checkpoint carries the next number and the call returns once that number is
    answered (here from another thread, as the host's answer arrives)."""
    commits, published = RemoteCommits(), Published()
    shipped: list[bool] = []
    commits.checkpoint(published, '{"n": 1}', None, "task-1", shipped.append)
    assert shipped == [True]  # the first value since the last drain
    published.drain()  # as a reporter drains: progress and partial, then the signs
    _, checkpoint, waiters = published.drain_signs()
    assert (checkpoint, waiters) == ('{"n": 1}', [])

    answering = threading.Thread(target=lambda: commits.answer(1, None))

    def ship(first: bool) -> None:
        shipped.append(first)
        answering.start()  # the host answers only once the checkpoint has gone out

    commits.checkpoint(published, '{"n": 2}', WAIT, "task-1", ship)
    answering.join(WAIT)
    _, checkpoint, waiters = published.drain_signs()
    assert checkpoint == '{"n": 2}'
    assert NumberedWaiter.latest(waiters) == 1
    assert shipped == [True, True]
    with pytest.raises(TimeoutError):  # number 2 is never answered
        commits.checkpoint(published, '{"n": 3}', 0.0, "task-1", shipped.append)
