"""Server-Sent Events: GET /v1/tasks/{id}/events and GET /v1/events, over a real server.

Operations here do exactly what the test tells them, when it tells them (a command
queue per task), so every event is produced after the test has seen the previous one:
no sleeps, no coalesced progress.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx
import pytest

from actors import TaskContext
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.service import events as events_module
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.testing import settle
from tests import service_harness
from tests.service_harness import RunningService, running_service

TOKENS = {"alice": "alice-token", "bob": "bob-token", "ops": "ops-token"}
TIMEOUT = httpx.Timeout(10.0)  # a broken stream fails the test instead of hanging it
COMMAND_TIMEOUT = 30.0


def config() -> ServiceConfig:
    return ServiceConfig(
        tokens=TokenStore(
            [
                (hash_token(TOKENS["alice"]), Principal("alice", "user")),
                (hash_token(TOKENS["bob"]), Principal("bob", "user")),
                (hash_token(TOKENS["ops"]), Principal("ops", "admin")),
            ]
        )
    )


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[user]}"}


class Remote:
    """The operation ``test.remote``: a task with params ``{"key": k}`` obeys the
    commands put for ``k``: a number reports that progress, ``"finish"`` returns,
    ``"fail"`` raises."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._entered: dict[str, threading.Event] = {}

    def wait_entered(self, key: str) -> None:
        with self._lock:
            entered = self._entered.setdefault(key, threading.Event())
        assert entered.wait(10), f"the task {key!r} never started"

    def _queue(self, key: str) -> queue.Queue[Any]:
        with self._lock:
            return self._queues.setdefault(key, queue.Queue())

    def send(self, key: str, command: Any) -> None:
        self._queue(key).put(command)

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        commands = self._queue(params["key"])
        with self._lock:
            self._entered.setdefault(params["key"], threading.Event()).set()
        while True:
            command = commands.get(timeout=COMMAND_TIMEOUT)
            if command == "finish":
                return {"key": params["key"]}
            if command == "fail":
                raise RuntimeError("told to fail")
            task.update_progress(command)


# -- a small SSE client --------------------------------------------------------------------


@dataclass
class Event:
    id: str | None
    event: str
    data: Any


@dataclass
class Stream:
    """Reads SSE events (and comments) from an open ``httpx.stream`` response."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lines = self.response.iter_lines()

    def next(self) -> Event | None:
        """The next event, or None when the server ended the stream."""
        fields: dict[str, list[str]] = {}
        for line in self._lines:
            if line == "":
                if fields:
                    data = "\n".join(fields.get("data", []))
                    ident = fields["id"][-1] if "id" in fields else None
                    kind = fields["event"][-1] if "event" in fields else "message"
                    return Event(ident, kind, json.loads(data) if data else None)
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        assert not fields, f"the stream ended inside an event: {fields}"
        return None

    def next_comment(self) -> str:
        """Read on until a comment, which must come before any event."""
        for line in self._lines:
            assert not line or line.startswith(":"), f"an event came first: {line!r}"
            if line:
                return line[1:].strip()
        raise AssertionError("the stream ended without a comment")

    def take(self, count: int) -> list[Event]:
        found = []
        for _ in range(count):
            event = self.next()
            assert event is not None, f"the stream ended after {found}"
            found.append(event)
        return found

    def rest(self) -> list[Event]:
        """Every event until the server ends the stream."""
        found = []
        while (event := self.next()) is not None:
            found.append(event)
        return found


@contextmanager
def open_stream(
    url: str, headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None
) -> Iterator[Stream]:
    with httpx.stream("GET", url, headers=headers, params=params, timeout=TIMEOUT) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def remote() -> Remote:
    return Remote()


@pytest.fixture
def manager(make_manager: Callable[..., TaskManager], remote: Remote) -> TaskManager:
    manager = make_manager(num_workers=4)
    manager.register_operation("test.remote", remote)
    manager.register_operation("test.quick", lambda params, task: "quick")
    return manager


@pytest.fixture
def service(manager: TaskManager) -> Iterator[RunningService]:
    with running_service(manager, config()) as running:
        yield running


def create(service: RunningService, user: str, key: str | None = None) -> str:
    body: dict[str, Any] = (
        {"operation": "test.quick"}
        if key is None
        else {"operation": "test.remote", "params": {"key": key}}
    )
    answer = httpx.post(f"{service.url}/v1/tasks", json=body, headers=auth(user))
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["data"]["task_id"]
    return task_id


def events_url(service: RunningService, task_id: str) -> str:
    return f"{service.url}/v1/tasks/{task_id}/events"


def run_to_end(service: RunningService, remote: Remote, key: str) -> tuple[str, list[Event]]:
    """A task of alice's that reports 0.25 and 0.5 then completes, followed live."""
    task_id = create(service, "alice", key)
    with open_stream(events_url(service, task_id), auth("alice")) as stream:
        seen = stream.take(2)  # created, started
        for fraction in (0.25, 0.5):
            remote.send(key, fraction)
            seen += stream.take(1)
        remote.send(key, "finish")
        seen += stream.rest()
    return task_id, seen


