"""The ``storycore-tasks`` command.

``demo`` runs a scripted scenario on an embedded manager (no service needed). ``serve``
runs the HTTP service; ``token create``, ``token list`` and ``token revoke`` manage a
tokens file. The other commands are clients of a running service: ``submit``,
``status``, ``cancel``, ``resume``, ``list``, ``stats`` and ``watch``, at ``--url`` (default
``$STORYCORE_TASKS_URL``, else http://127.0.0.1:8080) with the token from ``--token``
(default ``$STORYCORE_TASKS_TOKEN``). ``completion bash|zsh`` prints a shell completion
script; ``--version`` the installed version. ``python -m storycore_tasks`` is the same
command.

Exit codes: 0 success; 1 an error, told in one line on standard error (``error: CODE:
message``, the remedy on a second line), or a task that ``submit --wait`` or
``watch ID`` saw fail or be cancelled; 2 a usage error; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, assert_never, cast

from actors import (
    TERMINAL_STATUSES,
    Isolation,
    RayNotInstalledError,
    RayUnavailableError,
    StoreError,
    StoreLockedError,
    TaskPriority,
)
from actors._options import Option, options_of
from actors._resources import Resources
from storycore_tasks import __version__
from storycore_tasks import logging as task_logging
from storycore_tasks._bars import task_bars
from storycore_tasks.demo import run_demo
from storycore_tasks.errors import Surface, shown_on

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from storycore_tasks.client import ServiceClient

__all__ = ["DEFAULT_URL", "DEMO_DATABASE", "TOKEN_ENV_VAR", "URL_ENV_VAR", "main"]

DEMO_DATABASE = "storycore-demo.db"
"""Where ``storycore-tasks demo`` keeps its tasks unless told otherwise (``--db``,
``--memory``): a file in the current folder."""
DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV_VAR = "STORYCORE_TASKS_URL"
TOKEN_ENV_VAR = "STORYCORE_TASKS_TOKEN"
_FINISHED_BARS_KEPT = 10  # `watch` (every task) keeps this many ended tasks' bars
_WATCH_ROWS = 30  # `watch` shows at most this many bars (running first), then "+K more"
_SERVER_EXTRA = 'this command needs the server extra: pip install "storycore-tasks[server]"'

Handler = Callable[[argparse.Namespace], int]


class _Failed(Exception):
    """A command failed: one line for standard error (and maybe a remedy)."""

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.remedy = remedy


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.parser = parser
    handler: Handler = args.handler
    try:
        return handler(args)
    except _Failed as failed:
        _error(str(failed), failed.remedy)
        return 1
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


# -- the parser ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storycore-tasks",
        description="StoryCore's actor-model task supervisor.",
        epilog=_CONNECTION_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"storycore-tasks {__version__}")
    # --url and --token may come before the command or after it: the command's copy
    # leaves the attribute alone unless given.
    parser.add_argument("--url", default=None, help=_URL_HELP)
    parser.add_argument("--token", default=None, help=_TOKEN_HELP)
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--url", default=argparse.SUPPRESS, help=_URL_HELP)
    connection.add_argument("--token", default=argparse.SUPPRESS, help=_TOKEN_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo_parser(commands)
    _serve_parser(commands)
    _token_parser(commands)

    def client_command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = commands.add_parser(
            name, parents=[connection], epilog=_CONNECTION_EPILOG, **kwargs
        )
        return command

    submit = client_command(
        "submit",
        help="create a task on the service and print its id",
        description="Create a task of a registered operation and print its id. With "
        "--wait, show its progress until it ends, then print its final status (exit 1 if "
        "it failed or was cancelled).",
    )
    submit.add_argument("operation", metavar="OPERATION", help="a registered operation")
    submit.add_argument(
        "--params",
        type=_json_object,
        default={},
        metavar="JSON",
        help="the operation's params, a JSON object (default: {})",
    )
    _add_option_flags(submit)
    submit.add_argument("--wait", action="store_true", help="follow the task until it ends")
    submit.add_argument("--json", action="store_true", help="print JSON")
    submit.set_defaults(handler=_submit)

    status = client_command("status", help="a task's status")
    status.add_argument("task_id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_status)

    cancel = client_command("cancel", help="cancel a pending or running task")
    cancel.add_argument("task_id", metavar="ID")
    cancel.set_defaults(handler=_cancel)
    resume = client_command(
        "resume", help="run a failed or cancelled task again from its latest checkpoint"
    )
    resume.add_argument("task_id", metavar="ID")
    resume.set_defaults(handler=_resume)

    listing = client_command("list", help="tasks, oldest first")
    listing.add_argument(
        "--status", choices=("pending", "running", "completed", "failed", "cancelled")
    )
    listing.add_argument("--limit", type=_positive_int, metavar="N", help="at most N tasks")
    listing.add_argument("--json", action="store_true", help="print the tasks as JSON")
    listing.set_defaults(handler=_list)

    stats = client_command(
        "stats",
        help="the service's counters",
        description="The service's counters. They count every task of the service, "
        "whoever created them (a user-role token too: the numbers are global); `list` "
        "shows only the tasks the token may see.",
    )
    stats.add_argument("--json", action="store_true", help="print every counter as JSON")
    stats.set_defaults(handler=_stats)

    watch = client_command(
        "watch",
        help="live progress bars of one task, or of every task",
        description="Follow one task until it ends (exit 1 if it failed or was "
        "cancelled), or, without ID, every task the token may see until Ctrl-C (running "
        f"ones first, at most {_WATCH_ROWS} bars; exit 1 when the service goes away).",
    )
    watch.add_argument("task_id", metavar="ID", nargs="?")
    watch.set_defaults(handler=_watch)

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for bash or zsh. Load it in the current "
        'shell with `eval "$(storycore-tasks completion bash)"`, or save it where your '
        "shell reads completions (e.g. ~/.local/share/bash-completion/completions/"
        "storycore-tasks).",
    )
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(handler=_completion)
    return parser


_URL_HELP = f"the service's URL (default: ${URL_ENV_VAR}, else {DEFAULT_URL})"
_TOKEN_HELP = (
    f"the bearer token (default: ${TOKEN_ENV_VAR}; the variable keeps it out of the process list)"
)
_CONNECTION_EPILOG = (
    f"Client commands talk to `storycore-tasks serve` at --url (or ${URL_ENV_VAR}) with "
    f"the bearer token from --token (or ${TOKEN_ENV_VAR}); `storycore-tasks token create` "
    "makes one."
)


def _demo_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a short scripted scenario and print its lifecycle log and status table "
        "(with live progress bars on a terminal)",
    )
    demo.add_argument("--json", action="store_true", help="log JSON lines instead of text")
    storage = demo.add_mutually_exclusive_group()
    storage.add_argument(
        "--db",
        default=DEMO_DATABASE,
        metavar="PATH",
        help=f"the task database the demo keeps its tasks in (default: ./{DEMO_DATABASE}; "
        "every run adds its six tasks, kept for an hour)",
    )
    storage.add_argument(
        "--memory", action="store_true", help="keep the tasks in memory only (write no file)"
    )
    demo.add_argument(
        "--ray",
        action="store_true",
        help="run the six tasks with isolation='ray' on a private local Ray cluster the "
        "demo starts and stops (needs pip install 'storycore-tasks[ray]')",
    )
    demo.add_argument(
        "--log-level",
        default="info",
        choices=task_logging.LEVELS,
        help="lowest log level shown (default: info; debug shows progress events)",
    )
    demo.set_defaults(handler=_demo)


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service until SIGINT or SIGTERM. Operations come from "
        "--operations (modules are looked for in --app-dir, default the current folder, "
        "then in the installed packages; try --operations "
        "storycore_tasks.examples:OPERATIONS) and from the installed packages' entry "
        "points (group storycore_tasks.operations). It refuses to start without tokens "
        "(--tokens FILE or $STORYCORE_TASKS_TOKENS) unless --no-auth is given.",
        epilog=f"Clients pass their token with --token or in ${TOKEN_ENV_VAR}.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="default: 8080")
    serve.add_argument(
        "--db",
        default="storycore-tasks.db",
        metavar="PATH",
        help="the task database (default: ./storycore-tasks.db)",
    )
    serve.add_argument(
        "--operations",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="register operations: a mapping {name: function}, or one function (under "
        "its __name__); repeatable (e.g. storycore_tasks.examples:OPERATIONS)",
    )
    serve.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="the folder --operations modules are imported from, before the installed "
        "packages (default: the current folder)",
    )
    auth = serve.add_mutually_exclusive_group()
    auth.add_argument(
        "--tokens", metavar="FILE", help="the tokens file (storycore-tasks token create)"
    )
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="accept every request without a token (local use only)",
    )
    serve.add_argument(
        "--webhook-secret-env",
        metavar="NAME",
        help="the environment variable holding the secret that signs webhooks "
        "(without it, callback_url is refused)",
    )
    serve.add_argument(
        "--webhook-allow-host",
        action="append",
        default=None,
        metavar="HOST",
        help="a host webhooks may go to (repeatable; default: any)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="the largest request body accepted (default: 1 MiB)",
    )
    serve.add_argument(
        "--workers", type=_positive_int, default=4, help="operations run at once (default: 4)"
    )
    ray = serve.add_mutually_exclusive_group()
    ray.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="run isolation='ray' tasks on this running Ray cluster (needs the ray extra)",
    )
    ray.add_argument(
        "--ray-local",
        action="store_true",
        help="run isolation='ray' tasks on a private local Ray cluster, stopped with the "
        "service (needs the ray extra)",
    )
    serve.add_argument(
        "--resources",
        type=_resources,
        default=None,
        metavar="NAME=AMOUNT,...",
        help="what this host has that tasks may ask for, such as gpu=2,vram_gb=80 (default: none)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=task_logging.LEVELS,
        help="lowest log level shown on standard error (default: info)",
    )
    serve.set_defaults(handler=_serve)


def _token_parser(commands: Any) -> None:
    token = commands.add_parser(
        "token", help="manage the service's bearer tokens", epilog=_TOKEN_EPILOG
    )
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create a token and print it (once: the file keeps only its hash)",
        epilog=_TOKEN_EPILOG,
    )
    create.add_argument("--user", required=True, help="whose token it is")
    create.add_argument(
        "--role",
        choices=("user", "admin"),
        default="user",
        help="a user sees their own tasks, an admin every task (default: user)",
    )
    create.add_argument(
        "--tokens", required=True, metavar="FILE", help="the tokens file (created if missing)"
    )
    create.set_defaults(handler=_token_create)

    listing = actions.add_parser(
        "list",
        help="the tokens a tokens file holds: user, role and id (never the token)",
        epilog=_TOKEN_EPILOG,
    )
    listing.add_argument("--tokens", required=True, metavar="FILE", help="the tokens file")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_token_list)

    revoke = actions.add_parser(
        "revoke",
        help="remove a user's tokens, or one token by its id, from a tokens file",
        description="Remove tokens from the file. A running service reads the file when "
        "it starts: restart it for the revocation to take effect.",
        epilog=_TOKEN_EPILOG,
    )
    revoke.add_argument("--tokens", required=True, metavar="FILE", help="the tokens file")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--user", help="remove every token of this user")
    which.add_argument(
        "--id", dest="token_id", metavar="ID", help="remove the token with this id (token list)"
    )
    revoke.set_defaults(handler=_token_revoke)


_TOKEN_EPILOG = (
    f"Clients pass a token with --token or in ${TOKEN_ENV_VAR}; the service reads the "
    "file with --tokens FILE."
)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object such as '{{\"frames\": 8}}', got {text!r}"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# -- task options as flags (from their one declaration, actors.TaskOptions) --------------


def _add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per task option the CLI offers (``--timeout``, ``--priority``, ...),
    typed by the option's kind and checked by the option's own declaration."""
    for declared in options_of(cli=True):
        flag = "--" + declared.name.replace("_", "-")
        doc = declared.doc
        match declared.kind:
            case "priority":
                names = [p.name.lower() for p in sorted(TaskPriority)]
                parser.add_argument(flag, choices=names, default=None, help=doc)
            case "isolation":
                modes = [mode.value for mode in Isolation]
                parser.add_argument(flag, choices=modes, default=None, help=doc)
            case "task_ids":
                parser.add_argument(
                    flag,
                    action="append",
                    default=None,
                    metavar="ID",
                    help=f"{doc} (repeat the flag for each)",
                )
            case "seconds" | "megabytes":
                unit = "S" if declared.kind == "seconds" else "MB"
                parser.add_argument(flag, type=_checked(declared, _number), metavar=unit, help=doc)
            case "text":
                parser.add_argument(flag, type=_checked(declared, str), metavar="TEXT", help=doc)
            case "datetime":
                parser.add_argument(
                    flag,
                    type=_checked(declared, _moment, sent=datetime.isoformat),
                    metavar="TIME",
                    help=f"{doc}: ISO-8601 with a time zone",
                )
            case "resources":
                parser.add_argument(
                    flag,
                    type=_checked(declared, _resources, sent=Resources.as_dict),
                    metavar="NAME=AMOUNT,...",
                    help=f"{doc} (such as gpu=1,vram_gb=24)",
                )
            case "retry":
                raise TypeError(
                    f"the task option {declared.name!r} ({declared.kind}) has no flag form; "
                    "declare it with cli=False"
                )
            case _:
                assert_never(declared.kind)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _resources(text: str) -> Resources:
    try:
        return Resources.parse(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None


def _checked(
    declared: Option,
    parse: Callable[[str], Any],
    sent: Callable[[Any], Any] = lambda value: value,
) -> Callable[[str], Any]:
    """A flag's type: ``parse`` the text, check it by the option's declaration, and give
    what the HTTP API takes (``sent``)."""

    def convert(text: str) -> Any:
        value = parse(text)
        try:
            checked = declared.check(declared.name, value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return sent(checked)

    return convert


def _option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The task options given on the command line, as the HTTP API takes them."""
    return {
        declared.name: getattr(args, declared.name)
        for declared in options_of(cli=True)
        if getattr(args, declared.name, None) is not None
    }


# -- demo, serve, token -------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    # Live progress bars only on a terminal: piped, the output stays the log and the table.
    console = _terminal_console() if not args.json and sys.stdout.isatty() else None
    stream: TextIO = sys.stdout if console is None else cast(TextIO, _CurrentStdout())
    # With --json, standard output holds JSON lines only; the lines for people go to
    # standard error.
    human = sys.stderr if args.json else sys.stdout
    task_logging.configure(json=args.json, level=args.log_level, stream=stream)
    store = None if args.memory else Path(args.db)
    where = "memory only" if store is None else f"task database {store.resolve()}"
    runs_on = "a private local Ray cluster, 4 slots" if args.ray else "4 workers"
    print(f"storycore-tasks demo: 6 tasks on {runs_on} ({where})\n", file=human, flush=True)
    try:
        report = run_demo(store=store, console=console, ray=args.ray)
    except RayNotInstalledError as exc:
        raise _Failed(f"demo --ray needs Ray: {exc}", "Or run the demo without --ray") from None
    except RayUnavailableError as exc:
        raise _Failed(_one_line(f"demo --ray could not start a local Ray cluster: {exc}")) from None
    except StoreLockedError:
        raise _Failed(
            f"the task database {args.db} is in use by another storycore-tasks process "
            "(a database has one writer)",
            "Let that process end, or pass --db ANOTHER.db (or --memory)",
        ) from None
    except StoreError as exc:
        raise _Failed(
            _one_line(f"cannot use the task database {args.db}: {exc}"),
            "Pass --db ANOTHER.db (or --memory)",
        ) from None
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): the demo cancelled its tasks", file=sys.stderr, flush=True)
        return 130
    print("\nFinal status:\n" + report.table, file=human, flush=True)
    if store is not None:
        print(
            f"\nThe database kept {report.earlier_tasks} task(s) from earlier runs "
            f"and now holds these six too: {store.resolve()}",
            file=human,
            flush=True,
        )
    if args.json:
        _print_json_line({"event": "demo.finished", "tasks": report.summary()})
    return 0


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time: while rich shows live progress
    bars it is rich's proxy, which prints the log lines above the bars."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _terminal_console() -> Console | None:
    try:
        from rich.console import Console
    except ImportError:  # rich comes with the server extra; the demo runs without it
        return None
    return Console()


def _serve(args: argparse.Namespace) -> int:
    DEFAULT_MAX_BODY_BYTES, ServeError, serve = _server_parts()
    app_dir = Path(args.app_dir).resolve()
    if not app_dir.is_dir():
        raise _Failed(f"--app-dir {args.app_dir}: no such folder")
    # As uvicorn's --app-dir: the console script's sys.path holds the script's folder,
    # not the current one, so `--operations myapp.ops:OPERATIONS` would not find
    # ./myapp/ops.py without this.
    sys.path.insert(0, str(app_dir))
    task_logging.configure(level=args.log_level, stream=sys.stderr)
    try:
        serve(
            host=args.host,
            port=args.port,
            db=args.db,
            operations=args.operations,
            tokens_file=args.tokens,
            no_auth=args.no_auth,
            webhook_secret_env=args.webhook_secret_env,
            webhook_allowed_hosts=args.webhook_allow_host,
            max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            workers=args.workers,
            resources=args.resources,
            log_level=args.log_level,
            ray_address="local" if args.ray_local else args.ray_address,
        )
    except ServeError as exc:
        remedy = ""
        if isinstance(exc.__cause__, ModuleNotFoundError):
            remedy = (
                f"--operations modules are imported from --app-dir ({app_dir}) and the "
                "installed packages; pass --app-dir DIR for a module elsewhere"
            )
        raise _Failed(_one_line(str(exc)), remedy) from None
    finally:
        with suppress(ValueError):  # main() may run in a process that carries on
            sys.path.remove(str(app_dir))
    return 0


def _server_parts() -> Any:
    try:
        from storycore_tasks.service.deps import DEFAULT_MAX_BODY_BYTES
        from storycore_tasks.service.server import ServeError, serve
    except ImportError as exc:
        raise _Failed(f"{_SERVER_EXTRA} ({exc})") from None
    return DEFAULT_MAX_BODY_BYTES, ServeError, serve


def _token_store() -> Any:
    """The tokens module (it comes with the service, so with the server extra)."""
    try:
        from storycore_tasks.service import auth
    except ImportError as exc:
        raise _Failed(f"{_SERVER_EXTRA} ({exc})") from None
    return auth


def _token_create(args: argparse.Namespace) -> int:
    auth = _token_store()
    try:
        token = auth.TokenStore.add_to_file(args.tokens, args.user, args.role)
    except (auth.TokenFileError, OSError) as exc:
        raise _Failed(str(exc)) from None
    print(token, flush=True)
    print(
        f"Added a token for {args.user} ({args.role}) to {args.tokens}, which keeps only "
        f"its hash: this is the only time it is shown. Clients pass it with --token or "
        f"in ${TOKEN_ENV_VAR}.",
        file=sys.stderr,
    )
    return 0


def _token_list(args: argparse.Namespace) -> int:
    auth = _token_store()
    try:
        entries = auth.TokenStore.file_entries(args.tokens)
    except (auth.TokenFileError, OSError) as exc:
        raise _Failed(str(exc)) from None
    if args.json:
        _print_json([{"user": e.user, "role": e.role, "id": e.token_id} for e in entries])
        return 0
    if not entries:
        print(f"no tokens in {args.tokens}", flush=True)
        return 0
    _print_rows(_stdout(), [(e.token_id, f"{e.user} ({e.role})") for e in entries])
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    auth = _token_store()
    try:
        removed = auth.TokenStore.revoke_from_file(
            args.tokens, user=args.user, token_id=args.token_id
        )
    except (auth.TokenFileError, OSError) as exc:
        raise _Failed(str(exc), "storycore-tasks token list --tokens FILE shows them") from None
    for entry in removed:
        print(f"revoked {entry.token_id} ({entry.user}, {entry.role})", flush=True)
    print(
        f"A running service reads {args.tokens} when it starts: restart it for this to "
        "take effect.",
        file=sys.stderr,
    )
    return 0


def _completion(args: argparse.Namespace) -> int:
    print(_completion_script(args.parser, args.shell), end="", flush=True)
    return 0


# -- client commands ----------------------------------------------------------------------


@contextmanager
def _client(args: argparse.Namespace) -> Iterator[ServiceClient]:
    """A client of the service at --url, its errors turned into one-line failures."""
    try:
        from storycore_tasks.client import ServiceClient, ServiceClientError
    except ImportError as exc:
        raise _Failed(f"{_SERVER_EXTRA} ({exc})") from None
    url = args.url or os.environ.get(URL_ENV_VAR) or DEFAULT_URL
    token = args.token or os.environ.get(TOKEN_ENV_VAR) or None
    try:
        with ServiceClient(url, token=token) as client:
            yield client
    except ServiceClientError as exc:
        # The service words its remedies for HTTP clients: say the CLI's version.
        error = shown_on({"code": exc.code, "remediation": exc.remediation}, Surface.CLI)
        raise _Failed(_one_line(f"{exc.code}: {exc.message}"), error["remediation"]) from None


def _stdout() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # piped: let tables take the width they need
    return console


def _submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        task_id = client.create_task(args.operation, args.params, **_option_values(args))
        if not args.wait:
            if args.json:
                _print_json({"task_id": task_id})
            else:
                print(task_id, flush=True)
            return 0
        if not args.json:
            print(task_id, flush=True)
        from rich.console import Console

        # The bar goes to standard error and vanishes: standard output keeps the id
        # and the final status, for scripts.
        final = _follow(client, task_id, Console(stderr=True), transient=True)
        if args.json:
            _print_json(final)
        else:
            _print_status(_stdout(), final)
        return _outcome(final)


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        task = client.status(args.task_id)
    if args.json:
        _print_json(task)
    else:
        _print_status(_stdout(), task)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.cancel(args.task_id)
    print(f"cancelled {args.task_id}", flush=True)
    return 0


def _resume(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.resume(args.task_id)
    print(
        f"resumed {args.task_id} (pending: its next attempt starts from its checkpoint)", flush=True
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tasks = client.list(status=args.status, limit=args.limit)
    if args.json:
        _print_json(tasks)
        return 0
    console = _stdout()
    if not tasks:
        console.print(f"no {args.status} tasks" if args.status else "no tasks")
        return 0
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    table.add_column("task id", no_wrap=True, min_width=36)
    table.add_column("operation", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("progress", no_wrap=True, justify="right")
    table.add_column("priority", no_wrap=True)
    table.add_column("user", overflow="fold")
    table.add_column("created", no_wrap=True)
    for task in tasks:
        table.add_row(
            *(
                Text(value)
                for value in (
                    task["task_id"],
                    str(task.get("operation") or ""),
                    _status_text(task),
                    f"{task.get('progress', 0):.0%}",
                    str(task.get("priority") or ""),
                    str(task.get("user") or ""),
                    _time(task.get("created_at")),
                )
            )
        )
    console.print(table)
    return 0


def _stats(args: argparse.Namespace) -> int:
    with _client(args) as client:
        stats = client.stats()
    if args.json:
        _print_json(stats)
        return 0
    counts = stats.get("status_counts") or {}
    lifetime = stats.get("lifetime_stats") or {}
    store = stats.get("store") or {}
    rows = [
        # The service counts every task, whoever created it (list shows only yours).
        ("tasks", f"{stats.get('total_tasks', '')} (all users' tasks: the counters are global)"),
        ("by status", ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"),
        ("running", f"{stats.get('running', '')} of {stats.get('num_workers', '')} workers"),
        ("pending", str(stats.get("queue_size", ""))),
        ("accepting tasks", "yes" if stats.get("accepting_tasks") else "no"),
        (
            "since start",
            ", ".join(f"{n} {k.removeprefix('total_')}" for k, n in lifetime.items()),
        ),
        ("task database", f"{store.get('kind', '')} {store.get('location') or ''}".strip()),
    ]
    _print_rows(_stdout(), rows)
    return 0


def _watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.task_id is None:
            return _watch_all(client, _stdout())
        final = _follow(client, args.task_id, _stdout(), transient=False)
        return _outcome(final)


# -- following tasks ----------------------------------------------------------------------


def _follow(
    client: ServiceClient, task_id: str, console: Console, *, transient: bool
) -> dict[str, Any]:
    """Show one task's progress bar until it ends; return its final status. (The task's
    stream replays its events from the start, and ends with its terminal one.)"""
    task = client.status(task_id)
    with _bars(console, transient=transient) as progress:
        bar = progress.add_task(_label(task), total=100, state=task["status"])
        _show_status(progress, bar, task)
        if task["status"] not in TERMINAL_STATUSES:

            def lost(reason: str) -> None:  # at once: the bar is stale from now on
                print(
                    f"lost the connection to {client.url} ({reason}); trying again",
                    file=sys.stderr,
                    flush=True,
                )

            for _id, kind, data in client.events(task_id, on_disconnect=lost):
                _show_event(progress, bar, kind, data)
            task = client.status(task_id)
        _show_status(progress, bar, task)
    return task


def _watch_all(client: ServiceClient, console: Console) -> int:
    """Bars for every running task (and every task that starts) until Ctrl-C."""
    bars: dict[str, TaskID] = {}
    operations: dict[str, str] = {}
    ended: deque[str] = deque()
    connections = 0

    def announce() -> None:
        nonlocal connections
        connections += 1
        note = "watching every task" if connections == 1 else "reconnected"
        console.print(f"{note} at {client.url} (Ctrl-C to stop)", highlight=False)

    def lost(reason: str) -> None:
        # At once, not after the reconnection attempts give up: the bars are stale now.
        console.print(
            f"{_time(None)} lost the connection to {client.url} ({reason}); the bars are "
            f"stale; trying again (Ctrl-C to stop)",
            highlight=False,
        )

    with _bars(console, transient=False, max_rows=_WATCH_ROWS) as progress:

        def bar_for(task_id: str, data: Mapping[str, Any]) -> TaskID:
            if task_id not in bars:
                from storycore_tasks.client import ServiceClientError

                try:
                    task = client.status(task_id)
                except ServiceClientError:
                    task = {"task_id": task_id, **data}
                operations[task_id] = str(task.get("operation") or "task")
                bars[task_id] = progress.add_task(
                    _label(task), total=100, state=task.get("status", "")
                )
                _show_status(progress, bars[task_id], task)
            return bars[task_id]

        def seed() -> None:
            for task in client.list(status="running"):
                _show_status(progress, bar_for(task["task_id"], task), task)

        seed()
        try:
            for _id, kind, data in client.events(on_connect=announce, on_disconnect=lost):
                if kind == "reset":  # the stream missed events: ask for the running tasks
                    seed()
                    continue
                task_id = data.get("task_id")
                if not isinstance(task_id, str) or task_id in ended:
                    continue
                bar = bar_for(task_id, data)
                state = _show_event(progress, bar, kind, data)
                shown = state
                if state in ("failed", "cancelled"):
                    shown = _ended_state(client, progress, bar, task_id, state)
                if state in ("started", "retry_scheduled") or state in TERMINAL_STATUSES:
                    console.print(
                        f"{_time(None)} {task_id} {operations.get(task_id, '')}: {shown}",
                        highlight=False,
                    )
                if state in TERMINAL_STATUSES:
                    ended.append(task_id)
                    while len(ended) > _FINISHED_BARS_KEPT:
                        gone = ended.popleft()
                        operations.pop(gone, None)
                        progress.remove_task(bars.pop(gone))
        except KeyboardInterrupt:
            pass
    return 0


def _ended_state(
    client: ServiceClient, progress: Progress, bar: TaskID, task_id: str, state: str
) -> str:
    """A failed or cancelled task's state with its error code ("failed (TIMEOUT)"), read
    from its status (the event does not carry it), shown on its bar too."""
    from storycore_tasks.client import ServiceClientError

    try:
        task = client.status(task_id)
    except ServiceClientError:
        return state
    shown = _status_text(task)
    progress.update(bar, state=shown)
    return shown


@contextmanager
def _bars(console: Console, *, transient: bool, max_rows: int | None = None) -> Iterator[Progress]:
    progress = task_bars(
        console,
        transient=transient,
        # Not on a terminal, a bar that vanishes at the end is no bar at all.
        disable=transient and not console.is_terminal,
        max_rows=max_rows,
    )
    with progress:
        yield progress


def _show_event(progress: Progress, bar: TaskID, kind: str, data: Mapping[str, Any]) -> str:
    """Move the bar as the event says; returns the task's state it tells (or "")."""
    fraction = data.get("progress")
    if isinstance(fraction, int | float) and not isinstance(fraction, bool):
        progress.update(bar, completed=100 * fraction)
    if kind == "status":
        state = str(data.get("status", ""))
    elif kind in ("started", "retry_scheduled") or kind in TERMINAL_STATUSES:
        state = kind
    else:
        return ""
    if state == "completed":
        progress.update(bar, completed=100)
    if state:
        progress.update(bar, state="running" if state == "started" else state)
    if state in TERMINAL_STATUSES:
        progress.stop_task(bar)  # its clock stops too
    return state


def _show_status(progress: Progress, bar: TaskID, task: Mapping[str, Any]) -> None:
    done = 1.0 if task.get("status") == "completed" else float(task.get("progress") or 0)
    progress.update(bar, completed=100 * done, state=_status_text(task))
    if task.get("status") in TERMINAL_STATUSES:
        progress.stop_task(bar)


def _label(task: Mapping[str, Any]) -> str:
    operation = task.get("operation") or "task"
    return f"{operation} {str(task.get('task_id', ''))[:8]}"


def _outcome(task: Mapping[str, Any]) -> int:
    if task["status"] == "completed":
        return 0
    error = task.get("error") or {}
    reason = f": {error.get('code')}: {error.get('message')}" if error else ""
    remedy = shown_on(error, Surface.CLI).get("remediation", "") if error else ""
    _error(_one_line(f"task {task['task_id']} {task['status']}{reason}"), str(remedy))
    return 1


# -- output -------------------------------------------------------------------------------


def _error(message: str, remedy: str = "") -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    if remedy:
        print(f"  {remedy}", file=sys.stderr, flush=True)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str), flush=True)


