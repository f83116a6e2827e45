"""PooledActor on a Dispatcher: a real pykka actor without a thread of its own.

Every blocking call has a timeout (pykka asks included), every actor is stopped and
every dispatcher shut down before a test ends (the autouse fixture checks it).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pykka
import pytest

from actors.lowlevel import Dispatcher, PooledActor

TIMEOUT = 5.0  # seconds any single ask / stop / join may take before the test fails


# -- messages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Get:
    """Ask for everything the probe handled, in order."""


@dataclass(frozen=True)
class Add:
    a: int
    b: int


@dataclass(frozen=True)
class Boom:
    message: str


@dataclass(frozen=True)
class Block:
    """Hold the dispatcher thread until ``release`` is set (tests only: handlers must not block)."""

    entered: threading.Event
    release: threading.Event


@dataclass
class Observed:
    """What a probe saw: messages in handling order, handler threads, overlaps."""

    messages: list[Any] = field(default_factory=list)
    thread_ids: set[int] = field(default_factory=set)
    overlaps: int = 0


# -- the probe actor ------------------------------------------------------------------------------


class Probe(PooledActor):
    """Records every message with the handling thread; counts handlers that overlapped."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        sequence: Callable[[], int] | None = None,
        stopped: threading.Event | None = None,
        failed: threading.Event | None = None,
        sink: list[Any] | None = None,
        yield_gil: bool = False,
    ) -> None:
        super().__init__(dispatcher=dispatcher)
        self._sink = sink
        self._yield_gil = yield_gil
        self._seen = Observed()
        self._inside = 0
        self._lock = threading.Lock()
        self._sequence = sequence
        self._stopped = stopped
        self._failed = failed

    def on_receive(self, message: Any) -> Any:
        with self._lock:
            self._inside += 1
            if self._inside > 1:
                self._seen.overlaps += 1
        try:
            if self._yield_gil:
                time.sleep(0)  # yield the GIL: an overlapping turn, if any, would run now
            return self._handle(message)
        finally:
            with self._lock:
                self._inside -= 1

    def _handle(self, message: Any) -> Any:
        if isinstance(message, Get):
            return Observed(
                list(self._seen.messages), set(self._seen.thread_ids), self._seen.overlaps
            )
        self._seen.thread_ids.add(threading.get_ident())
        if isinstance(message, Add):
            return message.a + message.b
        if isinstance(message, Boom):
            raise ValueError(message.message)
        if isinstance(message, Block):
            message.entered.set()
            message.release.wait(timeout=TIMEOUT)
            return None
        stamp = message if self._sequence is None else (self._sequence(), message)
        self._seen.messages.append(stamp)
        if self._sink is not None:
            self._sink.append(stamp)
        return None

    def on_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def on_failure(self, *exc_info: Any) -> None:
        if self._failed is not None:
            self._failed.set()


def observed(ref: pykka.ActorRef[Any]) -> Observed:
    result: Observed = ref.ask(Get(), block=True, timeout=TIMEOUT)
    return result


def settle(futures: list[pykka.Future[Any]], outcomes: dict[str, int]) -> None:
    """Wait for each future (at most TIMEOUT each); count values, ActorDeadErrors and
    futures still unresolved (``timeout``) into ``outcomes``."""
    for future in futures:
        try:
            future.get(timeout=TIMEOUT)
            outcomes["value"] += 1
        except pykka.ActorDeadError:
            outcomes["dead"] += 1
        except pykka.Timeout:
            outcomes["timeout"] += 1


def registered_urns() -> set[str]:
    return {ref.actor_urn for ref in pykka.ActorRegistry.get_all()}


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    """A one-thread dispatcher; every actor started on it is stopped before shutdown."""
    pool = Dispatcher(1, name="test-dispatch")
    try:
        yield pool
    finally:
        for ref in pykka.ActorRegistry.get_by_class(Probe):
            ref.stop(block=True, timeout=TIMEOUT)
        pool.shutdown(wait=True)


@pytest.fixture
def dispatcher4() -> Iterator[Dispatcher]:
    """A four-thread dispatcher, so that a broken actor could run on two threads at once."""
    pool = Dispatcher(4, name="test-dispatch4")
    try:
        yield pool
    finally:
        for ref in pykka.ActorRegistry.get_by_class(Probe):
            ref.stop(block=True, timeout=TIMEOUT)
        pool.shutdown(wait=True)


