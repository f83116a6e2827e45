"""Subscriptions: lifecycle events delivered to integrations as messages.

The registry, which sees every lifecycle fact in order, tells each one to the notifier
actor (only while someone is subscribed; after the fact is committed, with a durable
store). The notifier hands it to every matching subscription: an actor ref of the
integration's own gets the :class:`TaskEvent` as a message; a callback gets it from a
subscriber actor of its own (a thread each), so a slow or raising callback never holds
up the registry, the notifier or another subscriber. Events of one task arrive in the
order they happened.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors._errors import ActorUnresponsiveError
from actors.logs import library_logger

__all__ = ["EVENT_KINDS", "NotifierActor", "Subscription", "TaskEvent"]

_log = library_logger("actors.notifier")

EVENT_KINDS = frozenset(
    {"created", "started", "progress", "retry_scheduled", "completed", "failed", "cancelled"}
)
"""What a :class:`TaskEvent` can report. ``"terminal"`` in a subscription's ``events``
stands for the last three, ``"retry"`` for ``retry_scheduled``."""

_calling = threading.local()  # the subscription whose callback this thread is running

_ALIASES = {
    "terminal": ("completed", "failed", "cancelled"),
    "retry": ("retry_scheduled",),
}


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One lifecycle fact of one task: the same one a structlog ``task.<kind>`` event
    carries. ``at`` is wall-clock seconds; ``data`` holds the event's own fields
    (``progress``, ``attempt``, ``next_attempt_at``, ``status``, ...)."""

    kind: str
    task_id: str
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"event": f"task.{self.kind}", "task_id": self.task_id, "at": self.at, **self.data}


def event_kinds(events: Iterable[str] | None) -> frozenset[str] | None:
    """The kinds a subscription's ``events`` names (None: all); ValueError on a typo."""
    if events is None:
        return None
    if isinstance(events, str):
        events = [events]
    kinds: set[str] = set()
    for name in events:
        if not isinstance(name, str):
            raise TypeError(f"events must be event names, got {name!r}")
        short = name.removeprefix("task.")
        if short in _ALIASES:
            kinds.update(_ALIASES[short])
        elif short in EVENT_KINDS:
            kinds.add(short)
        else:
            choices = ", ".join(sorted(EVENT_KINDS | set(_ALIASES)))
            raise ValueError(f"unknown event {name!r}; use some of {choices}")
    return frozenset(kinds)


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    target: pykka.ActorRef[Any]  # the integration's actor, or our SubscriberActor
    task_id: str | None
    kinds: frozenset[str] | None
    owned: bool  # a SubscriberActor of ours (stopped with the subscription)

    def wants(self, event: TaskEvent) -> bool:
        return (self.task_id is None or self.task_id == event.task_id) and (
            self.kinds is None or event.kind in self.kinds
        )


class SubscriberActor(pykka.ThreadingActor):
    """Calls one subscription's callback with each event, in order, on its own thread."""

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        return queue.SimpleQueue()

    def __init__(self, callback: Callable[[TaskEvent], Any], subscription_id: str) -> None:
        super().__init__()
        self._callback = callback
        self._subscription_id = subscription_id
        self.failures = 0

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, TaskEvent):
            return super().on_receive(message)
        _calling.subscription_id = self._subscription_id  # unsubscribe() from inside
        try:
            self._callback(message)
        except Exception as exc:  # a subscriber's bug is its own: log it and carry on
            self.failures += 1
            _log.warning(
                "subscription.callback_failed",
                subscription_id=self._subscription_id,
                task_id=message.task_id,
                task_event=message.kind,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            _calling.subscription_id = None
        return None


@dataclass(frozen=True, slots=True)
class _Add:
    subscription: Subscription


@dataclass(frozen=True, slots=True)
class _Remove:
    subscription_id: str


@dataclass(frozen=True, slots=True)
class _Flush:
    """Asked: answered once every event queued before it was told to its subscribers."""


class NotifierActor(pykka.ThreadingActor):
    """Fans the registry's events out to the subscriptions that want them."""

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        return queue.SimpleQueue()

    def __init__(self, active: threading.Event) -> None:
        super().__init__()
        self._subscriptions: dict[str, Subscription] = {}
        self._active = active  # set while any subscription exists: the registry's cue

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TaskEvent):
            gone = []
            for subscription in self._subscriptions.values():
                if subscription.wants(message):
                    try:
                        subscription.target.tell(message)
                    except pykka.ActorDeadError:
                        gone.append(subscription.subscription_id)
            for subscription_id in gone:
                # An integration's actor that stopped: its subscription ends with it.
                self._subscriptions.pop(subscription_id, None)
                _log.info("subscription.target_stopped", subscription_id=subscription_id)
            if gone and not self._subscriptions:
                self._active.clear()
            return None
        if isinstance(message, _Add):
            self._subscriptions[message.subscription.subscription_id] = message.subscription
            self._active.set()
            return None
        if isinstance(message, _Remove):
            removed = self._subscriptions.pop(message.subscription_id, None)
            if not self._subscriptions:
                self._active.clear()
            return removed
        if isinstance(message, _Flush):
            return None
        return super().on_receive(message)


