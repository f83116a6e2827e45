"""Signed webhooks, delivered by a real service to real HTTP receivers on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from actors import TaskContext
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks.service.auth import Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.webhooks import WebhookSender
from storycore_tasks.testing import LifecycleCapture
from tests.service_harness import RunningService, running_service

SECRET = "webhook-secret-for-tests"
TOKEN = "alice-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT = 10.0


def config(**webhooks: Any) -> ServiceConfig:
    options: dict[str, Any] = {"webhook_secret": SECRET, **webhooks}
    return ServiceConfig(
        tokens=TokenStore([(hash_token(TOKEN), Principal("alice", "user"))]), **options
    )


# -- a receiver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        return self.headers["x-storycore-delivery"]

    @property
    def event(self) -> str:
        return self.headers["x-storycore-event"]


class Receiver:
    """A real HTTP server on 127.0.0.1 recording every POST. ``answers[path]`` lists the
    statuses to answer there, in turn (200 once it runs out); a path in ``hold`` waits
    for :meth:`release` before answering."""

    def __init__(self) -> None:
        self.answers: dict[str, list[int]] = {}
        self.hold: set[str] = set()
        self.released = threading.Event()
        self.requests: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with receiver._cond:
                    receiver.requests.append(received)
                    receiver._cond.notify_all()
                    statuses = receiver.answers.get(self.path, [])
                    status = statuses.pop(0) if statuses else 200
                if self.path in receiver.hold:
                    receiver.released.wait(WAIT)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = False
        self._server.block_on_close = True  # server_close() joins the handler threads
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver")

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = WAIT
    ) -> list[Received]:
        """Every request so far, once ``predicate`` holds for them."""
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.requests), timeout), (
                f"the receiver got {[(r.path, r.event) for r in self.requests]}"
            )
            return list(self.requests)

    def on(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.requests if r.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


class Remote:
    """``test.remote``: reports each progress value put for its key, until ``None``."""

    def __init__(self) -> None:
        self.steps: dict[str, queue.Queue[Any]] = {}
        self._lock = threading.Lock()

    def channel(self, key: str) -> queue.Queue[Any]:
        with self._lock:
            return self.steps.setdefault(key, queue.Queue())

    def __call__(self, params: Mapping[str, Any], task: TaskContext) -> Any:
        steps = self.channel(params["key"])
        while (step := steps.get(timeout=30)) is not None:
            task.update_progress(step)
        return "done"


@pytest.fixture
def remote() -> Remote:
    return Remote()


@pytest.fixture
def manager(make_manager: Callable[..., TaskManager], remote: Remote) -> TaskManager:
    manager = make_manager(num_workers=4)
    manager.register_operation("test.quick", lambda params, task: {"answer": 42})
    manager.register_operation("test.remote", remote)
    return manager


@contextmanager
def service(manager: TaskManager, **webhooks: Any) -> Iterator[RunningService]:
    with running_service(manager, config(**webhooks)) as running:
        yield running


def create(service: RunningService, callback_url: str, **body: Any) -> httpx.Response:
    payload = {"operation": "test.quick", "callback_url": callback_url, **body}
    return httpx.post(f"{service.url}/v1/tasks", json=payload, headers=AUTH)


def created(service: RunningService, callback_url: str, **body: Any) -> str:
    answer = create(service, callback_url, **body)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["data"]["task_id"]
    return task_id


def signed(secret: str, received: Received) -> bool:
    timestamp = received.headers["x-storycore-timestamp"]
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(received.headers["x-storycore-signature"], f"sha256={expected}")


# -- tests ---------------------------------------------------------------------------------


def test_a_task_end_is_posted_signed_with_the_secret(
    manager: TaskManager, receiver: Receiver
) -> None:
    before = int(time.time())
    with service(manager) as running:
        task_id = created(running, f"{receiver.url}/hook")
        (hook,) = receiver.wait_for(lambda r: len(r) == 1)

    assert hook.path == "/hook"
    assert hook.headers["content-type"] == "application/json"
    assert hook.event == "task.completed"
    assert str(uuid.UUID(hook.delivery)) == hook.delivery
    assert before <= int(hook.headers["x-storycore-timestamp"]) <= int(time.time())
    assert signed(SECRET, hook)
    assert not signed("another-secret", hook)
    envelope = hook.json
    assert envelope["status"] == "success"
    assert envelope["error"] is None
    assert envelope["data"]["task_id"] == task_id
    assert envelope["data"]["status"] == "completed"
    assert envelope["data"]["result"] == {"answer": 42}
    assert envelope["data"]["user"] == "alice"
    assert envelope["metadata"]["request_id"] == hook.delivery
    assert envelope["data"] == manager.get_task_status(task_id)


def test_a_failing_receiver_gets_the_same_delivery_again_until_it_answers(
    manager: TaskManager, receiver: Receiver, captured_lifecycle: LifecycleCapture
) -> None:
    receiver.answers["/flaky"] = [500, 503]
    with service(manager, webhook_retry_seconds=20.0) as running:
        task_id = created(running, f"{receiver.url}/flaky")
        attempts = receiver.wait_for(lambda r: len(r) == 3)
        delivered = captured_lifecycle.wait_for("webhook.delivered", task_id=task_id)

    assert len({a.delivery for a in attempts}) == 1
    assert {a.body for a in attempts} == {attempts[0].body}
    assert all(signed(SECRET, a) for a in attempts)
    assert delivered["attempts"] == 3
    retries = captured_lifecycle.named("webhook.retry", task_id=task_id)
    assert [r["error"] for r in retries] == ["HTTP 500", "HTTP 503"]
    assert [r["attempts"] for r in retries] == [1, 2]
    assert not captured_lifecycle.named("webhook.abandoned")


def test_a_receiver_that_always_fails_is_abandoned_after_the_retry_time(
    manager: TaskManager, receiver: Receiver, captured_lifecycle: LifecycleCapture
) -> None:
    receiver.answers["/down"] = [500] * 100
    with service(manager, webhook_retry_seconds=1.0) as running:
        task_id = created(running, f"{receiver.url}/down")
        abandoned = captured_lifecycle.wait_for("webhook.abandoned", task_id=task_id)
        attempts = receiver.on("/down")

    assert abandoned["reason"] == "retry time over"
    assert abandoned["seconds"] >= 1.0
    assert abandoned["attempts"] == len(attempts) >= 2
    assert len({a.delivery for a in attempts}) == 1


def test_an_unreachable_receiver_is_retried_then_abandoned(
    manager: TaskManager, captured_lifecycle: LifecycleCapture
) -> None:
    with service(manager, webhook_retry_seconds=0.6, webhook_timeout=1.0) as running:
        task_id = created(running, f"http://127.0.0.1:{_closed_port()}/hook")
        abandoned = captured_lifecycle.wait_for("webhook.abandoned", task_id=task_id)
    assert "ConnectError" in abandoned["error"]
    assert captured_lifecycle.named("webhook.retry", task_id=task_id)


def _closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("options", "url", "problem"),
    [
        ({"webhook_allowed_hosts": ("hooks.example.com",)}, "http://127.0.0.1:9/h", "allowed"),
        ({}, "ftp://hooks.example.com/h", "http"),
        ({}, "http:///no-host", "host"),
        ({}, "hooks.example.com/h", "http"),
        ({"webhook_secret": None}, "http://hooks.example.com/h", "secret"),
    ],
)
def test_a_callback_url_that_may_not_be_used_is_a_validation_error(
    manager: TaskManager, options: dict[str, Any], url: str, problem: str
) -> None:
    with service(manager, **options) as running:
        answer = create(running, url)
        listed = httpx.get(f"{running.url}/v1/tasks", headers=AUTH).json()["data"]

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert problem in error["message"]
    assert listed["tasks"] == []  # refused before any task was created


def test_allowed_hosts_compare_without_case(manager: TaskManager, receiver: Receiver) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    with service(manager, webhook_allowed_hosts=("LocalHost",)) as running:
        created(running, f"http://LOCALHOST:{port}/ok")
        refused = create(running, "http://example.org/hook")
        (hook,) = receiver.wait_for(lambda r: len(r) == 1)
    assert hook.path == "/ok"
    assert refused.status_code == 400
    assert "example.org" in refused.json()["error"]["message"]


def test_progress_is_posted_when_asked_then_the_end(
    manager: TaskManager, receiver: Receiver, remote: Remote
) -> None:
    steps = remote.channel("p")
    with service(manager) as running:
        task_id = created(
            running,
            f"{receiver.url}/progress",
            operation="test.remote",
            params={"key": "p"},
            callback_on_progress=True,
        )
        steps.put(0.5)
        (first,) = receiver.wait_for(lambda r: len(r) == 1)
        steps.put(None)
        hooks = receiver.wait_for(lambda r: len(r) == 2)

    assert first.event == "task.progress"
    assert first.json["data"]["status"] == "running"
    assert first.json["data"]["progress"] == 0.5
    assert hooks[1].event == "task.completed"
    assert hooks[1].json["data"]["task_id"] == task_id
    assert first.delivery != hooks[1].delivery
    assert all(signed(SECRET, h) for h in hooks)


def test_progress_is_not_posted_unless_asked(
    manager: TaskManager, receiver: Receiver, remote: Remote
) -> None:
    steps = remote.channel("q")
    with service(manager) as running:
        created(running, f"{receiver.url}/end", operation="test.remote", params={"key": "q"})
        steps.put(0.5)
        steps.put(None)
        hooks = receiver.wait_for(lambda r: len(r) >= 1)
    assert [h.event for h in hooks] == ["task.completed"]


def test_a_slow_receiver_delays_neither_tasks_nor_other_deliveries(
    manager: TaskManager, receiver: Receiver
) -> None:
    receiver.hold.add("/slow")
    with service(manager, webhook_timeout=WAIT) as running:
        slow_task = created(running, f"{receiver.url}/slow")
        receiver.wait_for(lambda r: any(h.path == "/slow" for h in r))
        # The receiver holds the slow delivery: tasks still run and end, and their
        # webhooks still go out.
        others = [created(running, f"{receiver.url}/fast") for _ in range(3)]
        for task_id in others:
            assert manager.wait(task_id, timeout=WAIT)["status"] == "completed"
        fast = receiver.wait_for(lambda r: len([h for h in r if h.path == "/fast"]) == 3)
        assert not receiver.released.is_set()
        receiver.released.set()

    assert {h.json["data"]["task_id"] for h in fast if h.path == "/fast"} == set(others)
    assert [h.json["data"]["task_id"] for h in fast if h.path == "/slow"] == [slow_task]


def test_the_sender_counts_and_stops_cleanly(manager: TaskManager, receiver: Receiver) -> None:
    receiver.answers["/twice"] = [500]
    sender = WebhookSender(
        manager, secret=SECRET, allowed_hosts=None, retry_seconds=10.0, timeout=5.0
    )
    try:
        with pytest.raises(ValueError, match="scheme"):
            sender.check_url("file:///etc/passwd")
        task_id = manager.create_task("test.quick")
        manager.wait(task_id, timeout=WAIT)
        sender.register(task_id, f"{receiver.url}/twice", progress=False)  # already ended
        receiver.wait_for(lambda r: len(r) == 2)
        # The count follows the receiver's answer, which has no event to wait on.
        assert wait_until(lambda: sender.stats()["pending"] == 0, timeout=WAIT)
        assert sender.stats() == {"delivered": 1, "retried": 1, "abandoned": 0, "pending": 0}
    finally:
        sender.close()
    sender.close()  # idempotent
