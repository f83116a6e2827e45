"""The code that runs on a Ray node: one attempt of one task, and the stop board.

Kept lean, like the process pool's child (``actors._execution.child``): a Ray worker
imports this module, the standard library, ``ray`` and a few leaf modules of ``actors``
(never pykka, structlog, sqlite3, ``actors._core`` or ``actors._storage``;
tests/test_lean_child_imports.py checks it).

:func:`drive` is a streaming generator (``num_returns="streaming"``) the host submits once
per attempt with Ray's retries off. What it yields, in order (each a tuple):

* ``("started", worker_pid, node_id)`` as soon as it runs on a node; it then waits for
  the host's verdict on the board (``go``: with a durable store the host says go once
  ``running`` is committed; a stop that came first says no);
* ``("refused",)`` if the host said no (the operation never ran), and nothing more;
* ``("lost", error)`` if no verdict came: the board died or stayed unreachable for
  ``BOARD_RETRY_SECONDS`` (its node was lost), or ``GO_TIMEOUT_SECONDS`` passed; the
  operation never ran, and the host reads this as a lost cluster, never as a cancel;
* any number of ``("progress", fraction | None, has_partial, partial_pickle, alive,
  checkpoint_json | None, checkpoint_number)``, coalesced (at most one every
  ``PROGRESS_INTERVAL`` seconds, the latest values; ``alive``: a sign of life since the
  last, for ``heartbeat_timeout``; a number > 0: the checkpoint waits for the host to
  say it is committed, which the host posts on the board as ``stored``);
* one ``("completed", result_pickle)`` or ``("raised", exception_info)``.

Values are pickled here, so a value that cannot be pickled fails the task (``raised``)
instead of Ray's stream, and the worker lives on. The operation runs on a thread of the
worker; the generator's thread ships its progress and carries the host's stop ladder to
it: the cooperative flag (``task.is_cancelled()``), then ``TaskInterrupted`` raised in
the operation's thread, again every ``INTERRUPT_REPEAT_SECONDS`` until it has left. The
last step, a forced ``ray.cancel`` that ends the worker, is the host's.

The :class:`StopBoard` is one async actor per back-end (``num_cpus=0``): the host posts
``go``, ``stop``, ``interrupt`` and ``stored`` for a task; a listener thread of the
attempt long-polls it (``watch``), so a stop reaches the operation in a few milliseconds
while its progress and a late result still flow (a soft ``ray.cancel`` would end the
stream at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from actors._clock import blocking_timeout
from actors._enums import StopReason
from actors._exception_facts import exception_facts
from actors._execution.checkpoints import decode_checkpoint, encode_checkpoint
from actors._execution.interrupt import TaskInterrupted, raise_in_thread
from actors._execution.published import NumberedWaiter, Published, RemoteCommits

__all__ = [
    "BOARD_RETRY_SECONDS",
    "GO_TIMEOUT_SECONDS",
    "INTERRUPT_REPEAT_SECONDS",
    "PROGRESS_INTERVAL",
    "RayTaskContext",
    "StopBoard",
    "drive",
]

PROGRESS_INTERVAL = 0.01
INTERRUPT_REPEAT_SECONDS = 0.1
WATCH_SECONDS = 30.0  # one long poll of the board; then another
GO_TIMEOUT_SECONDS = 600.0  # no verdict by then: the host is gone (Ray ends us with it)
# The board unreachable this long (a busy or lost node, a dropped connection) is lost;
# a shorter gap is retried, every BOARD_RETRY_INTERVAL seconds.
BOARD_RETRY_SECONDS = 30.0
BOARD_RETRY_INTERVAL = 0.2
_BOARD_KEYS = frozenset({"go", "stop", "interrupts", "stored", "over"})


def _fresh_state() -> dict[str, Any]:
    # stored: (the latest checkpoint number the host committed, or failed to, and why not)
    return {"go": None, "stop": None, "interrupts": 0, "stored": (0, None), "over": False}


class _Entry:
    __slots__ = ("changed", "state", "version")

    def __init__(self) -> None:
        self.version = 0
        self.state = _fresh_state()
        self.changed = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()


class StopBoard:
    """What the host tells running attempts, per task id (an async Ray actor: every
    method is a coroutine on the actor's one event loop, so no locks)."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Entry] = {}

    async def post(self, task_id: str, key: str, value: Any) -> None:
        """Set ``go`` (bool), ``stop`` (a StopReason value) or ``stored`` (a checkpoint's
        number and the error that kept it from being committed, or None), or count one more
        ``interrupts``; the task's watcher wakes. The first stop reason wins; ``stored``
        only moves forward."""
        if key not in _BOARD_KEYS:
            raise ValueError(f"unknown board key {key!r}")
        entry = self._tasks.get(task_id)
        if entry is None:
            if key == "stored":  # the attempt ended first: no one waits, keep nothing
                return
            entry = self._tasks[task_id] = _Entry()
        if key == "interrupts":
            entry.state["interrupts"] += 1
        elif key == "stop" and entry.state["stop"] is not None:
            return
        elif key == "stored":
            number, error = value
            if number <= entry.state["stored"][0]:
                return
            entry.state["stored"] = (number, error)
        else:
            entry.state[key] = value
        entry.bump()

    async def watch(self, task_id: str, version: int, timeout: float) -> tuple[int, dict[str, Any]]:
        """The task's state once its version is past ``version`` (or ``timeout`` seconds
        passed). A task the host forgot reads ``over``."""
        entry = self._tasks.get(task_id)
        if entry is None:
            if version > 0:  # forgotten since the last watch: do not make it again
                return version + 1, {**_fresh_state(), "go": False, "over": True}
            entry = self._tasks[task_id] = _Entry()
        if entry.version == version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.changed.wait(), timeout)
        return entry.version, dict(entry.state)

    async def forget(self, task_id: str) -> None:
        """The attempt is over (the host saw its stream end): wake its watcher, drop it."""
        entry = self._tasks.pop(task_id, None)
        if entry is not None:
            entry.state["over"] = True
            entry.bump()

    async def size(self) -> int:
        """How many tasks the board holds (for tests: none once every attempt ended)."""
        return len(self._tasks)


