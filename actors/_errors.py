"""The runtime's exceptions. Each names the mistake and the fix."""

from __future__ import annotations

__all__ = [
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
    "UnknownTaskError",
    "UnstorableValueError",
]


class SupervisorError(Exception):
    """Base class of every error the supervision runtime raises on purpose."""


class RuntimeClosedError(SupervisorError, RuntimeError):
    """The runtime was shut down; it admits no new task."""


class QueueFullError(SupervisorError, RuntimeError):
    """``max_pending`` tasks are already waiting; the new one was refused, nothing dropped."""

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        super().__init__(
            f"the pending queue is full ({max_pending} tasks waiting); the task was not "
            "accepted. Retry later, cancel tasks you no longer need, or raise max_pending."
        )


class UnknownTaskError(SupervisorError, LookupError):
    """No task with this id is known (never created, or removed by retention)."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"no task with id {task_id!r}: it was never created here, or it ended more "
            "than max_task_age seconds ago and was removed by retention"
        )


class NotResumableError(SupervisorError, ValueError):
    """``resume_task`` of a task that cannot be resumed: ``reason`` says why and the
    message names what would make it resumable."""

    def __init__(self, task_id: str, reason: str, fix: str) -> None:
        self.task_id = task_id
        self.reason = reason
        self.fix = fix
        super().__init__(f"task {task_id} cannot be resumed: {reason}; {fix}")


class ActorUnresponsiveError(SupervisorError, TimeoutError):
    """An actor of the runtime did not answer within ``ask_timeout`` seconds."""

    def __init__(self, actor: str, request: str, timeout_seconds: float) -> None:
        self.actor = actor
        self.request = request
        self.timeout_seconds = timeout_seconds
        super().__init__(
            f"the {actor} did not answer {request} within {timeout_seconds} s. The runtime "
            "is overloaded or stuck: CPU-bound operations in thread mode starve it of the "
            "GIL (run them in process mode), or raise ask_timeout."
        )


class ActorRestartedError(SupervisorError, RuntimeError):
    """One of the manager's own actors failed while handling this call and was restarted.

    Only the call that met the failure gets this; the actor was rebuilt and answers the
    next one, so the call can simply be made again.
    """

    def __init__(self, actor: str, request: str, error: BaseException) -> None:
        self.actor = actor
        self.request = request
        self.error = error
        super().__init__(
            f"the {actor} failed while handling {request} ({error!r}) and was restarted; "
            "its state was rebuilt and no other call was affected. Make the call again; "
            "if it keeps failing, the manager stops itself (see get_stats()['restarts'])."
        )


class QueryFailedError(SupervisorError, RuntimeError):
    """One of the manager's own actors failed while answering a query (a read that
    changes nothing: a status, a listing, the stats).

    Nothing was restarted and nothing else was affected: a query has no effect to undo,
    so its failure is the asker's answer alone and never counts toward the manager's
    restart intensity. It is a bug in the manager (bad input is refused before it
    reaches an actor): report it with ``error``.
    """

    def __init__(self, actor: str, request: str, error: BaseException) -> None:
        self.actor = actor
        self.request = request
        self.error = error
        super().__init__(
            f"the {actor} failed while answering {request} ({error!r}); a query changes "
            "nothing, so nothing was restarted and no other call was affected. This is a "
            "bug in the task manager: report it with this message"
        )


class UnknownOperationError(SupervisorError, ValueError):
    """``create_task`` named an operation nobody registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = list(known)
        shown = ", ".join(repr(n) for n in known[:10]) or "none yet"
        more = f" and {len(known) - 10} more" if len(known) > 10 else ""
        super().__init__(
            f"no operation is registered as {name!r} (registered: {shown}{more}); register "
            "it first with register_operation(name, function), or pass the function itself"
        )


class ResourcesUnavailableError(SupervisorError, ValueError):
    """A task asks for resources it could never get where it would run: a name the host
    (or cluster) does not have, or more of one than there is in all."""

    def __init__(self, message: str, *, resource: str) -> None:
        self.resource = resource  # the first resource that cannot be had
        super().__init__(message)