# -- one task's stream ---------------------------------------------------------------------


def test_a_stream_follows_the_task_through_progress_to_its_end(
    service: RunningService, remote: Remote
) -> None:
    task_id, seen = run_to_end(service, remote, "k1")

    assert [e.event for e in seen] == ["created", "started", "progress", "progress", "completed"]
    assert [e.id for e in seen] == ["1", "2", "3", "4", "5"]
    assert [e.data["progress"] for e in seen if e.event == "progress"] == [0.25, 0.5]
    for number, event in enumerate(seen, start=1):
        assert event.data["task_id"] == task_id
        assert event.data["kind"] == event.event
        assert event.data["seq"] == number
        assert datetime.fromisoformat(event.data["at"]).tzinfo is not None
    assert seen[0].data["user"] == "alice"
    assert seen[0].data["operation"] == "test.remote"
    assert seen[-1].data["status"] == "completed"
    assert seen[-1].data["outcome"] == "Completed"


def test_a_failed_task_ends_its_stream_with_failed(service: RunningService, remote: Remote) -> None:
    task_id = create(service, "alice", "k1")
    with open_stream(events_url(service, task_id), auth("alice")) as stream:
        assert [e.event for e in stream.take(2)] == ["created", "started"]
        remote.send("k1", "fail")
        rest = stream.rest()
    assert [e.event for e in rest] == ["failed"]
    assert rest[0].data["outcome"] == "Raised"


def test_a_task_that_ended_before_the_stream_opened_is_replayed(
    service: RunningService, remote: Remote
) -> None:
    task_id, live = run_to_end(service, remote, "k1")

    with open_stream(events_url(service, task_id), auth("alice")) as stream:
        replayed = stream.rest()

    assert replayed == live


def test_last_event_id_resumes_with_exactly_the_events_after_it(
    service: RunningService, remote: Remote
) -> None:
    task_id, live = run_to_end(service, remote, "k1")
    url = events_url(service, task_id)

    for last in range(len(live) + 1):
        with open_stream(url, {**auth("alice"), "Last-Event-ID": str(last)}) as stream:
            assert stream.rest() == live[last:], f"after {last}"


def test_a_reconnect_mid_task_misses_nothing_and_repeats_nothing(
    service: RunningService, remote: Remote
) -> None:
    task_id = create(service, "alice", "k1")
    url = events_url(service, task_id)
    with open_stream(url, auth("alice")) as stream:
        first = stream.take(2)
        remote.send("k1", 0.1)
        first += stream.take(1)
    # Disconnected: these happen while nobody listens.
    remote.send("k1", 0.2)
    remote.send("k1", "finish")
    assert service.manager.wait(task_id, timeout=10)["status"] == "completed"

    with open_stream(url, {**auth("alice"), "Last-Event-ID": first[-1].id or ""}) as stream:
        rest = stream.rest()

    assert [e.event for e in first + rest] == [
        "created",
        "started",
        "progress",
        "progress",
        "completed",
    ]
    assert [int(e.id or 0) for e in first + rest] == [1, 2, 3, 4, 5]
    assert rest[0].data["progress"] == 0.2