# -- order and exclusion --------------------------------------------------------------------------


def test_messages_are_handled_in_order_one_at_a_time(dispatcher4: Dispatcher) -> None:
    """PooledActor: per-sender order is kept; one actor never runs two handlers at once."""
    senders, per_sender, actors_per_round = 4, 300, 6
    for _round in range(5):
        refs = [
            Probe.start(dispatcher=dispatcher4, yield_gil=True) for _ in range(actors_per_round)
        ]

        def send(sender: int, refs: list[pykka.ActorRef[Any]] = refs) -> None:
            for k in range(per_sender):
                for ref in refs:
                    ref.tell((sender, k))

        threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        for ref in refs:
            seen = observed(ref)
            assert seen.overlaps == 0
            for sender in range(senders):
                assert list(range(per_sender)) == [k for s, k in seen.messages if s == sender]
            assert senders * per_sender == len(seen.messages)
        for ref in refs:
            assert True is ref.stop(block=True, timeout=TIMEOUT)


def test_ask_returns_the_handlers_value(dispatcher: Dispatcher) -> None:
    """PooledActor.ask: the reply is the handler's return value, in the order asked."""
    ref = Probe.start(dispatcher=dispatcher)
    assert ref.ask(Add(2, 3), timeout=TIMEOUT) == 5
    futures = [ref.ask(Add(i, i), block=False) for i in range(100)]
    assert [2 * i for i in range(100)] == [f.get(timeout=TIMEOUT) for f in futures]


def test_an_exception_in_an_ask_handler_goes_back_to_the_asker(dispatcher: Dispatcher) -> None:
    """PooledActor: a handler's exception is raised in the asker; the actor keeps running."""
    ref = Probe.start(dispatcher=dispatcher)
    with pytest.raises(ValueError, match=r"^bad frame$"):
        ref.ask(Boom("bad frame"), timeout=TIMEOUT)
    assert True is ref.is_alive()
    assert ref.ask(Add(1, 2), timeout=TIMEOUT) == 3


def test_an_exception_in_a_told_handler_stops_the_actor_and_fails_later_asks(
    dispatcher: Dispatcher,
) -> None:
    """PooledActor (pykka contract): an unhandled exception calls on_failure and stops the actor."""
    failed = threading.Event()
    ref = Probe.start(dispatcher=dispatcher, failed=failed)
    ref.tell(Boom("unhandled"))
    assert True is failed.wait(timeout=TIMEOUT)
    assert ref.actor_urn not in registered_urns()
    with pytest.raises(pykka.ActorDeadError):
        ref.ask(Add(1, 1), timeout=TIMEOUT)


# -- stopping -------------------------------------------------------------------------------------


def test_stop_runs_on_stop_and_the_actor_leaves_the_registry(dispatcher: Dispatcher) -> None:
    """PooledActor.stop: on_stop has run and the ref is unregistered when stop() returns."""
    stopped = threading.Event()
    ref = Probe.start(dispatcher=dispatcher, stopped=stopped)
    ref.tell("before")
    assert ref.actor_urn in registered_urns()
    assert True is ref.stop(block=True, timeout=TIMEOUT)
    assert (stopped.is_set(), ref.is_alive()) == (True, False)
    assert ref.actor_urn not in registered_urns()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("after")
    assert False is ref.stop(block=True, timeout=TIMEOUT)  # already dead


def test_messages_told_before_stop_are_handled_first(dispatcher: Dispatcher) -> None:
    """PooledActor.stop (pykka contract): messages sent before stop are processed before it."""
    for _round in range(50):
        handled: list[Any] = []
        ref = Probe.start(dispatcher=dispatcher, sink=handled)
        for i in range(150):  # more than one dispatcher turn's batch
            ref.tell(i)
        assert True is ref.stop(block=True, timeout=TIMEOUT)
        assert handled == list(range(150))