class _Listener:
    """The attempt's thread that long-polls the board, and what it learnt."""

    def __init__(self, board: Any, task_id: str, wake: threading.Event) -> None:
        self._board = board
        self._task_id = task_id
        self._wake = wake  # the generator's thread: something to do
        self.go: bool | None = None
        self.go_event = threading.Event()
        self.stop = threading.Event()
        self.stop_reason: StopReason | None = None
        self.interrupts = 0
        # The host's word on the checkpoints that wait for their commit (the board's
        # ``stored``, see StopBoard.post).
        self.commits = RemoteCommits()
        self.closed = False
        self.lost: str | None = None  # why the board could not be read (then go is None)
        self._thread = threading.Thread(target=self._listen, name="stop-board", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError

        version = 0
        unreachable_since: float | None = None
        while not self.closed:
            try:
                ref = self._board.watch.remote(self._task_id, version, WATCH_SECONDS)
                version, state = ray.get(ref, timeout=WATCH_SECONDS + 30.0)
            except (ActorUnavailableError, GetTimeoutError) as exc:
                # Unreachable for now (its node is busy, a connection dropped): again,
                # until BOARD_RETRY_SECONDS have passed.
                now = time.monotonic()
                unreachable_since = now if unreachable_since is None else unreachable_since
                if now - unreachable_since < BOARD_RETRY_SECONDS:
                    time.sleep(BOARD_RETRY_INTERVAL)
                    continue
                self._lose(exc)
                return
            except Exception as exc:  # the board died (its node, or the host, is gone)
                self._lose(exc)
                return
            unreachable_since = None
            if state["go"] is not None and self.go is None:
                self.go = bool(state["go"])
                self.go_event.set()
            if state["stop"] is not None and self.stop_reason is None:
                self.stop_reason = StopReason(state["stop"])
                self.stop.set()
            if state["interrupts"] > self.interrupts:
                self.interrupts = state["interrupts"]
                self._wake.set()
            self.commits.answer(*state["stored"])
            if state["over"]:
                self.go_event.set()
                return

    def _lose(self, exc: BaseException) -> None:
        if self.closed:
            return
        self.lost = f"the host's stop board could not be read: {type(exc).__name__}: {exc}"
        self.go_event.set()


class RayTaskContext:
    """The ``task`` argument of an operation on a Ray node: the members of the
    :class:`actors.TaskContext` protocol, with the same types."""

    def __init__(
        self,
        task_id: str,
        dependency_results: Mapping[str, Any],
        listener: _Listener,
        wake: threading.Event,
        resume_json: str | None = None,
        checkpoint_wait: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.dependency_results = dependency_results
        self._listener = listener
        self._wake = wake
        self._published = Published()
        self.gpu_indices = _ray_gpu_ids()
        # The latest checkpoint of an earlier attempt (None on a first run).
        self.resume_from: Any = decode_checkpoint(resume_json)
        # With a durable store: how long a checkpoint waits for the host's word that it
        # is committed (None: it does not wait).
        self._checkpoint_wait = checkpoint_wait

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
        """The progress item for what was published since the last one (None if nothing)."""
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
        return ("progress", progress, has_partial, blob, alive, checkpoint, number)


def _ray_gpu_ids() -> tuple[int, ...]:
    """The GPUs Ray gave this worker (``ray.get_gpu_ids()``), sorted; empty without any
    or outside a Ray worker."""
    try:
        import ray

        return tuple(sorted(int(index) for index in ray.get_gpu_ids()))
    except Exception:  # not in a Ray worker, or an id that is not a number
        return ()


def drive(work: bytes, task_id: str, board: Any) -> Iterator[tuple[Any, ...]]:
    """One attempt on the node (see the module's docstring for what it yields)."""
    import ray

    yield ("started", os.getpid(), ray.get_runtime_context().get_node_id())
    wake = threading.Event()
    listener = _Listener(board, task_id, wake)
    try:
        if not listener.go_event.wait(GO_TIMEOUT_SECONDS) or listener.go is None:
            why = listener.lost or f"no verdict from the host within {GO_TIMEOUT_SECONDS:g} s"
            yield ("lost", why)
            return
        if not listener.go:
            yield ("refused",)
            return
        yield from _run(work, task_id, listener, wake)
    finally:
        listener.closed = True


def _run(
    work: bytes, task_id: str, listener: _Listener, wake: threading.Event
) -> Iterator[tuple[Any, ...]]:
    try:
        operation, params, dependency_results, resume_json, checkpoint_wait = pickle.loads(work)
    except BaseException as exc:  # an operation or value the node cannot import
        yield ("raised", exception_facts(exc))
        return
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
    while True:
        wake.wait(INTERRUPT_REPEAT_SECONDS if listener.interrupts else None)
        wake.clear()
        if not done.is_set() and listener.interrupts and thread.ident is not None:
            # The host's second step: TaskInterrupted in the operation's thread, again every
            # INTERRUPT_REPEAT_SECONDS until it has left (it may catch one).
            raise_in_thread(thread.ident, TaskInterrupted)
        item = context._drained()
        if item is not None:
            yield item
        if done.is_set():
            break
        done.wait(PROGRESS_INTERVAL)  # at most one progress item per interval
    thread.join()
    last = context._drained()  # published just before the end
    if last is not None:
        yield last
    yield answer[0]
