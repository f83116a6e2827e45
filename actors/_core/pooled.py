"""Pooled actors: pykka actors whose mailboxes are run by a shared dispatcher.

A :class:`pykka.ThreadingActor` owns an OS thread (~300 µs to start, stop and join).
Worker actors live for one task each, so they would pay that per task. A pooled actor
is a real pykka actor (ref, registry entry, tell, ask, stop) whose mailbox is drained by
a :class:`Dispatcher` thread only while it has messages, as Akka's dispatchers do. One
pooled actor still handles one message at a time, in order.

A pooled actor's handlers must be short and must never block: they share the
dispatcher's thread(s) with every other pooled actor.

pykka's registry is a list: unregistering an actor scans it, which costs about 0.2 ms
with 10,000 actors alive (measured: 9 µs at 1,000, 235 µs at 10,000 live actors, per
stop). A class that sets ``listed_in_pykka = False`` (the worker actors, one per running
task, thousands at once with coroutine operations) is kept in a registry of this module
instead, a dict by URN: :func:`unlisted_actors` and the test kit's leak checks see its
actors, and :func:`stop_all_actors` stops them with pykka's.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import threading
from collections.abc import Callable
from typing import Any, Self

import pykka
from pykka import ActorDeadError, messages
from pykka._envelope import Envelope

from actors._clock import blocking_timeout
from actors._execution.threadpool import ThreadPool
from actors._ids import new_id

__all__ = ["Dispatcher", "PooledActor", "stop_all_actors", "unlisted_actors"]

_BATCH = 64  # messages one actor may handle before yielding the thread to the others

# The live pooled actors kept out of pykka's registry, by URN (O(1) to add and remove).
_UNLISTED: dict[str, pykka.ActorRef[Any]] = {}
_UNLISTED_LOCK = threading.Lock()


def unlisted_actors() -> list[pykka.ActorRef[Any]]:
    """The live pooled actors of classes kept out of pykka's registry (worker actors)."""
    with _UNLISTED_LOCK:
        return list(_UNLISTED.values())


def stop_all_actors() -> None:
    """``pykka.ActorRegistry.stop_all()``, then a stop told to each unlisted pooled actor
    (what a BaseException escaping an actor does: every actor stops)."""
    pykka.ActorRegistry.stop_all()
    for ref in unlisted_actors():
        with contextlib.suppress(ActorDeadError):
            ref.stop(block=False)


class Dispatcher:
    """The threads that run pooled actors' mailboxes."""

    def __init__(self, threads: int = 1, *, name: str = "actors-dispatch") -> None:
        if threads < 1:
            raise ValueError(f"a dispatcher needs at least one thread, got {threads}")
        self._pool = ThreadPool(threads, name=name)

    def submit(self, run: Callable[[], None]) -> None:
        self._pool.submit(run)

    def shutdown(self, *, wait: bool = True) -> None:
        """Run the turns already queued, then stop the threads."""
        self._pool.shutdown(wait=wait)


class _StoppedFlag(threading.Event):
    """``actor_stopped`` for a pooled actor: a ``threading.Event`` whose Condition (and
    its lock) is made only when someone waits. pykka itself only calls ``is_set()`` and
    ``set()``, and a worker actor per task would otherwise pay for a Condition nobody
    waits on."""

    _making = threading.Lock()  # guards the lazy Condition of every flag (held briefly)

    def __init__(self) -> None:  # no super().__init__(): that is the Condition we defer
        self._flag = False
        self._lazy: threading.Condition | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._making:
            self._flag = True
            waiters = self._lazy
        if waiters is not None:
            with waiters:
                waiters.notify_all()

    def clear(self) -> None:
        with self._making:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        with self._making:
            if self._flag:
                return True
            if self._lazy is None:
                self._lazy = threading.Condition(threading.Lock())
            waiters = self._lazy
        with waiters:
            # set() notifies under this Condition after setting the flag, so the flag is
            # read again here before any sleep: a set() between the two locks is not lost.
            return waiters.wait_for(self.is_set, blocking_timeout(timeout))


