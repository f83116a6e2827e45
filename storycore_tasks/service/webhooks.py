"""Signed webhooks: a task's status POSTed to its ``callback_url`` when the task ends
(and on each progress event with ``callback_on_progress``).

What is sent: ``POST <callback_url>`` with StoryCore's envelope of the task's status,
``{"status": "success", "data": <GET /v1/tasks/{id}'s data>, "error": null,
"metadata": {"request_id": <the delivery id>, ...}}``, and the headers

* ``Content-Type: application/json``
* ``X-StoryCore-Event: task.<kind>``: ``task.completed``, ``task.failed``,
  ``task.cancelled`` or ``task.progress``
* ``X-StoryCore-Delivery: <uuid>``: the same on every retry of one delivery (receivers
  deduplicate on it)
* ``X-StoryCore-Timestamp: <unix seconds>``: when this attempt was made
* ``X-StoryCore-Signature: sha256=<hex>``

The signature is the lower-case hex HMAC-SHA256, keyed with the service's webhook secret
(its UTF-8 bytes), of the signed string: the ``X-StoryCore-Timestamp`` value, a period
(``.``), then the request body exactly as received (bytes)::

    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    ok = hmac.compare_digest("sha256=" + expected.hexdigest(), signature_header)

A receiver should also refuse timestamps more than a few minutes old (replays).

How it is sent: a 2xx answer is a delivery. Anything else (another status, a redirect:
none is followed, a connection error, a timeout) is retried with exponential backoff
(0.5 s, doubling, at most 30 s, each with +/-20 % jitter) until ``retry_seconds`` have
passed since the first attempt, then the delivery is abandoned (``webhook.abandoned``).
The deliveries of one task go out in order, one at a time; progress deliveries waiting
behind another one are merged (the body is built when a delivery is first attempted, so
it carries the latest status). Deliveries run on a few threads of their own, and a
waiting retry holds no thread, so a slow or failing receiver never slows the manager or
other tasks' deliveries (beyond the threads it holds, each for at most ``timeout``).
Environment proxies and ``.netrc`` are not used: the secret-signed POST goes only to the
URL given.

A task's registration is forgotten once its terminal delivery is delivered or
abandoned. Progress events before the registration (``POST /v1/tasks`` registers right
after creating the task) are not sent; a task that ended before it still gets its
terminal delivery.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from actors import TERMINAL_STATUSES, TaskEvent
from actors.logs import library_logger
from storycore_tasks.envelope import APIResponse, RequestContext
from storycore_tasks.errors import ErrorCodes, ErrorDetails, Surface, status_shown_on
from storycore_tasks.manager import TaskManager
from storycore_tasks.service.deps import ServiceError
from storycore_tasks.service.redaction import redact

__all__ = ["InvalidCallbackURL", "WebhookSender", "signature"]

_log = library_logger("storycore_tasks.webhooks")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
JITTER = 0.2
WORKERS = 4
_JOIN_GRACE = 5.0


class InvalidCallbackURL(ServiceError, ValueError):
    """A ``callback_url`` that may not receive webhooks: a ValueError, answered by the
    service as ``VALIDATION_ERROR``."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorDetails.of(ErrorCodes.VALIDATION_ERROR, message))


