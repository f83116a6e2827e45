"""ManualClock and TimerService: exact virtual time, deadlines, cancellation, statistics.

The timer target is a real pykka ThreadingActor that records what it receives. A fired
timer is a ``tell``; an ``ask`` to the same recorder afterwards is queued behind it
(mailbox FIFO), so asking is how a test observes delivery without sleeping.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pykka
import pytest

from actors import Clock, ManualClock, SystemClock, TimerStatistics
from actors.lowlevel import TimerService
from actors.testing import wait_until

ASK_TIMEOUT = 5.0  # seconds; a recorder that does not answer in that time is stuck


# -- a recording target ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _GetMessages:
    """Ask the recorder for every message it has received so far."""


@dataclass(frozen=True)
class _GetArrivalTimes:
    """Ask the recorder for the real monotonic time each message arrived."""


@dataclass(frozen=True)
class _MakeGatedRef:
    """Ask the recorder for a ref to itself whose tell, from ``thread_name``, waits."""

    thread_name: str
    entered: threading.Event
    gate: threading.Event


class _GatedRef(pykka.ActorRef[Any]):
    """A real ref to the recorder; a tell from one named thread parks on a gate first.

    Models a timer thread that was descheduled between popping a due timer and
    telling it. The gate gives up after a quarter of a second on its own: a correct
    service makes ``advance`` wait that long; a broken one has returned long before.
    """

    def __init__(self, actor: pykka.Actor, request: _MakeGatedRef) -> None:
        super().__init__(actor)
        self._request = request

    def tell(self, message: Any) -> None:
        if threading.current_thread().name == self._request.thread_name:
            self._request.entered.set()
            self._request.gate.wait(timeout=0.25)
        super().tell(message)


class Recorder(pykka.ThreadingActor):
    """Records every message (and its real arrival time); sets ``arrived`` on each."""

    def __init__(self, arrived: threading.Event | None = None) -> None:
        super().__init__()
        self.messages: list[Any] = []
        self.arrival_times: list[float] = []
        self._arrived = arrived

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _GetMessages):
            return list(self.messages)
        if isinstance(message, _GetArrivalTimes):
            return list(self.arrival_times)
        if isinstance(message, _MakeGatedRef):
            return _GatedRef(self, message)
        self.messages.append(message)
        self.arrival_times.append(time.monotonic())
        if self._arrived is not None:
            self._arrived.set()
        return None


def received(ref: pykka.ActorRef[Any]) -> list[Any]:
    """What ``ref`` has received; the ask is queued behind every earlier tell."""
    messages: list[Any] = ref.ask(_GetMessages(), block=True, timeout=ASK_TIMEOUT)
    return messages


@pytest.fixture
def recorder() -> Iterator[pykka.ActorRef[Any]]:
    ref = Recorder.start()
    try:
        yield ref
    finally:
        ref.stop(block=True, timeout=ASK_TIMEOUT)


@pytest.fixture
def timers(clock: ManualClock) -> Iterator[TimerService]:
    service = TimerService(clock, name="test-timers")
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _thread_named(name: str) -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == name), None)


# -- ManualClock ----------------------------------------------------------------------------------


def test_a_manual_clock_starts_at_zero_elapsed_and_the_given_epoch_time() -> None:
    """ManualClock: monotonic() starts at 0.0, time() at start_time (default 2026-01-01Z)."""
    default = ManualClock()
    custom = ManualClock(start_time=1000.0)
    assert (default.monotonic(), default.time()) == (0.0, 1_767_225_600.0)
    assert (custom.monotonic(), custom.time()) == (0.0, 1000.0)


def test_advance_moves_monotonic_and_time_by_exactly_the_amount() -> None:
    """ManualClock.advance moves monotonic() and time() by exactly the seconds given."""
    clock = ManualClock(start_time=1000.0)
    clock.advance(0.5)
    assert (clock.monotonic(), clock.time()) == (0.5, 1000.5)
    clock.advance(0.25)
    clock.advance(2)  # an int is a number of seconds too
    clock.advance(0)  # a zero step is allowed and moves nothing
    assert (clock.monotonic(), clock.time()) == (2.75, 1002.75)


@pytest.mark.parametrize(
    ("seconds", "error"),
    [
        (-1.0, ValueError),
        (-1e-9, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-math.inf, ValueError),
        ("1", TypeError),
        (None, TypeError),
        (True, TypeError),
        ([1.0], TypeError),
    ],
)
def test_advance_rejects_a_bad_amount_and_leaves_the_clock_unchanged(
    seconds: Any, error: type[Exception]
) -> None:
    """ManualClock.advance: negative/NaN/inf -> ValueError, non-number -> TypeError; no move."""
    clock = ManualClock(start_time=1000.0)
    calls: list[float] = []
    clock.subscribe(lambda: calls.append(clock.monotonic()))
    with pytest.raises(error):
        clock.advance(seconds)
    assert (clock.monotonic(), clock.time(), calls) == (0.0, 1000.0, [])


@pytest.mark.parametrize(
    ("start_time", "error"),
    [(math.nan, ValueError), (math.inf, ValueError), ("2026", TypeError), (False, TypeError)],
)
def test_a_manual_clock_rejects_a_bad_start_time(start_time: Any, error: type[Exception]) -> None:
    """ManualClock(start_time): a non-finite value -> ValueError, a non-number -> TypeError."""
    with pytest.raises(error):
        ManualClock(start_time=start_time)


def test_subscribers_are_called_synchronously_after_the_clock_moved() -> None:
    """ManualClock: subscribers run in the advancing thread, in order, seeing the new time."""
    clock = ManualClock()
    calls: list[tuple[str, int, float]] = []
    clock.subscribe(lambda: calls.append(("first", threading.get_ident(), clock.monotonic())))
    clock.subscribe(lambda: calls.append(("second", threading.get_ident(), clock.monotonic())))
    clock.advance(1.5)
    me = threading.get_ident()
    assert [("first", me, 1.5), ("second", me, 1.5)] == calls


def test_unsubscribe_stops_the_notifications_and_is_idempotent() -> None:
    """ManualClock.subscribe returns an unsubscribe function; calling it twice is harmless."""
    clock = ManualClock()
    kept: list[float] = []
    dropped: list[float] = []
    clock.subscribe(lambda: kept.append(clock.monotonic()))
    unsubscribe = clock.subscribe(lambda: dropped.append(clock.monotonic()))
    clock.advance(1.0)
    unsubscribe()
    unsubscribe()
    clock.advance(1.0)
    assert (kept, dropped) == ([1.0, 2.0], [1.0])


def test_both_clocks_satisfy_the_clock_protocol_and_report_their_waits() -> None:
    """Clock protocol: a manual clock never asks a waiter to sleep; the real one counts down."""
    manual = ManualClock()
    system = SystemClock()
    assert (isinstance(manual, Clock), isinstance(system, Clock)) == (True, True)
    assert manual.seconds_until(10.0) is None
    assert system.seconds_until(time.monotonic() - 1.0) == 0.0
    an_hour_ahead = system.seconds_until(time.monotonic() + 3600.0)
    assert an_hour_ahead is not None
    assert an_hour_ahead > 3500.0  # a generous lower bound: the call itself takes time
    assert system.subscribe(lambda: None)() is None  # unsubscribing from real time is a no-op


# -- TimerService: firing -------------------------------------------------------------------------


def test_a_timer_fires_exactly_when_the_clock_reaches_its_deadline(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService: a deadline fires at clock >= deadline and not a hair (1e-9 s) before."""
    just_before = 5.0 - 1e-9
    deadline = just_before + 1e-9  # exactly what the clock will read after the two steps
    handle = timers.schedule_at(deadline, recorder, "due")
    clock.advance(just_before)
    assert just_before == clock.monotonic()
    assert received(recorder) == []
    assert timers.statistics().fired_total == 0
    clock.advance(1e-9)
    assert deadline == clock.monotonic()
    assert received(recorder) == ["due"]
    assert False is handle.armed


