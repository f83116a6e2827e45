"""``ResourceSlots``: the host's resources (``TaskRuntime(resources=...)``), who holds
what, and the line of tasks waiting for theirs: plain state the supervisor owns (tested
directly in tests/test_resource_slots.py).

A task that asks for resources (``create_task(..., resources={"gpu": 1})``) takes all of
them at once when it starts and gives all of them back when its attempt has really ended
(a stopping operation keeps what it holds, as it keeps its slot); it never holds part of
a request, so two tasks can never each hold half of what the other needs.

**The rule.** Tasks wait in one line, in the pending queue's order: higher priority
first, then submission order (``seq``). A task may take its resources when, for every
resource it asks for, what is free minus what the tasks *ahead of it in the line* ask
for is at least its amount. A task that cannot start reserves its request for the tasks
behind it. So a task behind never takes what a task ahead needs: a large request is held
up only by the tasks running and the tasks ahead of it (higher priority, or the same
priority and submitted earlier), never by smaller ones behind it, and it starts once
those have ended (every request fits the capacity: a larger one is refused when it is
made). A small task behind may still start at once when what it takes leaves enough for
everyone ahead (a task waiting for ``gpu`` does not hold up one asking only for
``render_license``).

**GPUs.** The resource ``gpu`` counts whole devices; the ledger also knows which device
indices (``0`` to ``capacity - 1``) are free, and a holding names the ones it got (a
child process sees them in ``CUDA_VISIBLE_DEVICES``).

Amounts are kept as exact fractions of the decimals given (``0.1`` is one tenth, so ten
tasks asking for 0.1 fill a capacity of 1), so taking and giving back any sequence of
amounts never drifts from the capacity. Reads from other threads
(:meth:`held_by`, :meth:`waiting_for`) are one dictionary lookup each, of an immutable
value; every change is the supervisor's. Each change of what a task holds or waits for
is told to the listener (:meth:`listen`: the runtime tells the registry, which shows it
in the task's status), in the order the changes are made.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from actors._enums import Isolation
from actors._errors import ResourcesUnavailableError
from actors._resources import Resources, check_resources

__all__ = [
    "GPU",
    "HOST_ISOLATIONS",
    "Holding",
    "ResourceSlots",
    "ResourceStats",
    "check_capacity",
]

GPU = "gpu"
"""The resource whose amounts are whole devices with indices."""

HOST_ISOLATIONS = frozenset({Isolation.THREAD, Isolation.PROCESS, Isolation.ASYNC})
"""Where a task's resources are this host's (its ledger): another isolation (Ray) has
them checked and held where it runs."""

P = TypeVar("P")  # what a waiting task carries (the supervisor's spec)
Key = tuple[int, int]  # (-priority, seq): the line's order


@dataclass(frozen=True, slots=True)
class Holding:
    """What one task holds: its request, and the GPU indices it got (sorted)."""

    resources: Resources
    gpus: tuple[int, ...] = ()


Listener = Callable[[str, Holding | None, Resources | None], None]
"""Told ``(task_id, what it holds now, what it waits for now)`` after each change."""


@dataclass(frozen=True, slots=True)
class ResourceStats:
    """The ledger at one moment: per resource its capacity and amount in use, how many
    tasks hold resources, how many wait for them, and the free GPU indices."""

    capacity: Mapping[str, float]
    in_use: Mapping[str, float]
    holders: int
    waiting: int
    free_gpus: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class _Waiter(Generic[P]):
    key: Key
    task_id: str
    request: Resources
    lane: Hashable
    payload: P


def check_capacity(value: Any) -> Resources | None:
    """A runtime's ``resources`` argument: None, or a map of names to amounts, with
    ``gpu`` (if declared) a whole number of devices."""
    capacity = check_resources("resources", value)
    if capacity is not None and GPU in capacity and not capacity[GPU].is_integer():
        raise ValueError(
            f"resources: {GPU!r} counts whole devices, got {capacity[GPU]!r}; declare "
            f"the number of GPUs, such as {{'gpu': 2}}"
        )
    return capacity


class ResourceSlots(Generic[P]):
    """The ledger and the line (see the module docstring)."""

    __slots__ = (
        "_capacity",
        "_free_gpus",
        "_holds",
        "_in_use",
        "_line",
        "_listener",
        "_waiting",
        "waiters",
    )

    def __init__(self, capacity: Resources | None = None) -> None:
        self._capacity: dict[str, Fraction] = {
            name: _exact(amount) for name, amount in (capacity or {}).items()
        }
        self._in_use: dict[str, Fraction] = dict.fromkeys(self._capacity, Fraction(0))
        self._free_gpus: list[int] = list(range(int(self._capacity.get(GPU, 0))))
        self._holds: dict[str, Holding] = {}
        self._waiting: dict[str, _Waiter[P]] = {}
        # Read-only and live: the waiting tasks by id, for the dispatcher's hot path (a
        # truth test, not a call of the ``waiting`` property).
        self.waiters: Mapping[str, object] = MappingProxyType(self._waiting)
        self._line: list[tuple[Key, str]] = []  # sorted: the line's order
        self._listener: Listener | None = None

    def listen(self, listener: Listener | None) -> None:
        """Tell ``listener`` every change of what a task holds or waits for (one at a
        time: set it before the first change)."""
        self._listener = listener

    def _changed(self, task_id: str) -> None:
        listener = self._listener
        if listener is not None:
            waiter = self._waiting.get(task_id)
            listener(task_id, self._holds.get(task_id), None if waiter is None else waiter.request)

    # -- the refusal at submission ---------------------------------------------------------

    def check(self, request: Resources) -> None:
        """Raise :class:`ResourcesUnavailableError` for a request this host can never
        give: a resource it does not declare, more than its capacity, or part of a GPU."""
        for name, amount in request.items():
            capacity = self._capacity.get(name)
            if capacity is None:
                declared = ", ".join(f"{n}={float(c):g}" for n, c in self._capacity.items())
                raise ResourcesUnavailableError(
                    f"resource {name!r} is not declared by this manager (it has "
                    f"{declared or 'no resources'}): declare it with "
                    f"TaskManager(resources={{{name!r}: ...}}) or leave it out of the task",
                    resource=name,
                )
            if _exact(amount) > capacity:
                raise ResourcesUnavailableError(
                    f"the task asks for {amount:g} of resource {name!r}, more than the "
                    f"manager's capacity of {float(capacity):g}, so it could never start: "
                    f"ask for at most {float(capacity):g}",
                    resource=name,
                )
            if name == GPU and not amount.is_integer():
                raise ResourcesUnavailableError(
                    f"resource {GPU!r} counts whole devices on this host, got {amount:g}: "
                    "ask for a whole number of GPUs",
                    resource=name,
                )

    def satisfiable(self, request: Resources) -> bool:
        """Whether :meth:`check` passes (a task recovered from a store was checked by
        another runtime, perhaps with other resources)."""
        try:
            self.check(request)
        except ResourcesUnavailableError:
            return False
        return True

    # -- the rule -----------------------------------------------------------------------------

    def may_take(self, request: Resources, key: Key) -> bool:
        """Whether a task at ``key`` in the line may take ``request`` now: it fits in what
        is free once every waiting task ahead of it has its request set aside."""
        reserved: dict[str, Fraction] = {}
        for ahead_key, task_id in self._line:
            if ahead_key >= key:
                break
            _add(reserved, self._waiting[task_id].request)
        return self._fits(request, reserved)

    def next_admitted(self, lane: Hashable) -> tuple[Key, P] | None:
        """The first waiting task of ``lane`` that :meth:`may_take` its request now, and
        its key (still in the line: :meth:`withdraw` it to start it); None if none."""
        reserved: dict[str, Fraction] = {}
        for _, task_id in self._line:
            waiter = self._waiting[task_id]
            if waiter.lane == lane and self._fits(waiter.request, reserved):
                return waiter.key, waiter.payload
            _add(reserved, waiter.request)
        return None

    def _fits(self, request: Resources, reserved: Mapping[str, Fraction]) -> bool:
        for name, amount in request.items():
            capacity = self._capacity.get(name)
            if capacity is None:
                return False
            free = capacity - self._in_use[name] - reserved.get(name, Fraction(0))
            if _exact(amount) > free:
                return False
        return True

    # -- holding ------------------------------------------------------------------------------

    def take(self, task_id: str, request: Resources) -> Holding:
        """``task_id`` takes all of ``request`` (the caller checked :meth:`may_take`);
        a request that is not free, or a second holding of one task, is refused."""
        if task_id in self._holds:
            raise ValueError(f"task {task_id} already holds resources")
        if not self._fits(request, {}):
            raise ValueError(f"task {task_id}: {dict(request)} is not free")
        gpus: tuple[int, ...] = ()
        if GPU in request:
            count = int(request[GPU])
            gpus = tuple(self._free_gpus[:count])
            del self._free_gpus[:count]
        for name, amount in request.items():
            self._in_use[name] += _exact(amount)
        holding = Holding(request, gpus)
        self._holds[task_id] = holding
        self._changed(task_id)
        return holding

    def release(self, task_id: str) -> Holding | None:
        """``task_id``'s attempt has really ended: what it held is free (None: it held
        nothing)."""
        holding = self._holds.pop(task_id, None)
        if holding is None:
            return None
        for name, amount in holding.resources.items():
            self._in_use[name] -= _exact(amount)
        if holding.gpus:
            self._free_gpus.extend(holding.gpus)
            self._free_gpus.sort()
        self._changed(task_id)
        return holding

    # -- the line -----------------------------------------------------------------------------

    def wait(self, task_id: str, key: Key, request: Resources, lane: Hashable, payload: P) -> None:
        """``task_id`` could not take ``request``: it waits in the line at ``key``."""
        if task_id in self._waiting:
            raise ValueError(f"task {task_id} is already waiting for resources")
        self._waiting[task_id] = _Waiter(key, task_id, request, lane, payload)
        bisect.insort(self._line, (key, task_id))
        self._changed(task_id)

    def withdraw(self, task_id: str) -> P | None:
        """Take ``task_id`` out of the line (it starts, or is cancelled); its payload, or
        None if it was not waiting."""
        waiter = self._waiting.pop(task_id, None)
        if waiter is None:
            return None
        index = bisect.bisect_left(self._line, (waiter.key, task_id))
        del self._line[index]
        self._changed(task_id)
        return waiter.payload

    def take_all_waiting(self) -> list[P]:
        """Every waiting task's payload, in the line's order, taken out (shutdown)."""
        taken = [self._waiting[task_id].payload for _, task_id in self._line]
        ids = [task_id for _, task_id in self._line]
        self._waiting.clear()
        self._line.clear()
        for task_id in ids:
            self._changed(task_id)
        return taken

    # -- reads --------------------------------------------------------------------------------

    @property
    def capacity(self) -> Resources | None:
        return Resources({n: float(c) for n, c in self._capacity.items()}) or None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def waiting_ids(self) -> Iterable[str]:
        """The waiting tasks' ids, in the line's order."""
        return [task_id for _, task_id in self._line]

    def held_by(self, task_id: str) -> Holding | None:
        """What ``task_id`` holds (any thread: one lookup)."""
        return self._holds.get(task_id)

    def gpus_of(self, task_id: str) -> tuple[int, ...]:
        """The GPU indices ``task_id`` holds (any thread; empty when it holds none)."""
        holding = self._holds.get(task_id)
        return () if holding is None else holding.gpus

    def waiting_for(self, task_id: str) -> Resources | None:
        """What ``task_id`` waits for, all of it, while it is in the line (any thread)."""
        waiter = self._waiting.get(task_id)
        return None if waiter is None else waiter.request

    def statistics(self) -> ResourceStats:
        return ResourceStats(
            capacity={n: float(c) for n, c in self._capacity.items()},
            in_use={n: float(u) for n, u in self._in_use.items()},
            holders=len(self._holds),
            waiting=len(self._waiting),
            free_gpus=tuple(self._free_gpus),
        )


def _add(reserved: dict[str, Fraction], request: Resources) -> None:
    for name, amount in request.items():
        reserved[name] = reserved.get(name, Fraction(0)) + _exact(amount)


def _exact(amount: float) -> Fraction:
    """The decimal a float was written as (its shortest repr), as an exact fraction."""
    return Fraction(repr(float(amount)))
