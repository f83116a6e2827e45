"""The driver that runs one task in a child of the process pool, on the operation
thread that holds the task's slot.

It relays progress and partial results into the attempt's host-side context (and so,
coalesced, to the registry) and turns the child's answer, or its death, into an outcome.
It reads the child's frames itself (``actors._execution.wire.FRAME_HEADER``), only as
many bytes as are there, so bytes that are not a frame end the attempt as a crash
instead of a wait for ever.
"""

from __future__ import annotations

import pickle
import signal
from multiprocessing.connection import wait
from typing import Any, Protocol

from actors._execution.context import LocalTaskContext
from actors._execution.processes import EXIT_GRACE_SECONDS, ChildProcess, ProcessPool
from actors._execution.published import CheckpointWaiter
from actors._execution.wire import (
    CancelTask,
    ChannelCorrupted,
    CheckpointStored,
    Done,
    Progress,
    RunTask,
    decode_child_record,
    describe_record,
)
from actors._outcome import Completed, Crashed, Outcome, Raised, ResourceExhausted, StopReason
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["ChildLink", "run_in_child"]

_log = library_logger("actors.processes")
# Bytes still read after the child died (a process it forked may keep writing).
_MAX_DRAIN_BYTES = 64 << 20


class ChildLink(Protocol):
    """What the driver needs of the attempt it runs (a ``ProcessAttempt``)."""

    @property
    def context(self) -> LocalTaskContext: ...

    @property
    def stop_reason(self) -> StopReason | None: ...

    @property
    def cuda_devices(self) -> str | None:
        """The GPU indices the task holds, for the child's ``CUDA_VISIBLE_DEVICES``."""
        ...

    def attach_child(self, child: ChildProcess) -> None: ...

    def detach_child(self) -> None: ...

    def begin(self) -> Outcome | None: ...