class Subscriptions:
    """The runtime's side: subscribe and unsubscribe through the notifier actor."""

    def __init__(self, notifier: pykka.ActorRef[Any], ask_timeout: float) -> None:
        self._notifier = notifier
        self._ask_timeout = ask_timeout
        self._ids = itertools.count(1)
        self._owned: dict[str, pykka.ActorRef[Any]] = {}
        self._lock = threading.Lock()
        self._stopping: str | None = None

    def subscribe(
        self,
        target: Callable[[TaskEvent], Any] | pykka.ActorRef[Any],
        *,
        task_id: str | None,
        events: Iterable[str] | None,
    ) -> str:
        subscription_id, kinds = self._checked(task_id, events)
        owned = not isinstance(target, pykka.ActorRef)
        if owned:
            if not callable(target):
                raise TypeError(
                    f"subscribe takes a callable(event) or a pykka actor ref, got "
                    f"{type(target).__name__}"
                )
            ref: pykka.ActorRef[Any] = SubscriberActor.start(target, subscription_id)
            with self._lock:
                self._owned[subscription_id] = ref
        else:
            assert isinstance(target, pykka.ActorRef)
            ref = target
        subscription = Subscription(subscription_id, ref, task_id, kinds, owned)
        # Asked, not told: once subscribe returns, the notifier has it, so every event
        # the registry tells it from then on reaches the subscriber.
        try:
            self._notifier.ask(_Add(subscription), timeout=self._ask_timeout)
        except pykka.ActorDeadError:
            self.unsubscribe(subscription_id)  # raced a shutdown: leave no actor behind
            raise
        return subscription_id

    def _checked(
        self, task_id: str | None, events: Iterable[str] | None
    ) -> tuple[str, frozenset[str] | None]:
        kinds = event_kinds(events)
        if task_id is not None and not isinstance(task_id, str):
            raise TypeError(f"task_id must be a str or None, got {type(task_id).__name__}")
        return f"sub-{next(self._ids)}", kinds

    def relayed(
        self, ref: pykka.ActorRef[Any], *, task_id: str | None, events: Iterable[str] | None
    ) -> tuple[Subscription, object]:
        """For a caller that cannot block (an event loop): a subscription delivering to
        ``ref`` (an actor of the caller's), and the message that adds it, which the caller
        asks the notifier itself (see :attr:`notifier`)."""
        subscription_id, kinds = self._checked(task_id, events)
        subscription = Subscription(subscription_id, ref, task_id, kinds, owned=False)
        return subscription, _Add(subscription)

    @staticmethod
    def flushing() -> object:
        """The message :meth:`flush` asks the notifier (answered once it has told its
        subscribers every event it had)."""
        return _Flush()

    @staticmethod
    def removal(subscription_id: str) -> object:
        """The message that ends a subscription (its answer: the removed one, or None)."""
        return _Remove(subscription_id)

    @property
    def notifier(self) -> pykka.ActorRef[Any]:
        return self._notifier

    def unsubscribe(self, subscription_id: str) -> bool:
        try:
            removed = self._notifier.ask(_Remove(subscription_id), timeout=self._ask_timeout)
        except pykka.ActorDeadError:
            removed = None
        with self._lock:
            ref = self._owned.pop(subscription_id, None)
        if ref is not None:
            # After the events queued for it; from inside its own callback it cannot wait
            # for itself: its thread ends once the callback returns.
            own = getattr(_calling, "subscription_id", None) == subscription_id
            ref.stop(block=not own, timeout=self._ask_timeout)
        return removed is not None

    def flush(self) -> None:
        """Return once the notifier has told its subscribers every event it had."""
        try:
            self._notifier.ask(_Flush(), timeout=self._ask_timeout)
        except pykka.Timeout:
            raise ActorUnresponsiveError("notifier", "Flush", self._ask_timeout) from None

    @property
    def stopping(self) -> str | None:
        """The subscription whose callback :meth:`stop_all` is waiting for, if any."""
        return self._stopping

    def stop_all(self) -> None:
        """Stop every owned subscriber once it has handled the events queued for it.

        Waits as long as a callback takes to return, as shutdown waits for an
        operation: a callback that blocks holds the shutdown up (and is named by
        :attr:`stopping`), it does not abort it half way."""
        with self._lock:
            owned, self._owned = self._owned, {}
        stops = [(subscription_id, ref.stop(block=False)) for subscription_id, ref in owned.items()]
        for subscription_id, stopped in stops:
            self._stopping = subscription_id
            while True:
                try:
                    stopped.get(timeout=self._ask_timeout)
                    break
                except pykka.Timeout:
                    continue  # still in its callback: keep waiting, now named
        self._stopping = None
