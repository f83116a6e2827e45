"""One attempt on a Ray node without Ray: ``ray_driver.run_attempt`` called in this
thread (as a Ray worker calls it in the task's own thread), against a real host channel
on loopback whose attempt answers like the host's.

What the host relies on: the operation runs in the calling thread and an operation that
publishes nothing starts no thread; what it publishes arrives before its answer, and the
answer says how much did; the host's interrupt reaches the operation while it runs, is
repeated until it leaves, and never escapes after it; a refused go never runs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from actors._execution import ray_driver
from actors._execution.interrupt import TaskInterrupted
from tests.channel_host import BOUND, SECRET, Host, Peer
from tests.spinner import Spinner

_keys = iter(range(1, 1_000_000))
_LIVE: dict[int, Any] = {}  # the operations of this module's attempts, by key


def _live(key: int) -> Any:
    return _LIVE[key]


class _InThisProcess:
    """Pickles as a reference to a live object of this process: the test's own operation
    (with its state, or a local function) is what the attempt unpickles and calls."""

    def __init__(self, value: Any) -> None:
        self.key = id(value)
        _LIVE[self.key] = value

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (_live, (self.key,))


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    monkeypatch.setattr(ray_driver, "_node_id", lambda: "node-a")  # no Ray worker here
    made = Host()
    try:
        yield made
    finally:
        made.close()


class Answering(Peer):
    """The host's side of one attempt: says go (or no) on ``started``, after any
    ``before_go`` messages, and notes the rest."""

    def __init__(self, host: Host, key: int, *, go: bool = True, before_go: tuple[str, ...] = ()):
        super().__init__()
        self._host, self._key, self._go, self._before_go = host, key, go, before_go

    def on_started(self, worker_pid: int, node_id: str) -> None:
        super().on_started(worker_pid, node_id)
        for kind in self._before_go:
            self._host.channel.send((kind, self._key))
        self._host.channel.send(("go", self._key, self._go))

    def send(self, *message: Any) -> None:
        self._host.call(self._host.channel.send, (message[0], self._key, *message[1:]))

    def answer(self) -> tuple[Any, ...]:
        heard = self.wait_until("answer")
        return heard[1:]

    def wait_until(self, kind: str) -> tuple[Any, ...]:
        with self.changed:
            assert self.changed.wait_for(lambda: any(h[0] == kind for h in self.heard), BOUND)
            return next(h for h in self.heard if h[0] == kind)


def _attempt(host: Host, operation: Any, **answering: Any) -> tuple[bytes, Answering]:
    key = next(_keys)
    peer = Answering(host, key, **answering)
    host.call(host.channel.attach, key, peer)
    work = ray_driver.pickle.dumps((_InThisProcess(operation), {"n": 3}, {}, None, None))
    argument = ray_driver.attempt_argument(key, f"t{key}", work, (host.host, host.port, SECRET), 5)
    return argument, peer


def _threads() -> set[int]:
    return {thread.ident for thread in threading.enumerate() if thread.ident is not None}


class NoOp:
    def __init__(self) -> None:
        self.thread: int | None = None
        self.threads: set[int] = set()

    def __call__(self, params: dict[str, Any], task: Any) -> int:
        self.thread, self.threads = threading.get_ident(), _threads()
        return int(params["n"]) * 2


def test_an_operation_that_publishes_nothing_runs_here_and_starts_no_thread(host: Host) -> None:
    operation = NoOp()
    argument, peer = _attempt(host, operation)
    ray_driver.run_attempt(argument)  # warm: the process's link to the host is made
    argument, peer = _attempt(host, operation)
    before = _threads()
    assert ray_driver.run_attempt(argument) is None  # the answer went on the channel
    assert operation.thread == threading.get_ident()
    assert operation.threads == before
    kind, blob, sent, last = peer.answer()
    assert (kind, ray_driver.pickle.loads(blob), sent, last) == ("completed", 6, 0, None)
    assert [h[0] for h in peer.heard] == ["started", "answer"]


def _publishing(params: dict[str, Any], task: Any) -> str:
    for step in range(1, 201):
        task.update_progress(step / 200)
        task.partial_result = {"step": step}
        if step % 50 == 0:
            time.sleep(ray_driver.PROGRESS_INTERVAL * 2)  # let a shipment go
    return "done"


def test_what_an_operation_publishes_arrives_before_its_answer_which_counts_it(
    host: Host,
) -> None:
    argument, peer = _attempt(host, _publishing)
    assert ray_driver.run_attempt(argument) is None
    kind, blob, sent, last = peer.answer()
    assert (kind, ray_driver.pickle.loads(blob)) == ("completed", "done")
    progress = [h for h in peer.heard if h[0] == "progress"]
    assert 1 <= len(progress) == sent < 200  # coalesced, and every one counted
    assert peer.heard.index(progress[-1]) < peer.heard.index(peer.wait_until("answer"))
    fractions = [h[1] for h in progress] + ([last[0]] if last is not None else [])
    assert fractions == sorted(fractions)  # in order
    assert fractions[-1] == 1.0  # and the latest


def _run_in_thread(argument: bytes) -> tuple[threading.Thread, list[Any]]:
    returned: list[Any] = []
    thread = threading.Thread(target=lambda: returned.append(ray_driver.run_attempt(argument)))
    thread.start()
    return thread, returned


@pytest.mark.parametrize("swallow", [0, 2])
def test_the_hosts_interrupt_reaches_the_operation_until_it_leaves(
    host: Host, swallow: int
) -> None:
    spinner = Spinner(swallow)
    argument, peer = _attempt(host, spinner)
    thread, returned = _run_in_thread(argument)
    assert spinner.entered.wait(BOUND)
    peer.send("interrupt")  # once: the node repeats it while the operation runs
    thread.join(BOUND)
    assert not thread.is_alive()
    assert returned == [None]
    kind, facts, _, _ = peer.answer()
    assert (kind, facts[0], spinner.interrupts_seen) == (
        "raised",
        "actors._execution.interrupt.TaskInterrupted",
        swallow + 1,
    )


def test_an_interrupt_never_lands_after_the_operation_left(host: Host) -> None:
    """Interrupts keep coming while short operations end, over many rounds: none of them
    escapes ``run_attempt`` or reaches the code that runs after it."""

    def short(params: dict[str, Any], task: Any) -> int:
        return sum(range(200))

    for _ in range(200):
        argument, peer = _attempt(host, short, before_go=("interrupt",) * 3)
        try:
            answer = ray_driver.run_attempt(argument)
            for _ in range(100):  # Python calls: a pending interrupt would land here
                _threads()
        except TaskInterrupted:
            pytest.fail("an interrupt escaped the attempt")
        assert answer is None
        kind = peer.answer()[0]
        assert kind in ("completed", "raised")


def test_an_interrupt_heard_before_the_go_is_raised_as_the_operation_starts(host: Host) -> None:
    finished = threading.Event()

    def slow(params: dict[str, Any], task: Any) -> None:
        for _ in range(10_000_000):
            pass
        finished.set()

    argument, peer = _attempt(host, slow, before_go=("interrupt",))
    assert ray_driver.run_attempt(argument) is None
    kind, facts, _, _ = peer.answer()
    assert (kind, facts[0]) == ("raised", "actors._execution.interrupt.TaskInterrupted")
    assert not finished.is_set()


def test_a_refused_go_never_runs_the_operation(host: Host) -> None:
    operation = NoOp()
    argument, peer = _attempt(host, operation, go=False)
    assert ray_driver.run_attempt(argument) is None
    assert peer.answer() == ("refused",)
    assert operation.thread is None
