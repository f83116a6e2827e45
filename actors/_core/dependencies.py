"""``DependencyGraph``: the pending tasks that wait for other tasks, as plain state.

The registry owns it (it sees every terminal transition in order) and is its only user.
For each waiting task it keeps the ids it depends on and those still to complete; for
each awaited task, who waits on it. :meth:`resolved` applies one task's end to its
dependents: a completion releases those with nothing left to wait for, any other end
fails them all. The registry turns the answer into messages and outcomes; this class
knows nothing of either, so it is tested directly. Two functions read what the records
say of a task's dependencies (:func:`unmet`, :func:`results_of`), given a lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from actors._enums import TaskStatus
from actors._outcome import DependencyFailed
from actors._records import TaskRecord

__all__ = ["DependencyGraph", "Rederived", "Resolution", "results_of", "unmet"]

Lookup = Callable[[str], TaskRecord | None]
"""A task's record by id (None: unknown, or removed by retention)."""


def unmet(lookup: Lookup, depends_on: tuple[str, ...]) -> tuple[set[str], DependencyFailed | None]:
    """The dependencies not completed yet, or the failure of the first that ended
    otherwise (an unknown one counts as cancelled)."""
    remaining: set[str] = set()
    for dependency_id in depends_on:
        dependency = lookup(dependency_id)
        status = TaskStatus.CANCELLED if dependency is None else dependency.status
        if status is TaskStatus.COMPLETED:
            continue
        if status.is_terminal:
            return remaining, DependencyFailed(dependency_id, status.value)
        remaining.add(dependency_id)
    return remaining, None


def results_of(lookup: Lookup, depends_on: tuple[str, ...]) -> dict[str, object]:
    """Each dependency's result, by id (None for one no longer known)."""
    results: dict[str, object] = {}
    for dependency_id in depends_on:
        dependency = lookup(dependency_id)
        results[dependency_id] = None if dependency is None else dependency.result
    return results


@dataclass(slots=True)
class Resolution:
    """What one task's end means for the tasks that waited on it."""

    # Now free to run: (task id, every id it depends on, for their results).
    released: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # to end with DependencyFailed


@dataclass(slots=True)
class Rederived:
    """What the records say of the pending tasks' dependencies, after a restart."""

    # Nothing left to wait for: (task id, each dependency's result). Released already,
    # or its release was lost: the supervisor starts it only if it still holds it.
    released: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    failed: list[tuple[str, DependencyFailed]] = field(default_factory=list)


class DependencyGraph:
    """Who waits on whom. Invariant: ``t`` waits on ``d`` exactly when ``d`` is among
    ``t``'s remaining dependencies, and a task with none remaining is not waiting."""

    def __init__(self) -> None:
        # waiting task -> (all its dependencies, the ones not completed yet)
        self._waiting: dict[str, tuple[tuple[str, ...], set[str]]] = {}
        self._dependents: dict[str, list[str]] = {}  # awaited task -> who waits on it

    def __len__(self) -> int:
        return len(self._waiting)

    def is_waiting(self, task_id: str) -> bool:
        return task_id in self._waiting

    def has_dependents(self, task_id: str) -> bool:
        return task_id in self._dependents

    def remaining(self, task_id: str) -> frozenset[str]:
        """The dependencies ``task_id`` still waits for (empty if it is not waiting)."""
        entry = self._waiting.get(task_id)
        return frozenset() if entry is None else frozenset(entry[1])

    def wait_for(self, task_id: str, depends_on: tuple[str, ...], remaining: set[str]) -> None:
        """``task_id`` waits until every id in ``remaining`` (non-empty) has completed."""
        if not remaining:
            raise ValueError(f"task {task_id} has nothing left to wait for")
        if task_id in self._waiting:
            raise ValueError(f"task {task_id} is already waiting for its dependencies")
        self._waiting[task_id] = (depends_on, set(remaining))
        for dependency_id in remaining:
            self._dependents.setdefault(dependency_id, []).append(task_id)

    def resolved(self, task_id: str, *, completed: bool) -> Resolution:
        """``task_id`` ended (``completed`` or not): release or fail its dependents."""
        resolution = Resolution()
        for dependent in self._dependents.pop(task_id, []):
            entry = self._waiting.get(dependent)
            if entry is None:
                continue  # already failed through another dependency
            depends_on, remaining = entry
            if completed:
                remaining.discard(task_id)
                if not remaining:
                    del self._waiting[dependent]
                    resolution.released.append((dependent, depends_on))
                continue
            self.forget(dependent)
            resolution.failed.append(dependent)
        return resolution

    def forget(self, task_id: str) -> None:
        """``task_id`` no longer waits (it was cancelled, or failed another way)."""
        entry = self._waiting.pop(task_id, None)
        if entry is None:
            return
        for dependency_id in entry[1]:
            dependents = self._dependents.get(dependency_id)
            if dependents is not None and task_id in dependents:
                dependents.remove(task_id)
                if not dependents:
                    del self._dependents[dependency_id]

    def clear(self) -> None:
        self._waiting.clear()
        self._dependents.clear()

    def rederive(self, lookup: Lookup, pending: Iterable[TaskRecord]) -> Rederived:
        """Forget everything, then wait again for what ``pending`` (every pending
        record) still depends on, as the records now say; returns the tasks with
        nothing left to wait for and those whose dependency ended otherwise."""
        self.clear()
        found = Rederived()
        for record in pending:
            depends_on = record.options.depends_on
            if not depends_on:
                continue
            remaining, failure = unmet(lookup, depends_on)
            if failure is not None:
                found.failed.append((record.task_id, failure))
            elif remaining:
                self.wait_for(record.task_id, depends_on, remaining)
            else:
                found.released.append((record.task_id, results_of(lookup, depends_on)))
        return found