def _print_json_line(value: Any) -> None:
    print(json.dumps(value, default=str), flush=True)


def _one_line(text: str) -> str:
    """``text`` on one line: an error message is one line of standard error."""
    return " ".join(text.split())


# -- shell completion -----------------------------------------------------------------------


def _completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A bash completion function for the commands, their options and the options'
    choices, read from the parser itself (zsh loads it through bashcompinit)."""
    nodes: dict[str, list[str]] = {}
    choices: dict[str, list[str]] = {}

    def walk(command: argparse.ArgumentParser, path: str) -> None:
        words: list[str] = []
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    words.append(name)
                    walk(sub, f"{path} {name}".strip())
            elif action.option_strings:
                words.extend(action.option_strings)
                if action.choices:
                    for option in action.option_strings:
                        choices[option] = [str(c) for c in action.choices]
            elif action.choices:
                words.extend(str(c) for c in action.choices)
        nodes[path] = words

    walk(parser, "")
    node_cases = "\n".join(
        f'        "{path}") words="{" ".join(words)}" ;;' for path, words in nodes.items()
    )
    known = " ".join(f'"{path}"' for path in nodes if path)
    choice_cases = "\n".join(
        f'        {option}) COMPREPLY=($(compgen -W "{" ".join(values)}" -- "$cur")); return ;;'
        for option, values in sorted(choices.items())
    )
    load = f'eval "$(storycore-tasks completion {shell})"'
    script = f"""# storycore-tasks {__version__} completion for {shell}: {load}
