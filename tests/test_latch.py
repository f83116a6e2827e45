"""``Latch``, tested directly: a one-shot signal that is waited for or calls back."""

from __future__ import annotations

import threading

from actors._latch import Latch

WAIT = 10.0


def test_a_latch_is_waited_for_until_it_opens_and_stays_open() -> None:
    latch = Latch()
    assert latch.wait(0.0) is False
    opener = threading.Thread(target=latch._open)
    opener.start()
    assert latch.wait(WAIT) is True
    assert latch.wait(0.0) is True  # a second wait returns at once too
    opener.join(WAIT)


def test_a_callback_runs_once_whether_given_before_or_after_the_opening() -> None:
    before, after = Latch(), Latch()
    calls: list[str] = []
    before.on_done(lambda: calls.append("before"))
    assert calls == []
    before._open()
    after._open()
    after.on_done(lambda: calls.append("after"))
    assert calls == ["before", "after"]
