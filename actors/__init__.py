"""actors: a generic supervision runtime on pykka.

One supervisor actor admits tasks and runs each in its own worker actor; one registry
actor holds every task record; one timer thread fires deadlines. It knows nothing of
StoryCore: it records failure *facts*, which the ``storycore_tasks`` layer turns into
error codes.
"""

from actors._clock import Clock, ManualClock, SystemClock
from actors._context import TaskContext
from actors._errors import (
    ActorRestartedError,
    ActorUnresponsiveError,
    NaiveRunAtError,
    OperationUnavailableError,
    QueueFullError,
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
)
from actors._faults import FaultPlan, FaultRule, InjectedFaultError
from actors._interrupt import TaskInterrupted
from actors._notifier import TaskEvent
from actors._operations import NamedOperation
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
from actors._pooled import Dispatcher, PooledActor
from actors._processes import ProcessPoolStats
from actors._records import (
    TERMINAL_STATUSES,
    Isolation,
    Operation,
    TaskPriority,
    TaskSnapshot,
    TaskSpec,
    TaskStatus,
)
from actors._runtime import RuntimeStats, TaskRuntime
from actors._sqlite import SqliteStore
from actors._store import MemoryStore, Store, StoreStats
from actors._supervisor import SupervisorStats
from actors._table import TableStats
from actors._timers import TimerHandle, TimerService, TimerStatistics

__all__ = [
    "TERMINAL_STATUSES",
    "ActorRestartedError",
    "ActorUnresponsiveError",
    "Cancelled",
    "Clock",
    "Completed",
    "Crashed",
    "DependencyFailed",
    "Dispatcher",
    "FaultPlan",
    "FaultRule",
    "InjectedFaultError",
    "Interrupted",
    "Isolation",
    "ManualClock",
    "MemoryStore",
    "NaiveRunAtError",
    "NamedOperation",
    "Operation",
    "OperationLimits",
    "OperationUnavailableError",
    "Outcome",
    "PooledActor",
    "ProcessPoolStats",
    "QueueFullError",
    "Raised",
    "ResourceExhausted",
    "ResultNotStorable",
    "RetryPolicy",
    "RuntimeClosedError",
    "RuntimeStats",
    "SqliteStore",
    "StopReason",
    "Store",
    "StoreError",
    "StoreLockedError",
    "StoreOpenError",
    "StoreStats",
    "StoreVersionError",
    "StoreWriteError",
    "SupervisorError",
    "SupervisorStats",
    "SystemClock",
    "TableStats",
    "TaskContext",
    "TaskEvent",
    "TaskInterrupted",
    "TaskPriority",
    "TaskRuntime",
    "TaskSnapshot",
    "TaskSpec",
    "TaskStatus",
    "TimedOut",
    "TimerHandle",
    "TimerService",
    "TimerStatistics",
    "UnguardedMainError",
    "UnknownGroupError",
    "UnknownOperationError",
    "UnknownTaskError",
]
