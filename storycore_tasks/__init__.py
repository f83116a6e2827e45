"""storycore-tasks: StoryCore's task manager on an actor-model supervisor.

``create_task`` answers at once with a task id; clients poll status and progress,
cancel, and rely on timeouts that keep the partial result.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

from actors import (
    ActorUnresponsiveError,
    AsyncTaskContext,
    ManualClock,
    NamedOperation,
    OperationUnavailableError,
    QueueFullError,
    RayBackend,
    RayNotInstalledError,
    RayUnavailableError,
    RetryPolicy,
    RuntimeClosedError,
    StoreError,
    StoreLockedError,
    StoreOpenError,
    StoreVersionError,
    StoreWriteError,
    TaskContext,
    TaskEvent,
    TaskInterrupted,
    TaskPriority,
    TaskStatus,
    UnknownGroupError,
    UnknownOperationError,
    UnknownTaskError,
    UnstorableValueError,
)
from storycore_tasks.async_manager import AsyncTaskManager
from storycore_tasks.envelope import APIResponse, RequestContext, ResponseMetadata
from storycore_tasks.errors import (
    HTTP_STATUS_BY_CODE,
    ErrorCodes,
    ErrorDetails,
    http_status_for,
)
from storycore_tasks.manager import TaskManager
from storycore_tasks.router import APIRouter, register_task_endpoints

try:
    __version__ = _distribution_version("storycore-tasks")
    """The installed distribution's version (its package metadata)."""
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "HTTP_STATUS_BY_CODE",
    "APIResponse",
    "APIRouter",
    "ActorUnresponsiveError",
    "AsyncTaskContext",
    "AsyncTaskManager",
    "ErrorCodes",
    "ErrorDetails",
    "ManualClock",
    "NamedOperation",
    "OperationUnavailableError",
    "QueueFullError",
    "RayBackend",
    "RayNotInstalledError",
    "RayUnavailableError",
    "RequestContext",
    "ResponseMetadata",
    "RetryPolicy",
    "RuntimeClosedError",
    "StoreError",
    "StoreLockedError",
    "StoreOpenError",
    "StoreVersionError",
    "StoreWriteError",
    "TaskContext",
    "TaskEvent",
    "TaskInterrupted",
    "TaskManager",
    "TaskPriority",
    "TaskStatus",
    "UnknownGroupError",
    "UnknownOperationError",
    "UnknownTaskError",
    "UnstorableValueError",
    "http_status_for",
    "register_task_endpoints",
]