def test_asks_queued_behind_a_stop_get_actor_dead_error(dispatcher: Dispatcher) -> None:
    """PooledActor: an ask queued after stop() gets ActorDeadError, it is never left hanging."""
    for _round in range(100):
        ref = Probe.start(dispatcher=dispatcher)
        entered, release = threading.Event(), threading.Event()
        ref.tell(Block(entered, release))
        assert True is entered.wait(timeout=TIMEOUT)
        stop = ref.stop(block=False)
        behind = [ref.ask(Add(i, 1), block=False) for i in range(5)]
        release.set()
        assert True is stop.get(timeout=TIMEOUT)
        for future in behind:
            with pytest.raises(pykka.ActorDeadError):
                future.get(timeout=TIMEOUT)


def test_asks_racing_a_stop_are_all_answered(dispatcher4: Dispatcher) -> None:
    """PooledActor: every ask racing stop() resolves (a value or ActorDeadError), none times out."""
    outcomes: dict[str, int] = {"value": 0, "dead": 0, "timeout": 0}
    for round_no in range(150):
        ref = Probe.start(dispatcher=dispatcher4)
        asking = threading.Event()
        futures: list[pykka.Future[Any]] = []

        def ask_many(
            ref: pykka.ActorRef[Any] = ref,
            asking: threading.Event = asking,
            futures: list[pykka.Future[Any]] = futures,
            skew: int = round_no,
        ) -> None:
            for i in range(40):
                futures.append(ref.ask(Add(i, 0), block=False))
                if i == skew % 20:
                    asking.set()  # the stop goes out while the asks keep coming
                if asking.is_set():
                    time.sleep(0)  # let the stopping thread interleave with these asks

        asker = threading.Thread(target=ask_many)
        asker.start()
        assert True is asking.wait(timeout=TIMEOUT)
        assert True is ref.stop(block=True, timeout=TIMEOUT)
        asker.join(TIMEOUT)
        settle(futures, outcomes)
    assert outcomes["timeout"] == 0
    assert outcomes["value"] + outcomes["dead"] == 150 * 40
    assert outcomes["value"] > 0
    assert outcomes["dead"] > 0  # both sides of the race were exercised


def test_stop_when_idle_stops_an_idle_actor_in_the_calling_thread(dispatcher: Dispatcher) -> None:
    """PooledActor.stop_when_idle on an idle actor: on_stop ran in the caller's thread and
    the actor left the registry before it returned; later tells find it dead."""
    for _round in range(50):
        stopped = threading.Event()
        actor = Probe.spawn(dispatcher=dispatcher, stopped=stopped)
        ref = actor.actor_ref
        assert observed(ref).messages == []  # one turn, over before the next line
        actor.stop_when_idle()
        assert (stopped.is_set(), ref.is_alive()) == (True, False)
        assert ref.actor_urn not in registered_urns()
        with pytest.raises(pykka.ActorDeadError):
            ref.tell("after")
        actor.stop_when_idle()  # idempotent


def test_stop_when_idle_behind_a_running_turn_stops_after_the_queued_messages(
    dispatcher: Dispatcher,
) -> None:
    """PooledActor.stop_when_idle while a turn runs: a stop message queued behind the
    messages already told; all of them are handled, then the actor stops."""
    for _round in range(30):
        handled: list[Any] = []
        stopped = threading.Event()
        actor = Probe.spawn(dispatcher=dispatcher, sink=handled, stopped=stopped)
        entered, release = threading.Event(), threading.Event()
        actor.actor_ref.tell(Block(entered, release))
        assert True is entered.wait(timeout=TIMEOUT)
        for i in range(100):
            actor.actor_ref.tell(i)
        actor.stop_when_idle()
        assert actor.actor_ref.is_alive()  # not stopped under the running turn
        release.set()
        assert True is stopped.wait(timeout=TIMEOUT)
        assert handled == list(range(100))


