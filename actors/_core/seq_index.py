"""Task ids in submission order (``seq``), for the task table's pages: one index per
(owner, status) the listings ask for."""

from __future__ import annotations

import bisect

__all__ = ["SeqIndex"]


class SeqIndex:
    """Task ids sorted by ``seq``, for pages that start after a given ``seq``.

    Ids mostly arrive near the end (seq grows) and leave near the front (the oldest end
    first, retention drops the oldest), so both ends are cheap: an append, and an offset
    that skips the front instead of shifting the list. A page is a binary search and a
    slice: it never touches an id outside the page."""

    __slots__ = ("_ids", "_seqs", "_start")

    def __init__(self) -> None:
        self._seqs: list[int] = []
        self._ids: list[str] = []
        self._start = 0  # entries before it have left

    def __len__(self) -> int:
        return len(self._seqs) - self._start

    def add(self, seq: int, task_id: str) -> None:
        seqs = self._seqs
        if not seqs or seq >= seqs[-1]:
            seqs.append(seq)
            self._ids.append(task_id)
            return
        at = bisect.bisect_right(seqs, seq, self._start)
        if at == self._start and self._start > 0:  # reuse a slot the front left
            self._start -= 1
            seqs[self._start] = seq
            self._ids[self._start] = task_id
            return
        seqs.insert(at, seq)
        self._ids.insert(at, task_id)

    def remove(self, seq: int, task_id: str) -> None:
        seqs, ids, start = self._seqs, self._ids, self._start
        if start < len(seqs) and ids[start] == task_id:  # the usual case: the oldest
            at = start
        else:
            at = bisect.bisect_left(seqs, seq, start)
            # Seqs are unique in a runtime; a table built by hand may repeat one.
            while at < len(seqs) and seqs[at] == seq and ids[at] != task_id:
                at += 1
            if at == len(seqs) or seqs[at] != seq:
                raise KeyError(task_id)
        if at == start:
            self._start = start = start + 1
            if start > 1024 and start * 2 > len(seqs):
                del seqs[:start]  # compact: amortised O(1) per removal
                del ids[:start]
                self._start = 0
        else:
            del seqs[at]
            del ids[at]

    def page(self, after: int, limit: int) -> tuple[list[str], bool]:
        """Up to ``limit`` ids with a larger seq than ``after``, and whether more follow."""
        at = bisect.bisect_right(self._seqs, after, self._start)
        ids = self._ids[at : at + limit]
        return ids, at + limit < len(self._seqs)
