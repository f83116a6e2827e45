"""The CLI and the service guide the user: every mistake a newcomer makes gets one line
on standard error (its remedy, indented, may follow) and a non-zero exit, worded for the
command line; `serve` finds operations in the current folder and ships examples.

The commands run as real subprocesses (the console script, or ``python -m
storycore_tasks``) against real services on loopback ports.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from rich.console import Console

import storycore_tasks
from actors.testing import wait_until
from storycore_tasks import TaskManager
from storycore_tasks._bars import task_bars
from storycore_tasks.cli import TOKEN_ENV_VAR, URL_ENV_VAR, main
from storycore_tasks.service.auth import TOKENS_ENV_VAR, Principal, TokenStore, hash_token
from storycore_tasks.service.deps import ServiceConfig
from storycore_tasks.service.server import NO_OPERATIONS_WARNING
from tests import service_ops
from tests.service_harness import running_service

ROOT = Path(__file__).resolve().parent.parent
WAIT = 15.0  # seconds any one wait of these tests may take (never slept)
_BANNER = re.compile(r"^storycore-tasks serve: http://127\.0\.0\.1:(\d+) ")


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (URL_ENV_VAR, TOKEN_ENV_VAR, TOKENS_ENV_VAR, "FORCE_COLOR", "COLUMNS")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _command() -> list[str]:
    """The installed console script (beside this interpreter), else ``python -m``."""
    script = Path(sys.executable).with_name("storycore-tasks")
    found = str(script) if script.exists() else shutil.which("storycore-tasks")
    return [found] if found else [sys.executable, "-m", "storycore_tasks"]


def _run(
    *argv: str, cwd: Path = ROOT, module: bool = False, env: dict[str, str] | None = None
) -> Any:
    command = [sys.executable, "-m", "storycore_tasks"] if module else _command()
    return subprocess.run(
        [*command, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=_env(**(env or {})),
    )


def _one_error_line(err: str, starts: str) -> list[str]:
    """The error is one line starting ``error: <starts>`` (its remedy may follow on one
    indented line), and no traceback."""
    lines = err.splitlines()
    assert lines, "nothing on standard error"
    assert lines[0].startswith(f"error: {starts}"), err
    assert len(lines) <= 2, err
    assert all(line.startswith("  ") for line in lines[1:]), err
    assert "Traceback" not in err
    return lines


# -- serve: operations from the current folder, the examples, the warnings -----------------


@dataclass
class Served:
    process: subprocess.Popen[str]
    lines: queue.Queue[str]  # standard error, line by line
    seen: list[str]
    url: str = ""

    def line_with(self, *parts: str) -> str:
        """The next line of standard error holding every one of ``parts``."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {parts}; saw {self.seen}") from None
            self.seen.append(line)
            if all(part in line for part in parts):
                return line


def _pump(stream: IO[str] | None, lines: queue.Queue[str]) -> None:
    """Put every line of ``stream`` into ``lines``, to its end."""
    for line in stream or ():
        lines.put(line)


@contextmanager
def _serving(*argv: str, cwd: Path, module: bool = False) -> Iterator[Served]:
    """``serve --port 0 --no-auth ARGV`` in ``cwd`` until the block ends (SIGINT, then a
    kill if it did not stop); its URL is read from its banner."""
    command = [sys.executable, "-m", "storycore_tasks"] if module else _command()
    process = subprocess.Popen(
        [*command, "serve", "--port", "0", "--no-auth", "--log-level", "warning", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stderr, lines))
    reader.start()
    served = Served(process, lines, [])
    try:
        match = _BANNER.match(served.line_with("storycore-tasks serve: http://"))
        assert match is not None, served.seen
        served.url = f"http://127.0.0.1:{match[1]}"
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(WAIT)
        if process.stderr is not None:
            process.stderr.close()
        while not lines.empty():
            served.seen.append(lines.get())


def _wait_for_end(client: httpx.Client, task_id: str) -> dict[str, Any]:
    ended: dict[str, Any] = {}

    def done() -> bool:
        task = client.get(f"/v1/tasks/{task_id}").json()["data"]
        ended.update(task)
        return task["status"] in ("completed", "failed", "cancelled")

    assert wait_until(done, timeout=WAIT, interval=0.02), ended
    return ended