def run_in_child(pool: ProcessPool, spec: TaskSpec, attempt: ChildLink) -> Outcome:
    """Run ``spec`` in a child of ``pool``; blocks the calling (operation) thread.

    Once a child has the task (after a cold start, if any), ``attempt.begin()`` reports
    the start (a stop may have come first); an outcome from it ends the attempt unrun.
    """
    try:
        work = pickle.dumps(
            (spec.operation, spec.params, dict(spec.dependency_results or {})),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    except Exception as exc:  # checked at submission; a params value may have changed
        return Raised.from_exception(exc)
    child = pool.acquire()

    def give_back(*, reusable: bool) -> None:
        # Detach first: a late signal or cancel for this task must not reach the
        # child's next task.
        attempt.detach_child()
        child.drive(False)
        pool.release(child, reusable=reusable)

    refused = attempt.begin()
    if refused is not None:  # stopped before it started, or its start was not stored
        pool.release(child, reusable=True)
        return refused
    child.tasks_run += 1
    child.drive(True)  # before attach: every stop-ladder step for this task comes here
    attempt.attach_child(child)
    message = RunTask(
        spec.task_id,
        work,
        spec.options.memory_limit_mb,
        spec.options.cpu_time_limit,
        spec.resume_json,
        attempt.context._reports().commit_wait,
        attempt.cuda_devices,
    )
    if child.send(message):
        reason = attempt.stop_reason
        if reason is not None:
            # Stopped before the child had the task: the cancel sent then was not for it.
            child.send(CancelTask(spec.task_id, reason.value))
    reader = child.reader
    waitables: list[Any] = [child.conn, child.wake_fd, *child.exit_waitables()]
    while True:
        ready = wait(waitables, child.poll_timeout)
        if child.wake_fd in ready:
            child.deliver_requested()
        exited = child.exited_in(ready)
        if child.conn in ready:
            reader.fill()
        if exited:  # what the child sent before it died, without waiting for more
            drained = 0
            while drained < _MAX_DRAIN_BYTES and not reader.eof and wait([child.conn], 0):
                drained += reader.fill()
        try:
            for payload in reader.frames():
                answer = _read_record(payload, spec, attempt.context, child)
                if isinstance(answer, Raised):  # a value the host cannot unpickle
                    # Which message it was is unknown, so the child may still be running
                    # the operation: it cannot be trusted with another task.
                    child.kill()
                    child.reap()
                    give_back(reusable=False)
                    return answer
                if answer is None:  # progress
                    continue
                outcome, retire = answer
                give_back(reusable=not retire)
                return outcome
        except ChannelCorrupted as exc:
            _log.error(
                "process.channel_corrupted", task_id=spec.task_id, pid=child.pid, error=str(exc)
            )
            child.kill()
            child.reap()
            give_back(reusable=False)
            return Crashed(exit_code=None, signal=None, reason=f"corrupted channel: {exc}")
        if exited:
            break
        if reader.eof:
            # The child closed its end yet lives (an operation closed the descriptor):
            # nothing more can come from it.
            if not child.wait_exit(EXIT_GRACE_SECONDS):
                child.kill()
                child.reap()
                give_back(reusable=False)
                return Crashed(
                    exit_code=None,
                    signal=None,
                    reason="corrupted channel: the child closed its end of the channel",
                )
            break
    host_killed = child.killed_by_host
    exitcode = child.reap()
    give_back(reusable=False)
    return _death_outcome(exitcode, spec, host_killed=host_killed)


def _read_record(
    payload: bytes, spec: TaskSpec, context: LocalTaskContext, child: ChildProcess
) -> tuple[Outcome, bool] | Raised | None:
    """One frame of the child: None for progress (relayed into ``context``), (outcome, retire)
    for its answer, Raised for a value the host cannot unpickle. Raises ChannelCorrupted
    for a record that does not belong on the channel, or to another task."""
    try:
        record = decode_child_record(payload)
    except ChannelCorrupted as exc:
        raise ChannelCorrupted(f"{exc} during task {spec.task_id}") from None
    except Exception as exc:  # the child pickled it, but it cannot be unpickled here
        return Raised.from_exception(exc)
    match record:
        case Progress(task_id=spec.task_id):
            number = record.checkpoint_id
            context._relay(
                record.progress,
                (record.partial,) if record.has_partial else None,
                record.alive,
                record.checkpoint,
                _answer(child, spec.task_id, number) if number else None,
            )
            return None
        case Done(task_id=spec.task_id):
            return _done_outcome(record, spec), record.retire
    raise ChannelCorrupted(f"the child sent {describe_record(record)} during task {spec.task_id}")


def _answer(child: ChildProcess, task_id: str, number: int) -> CheckpointWaiter:
    """Tells the child its checkpoints up to ``number`` are committed (or why not); on
    the registry's thread, after the commit. A child gone or busy with another task
    by then ignores it."""

    def answer(error: BaseException | None) -> None:
        child.send(CheckpointStored(task_id, number, None if error is None else str(error)))

    return answer


def _done_outcome(done: Done, spec: TaskSpec) -> Outcome:
    if done.kind == "completed":
        return Completed(done.payload)
    exception_type, text, trace, mro = done.payload
    if done.kind == "memory":
        return ResourceExhausted(
            limit="memory_limit_mb",
            value=float(spec.options.memory_limit_mb or 0),
            message=f"{exception_type}: {text}" if text else exception_type,
        )
    return Raised(exception_type=exception_type, message=text, traceback=trace, exception_mro=mro)


def _death_outcome(exitcode: int | None, spec: TaskSpec, *, host_killed: bool) -> Outcome:
    signum = -exitcode if exitcode is not None and exitcode < 0 else None
    exit_code = exitcode if signum is None else None
    if spec.options.cpu_time_limit is not None and (
        signum == signal.SIGXCPU or (signum == signal.SIGKILL and not host_killed)
    ):
        # SIGXCPU at the soft RLIMIT_CPU; SIGKILL at the hard one, a margin above, when
        # the operation ignored SIGXCPU (a SIGKILL the host did not send).
        how = "SIGXCPU" if signum == signal.SIGXCPU else "SIGKILL at the hard limit"
        return ResourceExhausted(
            limit="cpu_time_limit",
            value=spec.options.cpu_time_limit,
            message=f"the child used more than {spec.options.cpu_time_limit} s of CPU time ({how})",
        )
    return Crashed(exit_code=exit_code, signal=signum)
