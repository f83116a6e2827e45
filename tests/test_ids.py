"""actors._ids.new_id: random identifiers without a system call each."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

from actors._ids import new_id

TIMEOUT = 30.0


def test_ids_are_canonical_random_uuid_text() -> None:
    """new_id: the text str(uuid.UUID(...)) gives back, version 4, RFC 4122 variant."""
    for _ in range(2_000):  # several batches
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def test_ids_are_unique_across_threads() -> None:
    """new_id from eight threads at once: 80,000 identifiers, no two alike."""
    results: list[list[str]] = [[] for _ in range(8)]
    go = threading.Event()

    def take(out: list[str]) -> None:
        go.wait(TIMEOUT)
        out.extend(new_id() for _ in range(10_000))

    threads = [threading.Thread(target=take, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(TIMEOUT)
    every = [text for out in results for text in out]
    assert len(every) == 80_000
    assert len(set(every)) == 80_000


def _child_ids(queue: multiprocessing.SimpleQueue[list[str]]) -> None:
    queue.put([new_id() for _ in range(100)])


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    """new_id after fork: the child drops the batch it inherited, so the ids the parent
    hands out next and the child's own never coincide."""
    new_id()  # a batch is now held, which the child inherits
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.SimpleQueue[list[str]] = context.SimpleQueue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    child_ids = queue.get()
    child.join(TIMEOUT)
    parent_ids = [new_id() for _ in range(100)]
    assert child.exitcode == 0
    assert not set(child_ids) & set(parent_ids)
