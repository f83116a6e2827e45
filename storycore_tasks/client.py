"""A client of the HTTP service (``storycore-tasks serve``), for the CLI and for scripts.

>>> client = ServiceClient("http://127.0.0.1:8080", token=os.environ["STORYCORE_TASKS_TOKEN"])
>>> task_id = client.create_task("storycore.video.render", {"frames": 8}, timeout=60)
>>> for event_id, kind, data in client.events(task_id):  # ends when the task ends
...     print(kind, data.get("progress"))
>>> client.status(task_id)["status"]
'completed'

Every failure is a :class:`ServiceClientError` carrying the service's error code
(``NOT_FOUND``, ``AUTHENTICATION_REQUIRED``, ...), or ``UNREACHABLE`` when no service
answers at the URL. Needs the ``server`` extra (httpx).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from actors import TERMINAL_STATUSES

__all__ = [
    "TERMINAL_KINDS",
    "TERMINAL_STATUSES",
    "ServiceClient",
    "ServiceClientError",
]

TERMINAL_KINDS = TERMINAL_STATUSES
"""The event kinds that end a task's stream (a task's last event is one of them)."""

_MAX_PAGE = 1000  # the service's largest page of GET /v1/tasks
_STREAM_SILENCE = 60.0
"""Seconds an event stream may stay silent before it counts as dropped (the service
sends a keep-alive comment after 15 s without events)."""

Task = dict[str, Any]
Tasks = list[Task]
Event = tuple[int, str, dict[str, Any]]


class ServiceClientError(Exception):
    """A request the service refused (its envelope's error), or one that reached no
    service (``code`` ``UNREACHABLE``) or got an answer that is not the service's
    (``BAD_RESPONSE``)."""

    def __init__(
        self,
        code: str,
        message: str,
        http_status: int | None = None,
        remediation: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.remediation = remediation
        self.details: dict[str, Any] = dict(details or {})


class ServiceClient:
    """The service's task API over HTTP.

    Args:
        url: where the service listens, e.g. ``http://127.0.0.1:8080``.
        token: the bearer token (``storycore-tasks token create``); None when the
            service runs with ``--no-auth``.
        timeout: seconds to wait for the service to connect and to answer one request
            (an event stream waits for its next event as long as the service keeps the
            connection alive).
        transport: an httpx transport, for tests (``httpx.MockTransport``).
        reconnect_delay: seconds before an event stream reconnects after its connection
            ended, unless the service says otherwise (an SSE ``retry:`` field).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
        reconnect_delay: float = 1.0,
    ) -> None:
        self.url = _check_url(url)
        self._timeout = timeout
        self._reconnect_delay = reconnect_delay
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections kept open to the service."""
        self._http.close()

    # -- the task API -------------------------------------------------------------------

    def create_task(
        self, operation: str, params: Mapping[str, Any] | None = None, **options: Any
    ) -> str:
        """Create a task of a registered operation; returns its id at once.

        ``options`` are the other fields of ``POST /v1/tasks`` (``timeout``,
        ``priority``, ``isolation``, ``delay``, ``retry``, ``depends_on``,
        ``callback_url``, ...); None values are left out.
        """
        body: dict[str, Any] = {"operation": operation, "params": dict(params or {})}
        body.update((name, value) for name, value in options.items() if value is not None)
        data = self._request("POST", "/v1/tasks", json=body)
        task_id: str = data["task_id"]
        return task_id

    def status(self, task_id: str) -> Task:
        """The task's status dict (``NOT_FOUND`` for an unknown id, or another user's)."""
        data: Task = self._request("GET", _task_path(task_id))
        return data

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a pending or running task (``CONFLICT`` once it has ended)."""
        data: dict[str, Any] = self._request("POST", _task_path(task_id, "cancel"))
        return data

    def resume(self, task_id: str) -> dict[str, Any]:
        """Run a failed or cancelled task again from its latest checkpoint (``CONFLICT``
        naming why when it cannot be resumed)."""
        data: dict[str, Any] = self._request("POST", _task_path(task_id, "resume"))
        return data

    def list(self, status: str | None = None, limit: int | None = None) -> Tasks:
        """Tasks, oldest first (only ``status`` ones if given), at most ``limit``
        (None: all of them), following the service's pages."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        tasks: Tasks = []
        cursor: str | None = None
        while limit is None or len(tasks) < limit:
            wanted = _MAX_PAGE if limit is None else min(limit - len(tasks), _MAX_PAGE)
            query: dict[str, str | int] = {"limit": wanted}
            if status is not None:
                query["status"] = status
            if cursor is not None:
                query["cursor"] = cursor
            page = self._request("GET", "/v1/tasks", params=query)
            tasks.extend(page["tasks"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return tasks if limit is None else tasks[:limit]

    def stats(self) -> dict[str, Any]:
        """The manager's counters (``TaskManager.get_stats()``)."""
        data: dict[str, Any] = self._request("GET", "/v1/stats")
        return data

    def health(self) -> dict[str, Any]:
        """``GET /healthz`` (needs no token): ``{"status": "ok"}`` while the service runs."""
        data: dict[str, Any] = self._request("GET", "/healthz")
        return data

    # -- events ---------------------------------------------------------------------------

    def events(
        self,
        task_id: str | None = None,
        last_event_id: int | None = None,
        *,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
    ) -> Iterator[Event]:
        """Live events, as ``(event id, kind, data)``: one task's (``task_id``) or every
        task the token may see. Kinds are ``created``, ``started``, ``progress``,
        ``retry_scheduled``, ``completed``, ``failed``, ``cancelled``, ``status`` (the
        task's status dict, sent where the service cannot replay the task's events; its
        id is the last one seen, -1 if none) and, on the stream of every task,
        ``reset`` (events were missed: reload the tasks).

        One task's stream ends after the task's terminal event (or a ``status`` of an
        ended task); the stream of every task never ends by itself. When a connection
        ends early or drops, the stream reconnects after ``reconnect_delay`` seconds and
        resumes after the last event seen (``Last-Event-ID``); once no service has
        answered for ``timeout`` seconds it raises ``UNREACHABLE``. ``last_event_id``
        resumes an earlier stream. ``on_connect`` is called each time the stream is
        (re)connected, before its first event (an exception it raises ends the stream);
        ``on_disconnect`` at once when a connection that was up ends or drops, with the
        reason, before the stream tries again (so a client can say so right away).
        """
        path = "/v1/events" if task_id is None else _task_path(task_id, "events")
        parser = _SSEParser(last_event_id)
        delay = self._reconnect_delay
        down_since: float | None = None
        connected_once = up = False
        while True:
            parser.discard()  # an event the last connection ended before its blank line
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if parser.last_id is not None:
                headers["Last-Event-ID"] = parser.last_id
            try:
                with self._http.stream(
                    "GET",
                    path,
                    headers=headers,
                    timeout=httpx.Timeout(self._timeout, read=_STREAM_SILENCE),
                ) as response:
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        response.read()
                        self._data(response)  # raises the service's error
                        raise ServiceClientError(
                            "BAD_RESPONSE",
                            f"{self.url}{path} answered without an event stream",
                            response.status_code,
                        )
                    connected_once = up = True
                    down_since = None
                    if on_connect is not None:
                        on_connect()
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            yield event
                            if task_id is not None and _ends_task(event):
                                return
                up = _tell_down(up, on_disconnect, "the service ended the stream")
            except httpx.TransportError as exc:
                now = time.monotonic()
                up = _tell_down(up, on_disconnect, str(exc) or type(exc).__name__)
                down_since = now if down_since is None else down_since
                if not connected_once or now - down_since >= self._timeout:
                    raise self._unreachable(exc) from None
            if parser.retry is not None:
                delay = parser.retry
            time.sleep(delay)

    # -- internals ------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        return self._data(response)

    def _data(self, response: httpx.Response) -> Any:
        """The envelope's data, or its error raised as a ServiceClientError."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise ServiceClientError(
                "BAD_RESPONSE",
                f"{response.request.url} answered HTTP {response.status_code} without the "
                f"service's envelope; is {self.url} a storycore-tasks service?",
                response.status_code,
            )
        if body["status"] == "success":
            return body.get("data")
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        assert isinstance(error, dict)
        details = error.get("details")
        raise ServiceClientError(
            str(error.get("code") or "ERROR"),
            str(error.get("message") or f"HTTP {response.status_code}"),
            response.status_code,
            str(error.get("remediation") or ""),
            details if isinstance(details, dict) else None,
        )

    def _unreachable(self, exc: httpx.TransportError) -> ServiceClientError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TimeoutException):
            reason = f"no answer within {self._timeout:g} s ({reason})"
        return ServiceClientError(
            "UNREACHABLE",
            f"cannot reach {self.url}: {reason}; is storycore-tasks serve running?",
            remediation="Start the service (storycore-tasks serve), or pass --url (or set "
            "$STORYCORE_TASKS_URL) to where it listens",
        )


def _tell_down(up: bool, on_disconnect: Callable[[str], None] | None, reason: str) -> bool:
    """Tell ``on_disconnect`` once per connection lost; returns the new ``up`` (False)."""
    if up and on_disconnect is not None:
        on_disconnect(reason)
    return False


def _ends_task(event: Event) -> bool:
    _id, kind, data = event
    if kind == "status":
        return data.get("status") in TERMINAL_STATUSES
    return kind in TERMINAL_KINDS


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ServiceClientError(
            "INVALID_URL",
            f"the service URL must look like http://host:port, got {url!r}",
            remediation="Pass --url http://HOST:PORT (or set $STORYCORE_TASKS_URL)",
        )
    return url.rstrip("/")


def _task_path(task_id: str, *rest: str) -> str:
    return "/".join(["/v1/tasks", quote(task_id, safe=""), *rest])


class _SSEParser:
    """Server-Sent Events, line by line, as the HTML standard parses them: ``id``,
    ``event``, ``data`` (several lines joined) and ``retry`` fields; a blank line ends
    an event; ``:`` starts a comment."""

    def __init__(self, last_id: int | None) -> None:
        # The id of the last event dispatched (what a reconnection resumes after), and
        # the id field of the event being read.
        self.last_id: str | None = None if last_id is None else str(last_id)
        self._id = self.last_id
        self.retry: float | None = None  # seconds, from a retry: field
        self._kind = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._kind = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None

    def discard(self) -> None:
        self._kind, self._data, self._id = "", [], self.last_id

    def _dispatch(self) -> Event | None:
        self.last_id = self._id
        kind, text = self._kind or "message", "\n".join(self._data)
        had_data = bool(self._data)
        self._kind, self._data = "", []
        if not had_data:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            data = {"data": text}
        try:
            event_id = int(self.last_id) if self.last_id is not None else -1
        except ValueError:
            event_id = -1
        return event_id, kind, data
