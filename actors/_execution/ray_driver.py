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
the Ray task returns None (which Ray serializes without its pickler); a larger one, or
one the channel could not take, is the Ray task's value (announced by ``ending``, and
read by the host only once it has all ``sent`` progress messages).

Values are pickled here, so a value that cannot be pickled fails the task (``raised``)
instead of Ray's return, and the worker lives on. The operation runs on the Ray task's
own thread, as a bare Ray task's would: no thread is made for an operation that
publishes nothing. What it publishes is shipped by a thread of its attempt, started by
the first value (:class:`_Shipper`); the host's interrupt is raised in it by the link's
reader thread, and repeated by a timer (:class:`_Interrupts`).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import pickle
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors._clock import blocking_timeout
from actors._enums import StopReason
from actors._exception_facts import exception_facts
from actors._execution.checkpoints import decode_checkpoint, encode_checkpoint
from actors._execution.interrupt import (
    TaskInterrupted,
    deliver_pending_interrupt,
    raise_in_thread,
)
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
        wake: Callable[[], None],
        resume_json: str | None = None,
        checkpoint_wait: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.dependency_results = dependency_results
        self._listener = listener
        self._wake = wake  # called with the first value since the last shipment
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
            self._wake()

    @property
    def partial_result(self) -> Any:
        return self._published.latest_partial()

    @partial_result.setter
    def partial_result(self, value: Any) -> None:
        if self._published.partial(value):
            self._wake()

    def heartbeat(self) -> None:
        if self._published.heartbeat():
            self._wake()

    def checkpoint(self, state: Any) -> None:
        text = encode_checkpoint(state)  # a TypeError here, in the operation
        self._listener.commits.checkpoint(
            self._published, text, self._checkpoint_wait, self.task_id, self._ship
        )

    def _ship(self, first: bool) -> None:
        if first:
            self._wake()

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


def run_attempt(attempt: bytes) -> tuple[Any, ...] | None:
    """One attempt on the node (see the module's docstring for what it returns).
    ``attempt`` (``marshal``, see :func:`attempt_argument`): its key on the host channel,
    the task's id, the work (the operation and what it is called with, pickled), the
    host channel's address and secret, and how long the host may stay unreachable
    before the attempt reads as lost."""
    key, task_id, work, (host, port, secret), patience = marshal.loads(attempt)
    interrupts = _Interrupts()
    listener = AttemptListener(interrupts.ask)
    try:
        link = link_to(host, port, secret, patience)
    except OSError as exc:  # ChannelClosed too
        return ("lost", f"the host's channel at {host}:{port} could not be reached: {exc}")
    link.join(key, listener)
    here = _OnTheNode(key, task_id, listener, interrupts, link)
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
    interrupts: _Interrupts  # the host's interrupts, into the operation's thread
    link: NodeLink  # the process's connection to the host


def _attempt(here: _OnTheNode, work: bytes) -> tuple[Any, ...]:
    key, listener, link = here.key, here.listener, here.link
    if link.send(("started", key, os.getpid(), _node_id())):
        listener.go_event.wait(GO_TIMEOUT_SECONDS)
    if listener.go is None:
        why = listener.lost or link.broken
        return ("lost", why or f"no verdict from the host within {GO_TIMEOUT_SECONDS:g} s")
    if not listener.go:
        return ("refused",)
    return _run(here, work)


_NODE_ID: list[str] = []  # this worker process's node (it never changes)


def _node_id() -> str:
    if not _NODE_ID:
        import ray

        _NODE_ID.append(ray.get_runtime_context().get_node_id())
    return _NODE_ID[0]


def _hand_back(answer: tuple[Any, ...], key: int, link: NodeLink) -> tuple[Any, ...] | None:
    """What the Ray task returns. An answer of at most ``CHANNEL_ANSWER_BYTES`` goes on
    the host channel (after the attempt's progress, so never ahead of it) and the task
    returns None: the host needs no Ray call for it. A larger one is the task's
    value (the object store carries it), announced by ``ending``."""
    if _size(answer) <= CHANNEL_ANSWER_BYTES and link.send(("answer", key, *answer)):
        return None
    link.send(("ending", key))  # the host fetches this answer first
    return answer


def _size(answer: tuple[Any, ...]) -> int:
    if answer[0] == "completed":
        return len(answer[1])
    if answer[0] == "raised":
        return sum(len(part) for part in answer[1][:3])
    return 0


def _run(here: _OnTheNode, work: bytes) -> tuple[Any, ...]:
    """The operation, on this thread (the Ray task's own), and its answer: ``completed``
    or ``raised``, how many progress messages went before it, and what was published
    after the last of them."""
    try:
        operation, params, dependency_results, resume_json, checkpoint_wait = pickle.loads(work)
    except BaseException as exc:  # an operation or value the node cannot import
        return ("raised", exception_facts(exc), 0, None)
    shipper = _Shipper(here)
    context = RayTaskContext(
        here.task_id, dependency_results, here.listener, shipper.wake, resume_json,
        checkpoint_wait,
    )  # fmt: skip
    shipper.context = context
    answer = _call(operation, params, context, here.interrupts)
    # What was published since the last message (just before the end) travels with the
    # answer, which is thus never overtaken by an older message.
    return (*answer, shipper.finish(), context._drained())