def test_serve_finds_operations_in_the_current_folder_and_ships_examples(
    tmp_path: Path,
) -> None:
    """`serve --operations myapp.ops:OPERATIONS` imports ./myapp/ops.py from the folder
    it runs in (as uvicorn's --app-dir does), next to the shipped
    storycore_tasks.examples; tasks of both complete over HTTP, and Ctrl-C stops it
    cleanly (exit 0, no traceback)."""
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "ops.py").write_text(
        textwrap.dedent(
            """
            def greet(params, task):
                task.update_progress(1.0)
                return {"greeting": "hello " + params["name"]}

            OPERATIONS = {"myapp.greet": greet}
            """
        )
    )
    with _serving(
        *("--db", str(tmp_path / "tasks.db")),
        *("--operations", "myapp.ops:OPERATIONS"),
        *("--operations", "storycore_tasks.examples:OPERATIONS"),
        cwd=tmp_path,
    ) as served:
        assert "examples.render" in served.seen[-1]
        assert "myapp.greet" in served.seen[-1]
        with httpx.Client(base_url=served.url, timeout=WAIT) as client:
            created = client.post(
                "/v1/tasks", json={"operation": "myapp.greet", "params": {"name": "ada"}}
            )
            assert created.status_code == 202, created.text
            greeted = _wait_for_end(client, created.json()["data"]["task_id"])
            assert (greeted["status"], greeted["result"]) == (
                "completed",
                {"greeting": "hello ada"},
            )

            render = client.post(
                "/v1/tasks",
                json={
                    "operation": "examples.render",
                    "params": {"frames": 3, "seconds_per_frame": 0.01},
                },
            ).json()["data"]["task_id"]
            rendered = _wait_for_end(client, render)
            assert rendered["status"] == "completed"
            assert rendered["progress"] == 1.0
            assert rendered["result"]["frames_rendered"] == 3

            board = client.post(
                "/v1/tasks",
                json={
                    "operation": "examples.storyboard",
                    "params": {"scenes": 10_000, "seconds": 0.01},
                    "timeout": 0.5,
                },
            ).json()["data"]["task_id"]
            timed_out = _wait_for_end(client, board)
            assert timed_out["error"]["code"] == "TIMEOUT"
            assert timed_out["error"]["details"]["partial_result"]["scenes"]  # kept
        served.process.send_signal(signal.SIGINT)
        assert served.process.wait(timeout=WAIT) == 0
    assert served.seen[-1] == "storycore-tasks serve: stopped\n"
    assert not [line for line in served.seen if "Traceback" in line]


def test_serve_with_no_operations_warns_in_one_line(tmp_path: Path) -> None:
    """`serve` without any operation starts (the dashboard and API work) but says so in
    one warning line, naming the examples to try."""
    with _serving("--db", str(tmp_path / "tasks.db"), cwd=tmp_path, module=True) as served:
        warnings = [line for line in served.seen if line.startswith("WARNING: no operations")]
    assert warnings == [f"WARNING: {NO_OPERATIONS_WARNING}\n"]
    assert "storycore_tasks.examples:OPERATIONS" in warnings[0]


