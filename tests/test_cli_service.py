"""The ``storycore-tasks`` client commands, ``serve`` and ``token create``, against the
real HTTP service (tests/service_harness.py) on a loopback port.

Most tests call ``cli.main(argv)`` in-process; a few run the command as a subprocess
for its exit code, its signals or its live output.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks import client as client_module
from storycore_tasks.cli import TOKEN_ENV_VAR, URL_ENV_VAR, main
from storycore_tasks.client import ServiceClient, ServiceClientError
from storycore_tasks.demo import run_demo
from storycore_tasks.service.auth import TOKENS_ENV_VAR, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.server import (
    NO_AUTH_WARNING,
    OPERATIONS_GROUP,
    ServeError,
    load_operations,
)
from tests import service_ops
from tests.service_harness import RunningService, free_port, running_service

ROOT = Path(__file__).resolve().parent.parent
WAIT = 10.0  # seconds any one wait of these tests may take
UNKNOWN_TASK = "00000000-0000-4000-8000-000000000000"

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No URL or token of the machine running the tests leaks into them."""
    for name in (URL_ENV_VAR, TOKEN_ENV_VAR, TOKENS_ENV_VAR, "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def manager(make_manager: Callable[..., TaskManager]) -> TaskManager:
    return make_manager(operations=service_ops.OPERATIONS)


@pytest.fixture
def service(manager: TaskManager, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningService]:
    """The service without authentication, and $STORYCORE_TASKS_URL pointing at it."""
    with running_service(manager, ServiceConfig(tokens=None)) as running:
        monkeypatch.setenv(URL_ENV_VAR, running.url)
        yield running


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """cli.main(argv) in-process: (exit code, stdout, stderr)."""

    def call(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return call


def _cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 30) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "storycore_tasks.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env={**_child_env(), **(env or {})},
    )


