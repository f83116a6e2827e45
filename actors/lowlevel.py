"""The runtime's building blocks, for people extending the runtime itself.

Applications use :mod:`actors` (or ``storycore_tasks``); these are the parts the runtime
is made of: pykka actors whose mailboxes share a thread, the timer thread with its
heap of deadlines, the immutable submission a supervisor runs, and the execution seam
a new place for operations to run implements (see ``actors._execution.backend``). They are stable
enough to build on, but not part of the everyday surface.
"""

from actors._core.pooled import Dispatcher, PooledActor
from actors._core.timers import TimerHandle, TimerService, TimerStatistics
from actors._execution.backend import Attempt, AttemptEvents, ExecutionBackend
from actors._records import TaskSpec

__all__ = [  # noqa: RUF022 (grouped by role, sorted within a group)
    # the execution seam: where an operation runs, and the levers on one attempt
    "Attempt",
    "AttemptEvents",
    "ExecutionBackend",
    # pykka actors whose mailboxes share one dispatcher thread (the per-task workers)
    "Dispatcher",
    "PooledActor",
    # the immutable submission the supervisor runs
    "TaskSpec",
    # one thread, one heap of deadlines, an injectable clock
    "TimerHandle",
    "TimerService",
    "TimerStatistics",
]