def test_serve_on_a_port_in_use_says_so_in_one_line_without_a_banner(tmp_path: Path) -> None:
    """A port in use: one error line naming it and --port, exit 1, and no "serving"
    banner (the port is bound before anything is announced)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("serve", "--no-auth", "--port", str(port), "--db", str(tmp_path / "t.db"))
    assert done.returncode == 1
    lines = _one_error_line(done.stderr, f"cannot listen on 127.0.0.1:{port}: ")
    assert "--port" in lines[0]
    assert "storycore-tasks serve: http" not in done.stderr + done.stdout


def test_serve_names_the_app_dir_when_a_module_is_not_found(tmp_path: Path) -> None:
    """An --operations module that is not there: one line, and the remedy says where it
    was looked for (--app-dir)."""
    done = _run(
        *("serve", "--no-auth", "--db", str(tmp_path / "t.db")),
        *("--operations", "nowhere.ops:OPERATIONS"),
        cwd=tmp_path,
    )
    assert done.returncode == 1
    lines = _one_error_line(done.stderr, "--operations nowhere.ops:OPERATIONS: cannot import")
    assert len(lines) == 2
    assert f"--app-dir ({tmp_path.resolve()})" in lines[1]


def test_serve_app_dir_imports_from_another_folder(tmp_path: Path) -> None:
    """--app-dir DIR imports --operations modules from DIR whatever the current folder."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "solo_ops.py").write_text("def solo(params, task):\n    return 'solo'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with _serving(
        *("--db", str(tmp_path / "t.db"), "--app-dir", str(app)),
        *("--operations", "solo_ops:solo"),
        cwd=elsewhere,
    ) as served:
        assert "operations: solo;" in served.seen[-1]


# -- stopping serve with an event stream open ------------------------------------------------


def test_stopping_serve_ends_the_streams_and_cancels_pending_tasks_first(
    tmp_path: Path,
) -> None:
    """On SIGINT `serve` cancels the pending tasks at once (none starts while it stops)
    and ends the open event streams (a `watch` says at once that the connection is
    lost), then waits for the running task: no CancelledError traceback, exit 0."""
    database = tmp_path / "tasks.db"
    with _serving(
        *("--db", str(database), "--workers", "1"),
        *("--operations", "tests.service_ops:OPERATIONS"),
        cwd=ROOT,
    ) as served:
        watcher = subprocess.Popen(
            [*_command(), "watch", "--url", served.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_env(COLUMNS="200"),
        )
        watched: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(watcher.stdout, watched))
        reader.start()
        try:
            assert "watching every task" in watched.get(timeout=WAIT)
            with httpx.Client(base_url=served.url, timeout=WAIT) as client:

                def create(operation: str, params: dict[str, Any]) -> str:
                    body = {"operation": operation, "params": params}
                    task_id: str = client.post("/v1/tasks", json=body).json()["data"]["task_id"]
                    return task_id

                running = create("steps", {"steps": 4, "seconds": 0.25})
                pending = [create("echo", {"n": n}) for n in range(3)]
                assert wait_until(
                    lambda: (
                        client.get(f"/v1/tasks/{running}").json()["data"]["status"] == "running"
                    ),
                    timeout=WAIT,
                )
            served.process.send_signal(signal.SIGINT)
            lost = ""
            while "lost the connection" not in lost:
                lost = watched.get(timeout=WAIT)  # at once, not after the retries
            assert served.url in lost
            assert served.process.wait(timeout=WAIT) == 0
        finally:
            watcher.send_signal(signal.SIGINT)
            watcher.wait(timeout=WAIT)
            reader.join(WAIT)  # it reads standard output to its end
            for pipe in (watcher.stdout, watcher.stderr):
                if pipe is not None:
                    pipe.close()
    log = "".join(served.seen)
    assert "Traceback" not in log
    assert "CancelledError" not in log
    assert "timeout graceful shutdown exceeded" not in log
    assert served.seen[-1] == "storycore-tasks serve: stopped\n"
    with TaskManager(store=database) as after:
        assert after.get_task_status(running)["status"] == "completed"  # type: ignore[index]
        for task_id in pending:
            status = after.get_task_status(task_id)
            assert status is not None
            assert (status["status"], status["started_at"]) == ("cancelled", None)
            assert status["error"]["details"]["reason"] == "shutdown"


# -- the server extra, the demo -------------------------------------------------------------

