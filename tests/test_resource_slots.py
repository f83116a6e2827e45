"""``ResourceSlots``, the host's resource ledger and the line of tasks waiting for
theirs, tested directly: the refusals, whole holdings and GPU indices, and the rule
(the queue's order across sizes; a task behind never takes what one ahead needs),
including hypothesis runs of random requests and releases that never over-commit and
never starve a request."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import Resources, ResourcesUnavailableError
from actors._core.resource_slots import Holding, ResourceSlots, check_capacity

LANE = "workers"


def slots(**capacity: float) -> ResourceSlots[str]:
    return ResourceSlots(Resources(capacity))


def test_a_request_for_an_undeclared_resource_names_it_and_the_capacity() -> None:
    ledger = slots(gpu=2, vram_gb=80)
    with pytest.raises(ResourcesUnavailableError, match="'tpu' is not declared") as caught:
        ledger.check(Resources(tpu=1))
    assert caught.value.resource == "tpu"
    assert "gpu=2, vram_gb=80" in str(caught.value)


def test_a_request_over_the_capacity_is_refused_naming_the_capacity() -> None:
    ledger = slots(gpu=2, vram_gb=80)
    with pytest.raises(ResourcesUnavailableError, match="capacity of 80") as caught:
        ledger.check(Resources(gpu=1, vram_gb=81))
    assert caught.value.resource == "vram_gb"
    ledger.check(Resources(gpu=2, vram_gb=80))  # all of it is a valid request


def test_gpus_are_whole_devices() -> None:
    with pytest.raises(ResourcesUnavailableError, match="whole devices"):
        slots(gpu=2).check(Resources(gpu=0.5))
    with pytest.raises(ValueError, match="counts whole devices"):
        check_capacity({"gpu": 1.5})
    assert check_capacity({}) is None
    with pytest.raises(TypeError, match="mapping"):
        check_capacity(["gpu"])


def test_no_capacity_refuses_every_request() -> None:
    with pytest.raises(ResourcesUnavailableError, match="no resources"):
        ResourceSlots[str]().check(Resources(gpu=1))


def test_a_holding_takes_whole_amounts_and_the_lowest_free_gpu_indices() -> None:
    ledger = slots(gpu=3, vram_gb=80)
    first = ledger.take("a", Resources(gpu=2, vram_gb=24))
    second = ledger.take("b", Resources(gpu=1))
    assert (first.gpus, second.gpus) == ((0, 1), (2,))
    assert ledger.statistics().in_use == {"gpu": 3.0, "vram_gb": 24.0}
    with pytest.raises(ValueError, match="is not free"):
        ledger.take("c", Resources(gpu=1))
    assert ledger.release("a") == first
    assert ledger.release("a") is None  # once
    assert ledger.take("c", Resources(gpu=1)).gpus == (0,)
    assert ledger.statistics().free_gpus == (1,)
    assert ledger.gpus_of("c") == (0,)
    assert ledger.gpus_of("a") == ()


def test_fractional_amounts_never_drift() -> None:
    """Ten takes of 0.1 fill a capacity of 1 exactly, and giving them back empties it."""
    ledger = slots(share=1)
    for n in range(10):
        assert ledger.may_take(Resources(share=0.1), (0, n))
        ledger.take(str(n), Resources(share=0.1))
    assert not ledger.may_take(Resources(share=0.1), (0, 10))
    for n in range(10):
        ledger.release(str(n))
    assert ledger.statistics().in_use == {"share": 0.0}


def test_a_large_request_ahead_holds_back_smaller_ones_behind_it() -> None:
    """With one of two GPUs in use, a task asking for two waits; a later task of the
    same priority asking for one may not take the free GPU (the one ahead needs it), but
    one asking only for another resource may start."""
    ledger = slots(gpu=2, license=1)
    ledger.take("running", Resources(gpu=1))
    large = Resources(gpu=2)
    assert not ledger.may_take(large, (0, 1))
    ledger.wait("large", (0, 1), large, LANE, "large")
    assert not ledger.may_take(Resources(gpu=1), (0, 2))
    assert ledger.may_take(Resources(license=1), (0, 3))
    assert ledger.waiting_for("large") == large
    ledger.release("running")
    assert ledger.next_admitted(LANE) == ((0, 1), "large")


def test_the_listener_hears_each_change_in_order() -> None:
    """Every change of what a task holds or waits for is told, after it is made, as
    (task, holding, request waited for): take, wait, withdraw, release, and the line
    emptied at shutdown; a release of a task holding nothing tells nothing."""
    ledger = slots(gpu=2)
    heard: list[tuple[str, object, object]] = []
    ledger.listen(lambda task_id, holding, waiting: heard.append((task_id, holding, waiting)))
    one, two = Resources(gpu=1), Resources(gpu=2)
    held = ledger.take("a", one)
    ledger.wait("b", (0, 2), two, LANE, "b")
    ledger.wait("c", (0, 3), one, LANE, "c")
    ledger.withdraw("b")
    ledger.release("a")
    ledger.release("a")
    ledger.take_all_waiting()
    assert heard == [
        ("a", Holding(one, (0,)), None),
        ("b", None, two),
        ("c", None, one),
        ("b", None, None),
        ("a", None, None),
        ("c", None, None),
    ]
    assert held == Holding(one, (0,))


def test_a_higher_priority_request_is_ahead_whatever_its_size() -> None:
    """A higher-priority task (key -20) submitted later is ahead of a waiting normal
    one, so it may take what the waiting one needs; a lower-priority one may not."""
    ledger = slots(gpu=2)
    ledger.take("running", Resources(gpu=1))
    ledger.wait("large", (-10, 1), Resources(gpu=2), LANE, "large")
    assert ledger.may_take(Resources(gpu=1), (-20, 5))
    assert not ledger.may_take(Resources(gpu=1), (0, 2))


def test_the_first_admitted_task_of_a_lane_is_found_past_blocked_ones() -> None:
    """The line is walked in order; a blocked task reserves its request, one of another
    lane that fits reserves it too, and the first of the lane that fits is returned."""
    ledger = slots(gpu=2, license=2)
    ledger.take("running", Resources(gpu=1))
    ledger.wait("big", (0, 1), Resources(gpu=2), LANE, "big")
    ledger.wait("other-lane", (0, 2), Resources(license=1), "async", "other-lane")
    ledger.wait("small-gpu", (0, 3), Resources(gpu=1), LANE, "small-gpu")
    ledger.wait("licence", (0, 4), Resources(license=1), LANE, "licence")
    assert ledger.next_admitted(LANE) == ((0, 4), "licence")
    assert ledger.next_admitted("async") == ((0, 2), "other-lane")
    assert ledger.withdraw("licence") == "licence"
    assert ledger.next_admitted(LANE) is None
    assert list(ledger.waiting_ids()) == ["big", "other-lane", "small-gpu"]
    assert ledger.take_all_waiting() == ["big", "other-lane", "small-gpu"]
    assert ledger.waiting == 0


_NAMES = ("gpu", "vram_gb", "license")
_CAPACITY = {"gpu": 4, "vram_gb": 80, "license": 2}
_request = st.dictionaries(st.sampled_from(_NAMES), st.integers(1, 4), min_size=1, max_size=3).map(
    lambda amounts: Resources(
        {n: min(a * (20 if n == "vram_gb" else 1), _CAPACITY[n]) for n, a in amounts.items()}
    )
)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(-1, 1), _request),
        st.tuples(st.just("finish"), st.integers(0, 50), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_random_requests_and_releases_never_over_commit_nor_starve(
    steps: list[tuple[str, int, Resources | None]],
) -> None:
    """A dispatcher as the supervisor's (the head of the ready order against the first
    admitted waiter), over random submissions of random priorities and sizes and random
    ends: in use never exceeds the capacity, GPU indices are never held twice, a task
    never takes what a waiting task ahead of it needs (checked against the test's own
    account of the line), and once everything running ends every task has run."""
    ledger: ResourceSlots[str] = ResourceSlots(Resources(_CAPACITY))
    requests: dict[str, Resources] = {}
    keys: dict[str, tuple[int, int]] = {}
    ready: list[str] = []  # not yet seen by the dispatcher
    running: list[str] = []
    started: list[str] = []

    def free(name: str) -> Fraction:
        in_use = sum(
            (Fraction(requests[t][name]) for t in running if name in requests[t]), Fraction(0)
        )
        return Fraction(_CAPACITY[name]) - in_use

    def start(task: str) -> None:
        request = requests[task]
        ahead = [t for t in ledger.waiting_ids() if keys[t] < keys[task]]
        holding = ledger.take(task, request)
        running.append(task)
        started.append(task)
        for name in request:
            assert free(name) >= 0, "over-committed"
            needed_ahead = sum((Fraction(requests[t].get(name, 0)) for t in ahead), Fraction(0))
            taken_before = free(name) + Fraction(request[name])
            # It took only from what was left beyond the needs of those ahead.
            assert taken_before - needed_ahead >= Fraction(request[name])
        held = [g for t in running for g in ledger.gpus_of(t)]
        assert len(held) == len(set(held)) == sum(int(requests[t].get("gpu", 0)) for t in running)
        assert len(holding.gpus) == int(request.get("gpu", 0))

    def dispatch() -> None:
        while True:
            admitted = ledger.next_admitted(LANE) if ledger.waiting else None
            head = min(ready, key=keys.__getitem__) if ready else None
            if admitted is not None and (head is None or admitted[0] < keys[head]):
                ledger.withdraw(admitted[1])
                start(admitted[1])
                continue
            if head is None:
                return
            ready.remove(head)
            if ledger.may_take(requests[head], keys[head]):
                start(head)
            else:
                ledger.wait(head, keys[head], requests[head], LANE, head)

    for seq, (kind, number, request) in enumerate(steps):
        if kind == "submit":
            assert request is not None
            task = f"t{seq}"
            requests[task], keys[task] = request, (-number, seq)
            ready.append(task)
        elif running:
            task = running.pop(number % len(running))
            assert ledger.release(task) is not None
        dispatch()
    while running:  # everything ends: every waiting task gets its turn
        ledger.release(running.pop(0))
        dispatch()
    assert ledger.waiting == 0
    assert sorted(started) == sorted(requests)
    assert ledger.statistics().in_use == dict.fromkeys(_CAPACITY, 0.0)


def test_waiters_is_a_live_read_only_view_of_the_line() -> None:
    """The dispatcher tests ``waiters`` instead of calling ``waiting``: it follows each
    wait, withdrawal and take-all, and cannot be written through."""
    ledger = slots(gpu=1)
    view = ledger.waiters
    assert not view
    assert ledger.waiting == 0
    ledger.take("running", Resources(gpu=1))
    ledger.wait("a", (0, 1), Resources(gpu=1), LANE, "a")
    ledger.wait("b", (0, 2), Resources(gpu=1), LANE, "b")
    assert set(view) == {"a", "b"}
    assert ledger.waiting == 2
    assert ledger.withdraw("a") == "a"
    assert set(view) == {"b"}
    assert ledger.waiting == 1
    assert ledger.take_all_waiting() == ["b"]
    assert not view
    assert ledger.waiting == 0
    with pytest.raises(TypeError):
        view["c"] = None  # type: ignore[index]