_storycore_tasks() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local path="" word i words
    case "$prev" in
{choice_cases}
    esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        [[ "$word" == -* ]] && continue
        for candidate in {known}; do
            if [[ "$candidate" == "${{path:+$path }}$word" ]]; then
                path="$candidate"
                break
            fi
        done
    done
    case "$path" in
{node_cases}
        *) words="" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _storycore_tasks storycore-tasks
"""
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script


def _print_status(console: Console, task: Mapping[str, Any]) -> None:
    rows = [
        ("task id", str(task.get("task_id", ""))),
        ("operation", str(task.get("operation") or "")),
        ("status", _status_text(task)),
        ("progress", f"{task.get('progress', 0):.0%}"),
        ("priority", str(task.get("priority") or "")),
        ("user", str(task.get("user") or "")),
    ]
    if task.get("attempt", 1) != 1:
        rows.append(("attempt", str(task["attempt"])))
    for key in ("created_at", "started_at", "ended_at", "scheduled_for"):
        if task.get(key):
            rows.append((key.replace("_", " "), str(task[key])))
    if task.get("timeout") is not None:
        rows.append(("timeout", f"{task['timeout']:g} s"))
    if "result" in task:
        rows.append(("result", _compact(task["result"])))
    error = task.get("error")
    if error:
        rows.append(("error", f"{error.get('code')}: {error.get('message')}"))
        remedy = shown_on(error, Surface.CLI).get("remediation")
        if remedy:
            rows.append(("remedy", str(remedy)))
        kept = (error.get("details") or {}).get("partial_result")
        if kept is not None and "partial_result" not in task:
            rows.append(("partial result", _compact(kept)))
    if "partial_result" in task:
        rows.append(("partial result", _compact(task["partial_result"])))
    _print_rows(console, rows)


def _print_rows(console: Console, rows: Sequence[tuple[str, str]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(Text(name), Text(value))
    console.print(table)


def _status_text(task: Mapping[str, Any]) -> str:
    error = task.get("error")
    status = str(task.get("status", ""))
    return f"{status} ({error['code']})" if error and error.get("code") else status


def _compact(value: Any) -> str:
    return json.dumps(value, default=str)


def _time(iso: Any) -> str:
    """An ISO time in local time: HH:MM:SS today, with its date before (now for None)."""
    now = datetime.now().astimezone()
    if iso is None:
        return now.strftime("%H:%M:%S")
    try:
        moment = datetime.fromisoformat(str(iso)).astimezone()
    except ValueError:
        return str(iso)
    return moment.strftime("%H:%M:%S" if moment.date() == now.date() else "%Y-%m-%d %H:%M:%S")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