def test_a_timer_does_not_fire_one_ulp_before_its_deadline(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService: one representable float before the deadline is still too early."""
    one_ulp_before = math.nextafter(5.0, 0.0)
    timers.schedule_after(5.0, recorder, "due")
    clock.advance(one_ulp_before)
    assert received(recorder) == []
    clock.advance(5.0 - one_ulp_before)
    assert clock.monotonic() == 5.0
    assert received(recorder) == ["due"]


def test_schedule_after_measures_from_the_current_clock_reading(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService.schedule_after(d): deadline == clock.monotonic() + d at scheduling."""
    clock.advance(10.0)
    handle = timers.schedule_after(2.5, recorder, "x")
    assert handle.deadline == 12.5
    clock.advance(2.0)
    assert received(recorder) == []
    clock.advance(0.5)
    assert received(recorder) == ["x"]


def test_due_timers_have_been_told_when_advance_returns(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """ManualClock + TimerService: once advance returns, every due timer was told (many rounds)."""
    for round_no in range(1000):
        timers.schedule_after(1.0, recorder, round_no)
        clock.advance(1.0)
        assert round_no + 1 == len(received(recorder))
    assert list(range(1000)) == received(recorder)


def test_a_due_timer_taken_by_the_timer_thread_is_told_before_advance_returns(
    clock: ManualClock, recorder: pykka.ActorRef[Any]
) -> None:
    """ManualClock: a due timer is told before advance returns, even if the timer thread took it."""
    name = "gated-timers"
    entered = threading.Event()
    gate = threading.Event()
    gated: pykka.ActorRef[Any] = recorder.ask(
        _MakeGatedRef(name, entered, gate), block=True, timeout=ASK_TIMEOUT
    )
    holder: list[TimerService] = []

    def another_thread_arms_a_timer() -> None:
        # Subscribed before the service, so it runs inside advance after the clock moved
        # and before the service's own tick: it stands for a supervisor arming a deadline
        # at that moment, which wakes the timer thread, which pops what is due.
        holder[0].schedule_at(0.5, recorder, "armed-meanwhile")
        entered.wait(timeout=2.0)

    clock.subscribe(another_thread_arms_a_timer)
    service = TimerService(clock, name=name)
    holder.append(service)
    service.start()
    try:
        service.schedule_at(1.0, gated, "due")
        clock.advance(1.0)
        delivered = received(recorder)
    finally:
        gate.set()
        service.stop()
    assert delivered == ["armed-meanwhile", "due"]


def test_timers_fire_in_deadline_order_with_ties_in_scheduling_order(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService: fire order == (deadline, scheduling order), in one jump or in many steps."""
    rng = random.Random(20260101)
    for round_no in range(20):
        start = clock.monotonic()
        deadlines = [start + rng.choice(range(1, 41)) / 4 for _ in range(300)]  # many ties
        for index, deadline in enumerate(deadlines):
            timers.schedule_at(deadline, recorder, (round_no, index))
        if round_no % 2:
            clock.advance(10.0)
        else:
            while clock.monotonic() < start + 10.0:
                clock.advance(rng.choice([0.25, 0.5, 1.0, 1.75]))
        expected = [
            (round_no, index) for _, index in sorted((d, i) for i, d in enumerate(deadlines))
        ]
        assert expected == received(recorder)[-300:]
    assert timers.statistics().armed == 0


def test_tick_fires_past_deadlines_when_called_directly(recorder: pykka.ActorRef[Any]) -> None:
    """TimerService.tick (the loop body, no thread): fires what is due, returns how many."""
    clock = ManualClock()
    service = TimerService(clock)  # never started: the test is the loop
    try:
        service.schedule_at(-1.0, recorder, "past")
        service.schedule_at(0.0, recorder, "now")
        service.schedule_at(0.5, recorder, "future")
        assert service.tick() == 2
        assert service.tick() == 0
        assert received(recorder) == ["past", "now"]
        assert service.statistics().armed == 1
    finally:
        service.stop()


# -- TimerService: cancellation -------------------------------------------------------------------


def test_a_timer_cancelled_before_its_deadline_is_never_delivered(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService.cancel before the deadline: the message never reaches the target."""
    for round_no in range(200):
        cancelled = timers.schedule_after(1.0, recorder, ("cancelled", round_no))
        timers.schedule_after(1.0, recorder, ("kept", round_no))
        assert True is timers.cancel(cancelled)
        clock.advance(1.0)
    assert [("kept", n) for n in range(200)] == received(recorder)


def test_cancel_returns_true_once_then_false(
    timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService.cancel: True for the call that disarms, False for every later call."""
    handle = timers.schedule_after(1.0, recorder, "x")
    assert [timers.cancel(handle) for _ in range(3)] == [True, False, False]
    assert False is handle.armed
    assert timers.statistics().cancelled_total == 1


def test_cancel_after_the_timer_fired_returns_false(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService.cancel after firing: False, and the delivered message stays delivered."""
    handle = timers.schedule_after(1.0, recorder, "x")
    clock.advance(1.0)
    assert False is timers.cancel(handle)
    assert received(recorder) == ["x"]
    assert (timers.statistics().fired_total, timers.statistics().cancelled_total) == (1, 0)


def test_heap_compaction_keeps_armed_exact_after_tens_of_thousands_of_cancels(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService: statistics().armed == live timers through compactions and ticks."""
    rng = random.Random(7)
    count = 40_000
    handles = [timers.schedule_at(1.0 + i % 4000, recorder, i) for i in range(count)]
    assert count == timers.statistics().armed
    order = list(range(count))
    rng.shuffle(order)
    armed = set(range(count))
    cancelled: set[int] = set()
    fired: list[int] = []
    for step, index in enumerate(order[:38_000]):
        still_armed = index in armed  # an earlier advance may have fired it already
        assert still_armed is timers.cancel(handles[index])
        if still_armed:
            armed.discard(index)
            cancelled.add(index)
        if step % 3000 == 2999:  # fire a slice of the heap while stale entries are in it
            clock.advance(100.0)
            now = clock.monotonic()
            due = sorted((handles[i].deadline, i) for i in armed if handles[i].deadline <= now)
            fired.extend(i for _, i in due)
            armed.difference_update(i for _, i in due)
        assert len(armed) == timers.statistics().armed
    assert len(cancelled) > 25_000  # the scenario really cancelled tens of thousands
    clock.advance(4000.0)
    fired.extend(i for _, i in sorted((handles[i].deadline, i) for i in armed))
    assert timers.statistics().armed == 0
    delivered = received(recorder)
    assert fired == delivered
    assert set() == cancelled & set(delivered)
    assert (
        TimerStatistics(
            armed=0,
            scheduled_total=count,
            fired_total=count - len(cancelled),
            cancelled_total=len(cancelled),
            undeliverable_total=0,
        )
        == timers.statistics()
    )


def test_statistics_counters_are_exact(
    clock: ManualClock, timers: TimerService, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService.statistics: armed/scheduled/fired/cancelled/undeliverable are exact counts."""
    dead = Recorder.start()
    dead.stop(block=True, timeout=ASK_TIMEOUT)
    handles = [timers.schedule_at(float(i), recorder, i) for i in range(1, 11)]
    timers.schedule_at(2.5, dead, "lost")
    timers.cancel(handles[0])
    timers.cancel(handles[0])  # a second cancel counts nothing
    timers.cancel(handles[9])
    assert (
        TimerStatistics(
            armed=9, scheduled_total=11, fired_total=0, cancelled_total=2, undeliverable_total=0
        )
        == timers.statistics()
    )
    clock.advance(5.0)
    assert received(recorder) == [2, 3, 4, 5]
    assert (
        TimerStatistics(
            armed=4, scheduled_total=11, fired_total=5, cancelled_total=2, undeliverable_total=1
        )
        == timers.statistics()
    )


# -- TimerService: failures and lifecycle ---------------------------------------------------------


def test_a_dead_target_counts_as_undeliverable_and_the_service_carries_on(
    clock: ManualClock, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService: ActorDeadError on tell is counted in undeliverable_total, nothing dies."""
    name = "dead-target-timers"
    dead = Recorder.start()
    dead.stop(block=True, timeout=ASK_TIMEOUT)
    service = TimerService(clock, name=name)
    service.start()
    try:
        # Due at once and at the head of the heap: the timer thread itself fires it.
        service.schedule_at(-1.0, dead, "lost-on-thread")
        assert wait_until(lambda: service.statistics().undeliverable_total == 1, timeout=5.0)
        thread = _thread_named(name)
        assert thread is not None
        assert True is thread.is_alive()
        # And in the advancing thread: advance does not raise.
        service.schedule_after(1.0, dead, "lost-on-advance")
        service.schedule_after(1.0, recorder, "delivered")
        clock.advance(1.0)
        assert received(recorder) == ["delivered"]
        assert (
            service.statistics().fired_total,
            service.statistics().undeliverable_total,
        ) == (3, 2)
        assert True is thread.is_alive()
    finally:
        service.stop()


def test_schedule_after_stop_raises_runtime_error(
    clock: ManualClock, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService: no timer can be armed once stopped; the error names the service."""
    service = TimerService(clock, name="stopped-timers")
    service.start()
    service.stop()
    with pytest.raises(RuntimeError, match="stopped-timers is stopped"):
        service.schedule_at(1.0, recorder, "x")
    with pytest.raises(RuntimeError, match="stopped-timers is stopped"):
        service.schedule_after(1.0, recorder, "x")


def test_start_twice_raises_runtime_error(clock: ManualClock) -> None:
    """TimerService.start: a second start is refused (one thread per service)."""
    service = TimerService(clock, name="twice-timers")
    service.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            service.start()
    finally:
        service.stop()


def test_stop_joins_the_thread_and_is_idempotent(clock: ManualClock) -> None:
    """TimerService.stop(): the thread has ended when it returns; a second stop is a no-op."""
    name = "joined-timers"
    service = TimerService(clock, name=name)
    service.start()
    thread = _thread_named(name)
    assert thread is not None
    service.stop()
    assert False is thread.is_alive()
    service.stop()
    assert False is thread.is_alive()


def test_stop_drops_armed_timers_and_unsubscribes_from_the_clock(
    clock: ManualClock, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerService.stop: armed timers are dropped (never delivered), armed becomes 0."""
    service = TimerService(clock)
    service.start()
    for i in range(5):
        service.schedule_after(1.0, recorder, i)
    service.stop()
    clock.advance(10.0)
    assert received(recorder) == []
    assert (service.statistics().armed, service.statistics().fired_total) == (0, 0)


def test_cancelling_a_timer_dropped_by_stop_keeps_armed_at_zero(
    clock: ManualClock, recorder: pykka.ActorRef[Any]
) -> None:
    """TimerStatistics.armed counts live timers: it never goes negative after stop()."""
    service = TimerService(clock)
    service.start()
    handle = service.schedule_after(1.0, recorder, "dropped")
    service.stop()
    service.cancel(handle)
    assert service.statistics().armed == 0


# -- real time ------------------------------------------------------------------------------------


def test_a_timer_on_the_system_clock_fires_after_its_deadline() -> None:
    """TimerService + SystemClock: a 50 ms timer is delivered no earlier than 50 ms later."""
    arrived = threading.Event()
    ref = Recorder.start(arrived)
    service = TimerService(SystemClock(), name="real-timers")
    service.start()
    try:
        scheduled_at = time.monotonic()
        service.schedule_after(0.05, ref, "tick")
        assert True is arrived.wait(timeout=5.0)
        arrivals: list[float] = ref.ask(_GetArrivalTimes(), block=True, timeout=ASK_TIMEOUT)
        [arrival] = arrivals
    finally:
        service.stop()
        ref.stop(block=True, timeout=ASK_TIMEOUT)
    # Lower bound exact: the deadline was read from the same monotonic clock after
    # scheduled_at. Upper bound only says "it did fire": 5 s of slack for a loaded machine.
    assert arrival >= scheduled_at + 0.05
    assert arrival < scheduled_at + 5.0


class _Flag(pykka.ThreadingActor):
    """Sets ``fired`` when told ``"due-now"``."""

    def __init__(self, fired: threading.Event) -> None:
        super().__init__()
        self._fired = fired

    def on_receive(self, message: Any) -> None:
        if message == "due-now":
            self._fired.set()


def _keep_arming(timers: TimerService, target: pykka.ActorRef[Any], stop: threading.Event) -> None:
    deadline = 10_000.0
    while not stop.is_set():
        deadline -= 1
        timers.schedule_at(deadline, target, "future")  # each one the new earliest


def test_a_timer_armed_already_due_fires_even_while_the_thread_is_between_ticks() -> None:
    """With a manual clock (which never moves by itself), a timer armed for a time that
    has already come must still fire, whatever the timer thread was doing: here it is
    kept busy by a stream of new earliest timers, so the due one often arrives between
    its tick and its wait (it used to sleep through it until the clock moved: about one
    trial in ten lost it)."""
    for trial in range(60):
        clock = ManualClock()
        timers = TimerService(clock, name=f"race-{trial}")
        timers.start()
        fired = threading.Event()
        flag = _Flag.start(fired)
        stop = threading.Event()

        arming = threading.Thread(target=_keep_arming, args=(timers, flag, stop))
        arming.start()
        try:
            time.sleep(0.002)  # let the arming thread get going (not an assertion wait)
            timers.schedule_at(clock.monotonic(), flag, "due-now")
        finally:
            stop.set()
            arming.join()
        try:
            assert fired.wait(5), f"trial {trial}: the due timer never fired"
        finally:
            timers.stop()
            flag.stop()