def test_stop_when_idle_racing_tells_from_other_threads_loses_no_ask(
    dispatcher4: Dispatcher,
) -> None:
    """PooledActor.stop_when_idle racing asks from another thread: each ask is answered
    (a value or ActorDeadError); none is left unresolved."""
    outcomes = {"value": 0, "dead": 0, "timeout": 0}
    for round_no in range(200):
        actor = Probe.spawn(dispatcher=dispatcher4)
        futures: list[pykka.Future[Any]] = []
        started = threading.Event()

        def ask_many(
            ref: pykka.ActorRef[Any] = actor.actor_ref,
            futures: list[pykka.Future[Any]] = futures,
            started: threading.Event = started,
        ) -> None:
            started.set()
            for i in range(30):
                try:
                    futures.append(ref.ask(Add(i, 0), block=False))
                except pykka.ActorDeadError:
                    return
                time.sleep(0)

        asker = threading.Thread(target=ask_many)
        asker.start()
        assert True is started.wait(timeout=TIMEOUT)
        for _ in range(round_no % 7):
            time.sleep(0)
        actor.stop_when_idle()
        asker.join(TIMEOUT)
        assert not asker.is_alive()
        assert True is actor.actor_stopped.wait(TIMEOUT)
        settle(futures, outcomes)
    assert outcomes["timeout"] == 0  # every ask was answered: a value or ActorDeadError
    assert outcomes["value"] > 0  # asks did reach the live actor in some rounds


def _record_wait(flag: threading.Event, results: list[bool]) -> None:
    results.append(flag.wait(TIMEOUT))


def test_actor_stopped_wakes_every_waiter_set_at_any_moment(dispatcher: Dispatcher) -> None:
    """PooledActor.actor_stopped (an Event whose Condition is made on first wait): a
    wait that races the stop from another thread always wakes; over many rounds the
    stop lands before, during and after the waiters start."""
    for round_no in range(300):
        actor = Probe.spawn(dispatcher=dispatcher)
        flag = actor.actor_stopped
        results: list[bool] = []
        waiters = [threading.Thread(target=_record_wait, args=(flag, results)) for _ in range(2)]
        for waiter in waiters[: round_no % 3]:
            waiter.start()
        actor.stop_when_idle()
        for waiter in waiters[round_no % 3 :]:
            waiter.start()
        for waiter in waiters:
            waiter.join(TIMEOUT)
        assert results == [True, True]
        assert flag.is_set()


def test_actor_stopped_wait_times_out_while_the_actor_lives(dispatcher: Dispatcher) -> None:
    """PooledActor.actor_stopped.wait(timeout) on a live actor: False after the timeout."""
    actor = Probe.spawn(dispatcher=dispatcher)
    assert (actor.actor_stopped.wait(0.01), actor.actor_stopped.is_set()) == (False, False)
    actor.stop_when_idle()
    assert actor.actor_stopped.wait(0) is True


def test_a_pooled_actor_has_every_field_pykka_gives_an_actor(dispatcher: Dispatcher) -> None:
    """PooledActor.__init__ sets pykka.Actor's fields itself (for a cheaper URN): it must
    set all of them, so a pykka release that adds one fails here, not in production."""

    class Plain(pykka.ThreadingActor):
        pass

    plain = Plain()  # constructed only: a ThreadingActor starts its thread in start()
    actor = Probe.spawn(dispatcher=dispatcher)
    assert set(vars(plain)) <= set(vars(actor))
    assert isinstance(actor.actor_stopped, threading.Event)
    assert isinstance(actor.actor_ref, pykka.ActorRef)
    actor.stop_when_idle()


def test_an_ask_that_lands_after_stop_when_idle_is_still_answered(dispatcher: Dispatcher) -> None:
    """PooledActor.stop_when_idle, then a message put into the mailbox by an asker that
    saw the actor alive just before it stopped (the race, made certain by putting the
    envelope directly): the asker gets ActorDeadError instead of waiting forever."""
    from pykka._envelope import Envelope

    for _round in range(20):
        actor = Probe.spawn(dispatcher=dispatcher)
        actor.stop_when_idle()
        late: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        actor.actor_inbox.put(Envelope(Add(1, 1), reply_to=late))
        with pytest.raises(pykka.ActorDeadError):
            late.get(timeout=TIMEOUT)


def test_pooled_actor_urns_are_unique_uuid_urns(dispatcher: Dispatcher) -> None:
    """PooledActor's URN (not from uuid4()): still a distinct urn:uuid: per actor."""
    actors = [Probe.spawn(dispatcher=dispatcher) for _ in range(300)]
    urns = [actor.actor_urn for actor in actors]
    assert len(set(urns)) == 300
    assert all(uuid.UUID(urn.removeprefix("urn:uuid:")).version == 4 for urn in urns)
    for actor in actors:
        actor.stop_when_idle()


# -- sharing one thread ---------------------------------------------------------------------------


