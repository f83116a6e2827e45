"""The code that runs on a Ray node: one attempt of one task.

Kept lean, like the process pool's child (``actors._execution.child``): a Ray worker
imports this module, the standard library, ``ray`` and a few leaf modules of ``actors``
(never pykka, structlog, sqlite3, ``actors._core`` or ``actors._storage``;
tests/ray_cluster/test_ray_backend.py checks it on a node).

:func:`run_attempt` is a plain Ray task the host submits once per attempt with Ray's
retries off. It talks to the host over the host channel (``actors._execution.ray_wire``;
one connection per worker process, ``actors._execution.ray_node_link``):

* it says ``started`` (the worker's pid and the node) as soon as it runs on a node and
  waits for the host's ``go`` (with a durable store the host says go once ``running`` is
  committed; a stop that came first says no);
* while the operation runs it sends ``progress``, coalesced (at most one every
  ``PROGRESS_INTERVAL`` seconds, the latest values; ``alive``: a sign of life since the
  last, for ``heartbeat_timeout``; a checkpoint number > 0: the checkpoint waits for
  the host to say it is committed, which the host sends as ``stored``);
* it hears the host's ``stop`` (the cooperative flag, ``task.is_cancelled()``) and
  ``interrupt`` (``TaskInterrupted`` raised in the operation's thread, again every
  ``INTERRUPT_REPEAT_SECONDS`` until it has left). The last step, a forced
  ``ray.cancel`` that ends the worker, is the host's.

Its answer, each a tuple:

* ``("refused",)`` if the host said no (the operation never ran);
* ``("lost", why)`` if no verdict came: the host could not be reached for the
  connection's patience, its channel broke, or ``GO_TIMEOUT_SECONDS`` passed; the
  operation never ran, and the host reads this as a lost cluster, never as a cancel;
* ``("completed", result_pickle, sent, last)`` or ``("raised", exception_info, sent,
  last)``: ``sent`` progress messages went over the channel before it, ``last`` the
  progress published after the last of them (or None).

An answer of at most ``CHANNEL_ANSWER_BYTES`` is sent on the channel (``answer``) and
the Ray task returns ``("sent",)``; a larger one, or one the channel could not take,
is the Ray task's value (announced by ``ending``, and read by the host only once it has
all ``sent`` progress messages).

Values are pickled here, so a value that cannot be pickled fails the task (``raised``)
instead of Ray's return, and the worker lives on. The operation runs on a thread of the
worker; the task's own thread ships its progress and carries the stop ladder to it.
"""

from __future__ import annotations

import marshal
import os
import pickle
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors._clock import blocking_timeout
from actors._enums import StopReason
from actors._exception_facts import exception_facts
from actors._execution.checkpoints import decode_checkpoint, encode_checkpoint
from actors._execution.interrupt import TaskInterrupted, raise_in_thread
from actors._execution.published import NumberedWaiter, Published
from actors._execution.ray_node_link import AttemptListener, NodeLink, link_to

__all__ = [
    "CHANNEL_ANSWER_BYTES",
    "GO_TIMEOUT_SECONDS",
    "INTERRUPT_REPEAT_SECONDS",
    "PROGRESS_INTERVAL",
    "RayTaskContext",
    "attempt_argument",
    "run_attempt",
]

PROGRESS_INTERVAL = 0.01
INTERRUPT_REPEAT_SECONDS = 0.1
GO_TIMEOUT_SECONDS = 600.0  # no verdict by then: the host is gone (Ray ends us with it)
CHANNEL_ANSWER_BYTES = 1 << 20  # a larger result travels through Ray's object store


