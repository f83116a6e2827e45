"""What an operation is and what it sees of its task, wherever it runs.

A leaf module (the standard library and ``actors._enums`` only): a child process, a Ray
worker or an event loop imports it without the runtime. Every back-end hands the
operation an object that satisfies :class:`TaskContext`, with the same member types; the
runtime's levers on a running attempt (stop, interrupt, kill, the child's handle) are on
the back-end's attempt object, which user code never receives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from actors._enums import StopReason

__all__ = ["AnyOperation", "AsyncOperation", "AsyncTaskContext", "Operation", "TaskContext"]


@runtime_checkable
class TaskContext(Protocol):
    """What an operation sees of its task: cancellation, progress, partial result,
    heartbeats, checkpoints and the GPUs it holds."""

    @property
    def task_id(self) -> str:
        """The task's id."""
        ...

    @property
    def dependency_results(self) -> Mapping[str, Any]:
        """The results of the tasks this one depended on, by task id (empty without any)."""
        ...

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the operation is being asked to stop, or None while it may carry on."""
        ...

    def is_cancelled(self) -> bool:
        """True once the task was cancelled or timed out: return soon (see stop_grace)."""
        ...

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds or until a stop is requested; returns
        :meth:`is_cancelled`. Use it instead of ``time.sleep`` inside operations."""
        ...

    def update_progress(self, fraction: float) -> None:
        """Report progress as a fraction from 0.0 to 1.0 (coalesced: call it as often as
        you like)."""
        ...

    @property
    def partial_result(self) -> Any:
        """The latest partial result set by the operation (None if never set)."""
        ...

    @partial_result.setter
    def partial_result(self, value: Any) -> None: ...

    @property
    def resume_from(self) -> Any:
        """The state of this task's latest checkpoint from an earlier attempt (after a
        retry, a recovery from a crash, or ``resume_task``); None on a first run."""
        ...

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        """The indices of the GPUs this attempt holds (``resources={"gpu": n}``), sorted;
        empty when it holds none. Host isolations: the devices of the manager's ledger
        (a child process also has them in ``CUDA_VISIBLE_DEVICES``); Ray: the node's
        ``ray.get_gpu_ids()``."""
        ...

    def heartbeat(self) -> None:
        """A sign of life for ``heartbeat_timeout`` (progress, a partial result and a
        checkpoint are signs too): cheap and coalesced, call it as often as you like."""
        ...

    def checkpoint(self, state: Any) -> None:
        """Record a resume point: JSON data (else ``TypeError``, naming the type) that a
        later attempt of this task receives as :attr:`resume_from`. Coalesced like
        progress; with a durable store it returns once the checkpoint is committed, so a
        crash never loses one that returned."""
        ...


Operation = Callable[[Mapping[str, Any], TaskContext], Any]
"""An operation is called as ``operation(params, task)`` and returns its result."""


@runtime_checkable
class AsyncTaskContext(Protocol):
    """What a coroutine operation (``async def op(params, task)``) sees of its task: the
    members of :class:`TaskContext`, with :meth:`wait_cancelled` to be awaited (a
    blocking wait would stop every other coroutine on the event loop)."""

    @property
    def task_id(self) -> str:
        """The task's id."""
        ...

    @property
    def dependency_results(self) -> Mapping[str, Any]:
        """The results of the tasks this one depended on, by task id (empty without any)."""
        ...

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the operation is being asked to stop, or None while it may carry on."""
        ...

    def is_cancelled(self) -> bool:
        """True once the task was cancelled or timed out: return soon (see stop_grace)."""
        ...

    async def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds or until a stop is requested, without holding
        the event loop; returns :meth:`is_cancelled`. Use it instead of
        ``asyncio.sleep`` where a stop should end the wait early."""
        ...

    def update_progress(self, fraction: float) -> None:
        """Report progress as a fraction from 0.0 to 1.0 (coalesced: call it as often as
        you like)."""
        ...

    @property
    def partial_result(self) -> Any:
        """The latest partial result set by the operation (None if never set)."""
        ...

    @partial_result.setter
    def partial_result(self, value: Any) -> None: ...

    @property
    def resume_from(self) -> Any:
        """The state of this task's latest checkpoint from an earlier attempt (after a
        retry, a recovery from a crash, or ``resume_task``); None on a first run."""
        ...

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        """The indices of the GPUs this attempt holds (``resources={"gpu": n}``), sorted;
        empty when it holds none. Host isolations: the devices of the manager's ledger
        (a child process also has them in ``CUDA_VISIBLE_DEVICES``); Ray: the node's
        ``ray.get_gpu_ids()``."""
        ...

    def heartbeat(self) -> None:
        """A sign of life for ``heartbeat_timeout`` (progress, a partial result and a
        checkpoint are signs too): cheap and coalesced, call it as often as you like."""
        ...

    async def checkpoint(self, state: Any) -> None:
        """Record a resume point, as :meth:`TaskContext.checkpoint`; awaited, since with
        a durable store it waits (without holding the loop) for the commit."""
        ...


AsyncOperation = Callable[[Mapping[str, Any], AsyncTaskContext], Awaitable[Any]]
"""A coroutine operation: ``async def operation(params, task)``, run on the runtime's
event loop (``isolation="async"``)."""

AnyOperation = Operation | AsyncOperation
"""What the runtime accepts as an operation: a plain function or a coroutine function."""