def test_another_users_task_is_not_found_but_an_admin_may_stream_it(
    service: RunningService,
) -> None:
    task_id = create(service, "bob")
    assert service.manager.wait(task_id, timeout=10)["status"] == "completed"
    url = events_url(service, task_id)

    answer = httpx.get(url, headers=auth("alice"))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"

    with open_stream(url, auth("ops")) as stream:
        assert [e.event for e in stream.rest()] == ["created", "started", "completed"]
    with open_stream(url, auth("bob")) as stream:
        assert [e.event for e in stream.rest()] == ["created", "started", "completed"]


def test_the_token_may_come_as_access_token_for_eventsource(service: RunningService) -> None:
    task_id = create(service, "alice")
    url = events_url(service, task_id)

    with open_stream(url, params={"access_token": TOKENS["alice"]}) as stream:
        assert stream.rest()[-1].event == "completed"
    refused = httpx.get(url, params={"access_token": "not-a-token"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"
    assert httpx.get(url).status_code == 401
    other = httpx.get(url, params={"access_token": TOKENS["bob"]})
    assert other.status_code == 404


@pytest.mark.parametrize(
    "task_id", ["00000000-0000-4000-8000-000000000000", "not-a-task-id", "x" * 300]
)
def test_an_unknown_task_is_a_not_found_envelope(service: RunningService, task_id: str) -> None:
    answer = httpx.get(events_url(service, task_id), headers=auth("ops"))

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("last", ["abc", "-1", "1.5", "1e3", "9" * 19])
def test_a_malformed_last_event_id_is_a_validation_error(
    service: RunningService, last: str
) -> None:
    task_id = create(service, "alice")
    answer = httpx.get(
        events_url(service, task_id), headers={**auth("alice"), "Last-Event-ID": last}
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"


def test_a_task_from_before_the_service_starts_with_its_status(
    manager: TaskManager, remote: Remote
) -> None:
    ended = manager.create_task("test.quick", user="alice")
    manager.wait(ended, timeout=10)
    running = manager.create_task("test.remote", {"key": "old"}, user="alice")
    remote.wait_entered("old")
    settle(manager)  # its started event is behind it: nobody listened

    with running_service(manager, config()) as service:
        with open_stream(events_url(service, ended), auth("alice")) as stream:
            only = stream.rest()
        assert [(e.event, e.id) for e in only] == [("status", None)]
        assert only[0].data["status"] == "completed"
        assert only[0].data["result"] == "quick"

        with open_stream(events_url(service, running), auth("alice")) as stream:
            status = stream.take(1)[0]
            assert status.event == "status"
            assert status.data["status"] == "running"
            remote.send("old", 0.75)
            progress = stream.take(1)[0]
        # A reconnect from the start: the log's events begin mid-task, so the status
        # comes first again.
        with open_stream(events_url(service, running), auth("alice")) as stream:
            again = stream.take(2)
            remote.send("old", "finish")
            rest = stream.rest()
    assert (progress.event, progress.id, progress.data["progress"]) == ("progress", "1", 0.75)
    assert [(e.event, e.id) for e in again] == [("status", None), ("progress", "1")]
    assert [(e.event, e.id) for e in rest] == [("completed", "2")]


def test_a_quiet_stream_sends_keep_alive_comments(
    service: RunningService, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "HEARTBEAT_SECONDS", 0.05)
    task_id = create(service, "alice", "k1")
    with open_stream(events_url(service, task_id), auth("alice")) as stream:
        stream.take(2)
        # Nothing happens to the task: the next thing on the wire is a comment.
        assert stream.next_comment() == "keep-alive"
    remote.send("k1", "finish")


# -- every task's stream -------------------------------------------------------------------


def test_the_global_stream_shows_a_user_only_their_tasks(
    service: RunningService, remote: Remote
) -> None:
    url = f"{service.url}/v1/events"
    with (
        open_stream(url, auth("alice")) as alice,
        open_stream(url, auth("ops")) as admin,
    ):
        bobs = create(service, "bob")
        service.manager.wait(bobs, timeout=10)
        alices = create(service, "alice", "a1")
        mine = alice.take(2)
        remote.send("a1", "finish")
        mine += alice.take(1)
        everything = admin.take(6)

    assert [(e.data["task_id"], e.event) for e in mine] == [
        (alices, "created"),
        (alices, "started"),
        (alices, "completed"),
    ]
    assert [(e.data["task_id"], e.event) for e in everything] == [
        (bobs, "created"),
        (bobs, "started"),
        (bobs, "completed"),
        (alices, "created"),
        (alices, "started"),
        (alices, "completed"),
    ]
    # One numbering for all tasks: alice's ids are the admin's ids of the same events.
    ids = [int(e.id or 0) for e in everything]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    assert [e.id for e in mine] == [e.id for e in everything[3:]]


def test_the_global_stream_resumes_from_last_event_id(
    service: RunningService, remote: Remote
) -> None:
    url = f"{service.url}/v1/events"
    with open_stream(url, auth("alice")) as stream:
        first = create(service, "alice")
        seen = stream.take(3)
    second = create(service, "alice")
    service.manager.wait(second, timeout=10)

    with open_stream(url, {**auth("alice"), "Last-Event-ID": seen[0].id or ""}) as stream:
        resumed = stream.take(5)

    assert [(e.data["task_id"], e.event) for e in resumed] == [
        (first, "started"),
        (first, "completed"),
        (second, "created"),
        (second, "started"),
        (second, "completed"),
    ]
    assert [e.id for e in resumed[:2]] == [e.id for e in seen[1:]]


def test_a_resume_id_from_another_run_of_the_service_says_reset(
    service: RunningService,
) -> None:
    url = f"{service.url}/v1/events"
    with open_stream(url, {**auth("alice"), "Last-Event-ID": "999999"}) as stream:
        reset = stream.take(1)[0]
        task_id = create(service, "alice")
        created = stream.take(1)[0]

    assert (reset.event, reset.id) == ("reset", None)
    assert (created.event, created.data["task_id"]) == ("created", task_id)


def test_a_stream_whose_history_was_cut_starts_with_the_status(
    manager: TaskManager, remote: Remote
) -> None:
    with running_service(manager, replace(config(), event_history=2)) as service:
        task_id, live = run_to_end(service, remote, "k1")
        with open_stream(events_url(service, task_id), auth("alice")) as stream:
            replayed = stream.rest()

    # Only the last 2 of 5 events are kept: the status stands in for the rest.
    assert [(e.event, e.id) for e in replayed] == [
        ("status", None),
        ("progress", "4"),
        ("completed", "5"),
    ]
    assert replayed[0].data["status"] == "completed"
    assert replayed[1:] == live[3:]


def test_streams_are_let_go_when_their_clients_disconnect(
    manager: TaskManager, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps: list[Any] = []

    def capturing(*args: Any) -> Any:
        apps.append(real_create_app(*args))
        return apps[-1]

    real_create_app = service_harness.create_app
    monkeypatch.setattr(service_harness, "create_app", capturing)
    with running_service(manager, config()) as service:
        log: events_module.EventLog = apps[0].state.service.events
        with open_stream(f"{service.url}/v1/events", auth("ops")) as every:
            task_id = create(service, "alice", "k1")
            with open_stream(events_url(service, task_id), auth("alice")) as one:
                one.take(2)
                every.take(2)
                assert log.watcher_count == 2
        # Nothing tells the test when the server noticed: poll for it.
        assert wait_until(lambda: log.watcher_count == 0, timeout=10)
        remote.send("k1", "finish")


def test_the_log_forgets_ended_tasks_first_ended_first(make_manager: Any) -> None:
    manager = make_manager(num_workers=1)
    manager.register_operation("test.quick", lambda params, task: "quick")
    log = events_module.EventLog(manager, history=2, max_tasks=3)
    try:
        task_ids = [manager.create_task("test.quick") for _ in range(5)]
        for task_id in task_ids:
            manager.wait(task_id, timeout=10)
        log.sync()

        assert [log.task_info(t) is not None for t in task_ids] == [False, False, True, True, True]
        # Each keeps its last 2 events (of created, started, completed).
        kept = log.task_events(task_ids[-1], 0)
        assert [(e.seq, e.kind) for e in kept] == [(2, "started"), (3, "completed")]
        info = log.task_info(task_ids[-1])
        assert info == events_module.TaskLogInfo(first_seq=2, last_seq=3, terminal=True)
        # The global ring still numbers every event.
        assert log.global_seq == 15
    finally:
        log.close()
