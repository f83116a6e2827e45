"""The wire between the host and a child of the process pool: a few small typed records.

A leaf module (the standard library only), in the spirit of CPython's
``concurrent.futures.process`` (``_CallItem``, ``_ResultItem``): the child imports it,
and nothing of the host's runtime, to speak to the host.

host -> child, over one duplex ``multiprocessing`` connection (its own framing):
:class:`RunTask`, :class:`CancelTask`, :class:`CheckpointStored`, :class:`Exit`.

child -> host, each pickled in a frame of its own (:data:`FRAME_HEADER`: a magic tag and
the length; not the ``multiprocessing`` format, so that bytes an operation writes on the
channel by mistake are recognised as corruption at once, never waited on):
:class:`Ready` once at start, then per task any number of :class:`Progress` and one
:class:`Done`.

The records are ``NamedTuple`` classes (no ``dataclasses`` import in the child, and a
pickle of a class reference and its fields). Being tuples, they compare equal to plain
tuples and to each other when their fields do (``Exit() == Ready() == ()``): tell them
apart by type (``match`` on the class, ``isinstance``), never with ``==``.

The host trusts nothing that arrives: :func:`decode_child_record` turns a frame into one
of the child's records or raises :class:`ChannelCorrupted`, and the driver checks that it
belongs to the task it runs.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, Final, Literal, NamedTuple

__all__ = [
    "DONE_KINDS",
    "FRAME_HEADER",
    "FRAME_MAGIC",
    "CancelTask",
    "ChannelCorrupted",
    "CheckpointStored",
    "ChildRecord",
    "Done",
    "DoneKind",
    "ExceptionInfo",
    "Exit",
    "HostRecord",
    "Progress",
    "Ready",
    "RunTask",
    "decode_child_record",
    "describe_record",
]

FRAME_MAGIC: Final = b"SCT\x01"
"""The first bytes of every frame the child writes."""

FRAME_HEADER: Final = struct.Struct("!4sQ")
"""A frame's header: :data:`FRAME_MAGIC`, then the length of the pickled record."""

DoneKind = Literal["completed", "raised", "memory"]
DONE_KINDS: Final[frozenset[str]] = frozenset({"completed", "raised", "memory"})

ExceptionInfo = tuple[str, str, str, tuple[str, ...]]
"""An exception as the child reports it: (qualified type, message, traceback, the
qualified names of its classes), the fields of :class:`actors.Raised`."""


class ChannelCorrupted(Exception):
    """The child's channel carried bytes that are not a frame, or a record that does not
    belong there: the child cannot be trusted any more."""


# -- host -> child ------------------------------------------------------------------------


class RunTask(NamedTuple):
    """Run one task's operation."""

    task_id: str
    work: bytes
    """The pickled ``(operation, params, dependency results)``: unpickled by the child's
    main loop, so an operation the child cannot import fails its task, not the child."""
    memory_limit_mb: float | None
    """``RLIMIT_AS`` for the operation, in MiB; None for none."""
    cpu_time_limit: float | None
    """Seconds of CPU time the operation may use (``RLIMIT_CPU``); None for no limit."""
    resume_json: str | None = None
    """The checkpoint this attempt resumes from (``task.resume_from``), as JSON text."""
    checkpoint_wait: float | None = None
    """With a durable store: seconds ``task.checkpoint`` waits for :class:`CheckpointStored`
    (None: it does not wait)."""
    cuda_visible_devices: str | None = None
    """The GPU indices the task holds (``"0,1"``), set as ``CUDA_VISIBLE_DEVICES`` while
    it runs; None leaves the child's environment as it is."""


class CancelTask(NamedTuple):
    """Ask the running operation to stop cooperatively (``task.is_cancelled()``)."""

    task_id: str
    reason: str
    """A :class:`actors.StopReason` value; the child's context turns it back into one."""


class CheckpointStored(NamedTuple):
    """The task's checkpoints up to number ``checkpoint_id`` are committed (``error``:
    why they could not be kept, or None): the waiting ``task.checkpoint`` returns."""

    task_id: str
    checkpoint_id: int
    error: str | None


class Exit(NamedTuple):
    """Leave once the current task (if any) is done: the pool is closing this child."""


HostRecord = RunTask | CancelTask | CheckpointStored | Exit


# -- child -> host ------------------------------------------------------------------------


class Ready(NamedTuple):
    """Sent once, when the child's interpreter is up: the host may hand it a task."""


class Progress(NamedTuple):
    """The latest values the operation published since the last ``Progress`` (coalesced)."""

    task_id: str
    progress: float | None
    """The latest fraction from 0.0 to 1.0, or None if only a partial result changed."""
    has_partial: bool
    """Whether ``partial`` is a new partial result (None is a valid one)."""
    partial: Any
    """The latest partial result, when ``has_partial``."""
    alive: bool = False
    """A sign of life since the last ``Progress`` (``task.heartbeat()`` among others)."""
    checkpoint: str | None = None
    """The latest checkpoint's JSON text, when one was made since the last ``Progress``."""
    checkpoint_id: int = 0
    """Its number (counted per task from 1), for :class:`CheckpointStored`; 0 when the
    child does not wait for the commit."""


class Done(NamedTuple):
    """How the task's operation ended; the last record of a task."""

    task_id: str
    kind: DoneKind
    """``"completed"``, ``"raised"``, or ``"memory"`` (a MemoryError or ENOMEM under a
    memory limit)."""
    payload: Any
    """The result for ``"completed"``; an :data:`ExceptionInfo` otherwise."""
    retire: bool
    """The child must not be reused: it ran out of memory, its CPU hard limit could not
    be raised again, or processes the operation left could not be ended."""


ChildRecord = Ready | Progress | Done


def decode_child_record(payload: bytes) -> ChildRecord:
    """One frame's payload as a record of the child. Raises :class:`ChannelCorrupted`
    for anything else, and lets the unpickling error of a value the host cannot load
    (a partial result or a result of a class it cannot import) through."""
    record = pickle.loads(payload)
    match record:
        case Ready():
            return record
        case Progress(
            task_id=str(),
            progress=None | float(),
            has_partial=bool(),
            alive=bool(),
            checkpoint=None | str(),
            checkpoint_id=int(),
        ):
            return record
        case Done(task_id=str(), kind=str(kind), retire=bool()) if kind in DONE_KINDS:
            if kind == "completed" or _is_exception_info(record.payload):
                return record
    raise ChannelCorrupted(f"the child sent {describe_record(record)}")


def _is_exception_info(payload: Any) -> bool:
    match payload:
        case (str(), str(), str(), tuple() as names):
            return all(isinstance(name, str) for name in names)
    return False


def describe_record(record: Any) -> str:
    """How an unexpected record is named in an error (its repr, cut at 80 characters)."""
    text = repr(record)
    return f"an unexpected record {text[:80]}{'...' if len(text) > 80 else ''}"
