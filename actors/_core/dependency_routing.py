"""``DependencyRouting``: where a task with dependencies goes, and what an end means for
the tasks waiting on it, as the messages the supervisor is told.

The registry owns it: it sees every terminal transition in order, so it alone can
resolve dependencies without a race. The graph of who waits on whom is a
:class:`DependencyGraph`; this object turns its answers into the supervisor's messages
(``Submit`` with the results, ``SubmitBlocked``, ``DependenciesMet``, ``DropBlocked``)
and hands back the failures the registry records (which cascade down the chain). It is
tested directly, with a lookup of records and a list for what it tells.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from actors._core.dependencies import DependencyGraph, Lookup, results_of, unmet
from actors._core.messages import DependenciesMet, DropBlocked, Submit, SubmitBlocked
from actors._enums import TaskStatus
from actors._outcome import DependencyFailed, Outcome
from actors._records import TaskRecord, TaskSpec

__all__ = ["DependencyRouting"]

Failures = list[tuple[str, Outcome]]
"""Tasks to end, with why (each may have dependents of its own)."""


class DependencyRouting:
    """The registry's dependency rules: ``lookup`` reads a record, ``tell`` reaches the
    supervisor."""

    def __init__(self, lookup: Lookup, tell: Callable[[object], None]) -> None:
        self._lookup = lookup
        self._tell = tell
        self._graph = DependencyGraph()

    def __len__(self) -> int:
        """How many pending tasks wait for a dependency."""
        return len(self._graph)

    def unknown(self, spec: TaskSpec) -> list[str]:
        """The dependencies ``spec`` may not name: missing ones and, for a task with a
        user, another user's (which read as unknown, so a dependency reveals neither
        its existence nor its result)."""
        user = spec.options.user
        unknown = []
        for task_id in spec.options.depends_on:
            record = self._lookup(task_id)
            if record is None or (user is not None and record.options.user != user):
                unknown.append(task_id)
        return unknown

    def route(self, spec: TaskSpec) -> tuple[str, DependencyFailed | None]:
        """Forward a registered pending task with dependencies to the supervisor:
        ``"ready"`` (all completed: submitted with their results), ``"waiting"``
        (blocked until they end) or ``"failed"`` (one failed or was cancelled: dropped,
        and the failure returned for the registry to record)."""
        remaining, failure = unmet(self._lookup, spec.options.depends_on)
        if failure is not None:
            self._tell(SubmitBlocked(spec))
            self._tell(DropBlocked(spec.task_id))
            return "failed", failure
        if not remaining:
            results = results_of(self._lookup, spec.options.depends_on)
            self._tell(Submit(replace(spec, dependency_results=results)))
            return "ready", None
        self._graph.wait_for(spec.task_id, spec.options.depends_on, remaining)
        self._tell(SubmitBlocked(spec))
        return "waiting", None

    def has_dependents(self, task_id: str) -> bool:
        return self._graph.has_dependents(task_id)

    def ended(self, record: TaskRecord) -> Failures:
        """``record`` just became terminal: release or drop the tasks waiting on it;
        returns the failures to record."""
        resolution = self._graph.resolved(
            record.task_id, completed=record.status is TaskStatus.COMPLETED
        )
        for task_id, depends_on in resolution.released:
            self._tell(DependenciesMet(task_id, results_of(self._lookup, depends_on)))
        failure = DependencyFailed(record.task_id, record.status.value)
        for task_id in resolution.failed:
            self._tell(DropBlocked(task_id))
        return [(task_id, failure) for task_id in resolution.failed]

    def forget(self, task_id: str) -> None:
        """``task_id`` ended: it waits for nothing any more."""
        self._graph.forget(task_id)

    def rederive(self, pending: Iterable[TaskRecord]) -> Failures:
        """After a rebuild: the graph again from the pending records; those whose
        dependencies all completed meanwhile are released, those with a failed one
        dropped (their failures returned)."""
        found = self._graph.rederive(self._lookup, pending)
        for task_id, results in found.released:
            self._tell(DependenciesMet(task_id, results))
        for task_id, _ in found.failed:
            self._tell(DropBlocked(task_id))
        return list(found.failed)
