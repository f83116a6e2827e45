"""actors: a generic supervision runtime on pykka.

One supervisor actor admits tasks and runs each in its own worker actor; one registry
actor holds every task record; one timer thread fires deadlines. It knows nothing of
StoryCore: it records failure *facts*, which the ``storycore_tasks`` layer turns into
error codes.

The names are imported on first use (PEP 562): ``import actors`` costs next to nothing
and imports neither pykka, structlog nor sqlite3 (a child process of the process pool
imports ``actors`` on its way to an operation's module, and must stay lean), while
``from actors import TaskRuntime`` imports what the runtime needs. Static tools read the
same names from the ``TYPE_CHECKING`` block; tests/test_public_api.py checks that it,
the lazy map and ``__all__`` name the same set.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from actors._clock import Clock as Clock
    from actors._clock import ManualClock as ManualClock
    from actors._clock import SystemClock as SystemClock
    from actors._core.notifier import TaskEvent as TaskEvent
    from actors._core.runtime import TaskRuntime as TaskRuntime
    from actors._core.stats import RuntimeStats as RuntimeStats
    from actors._core.supervisor import SupervisorStats as SupervisorStats
    from actors._core.table import TableStats as TableStats
    from actors._core.timers import TimerStatistics as TimerStatistics
    from actors._enums import TERMINAL_STATUSES as TERMINAL_STATUSES
    from actors._enums import Isolation as Isolation
    from actors._enums import StopReason as StopReason
    from actors._enums import TaskPriority as TaskPriority
    from actors._enums import TaskStatus as TaskStatus
    from actors._errors import ActorRestartedError as ActorRestartedError
    from actors._errors import ActorUnresponsiveError as ActorUnresponsiveError
    from actors._errors import NaiveRunAtError as NaiveRunAtError
    from actors._errors import NotResumableError as NotResumableError
    from actors._errors import OperationUnavailableError as OperationUnavailableError
    from actors._errors import QueryFailedError as QueryFailedError
    from actors._errors import QueueFullError as QueueFullError
    from actors._errors import RayNotInstalledError as RayNotInstalledError
    from actors._errors import RayUnavailableError as RayUnavailableError
    from actors._errors import RecordsNotStoredError as RecordsNotStoredError
    from actors._errors import ResourcesUnavailableError as ResourcesUnavailableError
    from actors._errors import RuntimeClosedError as RuntimeClosedError
    from actors._errors import StoreError as StoreError
    from actors._errors import StoreLockedError as StoreLockedError
    from actors._errors import StoreOpenError as StoreOpenError
    from actors._errors import StoreVersionError as StoreVersionError
    from actors._errors import StoreWriteError as StoreWriteError
    from actors._errors import SupervisorError as SupervisorError
    from actors._errors import UnguardedMainError as UnguardedMainError
    from actors._errors import UnknownGroupError as UnknownGroupError
    from actors._errors import UnknownOperationError as UnknownOperationError
    from actors._errors import UnknownTaskError as UnknownTaskError
    from actors._errors import UnstorableValueError as UnstorableValueError
    from actors._execution.api import AsyncOperation as AsyncOperation
    from actors._execution.api import AsyncTaskContext as AsyncTaskContext
    from actors._execution.api import Operation as Operation
    from actors._execution.api import TaskContext as TaskContext
    from actors._execution.faults import FaultPlan as FaultPlan
    from actors._execution.faults import FaultRule as FaultRule
    from actors._execution.faults import InjectedFaultError as InjectedFaultError
    from actors._execution.interrupt import TaskInterrupted as TaskInterrupted
    from actors._execution.processes import ProcessPoolStats as ProcessPoolStats
    from actors._execution.ray_backend import RayBackend as RayBackend
    from actors._execution.ray_backend import RayBackendStats as RayBackendStats
    from actors._operations import NamedOperation as NamedOperation
    from actors._options import TaskOptions as TaskOptions
    from actors._options import UnknownOptionError as UnknownOptionError
    from actors._outcome import Cancelled as Cancelled
    from actors._outcome import Completed as Completed
    from actors._outcome import Crashed as Crashed
    from actors._outcome import DependencyFailed as DependencyFailed
    from actors._outcome import Interrupted as Interrupted
    from actors._outcome import Outcome as Outcome
    from actors._outcome import Raised as Raised
    from actors._outcome import ResourceExhausted as ResourceExhausted
    from actors._outcome import ResultNotStorable as ResultNotStorable
    from actors._outcome import Stalled as Stalled
    from actors._outcome import TimedOut as TimedOut
    from actors._policies import OperationLimits as OperationLimits
    from actors._policies import RetryPolicy as RetryPolicy
    from actors._records import TaskSnapshot as TaskSnapshot
    from actors._resources import Resources as Resources
    from actors._storage.codec import MAX_NESTING as MAX_NESTING
    from actors._storage.sqlite import SqliteStore as SqliteStore
    from actors._storage.store import MemoryStore as MemoryStore
    from actors._storage.store import Store as Store
    from actors._storage.store import StoreStats as StoreStats

# Every public name and the module that defines it: the one place the lazy imports are
# spelt (the TYPE_CHECKING block above is their static mirror).
_EXPORTS: Final[dict[str, str]] = {
    "Clock": "actors._clock",
    "ManualClock": "actors._clock",
    "SystemClock": "actors._clock",
    "TaskEvent": "actors._core.notifier",
    "TaskRuntime": "actors._core.runtime",
    "RuntimeStats": "actors._core.stats",
    "SupervisorStats": "actors._core.supervisor",
    "TableStats": "actors._core.table",
    "TimerStatistics": "actors._core.timers",
    "TERMINAL_STATUSES": "actors._enums",
    "Isolation": "actors._enums",
    "TaskPriority": "actors._enums",
    "StopReason": "actors._enums",
    "TaskStatus": "actors._enums",
    "ActorRestartedError": "actors._errors",
    "ActorUnresponsiveError": "actors._errors",
    "NaiveRunAtError": "actors._errors",
    "NotResumableError": "actors._errors",
    "OperationUnavailableError": "actors._errors",
    "QueryFailedError": "actors._errors",
    "QueueFullError": "actors._errors",
    "RecordsNotStoredError": "actors._errors",
    "ResourcesUnavailableError": "actors._errors",
    "RuntimeClosedError": "actors._errors",
    "StoreError": "actors._errors",
    "StoreLockedError": "actors._errors",
    "StoreOpenError": "actors._errors",
    "StoreVersionError": "actors._errors",
    "StoreWriteError": "actors._errors",
    "SupervisorError": "actors._errors",
    "UnguardedMainError": "actors._errors",
    "UnknownGroupError": "actors._errors",
    "UnknownOperationError": "actors._errors",
    "UnknownTaskError": "actors._errors",
    "RayNotInstalledError": "actors._errors",
    "RayUnavailableError": "actors._errors",
    "UnstorableValueError": "actors._errors",
    "AsyncOperation": "actors._execution.api",
    "AsyncTaskContext": "actors._execution.api",
    "Operation": "actors._execution.api",
    "TaskContext": "actors._execution.api",
    "FaultPlan": "actors._execution.faults",
    "FaultRule": "actors._execution.faults",
    "InjectedFaultError": "actors._execution.faults",
    "TaskInterrupted": "actors._execution.interrupt",
    "ProcessPoolStats": "actors._execution.processes",
    "RayBackend": "actors._execution.ray_backend",
    "RayBackendStats": "actors._execution.ray_backend",
    "NamedOperation": "actors._operations",
    "TaskOptions": "actors._options",
    "UnknownOptionError": "actors._options",
    "Cancelled": "actors._outcome",
    "Completed": "actors._outcome",
    "Crashed": "actors._outcome",
    "DependencyFailed": "actors._outcome",
    "Interrupted": "actors._outcome",
    "Outcome": "actors._outcome",
    "Raised": "actors._outcome",
    "ResourceExhausted": "actors._outcome",
    "ResultNotStorable": "actors._outcome",
    "Stalled": "actors._outcome",
    "TimedOut": "actors._outcome",
    "OperationLimits": "actors._policies",
    "RetryPolicy": "actors._policies",
    "TaskSnapshot": "actors._records",
    "Resources": "actors._resources",
    "MAX_NESTING": "actors._storage.codec",
    "SqliteStore": "actors._storage.sqlite",
    "MemoryStore": "actors._storage.store",
    "Store": "actors._storage.store",
    "StoreStats": "actors._storage.store",
}

# Grouped by role. The runtime's building blocks (PooledActor, Dispatcher, TimerService,
# TaskSpec) are in actors.lowlevel.
__all__ = [  # noqa: RUF022 (grouped by role, sorted within a group)
    # the runtime and what an operation sees
    "Operation",
    "TaskContext",
    "AsyncOperation",
    "AsyncTaskContext",
    "TaskRuntime",
    # where operations run, beside the host's threads, processes and event loop
    "RayBackend",
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
    "Stalled",
    "StopReason",
    "TaskInterrupted",
    "TimedOut",
    # per-task options, policies and named operations
    "NamedOperation",
    "OperationLimits",
    "Resources",
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
    "NotResumableError",
    "OperationUnavailableError",
    "QueryFailedError",
    "QueueFullError",
    "RayNotInstalledError",
    "RayUnavailableError",
    "RecordsNotStoredError",
    "ResourcesUnavailableError",
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
    "RayBackendStats",
    "RuntimeStats",
    "StoreStats",
    "SupervisorStats",
    "TableStats",
    "TimerStatistics",
]


if not TYPE_CHECKING:
    # Hidden from static tools: a module __getattr__ they could see would make every
    # name resolve for them (``from actors import TimerService`` would type-check).

    def __getattr__(name: str) -> Any:
        """Import a public name on first use, and keep it (later reads are plain ones)."""
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