def _call(
    operation: Any, params: Any, context: RayTaskContext, interrupts: _Interrupts
) -> tuple[Any, ...]:
    """The operation's answer (``completed`` or ``raised``). The host's interrupts reach
    it only while it runs: one that lands just after it (before ``leave`` took hold) is
    its end if it had none yet, and is otherwise dropped."""
    ended: tuple[bool, Any] | None = None  # (returned, its value or exception)
    while True:
        try:
            if ended is None:
                try:
                    interrupts.enter()
                    ended = (True, operation(params, context))
                except BaseException as exc:  # SystemExit, KeyboardInterrupt: the worker lives
                    ended = (False, exc)
            interrupts.leave()
            deliver_pending_interrupt()  # one set before leave() took hold is raised here
            break
        except TaskInterrupted as exc:
            if ended is None:
                ended = (False, exc)
    returned, value = ended
    return _pickled(value) if returned else ("raised", exception_facts(value))


def _pickled(result: Any) -> tuple[Any, ...]:
    try:
        return ("completed", pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        _, text, trace, _ = exception_facts(exc)
        info = ("pickle.PicklingError", f"the operation's result cannot be pickled: {text}")
        mro = ("pickle.PicklingError", "Exception", "BaseException")
        return ("raised", (*info, trace, mro))


class _Interrupts:
    """The host's second step: ``TaskInterrupted`` raised in the operation's thread (the
    link's reader thread hears it), again every ``INTERRUPT_REPEAT_SECONDS`` (one
    repeater thread) until the operation has left (it may catch one); never outside
    the operation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: int | None = None  # the operation's, while it runs
        self._asked = False
        self._left = threading.Event()
        self._repeater: threading.Thread | None = None

    def enter(self) -> None:
        """On the operation's thread, just before it runs (an interrupt that came first
        is raised at once)."""
        with self._lock:
            self._thread = threading.get_ident()
            if self._asked:
                self._raise()

    def ask(self) -> None:
        """The host's interrupt (the reader thread); the repeater, once running, raises
        the next ones."""
        with self._lock:
            self._asked = True
            if self._thread is not None and self._repeater is None:
                self._raise()

    def leave(self) -> None:
        """On the operation's thread, once it has returned or raised: nothing more is
        raised in it (one raised but not delivered yet is the caller's to drain, see
        ``deliver_pending_interrupt``)."""
        with self._lock:
            self._thread = None
            self._left.set()

    def _raise(self) -> None:
        """Under the lock, with the operation running."""
        assert self._thread is not None
        raise_in_thread(self._thread, TaskInterrupted)
        if self._repeater is None:
            self._repeater = threading.Thread(target=self._repeat, name="interrupts", daemon=True)
            self._repeater.start()

    def _repeat(self) -> None:
        while not self._left.wait(INTERRUPT_REPEAT_SECONDS):
            with self._lock:
                if self._thread is None:
                    return
                raise_in_thread(self._thread, TaskInterrupted)


class _Shipper:
    """Ships what the operation publishes as ``progress`` messages, coalesced (at most
    one every ``PROGRESS_INTERVAL``), on a thread of the attempt started by the first
    value: an operation that publishes nothing costs no thread."""

    def __init__(self, here: _OnTheNode) -> None:
        self._here = here
        self.context: RayTaskContext | None = None
        self._lock = threading.Lock()
        self._pending = threading.Event()  # something to ship
        self._over = threading.Event()  # the operation has left
        self._thread: threading.Thread | None = None
        self._sent = 0

    def wake(self) -> None:
        """The first value since the last shipment (the operation's thread)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._over.is_set():
                    self._thread = threading.Thread(
                        target=self._ship, name=f"progress-{self._here.task_id}", daemon=True
                    )
                    self._thread.start()
        self._pending.set()

    def finish(self) -> int:
        """The operation has left: the thread ends; how many messages it sent."""
        with self._lock:
            self._over.set()
            thread = self._thread
        if thread is not None:
            self._pending.set()
            # Not started if an interrupt cut its start short: then it never ships, as
            # it sees the operation over first.
            with contextlib.suppress(RuntimeError):
                thread.join()
        return self._sent

    def _ship(self) -> None:
        here, context = self._here, self.context
        assert context is not None
        while True:
            self._pending.wait()
            self._pending.clear()
            if self._over.is_set():
                return  # what is left travels with the answer
            fields = context._drained()
            if fields is not None and here.link.send(("progress", here.key, *fields)):
                self._sent += 1
            self._over.wait(PROGRESS_INTERVAL)  # at most one progress message per interval