def _child_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (URL_ENV_VAR, TOKEN_ENV_VAR, TOKENS_ENV_VAR, "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _one_error_line(err: str, starts: str) -> None:
    """The error is one line (its remedy may follow, indented)."""
    lines = err.splitlines()
    assert lines, "nothing on standard error"
    assert lines[0].startswith(starts), err
    assert len(lines) <= 2, err
    assert all(line.startswith("  ") for line in lines[1:]), err


# -- the client commands --------------------------------------------------------------------


def test_submit_status_list_stats_cancel_round_trip(service: RunningService, run: Run) -> None:
    """submit prints the id; status, list and stats show it (as tables and as JSON);
    cancel stops a running task and a second cancel is a one-line CONFLICT."""
    code, out, err = run("submit", "echo", "--params", '{"scene": 3}', "--priority", "high")
    assert (code, err) == (0, "")
    task_id = out.strip()
    assert service.manager.wait(task_id, timeout=WAIT)["status"] == "completed"

    code, out, _ = run("status", task_id)
    assert code == 0
    assert task_id in out
    assert "completed" in out
    assert '{"scene": 3}' in out
    code, out, _ = run("status", task_id, "--json")
    status = json.loads(out)
    assert (status["result"], status["priority"]) == ({"scene": 3}, "high")

    held = run("submit", "hold")[1].strip()
    assert wait_until(
        lambda: service.manager.get_task_status(held)["status"] == "running", timeout=WAIT
    )
    code, out, _ = run("list", "--status", "running")
    assert code == 0
    assert held in out
    assert task_id not in out
    listed = json.loads(run("list", "--json")[1])
    assert [t["task_id"] for t in listed] == [task_id, held]
    assert [t["task_id"] for t in json.loads(run("list", "--json", "--limit", "1")[1])] == [task_id]

    stats = json.loads(run("stats", "--json")[1])
    assert (stats["total_tasks"], stats["running"]) == (2, 1)
    code, out, _ = run("stats")
    assert code == 0
    assert "1 running" in out

    assert run("cancel", held)[:2] == (0, f"cancelled {held}\n")
    assert service.manager.wait(held, timeout=WAIT)["status"] == "cancelled"
    code, out, err = run("cancel", held)
    assert (code, out) == (1, "")
    _one_error_line(err, f"error: CONFLICT: Task {held} cannot be cancelled")


def test_submit_wait_shows_the_final_status_and_exits_by_outcome(
    service: RunningService, run: Run
) -> None:
    """submit --wait follows the task to its end: exit 0 and the final status when it
    completed, exit 1 and a one-line error when it failed."""
    code, out, err = run("submit", "steps", "--params", '{"steps": 4, "seconds": 0.01}', "--wait")
    assert (code, err) == (0, "")
    task_id, *rest = out.splitlines()
    assert service.manager.get_task_status(task_id)["status"] == "completed"
    assert any("completed" in line for line in rest)
    assert any('{"steps": 4}' in line for line in rest)

    code, out, _ = run("submit", "steps", "--params", '{"steps": 2}', "--wait", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "completed"

    code, out, err = run("submit", "boom", "--wait")
    assert code == 1
    assert "failed" in out
    assert err.startswith(f"error: task {out.splitlines()[0]} failed: INTERNAL_ERROR: ")


def test_errors_are_one_line_and_exit_1(
    service: RunningService, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown task is NOT_FOUND, an unknown operation VALIDATION_ERROR, a URL where no
    service listens UNREACHABLE: each one line (plus its remedy) and exit code 1."""
    code, out, err = run("status", UNKNOWN_TASK)
    assert (code, out) == (1, "")
    _one_error_line(err, f"error: NOT_FOUND: Task {UNKNOWN_TASK} not found")

    code, _, err = run("submit", "no.such.operation")
    assert code == 1
    _one_error_line(err, "error: VALIDATION_ERROR: no operation is registered as")

    port = free_port()
    code, out, err = run("stats", "--url", f"http://127.0.0.1:{port}")
    assert (code, out) == (1, "")
    _one_error_line(err, f"error: UNREACHABLE: cannot reach http://127.0.0.1:{port}: ")
    assert "is storycore-tasks serve running?" in err.splitlines()[0]

    code, _, err = run("--url", "localhost", "stats")
    assert code == 1
    _one_error_line(err, "error: INVALID_URL: ")


def test_exit_codes_of_the_console_command(service: RunningService) -> None:
    """As a process: exit 1 with one error line for an unknown task, 2 for bad usage
    (params that are not a JSON object), 0 with the id for a good submit."""
    env = {URL_ENV_VAR: service.url}
    done = _cli("status", UNKNOWN_TASK, env=env)
    assert done.returncode == 1
    _one_error_line(done.stderr, "error: NOT_FOUND: ")

    done = _cli("submit", "echo", "--params", "[1, 2]", env=env)
    assert done.returncode == 2
    assert "must be a JSON object" in done.stderr

    done = _cli("submit", "echo", env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert service.manager.wait(done.stdout.strip(), timeout=WAIT)["status"] == "completed"


def test_a_created_token_is_stored_hashed_and_authenticates(
    tmp_path: Path, manager: TaskManager, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """token create prints a token whose file entry is only its hash; a service loading
    the file accepts it, and refuses a wrong token or none with AUTHENTICATION_REQUIRED."""
    tokens = tmp_path / "tokens.json"
    code, out, err = run(
        "token", "create", "--user", "ada", "--role", "user", "--tokens", str(tokens)
    )
    assert code == 0
    assert "only time it is shown" in err
    token = out.strip()
    stored = tokens.read_text()
    assert token not in stored
    assert json.loads(stored)["tokens"] == [
        {"user": "ada", "role": "user", "sha256": hash_token(token)}
    ]

    config = ServiceConfig(tokens=TokenStore.load(tokens, environ={}))
    with running_service(manager, config) as running:
        monkeypatch.setenv(URL_ENV_VAR, running.url)
        monkeypatch.setenv(TOKEN_ENV_VAR, token)
        code, out, _ = run("submit", "echo")
        assert code == 0
        assert manager.get_task_status(out.strip())["user"] == "ada"

        monkeypatch.setenv(TOKEN_ENV_VAR, token + "x")
        code, _, err = run("stats")
        assert code == 1
        _one_error_line(err, "error: AUTHENTICATION_REQUIRED: The bearer token is not valid")

        monkeypatch.delenv(TOKEN_ENV_VAR)
        code, _, err = run("list")
        assert code == 1
        _one_error_line(err, "error: AUTHENTICATION_REQUIRED: A bearer token is required")


def test_watch_id_ends_when_the_task_ends_at_100_percent(service: RunningService, run: Run) -> None:
    """watch ID follows the event stream until the task ends, then shows its bar at
    100 %; watching a task that ends cancelled exits 1."""
    task_id = service.manager.create_task("steps", {"steps": 5, "seconds": 0.02})
    code, out, err = run("watch", task_id)
    assert (code, err) == (0, "")
    assert "100%" in out
    assert "completed" in out

    code, out, _ = run("watch", task_id)  # already ended: the same final bar
    assert code == 0
    assert "100%" in out

    held = service.manager.create_task("hold", {})
    assert wait_until(
        lambda: service.manager.get_task_status(held)["progress"] == 0.5, timeout=WAIT
    )
    stopper = threading.Thread(target=service.manager.cancel_task, args=(held,))
    stopper.start()
    code, out, err = run("watch", held)
    stopper.join()
    assert code == 1
    assert "cancelled" in out
    assert err.startswith(f"error: task {held} cancelled: CANCELLED: ")


def test_watch_every_task_until_ctrl_c(service: RunningService) -> None:
    """watch without an ID reports tasks as they start and end, and exits 0 on Ctrl-C
    (SIGINT) with their final bars."""
    with subprocess.Popen(
        [sys.executable, "-m", "storycore_tasks.cli", "watch", "--url", service.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_child_env(),
    ) as watcher:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout or ()])
        reader.start()
        try:
            assert _line_with(lines, "watching every task").endswith("(Ctrl-C to stop)\n")
            task_id = service.manager.create_task("steps", {"steps": 3, "seconds": 0.01})
            assert "completed" in _line_with(lines, task_id, "completed")
            watcher.send_signal(signal.SIGINT)
            watcher.wait(timeout=WAIT)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
            reader.join(WAIT)  # the reader reads standard output to its end
        err = watcher.stderr.read() if watcher.stderr else ""
    assert (watcher.returncode, err) == (0, "")
    rest = "".join(lines.queue)
    assert f"steps {task_id[:8]}" in rest
    assert "100%" in rest


def _line_with(lines: queue.Queue[str], *parts: str) -> str:
    """The next line holding every one of ``parts`` (within WAIT seconds)."""
    seen = []
    while True:
        try:
            line = lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no line with {parts} in {WAIT} s; saw {seen}") from None
        if all(part in line for part in parts):
            return line
        seen.append(line)


# -- the client library ---------------------------------------------------------------------


def test_client_list_follows_the_pages(
    service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ServiceClient.list follows next_cursor across pages, up to its limit."""
    monkeypatch.setattr(client_module, "_MAX_PAGE", 2)
    ids = [service.manager.create_task("echo", {"n": n}) for n in range(5)]
    with ServiceClient(service.url) as client:
        assert [t["task_id"] for t in client.list()] == ids
        assert [t["task_id"] for t in client.list(limit=3)] == ids[:3]
        for task_id in ids:
            service.manager.wait(task_id, timeout=WAIT)
        assert len(client.list(status="completed")) == 5
        assert client.list(status="failed") == []


def test_event_stream_resumes_after_a_dropped_connection_with_last_event_id() -> None:
    """events() parses SSE frames (comments, multi-line data, an id-less status) and,
    when the connection drops, reconnects with Last-Event-ID; a task's stream ends
    with its terminal event."""
    seen_ids: list[str | None] = []

    def first_stream() -> Iterator[bytes]:
        yield b': keep-alive\n\nid: 1\nevent: started\ndata: {"task_id": "t"}\n\n'
        yield b'id: 2\nevent: progress\ndata: {"task_id": "t",\ndata: "progress": 0.5}\n\n'
        yield b"id: 3\nevent: progress\ndata: {"  # cut off mid-event
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        seen_ids.append(request.headers.get("last-event-id"))
        headers = {"content-type": "text/event-stream"}
        if len(seen_ids) == 1:
            return httpx.Response(200, headers=headers, content=first_stream())
        body = (
            b'event: status\ndata: {"task_id": "t", "status": "running", "progress": 0.7}\n\n'
            b'retry: 0\nid: 4\nevent: completed\ndata: {"task_id": "t"}\n\n'
            b'id: 5\nevent: never\ndata: {"task_id": "t"}\n\n'
        )
        return httpx.Response(200, headers=headers, content=body)

    client = ServiceClient(
        "http://service.test", transport=httpx.MockTransport(handler), reconnect_delay=0
    )
    with client:
        events = list(client.events("t"))
    assert seen_ids == [None, "2"]
    assert events == [
        (1, "started", {"task_id": "t"}),
        (2, "progress", {"task_id": "t", "progress": 0.5}),
        (2, "status", {"task_id": "t", "status": "running", "progress": 0.7}),
        (4, "completed", {"task_id": "t"}),
    ]


def test_event_stream_errors_are_the_service_errors(service: RunningService) -> None:
    """A stream of an unknown task raises NOT_FOUND, as every other call does."""
    with ServiceClient(service.url) as client, pytest.raises(ServiceClientError) as raised:
        next(client.events(UNKNOWN_TASK))
    assert (raised.value.code, raised.value.http_status) == ("NOT_FOUND", 404)


# -- serve ----------------------------------------------------------------------------------


def test_serve_refuses_to_start_without_tokens(tmp_path: Path, run: Run) -> None:
    """Without --tokens, $STORYCORE_TASKS_TOKENS or --no-auth, serve says why in one
    line, exits 1 and creates nothing; --tokens with --no-auth is a usage error."""
    database = tmp_path / "tasks.db"
    code, out, err = run("serve", "--db", str(database), "--port", str(free_port()))
    assert (code, out) == (1, "")
    _one_error_line(err, "error: refusing to start without authentication: ")
    assert "--no-auth" in err
    assert "storycore-tasks token create" in err
    assert not database.exists()

    code, _, err = run("serve", "--db", str(database), "--tokens", str(tmp_path / "none.json"))
    assert code == 1
    _one_error_line(err, "error: cannot read the tokens file ")

    with pytest.raises(SystemExit) as exited:
        main(["serve", "--no-auth", "--tokens", "tokens.json"])
    assert exited.value.code == 2


def test_serve_refuses_an_implicit_ray_cluster(tmp_path: Path, run: Run) -> None:
    """--ray-address auto (join whatever is there) is refused in one line before anything
    starts; --ray-address with --ray-local is a usage error."""
    database = tmp_path / "tasks.db"
    code, out, err = run("serve", "--no-auth", "--db", str(database), "--port",
                         str(free_port()), "--ray-address", "auto")  # fmt: skip
    assert (code, out) == (1, "")
    _one_error_line(err, "error: cannot use the Ray cluster: ")
    assert "never done" in err
    assert not database.exists()
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--ray-local", "--ray-address", "h:1"])
    assert exited.value.code == 2


def test_serve_loads_operations_from_module_attributes_and_entry_points(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--operations module:attr takes a mapping {name: function} or one function (under
    its __name__), entry points of storycore_tasks.operations add theirs, and a bad
    spec stops serve with one line."""
    found = load_operations(["tests.service_ops:OPERATIONS", "tests.service_ops:shout"], group=None)
    assert found == {**service_ops.OPERATIONS, "shout": service_ops.shout}

    for spec, problem in [
        ("tests.service_ops", "expected module:attr"),
        ("tests.no_such_module:OPERATIONS", "cannot import tests.no_such_module"),
        ("tests.service_ops:missing", "has no attribute missing"),
        ("tests.service_ops:NOT_OPERATIONS", "expected a mapping"),
        ("tests.service_ops:echo", "'echo' is registered twice"),
    ]:
        with pytest.raises(ServeError, match=problem):
            load_operations(["tests.service_ops:OPERATIONS", spec], group=None)

    point = EntryPoint("svc", "tests.service_ops:OPERATIONS", OPERATIONS_GROUP)
    monkeypatch.setattr(
        "storycore_tasks.service.server.entry_points",
        lambda group: [point] if group == OPERATIONS_GROUP else [],
    )
    assert load_operations(["tests.service_ops:shout"]) == found
    broken = EntryPoint("broken", "tests.no_such_module:OPERATIONS", OPERATIONS_GROUP)
    monkeypatch.setattr("storycore_tasks.service.server.entry_points", lambda group: [broken])
    with pytest.raises(ServeError, match=r"entry point broken = tests\.no_such_module"):
        load_operations()

    monkeypatch.setattr("storycore_tasks.service.server.entry_points", lambda group: [])
    database = tmp_path / "tasks.db"
    spec = "tests.service_ops:missing"
    code, _, err = run("serve", "--no-auth", "--db", str(database), "--operations", spec)
    assert code == 1
    _one_error_line(err, f"error: --operations {spec}: tests.service_ops has no attribute")
    assert not database.exists()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_runs_the_service_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """storycore-tasks serve --no-auth warns that authentication is off and serves the
    operations given; on SIGINT or SIGTERM it waits for the running task, a second
    signal cancels it, and it exits 0."""
    port = free_port()
    database = tmp_path / "tasks.db"
    log = tmp_path / "serve.err"
    command = [
        *(sys.executable, "-m", "storycore_tasks.cli", "serve", "--port", str(port)),
        *("--db", str(database), "--no-auth", "--log-level", "warning"),
        *("--operations", "tests.service_ops:OPERATIONS"),
    ]
    with (
        log.open("w") as err,
        subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=_child_env()
        ) as server,
    ):
        try:
            with ServiceClient(f"http://127.0.0.1:{port}", timeout=WAIT) as client:

                def healthy() -> bool:
                    try:
                        return client.health() == {"status": "ok"}
                    except ServiceClientError:
                        return server.poll() is not None  # exited: stop waiting

                assert wait_until(healthy, timeout=WAIT, interval=0.05)
                assert server.poll() is None, log.read_text()
                task_id = client.create_task("steps", {"steps": 3})
                kinds = [kind for _, kind, _ in client.events(task_id)]
                assert kinds[-1] == "completed"
                assert client.status(task_id)["result"] == {"steps": 3}
                held = client.create_task("hold")
                assert wait_until(
                    lambda: client.status(held)["progress"] == 0.5, timeout=WAIT, interval=0.02
                )
            server.send_signal(stop)
            assert wait_until(
                lambda: "waiting for 1 running task(s)" in log.read_text(), timeout=WAIT
            ), log.read_text()
            server.send_signal(stop)
            server.wait(timeout=WAIT)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    stderr = log.read_text()
    assert server.returncode == 0, stderr
    assert stderr.splitlines()[0] == f"WARNING: {NO_AUTH_WARNING} (--no-auth)"
    assert "stopping: cancelling 1 running task(s)" in stderr
    assert stderr.endswith("storycore-tasks serve: stopped\n")
    assert "Traceback" not in stderr
    assert database.is_file()


# -- demo -----------------------------------------------------------------------------------


def test_demo_shows_progress_bars_on_a_terminal() -> None:
    """Given a terminal console, the demo shows a progress bar per task, ending with
    each one's outcome: completed at 100 %, the timeout's partial result, the crash."""
    screen = io.StringIO()
    report = run_demo(console=Console(file=screen, force_terminal=True, width=150))
    shown = screen.getvalue()
    for name in ("render intro", "narrate ch. 1", "llm storyboard", "denoise audio"):
        assert name in shown
    assert "100%" in shown
    assert "failed: TIMEOUT (partial result kept)" in shown
    assert "failed: WORKER_CRASHED (contained in its child process)" in shown
    assert "cancelled: CANCELLED" in shown
    assert "render credits" in report.table
