"""``GroupIndex``: which retained tasks belong to each group, as plain state.

The registry owns it and keeps it in step with the table: a member is added when its
task is registered, removed when retention removes the task, and the whole index is
derived again from the records after a restart. A group with no retained member is
not in the index, so "no such group" and "every member cleaned up" read the same.
"""

from __future__ import annotations

from collections.abc import Iterable

from actors._records import TaskRecord

__all__ = ["GroupIndex"]


class GroupIndex:
    """Member ids by group id, in registration order. Invariant: no group is empty."""

    def __init__(self, records: Iterable[TaskRecord] = ()) -> None:
        self._members: dict[str, list[str]] = {}
        self.rebuild(records)

    def rebuild(self, records: Iterable[TaskRecord]) -> None:
        """Derive the index from ``records`` (every retained one) again."""
        self._members = {}
        for record in records:
            self.add(record)

    def add(self, record: TaskRecord) -> None:
        group_id = record.options.group_id
        if group_id is not None:
            self._members.setdefault(group_id, []).append(record.task_id)

    def members(self, group_id: str) -> tuple[str, ...]:
        """The group's retained member ids (empty: no such group, or none retained)."""
        return tuple(self._members.get(group_id, ()))

    def remove(self, records: Iterable[TaskRecord]) -> None:
        """Retention removed ``records``: they are no longer members of anything."""
        for record in records:
            group_id = record.options.group_id
            if group_id is None:
                continue
            members = self._members.get(group_id)
            if members is not None and record.task_id in members:
                members.remove(record.task_id)
                if not members:
                    del self._members[group_id]

    def __len__(self) -> int:
        return len(self._members)