_WITHOUT_SERVER_EXTRA = (
    "import runpy, sys\n"
    "for name in ('fastapi', 'uvicorn', 'httpx', 'starlette', 'prometheus_client'):\n"
    "    sys.modules[name] = None  # as if the server extra were not installed\n"
    "runpy.run_module('storycore_tasks', run_name='__main__')\n"
)


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["token", "create", "--user", "ada", "--tokens", "t.json"], id="token"),
        pytest.param(["status", str(uuid.uuid4())], id="client"),
        pytest.param(["serve", "--no-auth"], id="serve"),
    ],
)
def test_commands_without_the_server_extra_name_the_install(
    tmp_path: Path, argv: list[str]
) -> None:
    """Without fastapi, uvicorn and httpx, `token create`, the client commands and `serve`
    say in one line to pip install "storycore-tasks[server]" (no ModuleNotFoundError
    traceback)."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SERVER_EXTRA, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=_env(PYTHONPATH=str(ROOT)),
    )
    assert done.returncode == 1
    lines = _one_error_line(done.stderr, "this command needs the server extra: ")
    assert 'pip install "storycore-tasks[server]"' in lines[0]
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_demo_on_a_locked_database_is_one_line(tmp_path: Path, json_mode: bool) -> None:
    """`demo --db FILE` while another manager holds FILE: one line naming it, a remedy
    naming --db and --memory, exit 1; with --json standard output stays JSON."""
    database = tmp_path / "busy.db"
    with TaskManager(store=database):
        done = _run("demo", "--db", str(database), *(["--json"] if json_mode else []))
    assert done.returncode == 1
    # With --json the banner for people is on standard error too, before the error.
    err = done.stderr[done.stderr.index("error: ") :] if "error: " in done.stderr else ""
    lines = _one_error_line(
        err, f"the task database {database} is in use by another storycore-tasks process"
    )
    assert done.stderr.count("error: ") == 1
    assert "--db" in lines[1]
    assert "--memory" in lines[1]
    assert "Traceback" not in done.stdout + done.stderr
    if json_mode:
        assert all(json.loads(line) for line in done.stdout.splitlines())


def test_demo_interrupted_exits_130_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) during the demo: its tasks are cancelled, it says so in one line
    on standard error, and exits 130 without a traceback."""
    demo = subprocess.Popen(
        [*_command(), "demo", "--memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(),
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if "task.started" in line:
                break
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=WAIT)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, err
    assert err.splitlines() == ["interrupted (Ctrl-C): the demo cancelled its tasks"]
    assert "Traceback" not in out


# -- the client commands' errors, tokens and help -------------------------------------------


@pytest.fixture
def guarded(make_manager: Callable[..., TaskManager]) -> Iterator[str]:
    """A service that needs a token ("good", user alice); yields its URL."""
    manager = make_manager(operations=service_ops.OPERATIONS)
    tokens = TokenStore([(hash_token("good"), Principal("alice", "user"))])
    with running_service(manager, ServiceConfig(tokens=tokens)) as running:
        yield running.url


def test_cli_errors_give_cli_advice(guarded: str) -> None:
    """No token: one line and a remedy naming --token and $STORYCORE_TASKS_TOKEN (not an
    HTTP header); an unknown task: a remedy naming `storycore-tasks list` (not
    max_task_age); --token and $STORYCORE_TASKS_TOKEN both pass the token."""
    missing = str(uuid.uuid4())
    done = _run("status", missing, "--url", guarded)
    assert done.returncode == 1
    lines = _one_error_line(done.stderr, "AUTHENTICATION_REQUIRED: ")
    assert "--token" in lines[1]
    assert f"${TOKEN_ENV_VAR}" in lines[1]
    assert "Authorization" not in lines[1]

    for done in (
        _run("status", missing, "--url", guarded, "--token", "good"),
        _run("--token", "good", "status", missing, "--url", guarded),
        _run("status", missing, "--url", guarded, env={TOKEN_ENV_VAR: "good"}),
    ):
        assert done.returncode == 1
        lines = _one_error_line(done.stderr, f"NOT_FOUND: Task {missing} not found")
        assert "storycore-tasks list" in lines[1]
        assert "max_task_age" not in lines[1]

    done = _run("submit", "no.such.operation", "--url", guarded, "--token", "good")
    assert done.returncode == 1
    lines = _one_error_line(done.stderr, "VALIDATION_ERROR: no operation is registered as")
    assert "register_operation" not in done.stderr
    assert "--operations" in lines[1]


def _subcommands() -> list[list[str]]:
    commands = []
    for name in ("submit", "status", "cancel", "list", "stats", "watch", "serve"):
        commands.append([name])
    commands += [["token"], ["token", "create"], ["token", "list"], ["token", "revoke"]]
    return commands


@pytest.mark.parametrize("command", _subcommands(), ids=" ".join)
def test_every_subcommand_help_names_the_token_variable(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every client and token subcommand's --help names $STORYCORE_TASKS_TOKEN (and the
    client ones --token)."""
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"${TOKEN_ENV_VAR}" in shown
    if command[0] not in ("serve", "token"):
        assert "--token" in shown


def test_token_list_and_revoke(tmp_path: Path) -> None:
    """`token create` twice, `token list` shows both (never the token), `token revoke
    --id` removes one (the other still authenticates), and revoking what is not there
    is one error line."""
    tokens = tmp_path / "tokens.json"
    ada = _run("token", "create", "--user", "ada", "--tokens", str(tokens)).stdout.strip()
    bob = _run(
        "token", "create", "--user", "bob", "--role", "admin", "--tokens", str(tokens)
    ).stdout.strip()
    listed = json.loads(_run("token", "list", "--tokens", str(tokens), "--json").stdout)
    assert [(e["user"], e["role"]) for e in listed] == [("ada", "user"), ("bob", "admin")]
    assert listed[0]["id"] == hash_token(ada)[:12]
    table = _run("token", "list", "--tokens", str(tokens)).stdout
    assert ada not in table
    assert bob not in table

    done = _run("token", "revoke", "--tokens", str(tokens), "--id", listed[0]["id"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"revoked {listed[0]['id']} (ada, user)\n"
    store = TokenStore.load(tokens, environ={})
    assert store.authenticate(ada) is None
    assert store.authenticate(bob) == Principal("bob", "admin")

    done = _run("token", "revoke", "--tokens", str(tokens), "--user", "ada")
    assert done.returncode == 1
    lines = _one_error_line(done.stderr, f"the tokens file {tokens} holds no token of user 'ada'")
    assert "token list" in lines[1]


# -- version, python -m, completion -----------------------------------------------------------


def test_version_from_the_console_script_and_python_m() -> None:
    """`storycore-tasks --version` and `python -m storycore_tasks --version` print the
    package metadata's version, which storycore_tasks.__version__ is too."""
    assert storycore_tasks.__version__ == version("storycore-tasks")
    expected = f"storycore-tasks {storycore_tasks.__version__}\n"
    for done in (_run("--version"), _run("--version", module=True)):
        assert (done.returncode, done.stdout) == (0, expected)


def _complete(shell_script: str, *words: str) -> list[str]:
    """What bash completes for the command line ``words`` (the last one being typed)."""
    typed = " ".join(shlex.quote(word) for word in words)
    program = (
        f"{shell_script}\n"
        f"COMP_WORDS=(storycore-tasks {typed})\n"
        f"COMP_CWORD={len(words)}\n"
        "_storycore_tasks\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to check the completion script"
    done = subprocess.run(
        [bash, "--norc", "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.split()


def test_bash_completion_completes_commands_options_and_choices() -> None:
    """`completion bash` prints a script that, loaded in a real bash, completes the
    commands, a command's options and an option's choices."""
    done = _run("completion", "bash", module=True)
    assert done.returncode == 0
    script = done.stdout
    assert _complete(script, "tok") == ["token"]
    assert _complete(script, "token", "re") == ["revoke"]
    assert sorted(_complete(script, "submit", "--t")) == ["--timeout", "--token"]
    assert _complete(script, "list", "--status", "ru") == ["running"]
    assert "--app-dir" in _complete(script, "serve", "--")


def test_zsh_completion_loads_the_bash_function_through_bashcompinit() -> None:
    """`completion zsh` is the same function behind zsh's bashcompinit."""
    done = _run("completion", "zsh")
    assert done.returncode == 0
    assert done.stdout.startswith("autoload -U +X bashcompinit && bashcompinit\n")
    assert "complete -o default -F _storycore_tasks storycore-tasks" in done.stdout


# -- watch ------------------------------------------------------------------------------------


def test_watch_bars_put_running_tasks_first_and_stop_at_max_rows() -> None:
    """With max_rows, the bars are drawn running first (then pending, then ended), at
    most max_rows of them, and a "+K more" line: 45 tasks never overflow a terminal."""
    screen = Console(record=True, width=120, force_terminal=True)
    progress = task_bars(screen, transient=False, max_rows=30)
    for n in range(20):
        progress.add_task(f"ended-{n}", total=100, state="failed (TIMEOUT)")
    for n in range(15):
        progress.add_task(f"pending-{n}", total=100, state="pending")
    for n in range(10):
        progress.add_task(f"running-{n}", total=100, state="running")
    screen.print(progress.get_renderable())
    lines = [line for line in screen.export_text().splitlines() if line.strip()]
    assert len(lines) == 31
    names = [line.split()[0] for line in lines[:30]]
    assert names == [f"running-{n}" for n in range(10)] + [f"pending-{n}" for n in range(15)] + [
        f"ended-{n}" for n in range(5)
    ]
    assert "failed (TIMEOUT)" in lines[25]
    assert lines[30].strip() == "+15 more"


def test_watch_shows_the_error_code_of_a_failed_task(guarded: str) -> None:
    """`watch` prints a failed task's end with its error code ("failed (INTERNAL_ERROR)"),
    read from its status."""
    with subprocess.Popen(
        [*_command(), "watch", "--url", guarded, "--token", "good"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(COLUMNS="200"),
    ) as watcher:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(watcher.stdout, lines))
        reader.start()
        try:
            assert "watching every task" in lines.get(timeout=WAIT)
            with httpx.Client(
                base_url=guarded, timeout=WAIT, headers={"Authorization": "Bearer good"}
            ) as client:
                created = client.post("/v1/tasks", json={"operation": "boom"})
                task_id = created.json()["data"]["task_id"]
            line = ""
            while not (task_id in line and "failed" in line):
                line = lines.get(timeout=WAIT)
            assert line.rstrip().endswith("boom: failed (INTERNAL_ERROR)")
        finally:
            watcher.send_signal(signal.SIGINT)
            watcher.wait(timeout=WAIT)
            reader.join(WAIT)


# -- the HTTP service: Content-Type, /docs, stats, remedies for HTTP clients ---------------------


@pytest.fixture
def http(guarded: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=guarded, timeout=WAIT, headers={"Authorization": "Bearer good"}
    ) as client:
        yield client


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain"],
    ids=["none", "curl-default", "text"],
)
def test_a_body_that_is_not_sent_as_json_gets_an_answer_naming_the_header(
    http: httpx.Client, content_type: str | None
) -> None:
    """curl -d without -H 'Content-Type: application/json' (or any other non-JSON type)
    is a VALIDATION_ERROR envelope whose message and remedy name the header."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = b'{"operation": "echo"}'
    request = http.build_request("POST", "/v1/tasks", content=body, headers=headers)
    assert ("Content-Type" in request.headers) == (content_type is not None)
    answer = http.send(request)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "Content-Type: application/json" in error["message"]
    assert "Content-Type: application/json" in error["remediation"]
    assert error["details"]["header"] == "Content-Type"


def test_an_anonymous_body_that_is_not_json_is_still_a_401(guarded: str) -> None:
    """Authentication comes first (issue 14, finding 15): without a token, a body sent
    without the JSON Content-Type gets 401, not the Content-Type advice."""
    with httpx.Client(base_url=guarded, timeout=WAIT) as anonymous:
        request = anonymous.build_request(
            "POST",
            "/v1/tasks",
            content=b"operation=echo",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        answer = anonymous.send(request)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AUTHENTICATION_REQUIRED"


def test_json_bodies_and_bodiless_posts_pass_the_content_type_check(http: httpx.Client) -> None:
    """application/json (with a charset too) passes; a POST without a body (cancel)
    needs no Content-Type."""
    created = http.post(
        "/v1/tasks",
        content=b'{"operation": "hold"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert created.status_code == 202, created.text
    task_id = created.json()["data"]["task_id"]
    cancel = http.build_request("POST", f"/v1/tasks/{task_id}/cancel")
    assert "Content-Type" not in cancel.headers
    assert http.send(cancel).status_code == 200


def test_docs_page_needs_nothing_from_outside(http: httpx.Client) -> None:
    """/docs (and /redoc) is an HTML page listing the API's routes that references no
    http(s):// address outside this host and runs no script (so it works offline)."""
    for path in ("/docs", "/redoc"):
        page = http.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src" not in page.headers["content-security-policy"]
        html = page.text
        assert "<script" not in html.lower()
        outside = re.findall(r"""(?:src|href)\s*=\s*["']?(https?://[^"'\s>]+)""", html, re.I)
        assert outside == []
        assert "cdn" not in html.lower()
        for route in ("/v1/tasks", "/v1/tasks/{task_id}/cancel", "/v1/events", "/v1/stats"):
            assert f"<code>{route}</code>" in html
        assert "CreateTaskRequest" in html
        assert "Content-Type: application/json" in html  # the curl examples


def test_stats_for_a_user_token_are_global_and_say_so(
    guarded: str, http: httpx.Client, make_manager: Callable[..., TaskManager]
) -> None:
    """/v1/stats counts every task of the service, a user-role token's too, and says so
    (scope "service"); `storycore-tasks stats` says the counters are global."""
    before = http.get("/v1/stats").json()["data"]
    assert before["scope"] == "service"
    http.post("/v1/tasks", json={"operation": "echo"})
    after = http.get("/v1/stats").json()["data"]
    assert after["total_tasks"] == before["total_tasks"] + 1
    shown = _run("stats", "--url", guarded, "--token", "good")
    assert shown.returncode == 0, shown.stderr
    assert "the counters are global" in shown.stdout


def test_http_errors_give_http_advice(http: httpx.Client) -> None:
    """Over HTTP an unknown operation names --operations (not register_operation), a
    naive run_at gives an ISO-8601 example (not datetime.now(timezone.utc)), and an
    unknown task's remedy names GET /v1/tasks (not max_task_age)."""
    unknown = http.post("/v1/tasks", json={"operation": "nope"}).json()["error"]
    assert unknown["code"] == "VALIDATION_ERROR"
    assert "register_operation" not in json.dumps(unknown)
    assert "--operations" in unknown["remediation"]
    assert unknown["details"]["registered"] == sorted(service_ops.OPERATIONS)

    naive = http.post(
        "/v1/tasks", json={"operation": "echo", "run_at": "2030-01-01T12:00:00"}
    ).json()["error"]
    assert naive["code"] == "VALIDATION_ERROR"
    assert "timezone.utc" not in json.dumps(naive)
    assert "2030-01-01T12:00:00Z" in naive["remediation"]

    missing = http.get(f"/v1/tasks/{uuid.uuid4()}").json()["error"]
    assert missing["code"] == "NOT_FOUND"
    assert "max_task_age" not in missing["remediation"]
    assert "GET /v1/tasks" in missing["remediation"]


def test_the_python_api_keeps_its_remedies_and_each_surface_gets_its_own() -> None:
    """error_from_exception defaults to the Python API's wording; for_surface and
    remediation_for give the HTTP and CLI wording of the same error."""
    from actors import UnknownOperationError
    from storycore_tasks.errors import (
        REMEDIATION_BY_CODE,
        ErrorCodes,
        Surface,
        error_from_exception,
        remediation_for,
    )

    python = error_from_exception(UnknownOperationError("x", ["a"]))
    assert "register_operation" in python.message
    assert (
        "register_operation"
        not in error_from_exception(UnknownOperationError("x", ["a"]), Surface.CLI).message
    )
    found = error_from_exception(LookupError("gone"))
    assert found.code is ErrorCodes.INTERNAL_ERROR
    auth = ErrorCodes.AUTHENTICATION_REQUIRED
    assert remediation_for(auth) == REMEDIATION_BY_CODE[auth]
    assert "--token" in remediation_for(auth, Surface.CLI)
    not_found = error_from_exception(storycore_tasks.UnknownTaskError("t"))
    assert not_found.remediation == REMEDIATION_BY_CODE[ErrorCodes.NOT_FOUND]
    assert "storycore-tasks list" in not_found.for_surface(Surface.CLI).remediation
    # A remedy that is not a standard one is kept as it is on every surface.
    custom = not_found.__class__(ErrorCodes.NOT_FOUND, "m", {}, "do this")
    assert custom.for_surface(Surface.HTTP).remediation == "do this"


# -- process isolation without the main guard ---------------------------------------------------

_UNGUARDED = """\
from storycore_tasks import TaskManager

def work(params, task):
    return "done"

manager = TaskManager(num_workers=2, operations={"work": work})
ids = [manager.create_task("work", isolation="process") for _ in range(3)]
for task_id in ids:
    status = manager.wait(task_id, timeout=60)
    print(status["status"], status["error"]["code"])
    print(status["error"]["message"])
    print(status["error"]["remediation"])
manager.shutdown()
"""


def _run_script(script: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Write ``source`` to ``script`` and run it as a user would, from its folder."""
    script.write_text(source)
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=script.parent,
        env=_env(),
    )


def test_process_isolation_without_the_main_guard_says_so_in_one_line(tmp_path: Path) -> None:
    """A script that creates its TaskManager unguarded and runs process-isolated tasks:
    each spawned child, importing the script again, leaves at once (no second manager,
    no bootstrapping RuntimeError, no traceback), and each task fails with one line
    naming the `if __name__ == "__main__":` fix, and a remedy that says so (not "fix
    the operation")."""
    script = tmp_path / "unguarded.py"
    done = _run_script(script, _UNGUARDED)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "bootstrapping" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 9, done.stdout  # three tasks, three lines each: no child's output
    for status, message, remedy in zip(lines[0::3], lines[1::3], lines[2::3], strict=True):
        assert status == "failed INTERNAL_ERROR"
        assert message.startswith("process isolation cannot start a child process: the main")
        assert str(script) in message
        assert 'if __name__ == "__main__":' in message
        assert 'if __name__ == "__main__":' in remedy
        assert "fix the operation" not in remedy


_GUARDED = """\
from storycore_tasks import TaskManager

def work(params, task):
    return "done"

if __name__ == "__main__":
    with TaskManager(num_workers=2, operations={"work": work}) as manager:
        ids = [manager.create_task("work", isolation="process") for _ in range(3)]
        for task_id in ids:
            print(manager.wait(task_id, timeout=60)["status"])
"""


def test_the_same_script_with_the_guard_runs_in_child_processes(tmp_path: Path) -> None:
    """With the guard, the same tasks complete in child processes: only a child that is
    importing an unguarded main module leaves."""
    done = _run_script(tmp_path / "guarded.py", _GUARDED)
    assert (done.returncode, done.stdout) == (0, "completed\n" * 3), done.stderr


def test_a_status_error_is_reworded_for_each_surface() -> None:
    """An INTERRUPTED task's remedy (register_operation(...) for Python) is worded for
    HTTP clients and the CLI when a status dict is shown there (GET /v1/tasks/{id},
    status frames of the event streams, webhooks, `storycore-tasks status`)."""
    from storycore_tasks.errors import (
        REMEDIATION_BY_CODE,
        ErrorCodes,
        ErrorDetails,
        Surface,
        status_shown_on,
    )

    error = ErrorDetails.of(ErrorCodes.INTERRUPTED, "The task manager's process stopped")
    status = {"task_id": str(uuid.uuid4()), "status": "failed", "error": error.to_dict()}
    assert "register_operation" in REMEDIATION_BY_CODE[ErrorCodes.INTERRUPTED]
    for surface in (Surface.HTTP, Surface.CLI):
        shown = status_shown_on(status, surface)
        assert "register_operation" not in shown["error"]["remediation"]
        assert "--operations" in shown["error"]["remediation"]
        assert {**shown, "error": None} == {**status, "error": None}
    assert status_shown_on(status, Surface.PYTHON) == status
