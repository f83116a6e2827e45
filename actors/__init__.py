"""actors: a generic supervision runtime on pykka.

One supervisor actor admits tasks and runs each in its own worker actor; one registry
actor holds every task record; one timer thread fires deadlines. It knows nothing of
StoryCore: it records failure *facts*, which the ``storycore_tasks`` layer turns into
error codes.
"""

from actors._clock import Clock, ManualClock, SystemClock
from actors._core.notifier import TaskEvent
from actors._core.runtime import RuntimeStats, TaskRuntime
from actors._core.supervisor import SupervisorStats
from actors._core.table import TableStats
from actors._core.timers import TimerStatistics
from actors._enums import TERMINAL_STATUSES, Isolation, TaskPriority, TaskStatus
from actors._errors import (
    ActorRestartedError,
    ActorUnresponsiveError,
    NaiveRunAtError,
    OperationUnavailableError,
    QueryFailedError,
    QueueFullError,
    RecordsNotStoredError,
    RuntimeClosedError,
    StoreError,
    StoreLockedError,
    StoreOpenError,
    StoreVersionError,
    StoreWriteError,
    SupervisorError,
    UnguardedMainError,
    UnknownGroupError,
    UnknownOperationError,
    UnknownTaskError,
    UnstorableValueError,
)
from actors._execution.api import Operation, TaskContext
from actors._execution.faults import FaultPlan, FaultRule, InjectedFaultError
from actors._execution.interrupt import TaskInterrupted
from actors._execution.processes import ProcessPoolStats
from actors._operations import NamedOperation
from actors._options import TaskOptions, UnknownOptionError
from actors._outcome import (
    Cancelled,
    Completed,
    Crashed,
    DependencyFailed,
    Interrupted,
    Outcome,
    Raised,
    ResourceExhausted,
    ResultNotStorable,
    StopReason,
    TimedOut,
)
from actors._policies import OperationLimits, RetryPolicy
from actors._records import TaskSnapshot
from actors._storage.codec import MAX_NESTING
from actors._storage.sqlite import SqliteStore
from actors._storage.store import MemoryStore, Store, StoreStats

# Grouped by role. The runtime's building blocks (PooledActor, Dispatcher, TimerService,
# TaskSpec) are in actors.lowlevel.
__all__ = [  # noqa: RUF022 (grouped by role, sorted within a group)
    # the runtime and what an operation sees
    "Operation",
    "TaskContext",
    "TaskRuntime",
    # tasks: states, priorities, isolation, snapshots, events
    "TERMINAL_STATUSES",
    "Isolation",
    "TaskEvent",
    "TaskPriority",
    "TaskSnapshot",
    "TaskStatus",
    # how a task ended: failure facts and stop reasons
    "Cancelled",
    "Completed",
    "Crashed",
    "DependencyFailed",
    "Interrupted",
    "Outcome",
    "Raised",
    "ResourceExhausted",
    "ResultNotStorable",
    "StopReason",
    "TaskInterrupted",
    "TimedOut",
    # per-task options, policies and named operations
    "NamedOperation",
    "OperationLimits",
    "RetryPolicy",
    "TaskOptions",
    # stores, and what they can keep
    "MAX_NESTING",
    "MemoryStore",
    "SqliteStore",
    "Store",
    # clocks and the test kit's faults
    "Clock",
    "FaultPlan",
    "FaultRule",
    "InjectedFaultError",
    "ManualClock",
    "SystemClock",
    # errors
    "ActorRestartedError",
    "ActorUnresponsiveError",
    "NaiveRunAtError",
    "OperationUnavailableError",
    "QueryFailedError",
    "QueueFullError",
    "RecordsNotStoredError",
    "RuntimeClosedError",
    "StoreError",
    "StoreLockedError",
    "StoreOpenError",
    "StoreVersionError",
    "StoreWriteError",
    "SupervisorError",
    "UnguardedMainError",
    "UnknownGroupError",
    "UnknownOperationError",
    "UnknownOptionError",
    "UnknownTaskError",
    "UnstorableValueError",
    # statistics snapshots
    "ProcessPoolStats",
    "RuntimeStats",
    "StoreStats",
    "SupervisorStats",
    "TableStats",
    "TimerStatistics",
]