class NaiveRunAtError(SupervisorError, ValueError):
    """``run_at`` was a naive datetime (no time zone): the moment it means is unknown."""

    def __init__(self, value: str) -> None:
        self.value = value  # its ISO-8601 form
        super().__init__(
            f"run_at must be an aware datetime (with a time zone), got the naive {value}; "
            "use e.g. datetime.now(timezone.utc) + timedelta(...)"
        )


class UnguardedMainError(SupervisorError, RuntimeError):
    """A process-isolated task could not start a child: the main module creates a
    runtime when imported, without the ``if __name__ == "__main__":`` guard."""

    def __init__(self, main_module: str) -> None:
        self.main_module = main_module
        super().__init__(
            f"process isolation cannot start a child process: the main module "
            f"{main_module} creates a task manager when it is imported (itself or through "
            "a module it imports), and every child process imports it again; put that code "
            'under `if __name__ == "__main__":`'
        )


class StoreError(SupervisorError):
    """The task store could not be opened or written. ``location`` names the file."""

    def __init__(self, location: str, message: str) -> None:
        self.location = location
        super().__init__(message)


class StoreOpenError(StoreError):
    """The store's file is unreadable, corrupt, or not a task database."""


class StoreLockedError(StoreError):
    """Another runtime (in this process or another one) has the store open: one writer only."""


class StoreVersionError(StoreError):
    """The database was written by a newer schema than this version can read."""


class StoreWriteError(StoreError):
    """A write to the store failed (disk full, I/O error, the file deleted): the change
    is not durable."""


class RecordsNotStoredError(StoreWriteError):
    """Some records of a commit could not be written (their data cannot be encoded for
    the file); the commit wrote all the others. ``rejected`` maps each left-out task id
    to why."""

    def __init__(self, location: str, rejected: dict[str, str]) -> None:
        self.rejected = rejected
        shown = "; ".join(f"task {task_id}: {why}" for task_id, why in list(rejected.items())[:5])
        super().__init__(
            location,
            f"{len(rejected)} task record(s) could not be written to {location} and were "
            f"left out of the commit (the others were committed): {shown}",
        )


class OperationUnavailableError(SupervisorError, RuntimeError):
    """The operation failed too often lately (its circuit breaker is open): new tasks of
    it are refused until the cool-down ends, ``retry_after`` seconds from now."""

    def __init__(self, operation: str, retry_after: float) -> None:
        self.operation = operation
        self.retry_after = retry_after
        super().__init__(
            f"operation {operation!r} failed too often recently and is resting; the task "
            f"was not accepted. Retry after {retry_after:.1f} s (tasks already queued "
            "wait and run once it recovers)."
        )


class UnknownGroupError(SupervisorError, LookupError):
    """No group with this id is known (never created, or all its tasks were removed)."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        super().__init__(
            f"no group with id {group_id!r}: it was never created here, or every task of "
            "it ended more than max_task_age seconds ago and was removed by retention"
        )


class UnstorableValueError(SupervisorError, TypeError, ValueError):
    """A value from user code (params, a result, a partial result) that the runtime
    cannot keep or send: not JSON (with a durable store), text that is not valid Unicode,
    or nested deeper than ``actors.MAX_NESTING``. ``type_name`` names the value's type.

    A TypeError (what non-JSON params always raised) and a ValueError (a bad value)."""

    def __init__(self, message: str, *, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(message)


class RayNotInstalledError(SupervisorError, ImportError):
    """``isolation="ray"`` (a ``RayBackend``) was asked for, and Ray is not installed."""

    def __init__(self, error: BaseException | None = None) -> None:
        detail = f" ({error})" if error is not None else ""
        super().__init__(
            f"isolation='ray' needs Ray, which is not installed{detail}: install the extra "
            "with pip install 'storycore-tasks[ray]' (it pins the Ray version this release "
            "is tested with)"
        )


class RayUnavailableError(SupervisorError, RuntimeError):
    """A task asked for ``isolation="ray"`` and the runtime has no Ray back-end
    (``no_backend``: the caller asked for what this runtime does not offer), or the
    back-end cannot reach its cluster."""

    def __init__(self, message: str, *, no_backend: bool = False) -> None:
        super().__init__(message)
        self.no_backend = no_backend