class RayTaskContext:
    """The ``task`` argument of an operation on a Ray node: the members of the
    :class:`actors.TaskContext` protocol, with the same types."""

    def __init__(
        self,
        task_id: str,
        dependency_results: Mapping[str, Any],
        listener: AttemptListener,
        wake: threading.Event,
        resume_json: str | None = None,
        checkpoint_wait: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.dependency_results = dependency_results
        self._listener = listener
        self._wake = wake
        self._published = Published()
        self._gpu_indices: tuple[int, ...] | None = None
        # The latest checkpoint of an earlier attempt (None on a first run).
        self.resume_from: Any = decode_checkpoint(resume_json)
        # With a durable store: how long a checkpoint waits for the host's word that it
        # is committed (None: it does not wait).
        self._checkpoint_wait = checkpoint_wait

    @property
    def gpu_indices(self) -> tuple[int, ...]:
        """Read from Ray on first use (a call into Ray's worker that most operations
        never need)."""
        if self._gpu_indices is None:
            self._gpu_indices = _ray_gpu_ids()
        return self._gpu_indices

    def is_cancelled(self) -> bool:
        return self._listener.stop.is_set()

    @property
    def stop_reason(self) -> StopReason | None:
        return self._listener.stop_reason

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        return self._listener.stop.wait(blocking_timeout(timeout))

    def update_progress(self, fraction: float) -> None:
        if self._published.progress(fraction):
            self._wake.set()  # the first value since the last shipment: ship it soon

    @property
    def partial_result(self) -> Any:
        return self._published.latest_partial()

    @partial_result.setter
    def partial_result(self, value: Any) -> None:
        if self._published.partial(value):
            self._wake.set()

    def heartbeat(self) -> None:
        if self._published.heartbeat():
            self._wake.set()

    def checkpoint(self, state: Any) -> None:
        text = encode_checkpoint(state)  # a TypeError here, in the operation
        self._listener.commits.checkpoint(
            self._published, text, self._checkpoint_wait, self.task_id, self._ship
        )

    def _ship(self, first: bool) -> None:
        if first:  # the first value since the last shipment: ship it soon
            self._wake.set()

    def _drained(self) -> tuple[Any, ...] | None:
        """What was published since the last look, as a progress message's fields
        (``fraction, has_partial, partial_pickle, alive, checkpoint_json,
        checkpoint_number``), or None if nothing was."""
        progress, partial, has_partial = self._published.drain()
        alive, checkpoint, waiters = self._published.drain_signs()
        if progress is None and not has_partial and not alive and checkpoint is None:
            return None
        blob = None
        if has_partial:
            try:
                blob = pickle.dumps(partial, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an unpicklable partial result: keep the progress
                has_partial = False
        number = NumberedWaiter.latest(waiters)
        return (progress, has_partial, blob, alive, checkpoint, number)


def _ray_gpu_ids() -> tuple[int, ...]:
    """The GPUs Ray gave this worker (``ray.get_gpu_ids()``), sorted; empty without any
    or outside a Ray worker."""
    try:
        import ray

        return tuple(sorted(int(index) for index in ray.get_gpu_ids()))
    except Exception:  # not in a Ray worker, or an id that is not a number
        return ()


def run_attempt(attempt: bytes) -> tuple[Any, ...]:
    """One attempt on the node (see the module's docstring for what it returns).
    ``attempt`` (``marshal``, see :func:`attempt_argument`): its key on the host channel,
    the task's id, the work (the operation and what it is called with, pickled), the
    host channel's address and secret, and how long the host may stay unreachable
    before the attempt reads as lost."""
    key, task_id, work, (host, port, secret), patience = marshal.loads(attempt)
    wake = threading.Event()
    listener = AttemptListener(wake)
    try:
        link = link_to(host, port, secret, patience)
    except OSError as exc:  # ChannelClosed too
        return ("lost", f"the host's channel at {host}:{port} could not be reached: {exc}")
    link.join(key, listener)
    here = _OnTheNode(key, task_id, listener, wake, link)
    try:
        answer = _attempt(here, work)
    finally:
        link.leave(key)
    return _hand_back(answer, key, link)


def attempt_argument(
    key: int, task_id: str, work: bytes, channel: tuple[str, int, bytes], patience: float
) -> bytes:
    """:func:`run_attempt`'s one argument, made on the host: bytes, which Ray passes as
    they are (a tuple would go through its pickler, a measured share of the per-task
    submission)."""
    return marshal.dumps((key, task_id, work, channel, patience))


@dataclass(frozen=True, slots=True)
class _OnTheNode:
    """One attempt's parts on the node."""

    key: int  # its name on the host channel
    task_id: str
    listener: AttemptListener  # what the host told it
    wake: threading.Event  # its own thread: something to do
    link: NodeLink  # the process's connection to the host


def _attempt(here: _OnTheNode, work: bytes) -> tuple[Any, ...]:
    import ray

    key, listener, link = here.key, here.listener, here.link
    node_id = ray.get_runtime_context().get_node_id()
    if link.send(("started", key, os.getpid(), node_id)):
        listener.go_event.wait(GO_TIMEOUT_SECONDS)
    if listener.go is None:
        why = listener.lost or link.broken
        return ("lost", why or f"no verdict from the host within {GO_TIMEOUT_SECONDS:g} s")
    if not listener.go:
        return ("refused",)
    return _run(here, work)


def _hand_back(answer: tuple[Any, ...], key: int, link: NodeLink) -> tuple[Any, ...]:
    """What the Ray task returns. An answer of at most ``CHANNEL_ANSWER_BYTES`` goes on
    the host channel (after the attempt's progress, so never ahead of it) and the task
    returns ``("sent",)``: the host needs no Ray call for it. A larger one is the task's
    value (the object store carries it), announced by ``ending``."""
    if _size(answer) <= CHANNEL_ANSWER_BYTES and link.send(("answer", key, *answer)):
        return ("sent",)
    link.send(("ending", key))  # the host fetches this answer first
    return answer


def _size(answer: tuple[Any, ...]) -> int:
    if answer[0] == "completed":
        return len(answer[1])
    if answer[0] == "raised":
        return sum(len(part) for part in answer[1][:3])
    return 0


def _run(here: _OnTheNode, work: bytes) -> tuple[Any, ...]:
    key, task_id, listener, wake, link = here.key, here.task_id, here.listener, here.wake, here.link
    try:
        operation, params, dependency_results, resume_json, checkpoint_wait = pickle.loads(work)
    except BaseException as exc:  # an operation or value the node cannot import
        return ("raised", exception_facts(exc), 0, None)
    context = RayTaskContext(
        task_id, dependency_results, listener, wake, resume_json, checkpoint_wait
    )
    answer: list[tuple[Any, ...]] = []
    done = threading.Event()

    def call() -> None:
        try:
            try:
                result = operation(params, context)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the worker lives
                answer.append(("raised", exception_facts(exc)))
                return
            try:
                blob = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                _, text, trace, _ = exception_facts(exc)
                info = ("pickle.PicklingError", f"the operation's result cannot be pickled: {text}")
                mro = ("pickle.PicklingError", "Exception", "BaseException")
                answer.append(("raised", (*info, trace, mro)))
                return
            answer.append(("completed", blob))
        except TaskInterrupted as exc:  # landed between the operation's end and here
            answer.append(("raised", exception_facts(exc)))
        finally:
            done.set()
            wake.set()

    thread = threading.Thread(target=call, name=f"operation-{task_id}", daemon=True)
    thread.start()
    sent = 0
    while True:
        wake.wait(INTERRUPT_REPEAT_SECONDS if listener.interrupts else None)
        wake.clear()
        if not done.is_set() and listener.interrupts and thread.ident is not None:
            # The host's second step: TaskInterrupted in the operation's thread, again every
            # INTERRUPT_REPEAT_SECONDS until it has left (it may catch one).
            raise_in_thread(thread.ident, TaskInterrupted)
        if done.is_set():
            break
        fields = context._drained()
        if fields is not None and link.send(("progress", key, *fields)):
            sent += 1
        done.wait(PROGRESS_INTERVAL)  # at most one progress message per interval
    thread.join()
    # What was published since the last message (just before the end) travels with the
    # answer, which is thus never overtaken by an older message.
    return (*answer[0], sent, context._drained())