class _DispatchingInbox:
    """A mailbox that asks the dispatcher for a turn when the first message arrives."""

    __slots__ = ("_actor", "_lock", "_queue", "_scheduled")

    def __init__(self) -> None:
        self._queue: collections.deque[Envelope[Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = True  # held until the actor is started
        self._actor: PooledActor | None = None

    # acquire/release, not ``with``: half the cost of a call (measured), and these run
    # for every message of every worker actor.

    def put(self, envelope: Envelope[Any], /) -> None:
        lock = self._lock
        lock.acquire()
        try:
            self._queue.append(envelope)
            if self._scheduled:
                return
            self._scheduled = True
        finally:
            lock.release()
        assert self._actor is not None
        self._actor._schedule()

    def get(self) -> Envelope[Any]:
        lock = self._lock
        lock.acquire()
        try:
            return self._queue.popleft()
        finally:
            lock.release()

    def empty(self) -> bool:
        with self._lock:
            return not self._queue

    def _next_or_release(self, stopped: bool) -> Envelope[Any] | None:
        """The next envelope, or None after giving up the turn (empty, or stopped)."""
        lock = self._lock
        lock.acquire()
        try:
            if stopped or not self._queue:
                self._scheduled = False
                return None
            return self._queue.popleft()
        finally:
            lock.release()


class PooledActor(pykka.Actor):
    """A pykka actor that runs on a :class:`Dispatcher` instead of a thread of its own.

    Pass the dispatcher as the ``dispatcher`` keyword argument of ``start()`` (or of
    ``spawn()``, which returns the actor itself for the one thread-safe call on it,
    :meth:`stop_when_idle`).
    """

    listed_in_pykka = True
    """False: :meth:`spawn` keeps the actor in this module's registry, not pykka's."""

    def __init__(self, *args: Any, dispatcher: Dispatcher, **kwargs: Any) -> None:
        # pykka.Actor.__init__ sets these four fields, drawing the URN from uuid4(): a
        # system call per actor that gives up the GIL, dear at one actor per task. Same
        # fields, the URN from actors._ids (equally random, one read per batch).
        self.actor_urn = f"urn:uuid:{new_id()}"
        self.actor_inbox = self._create_actor_inbox()
        self.actor_stopped = _StoppedFlag()
        self._actor_ref = pykka.ActorRef(self)
        self._dispatcher = dispatcher
        self._listed = True  # in pykka's registry (start(), or spawn() of a listed class)
        inbox = self.actor_inbox
        assert isinstance(inbox, _DispatchingInbox)
        inbox._actor = self

    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> Self:
        """``start()``, returning the actor instead of its ref (``actor.actor_ref``)."""
        actor = cls(*args, **kwargs)
        if cls.listed_in_pykka:
            pykka.ActorRegistry.register(actor.actor_ref)
        else:
            actor._listed = False
            with _UNLISTED_LOCK:
                _UNLISTED[actor.actor_urn] = actor.actor_ref
        actor._start_actor_loop()
        return actor

    def _stop(self) -> None:
        if self._listed:
            super()._stop()
            return
        # pykka's _stop without its registry's scan: the same steps, in its order.
        with _UNLISTED_LOCK:
            _UNLISTED.pop(self.actor_urn, None)
        self.actor_stopped.set()
        try:
            self.on_stop()
        except Exception:
            self._handle_failure(*sys.exc_info())

    def stop_when_idle(self) -> None:
        """Stop the actor from any thread: at once, in the calling thread, when no turn
        is queued or running (no dispatcher round trip); otherwise by a stop message
        behind the ones queued. Messages told after this find the actor dead."""
        inbox = self.actor_inbox
        assert isinstance(inbox, _DispatchingInbox)
        with inbox._lock:
            idle = not inbox._scheduled and not self.actor_stopped.is_set()
            if idle:
                inbox._scheduled = True  # no turn may start from now on
        if not idle:
            with contextlib.suppress(ActorDeadError):
                self.actor_ref.tell(messages._ActorStop())
            return
        self._stop()
        with inbox._lock:
            # As at the end of a turn: a message told by someone who saw the actor alive
            # just before _stop() gets a turn of its own, which answers it (dead).
            inbox._scheduled = False
        self._fail_leftovers(inbox)  # told between the check above and now

    @staticmethod
    def _create_actor_inbox() -> _DispatchingInbox:
        return _DispatchingInbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def _start_actor_loop(self) -> None:
        # on_start runs here, in the starting thread, before the mailbox is released: no
        # turn can run concurrently, and a task's worker saves a dispatcher round trip.
        # Like every handler of a pooled actor, on_start must be short and never block.
        inbox = self.actor_inbox
        assert isinstance(inbox, _DispatchingInbox)
        self._actor_loop_setup()  # on_start, with pykka's failure handling
        with inbox._lock:
            if not inbox._queue and not self.actor_stopped.is_set():
                inbox._scheduled = False
                return
        self._schedule()

    def _schedule(self) -> None:
        self._dispatcher.submit(self._run_turn)

    def _run_turn(self) -> None:
        inbox = self.actor_inbox
        assert isinstance(inbox, _DispatchingInbox)
        for _ in range(_BATCH):
            envelope = inbox._next_or_release(self.actor_stopped.is_set())
            if envelope is None:
                break
            self._handle_envelope(envelope)
        else:
            self._schedule()  # more to do: queue another turn behind the other actors
            return
        if self.actor_stopped.is_set():
            self._fail_leftovers(inbox)

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        # The same contract as pykka's own actor loop: replies get the result or the
        # exception; an unhandled exception stops this actor; a BaseException stops all.
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            self._stop()
            stop_all_actors()

    def _fail_leftovers(self, inbox: _DispatchingInbox) -> None:
        while True:
            with inbox._lock:
                if not inbox._queue:
                    return
                envelope = inbox._queue.popleft()
            if envelope.reply_to is None:
                continue
            if isinstance(envelope.message, messages._ActorStop):
                envelope.reply_to.set(None)
            else:
                envelope.reply_to.set_exception(
                    exc_info=(
                        ActorDeadError,
                        ActorDeadError(f"{self.actor_ref} stopped before handling the message"),
                        None,
                    )
                )