def test_500_pooled_actors_share_one_dispatcher_thread() -> None:
    """Dispatcher(1): 500 live pooled actors get every message on one OS thread, no other."""
    baseline = threading.active_count()
    pool = Dispatcher(1, name="shared-dispatch")
    refs: list[pykka.ActorRef[Any]] = []
    try:
        refs = [Probe.start(dispatcher=pool) for _ in range(500)]
        assert baseline + 1 == threading.active_count()
        for k in range(20):
            for ref in refs:
                ref.tell(k)
        assert baseline + 1 == threading.active_count()
        seen = [observed(ref) for ref in refs]
        assert baseline + 1 == threading.active_count()
        assert [list(range(20))] * 500 == [s.messages for s in seen]
        assert len(set().union(*(s.thread_ids for s in seen))) == 1
    finally:
        stops = [ref.stop(block=False) for ref in refs]
        for stop in stops:
            stop.get(timeout=TIMEOUT)
        pool.shutdown(wait=True)


def test_a_busy_actor_does_not_starve_another(dispatcher: Dispatcher) -> None:
    """Dispatcher fairness: one message to B is handled before A finishes 10,000 queued ones."""
    for _round in range(3):
        sequence = itertools.count()
        gate = Probe.start(dispatcher=dispatcher)
        busy = Probe.start(dispatcher=dispatcher, sequence=sequence.__next__)
        other = Probe.start(dispatcher=dispatcher, sequence=sequence.__next__)
        entered, release = threading.Event(), threading.Event()
        gate.tell(Block(entered, release))  # hold the only thread while the mailboxes fill
        assert True is entered.wait(timeout=TIMEOUT)
        for i in range(10_000):
            busy.tell(("busy", i))
        other.tell(("other", 0))
        release.set()
        busy_seen, other_seen = observed(busy).messages, observed(other).messages
        assert len(busy_seen) == 10_000
        [(other_at, _)] = other_seen
        busy_last = busy_seen[-1][0]
        assert other_at < busy_last  # handled while the busy actor still had a backlog
        assert [("busy", i) for i in range(10_000)] == [m for _, m in busy_seen]
        for ref in (gate, busy, other):
            ref.stop(block=True, timeout=TIMEOUT)


# -- the dispatcher -------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [0, -1])
def test_a_dispatcher_needs_at_least_one_thread(threads: int) -> None:
    """Dispatcher(threads < 1) raises ValueError naming the count."""
    with pytest.raises(ValueError, match=f"got {threads}"):
        Dispatcher(threads)


def test_dispatcher_shutdown_joins_its_threads() -> None:
    """Dispatcher.shutdown(wait=True): once its actors are stopped, no dispatcher thread is left."""
    pool = Dispatcher(3, name="closing-dispatch")
    refs = [Probe.start(dispatcher=pool) for _ in range(30)]
    for ref in refs:
        ref.tell("work")
    assert [observed(ref).messages for ref in refs] == [["work"]] * 30
    for ref in refs:
        ref.stop(block=True, timeout=TIMEOUT)
    threads = [t for t in threading.enumerate() if t.name.startswith("closing-dispatch")]
    assert 1 <= len(threads) <= 3
    pool.shutdown(wait=True)
    assert [False] * len(threads) == [t.is_alive() for t in threads]


def test_dispatcher_shutdown_runs_the_turns_already_queued() -> None:
    """Dispatcher.shutdown: messages (and a stop) told before it are all handled, past a batch."""
    pool = Dispatcher(1, name="draining-dispatch")
    handled: list[Any] = []
    stopped = threading.Event()
    ref = Probe.start(dispatcher=pool, sink=handled, stopped=stopped)
    try:
        entered, release = threading.Event(), threading.Event()
        ref.tell(Block(entered, release))
        assert True is entered.wait(timeout=TIMEOUT)
        for i in range(200):  # three dispatcher batches' worth
            ref.tell(i)
        ref.stop(block=False)
        pool.shutdown(wait=False)
        release.set()
        pool.shutdown(wait=True)
        assert handled == list(range(200))
        assert True is stopped.is_set()
    finally:
        if ref.is_alive():
            # The dispatcher is gone, so stop() could never be handled: drop the actor
            # from the registry so the leak check reports this test's failure only.
            pykka.ActorRegistry.unregister(ref)