def signature(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The ``X-StoryCore-Signature`` value of ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(slots=True)
class _Registration:
    url: str
    progress: bool
    terminal_queued: bool = False


@dataclass(slots=True)
class _Delivery:
    task_id: str
    url: str
    kind: str
    delivery_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    body: bytes | None = None  # built at the first attempt
    first_at: float | None = None  # monotonic time of the first attempt
    attempts: int = 0

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_STATUSES


class WebhookSender:
    """POSTs signed status envelopes to the tasks' callback URLs (see the module)."""

    def __init__(
        self,
        manager: TaskManager,
        *,
        secret: str,
        allowed_hosts: tuple[str, ...] | None,
        retry_seconds: float,
        timeout: float,
    ) -> None:
        if not isinstance(secret, str) or not secret:
            raise ValueError("the webhook secret must be a non-empty string")
        for name, value in (("retry_seconds", retry_seconds), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self._manager = manager
        self._secret = secret.encode("utf-8")
        self._allowed = (
            None
            if allowed_hosts is None
            else frozenset(h.strip().lower().rstrip(".") for h in allowed_hosts)
        )
        self._retry_seconds = float(retry_seconds)
        self._timeout = float(timeout)
        self._cond = threading.Condition()
        self._registrations: dict[str, _Registration] = {}
        self._ready: deque[_Delivery] = deque()  # may be attempted now
        self._retries: list[tuple[float, int, _Delivery]] = []  # heap by due time
        self._order = itertools.count()
        # Per task with a delivery in flight or waiting to retry: the ones behind it.
        self._behind: dict[str, deque[_Delivery]] = {}
        self._pending = 0
        self._delivered = 0
        self._retried = 0
        self._abandoned = 0
        self._closed = False
        self._subscription: str | None = None
        self._client = httpx.Client(
            timeout=self._timeout or None, follow_redirects=False, trust_env=False
        )
        self._threads = [
            threading.Thread(target=self._work, name=f"storycore-webhook-{n}", daemon=True)
            for n in range(WORKERS)
        ]
        for thread in self._threads:
            thread.start()
        try:
            self._subscription = manager.subscribe(self._on_event, events=["progress", "terminal"])
        except BaseException:
            self.close()
            raise

    # -- the API -----------------------------------------------------------------------------

    def check_url(self, url: str) -> None:
        """Raise ValueError (:class:`InvalidCallbackURL`) naming the problem unless
        ``url`` may receive webhooks: http or https, with a host, among the allowed
        hosts when the service has a list."""
        if not isinstance(url, str):
            raise InvalidCallbackURL(f"callback_url must be a string, got {type(url).__name__}")
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
            httpx.URL(url)
        except (ValueError, httpx.InvalidURL) as exc:
            raise InvalidCallbackURL(f"callback_url is not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            shown = f"{scheme!r}" if scheme else "none"
            raise InvalidCallbackURL(
                f"callback_url must be an http:// or https:// URL, its scheme is {shown}"
            )
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise InvalidCallbackURL("callback_url has no host")
        if self._allowed is not None and host.lower() not in self._allowed:
            allowed = ", ".join(sorted(self._allowed)) or "none"
            raise InvalidCallbackURL(
                f"callback_url's host {host!r} is not one webhooks may go to (allowed: "
                f"{allowed}; the service's --webhook-allowed-host)"
            )

    def register(self, task_id: str, url: str, progress: bool) -> None:
        """Send ``task_id``'s events to ``url`` (terminal; progress too if asked)."""
        self.check_url(url)
        with self._cond:
            if self._closed:
                return
            self._registrations[task_id] = _Registration(url, bool(progress))
        # The task may have ended before it was registered: its terminal event was
        # ignored then, so it is sent from here (once, whichever comes first).
        try:
            status = self._manager.get_task_status(task_id)
        except Exception:
            status = None
        kind = None if status is None else status.get("status")
        if kind in TERMINAL_STATUSES:
            assert isinstance(kind, str)
            with self._cond:
                self._queue_terminal(task_id, kind)

    def stats(self) -> dict[str, int]:
        """Deliveries delivered, retries scheduled, deliveries abandoned, and deliveries
        not finished yet (queued, in flight or waiting to retry)."""
        with self._cond:
            return {
                "delivered": self._delivered,
                "retried": self._retried,
                "abandoned": self._abandoned,
                "pending": self._pending,
            }

    def close(self) -> None:
        """Stop sending (deliveries not finished are abandoned) and join the threads;
        an attempt in flight is waited for (at most ``timeout``)."""
        with self._cond:
            already = self._closed
            self._closed = True
            dropped = len(self._ready) + len(self._retries)
            dropped += sum(len(q) for q in self._behind.values())
            self._abandoned += dropped
            self._pending -= dropped
            self._ready.clear()
            self._retries.clear()
            self._behind.clear()
            self._registrations.clear()
            subscription, self._subscription = self._subscription, None
            self._cond.notify_all()
        if subscription is not None:
            try:
                self._manager.unsubscribe(subscription)
            except Exception as exc:
                _log.warning("webhook.unsubscribe_failed", error=f"{type(exc).__name__}: {exc}")
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(self._timeout + _JOIN_GRACE)
        if not already:
            self._client.close()
            if dropped:
                _log.warning("webhook.abandoned", deliveries=dropped, reason="service stopping")

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, event: TaskEvent) -> None:
        """On the subscription's thread: queue a delivery, never wait for one."""
        with self._cond:
            if self._closed:
                return
            registration = self._registrations.get(event.task_id)
            if registration is None or registration.terminal_queued:
                return
            if event.kind in TERMINAL_STATUSES:
                self._queue_terminal(event.task_id, event.kind)
            elif event.kind == "progress" and registration.progress:
                self._queue(_Delivery(event.task_id, registration.url, "progress"))

    def _queue_terminal(self, task_id: str, kind: str) -> None:
        registration = self._registrations.get(task_id)
        if self._closed or registration is None or registration.terminal_queued:
            return
        registration.terminal_queued = True
        self._queue(_Delivery(task_id, registration.url, kind))

    def _queue(self, delivery: _Delivery) -> None:
        behind = self._behind.get(delivery.task_id)
        if behind is None:
            self._behind[delivery.task_id] = deque()
            self._ready.append(delivery)
            self._cond.notify()
        elif delivery.kind == "progress" and behind and behind[-1].kind == "progress":
            return  # the waiting one reads the status when it goes: the same news
        else:
            behind.append(delivery)
        self._pending += 1

    # -- the workers -----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                delivery = self._next()
            if delivery is None:
                return
            error = self._attempt(delivery)
            self._after(delivery, error)

    def _next(self) -> _Delivery | None:
        """Under the lock: the next delivery due, waiting for one; None once closed."""
        while not self._closed:
            now = time.monotonic()
            while self._retries and self._retries[0][0] <= now:
                self._ready.append(heapq.heappop(self._retries)[2])
            if self._ready:
                return self._ready.popleft()
            self._cond.wait(self._retries[0][0] - now if self._retries else None)
        return None

    def _attempt(self, delivery: _Delivery) -> str | None:
        """One POST; None when delivered, else what went wrong."""
        if delivery.body is None:
            delivery.first_at = time.monotonic()
            delivery.body = self._body(delivery)
        delivery.attempts += 1
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "storycore-tasks-webhooks",
            "X-StoryCore-Event": f"task.{delivery.kind}",
            "X-StoryCore-Delivery": delivery.delivery_id,
            "X-StoryCore-Timestamp": timestamp,
            "X-StoryCore-Signature": signature(self._secret, timestamp, delivery.body),
        }
        try:
            # Streamed and not read: a receiver's answer body is never loaded.
            with self._client.stream(
                "POST", delivery.url, content=delivery.body, headers=headers
            ) as response:
                code = response.status_code
        except Exception as exc:
            # Logged: an error's text may quote the URL, and a callback URL may carry a
            # token in its query or a password.
            return redact(f"{type(exc).__name__}: {exc}") if str(exc) else type(exc).__name__
        return None if 200 <= code < 300 else f"HTTP {code}"

    def _body(self, delivery: _Delivery) -> bytes:
        try:
            status: Any = self._manager.get_task_status(delivery.task_id)
        except Exception:
            status = None
        if status is None:  # retention already removed it (or the manager is gone)
            status = {
                "task_id": delivery.task_id,
                "status": delivery.kind if delivery.terminal else None,
            }
        envelope = APIResponse.success(
            # GET /v1/tasks/{id}'s data, its remedy worded for HTTP clients as there.
            status_shown_on(status, Surface.HTTP),
            RequestContext(request_id=delivery.delivery_id),
        )
        return json.dumps(envelope.to_dict(), separators=(",", ":")).encode("utf-8")

    def _after(self, delivery: _Delivery, error: str | None) -> None:
        fields: dict[str, Any] = {
            "task_id": delivery.task_id,
            "delivery_id": delivery.delivery_id,
            "webhook_event": f"task.{delivery.kind}",
            "attempts": delivery.attempts,
        }
        with self._cond:
            assert delivery.first_at is not None
            now = time.monotonic()
            elapsed = now - delivery.first_at
            if error is None:
                self._delivered += 1
                self._finish(delivery)
                outcome = "webhook.delivered"
            elif self._closed or elapsed >= self._retry_seconds:
                self._abandoned += 1
                self._finish(delivery)
                outcome = "webhook.abandoned"
                fields["reason"] = "service stopping" if self._closed else "retry time over"
            else:
                backoff = BACKOFF_FIRST * 2.0 ** min(delivery.attempts - 1, 16)
                delay = min(BACKOFF_MAX, backoff * random.uniform(1.0 - JITTER, 1.0 + JITTER))
                due = min(now + delay, delivery.first_at + self._retry_seconds)
                heapq.heappush(self._retries, (due, next(self._order), delivery))
                self._retried += 1
                self._cond.notify()
                outcome = "webhook.retry"
                fields["retry_in"] = round(due - now, 3)
        if error is None:
            _log.info(outcome, **fields)
        else:
            _log.warning(outcome, error=error, seconds=round(elapsed, 3), **fields)

    def _finish(self, delivery: _Delivery) -> None:
        """Under the lock: the delivery is over; the task's next one may go."""
        self._pending -= 1
        behind = self._behind.get(delivery.task_id)
        if behind:
            self._ready.append(behind.popleft())
            self._cond.notify()
        else:
            self._behind.pop(delivery.task_id, None)
        if delivery.terminal:
            self._registrations.pop(delivery.task_id, None)
