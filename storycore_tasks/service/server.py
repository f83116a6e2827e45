"""``storycore-tasks serve``: the HTTP service around a TaskManager, on uvicorn.

Operations are found in two places, and a name may be registered only once:

- ``--operations module:attr`` (repeatable; ``attr`` may be dotted): ``attr`` is either a
  mapping ``{name: function}`` (its values may be :class:`actors.NamedOperation`), every
  entry registered under its key, or a single function, registered under its
  ``__name__``;
- the entry point group ``storycore_tasks.operations`` of the installed packages: each
  entry point names such a mapping (or function), e.g. in a ``pyproject.toml``::

      [project.entry-points."storycore_tasks.operations"]
      video = "storycore_video.tasks:OPERATIONS"

Authentication: bearer tokens from ``--tokens FILE`` (``storycore-tasks token create``)
and ``$STORYCORE_TASKS_TOKENS``. Without any, the service refuses to start unless
``--no-auth`` is given, which it announces with a warning on standard error.

Stopping: on SIGINT or SIGTERM the pending tasks are cancelled at once (reason
``shutdown``; delayed ones stay pending in the task database for the next start) and
the event streams end, before the HTTP server waits for its open connections; then it
waits for the running tasks to end; a second signal cancels those too.

The port is bound before anything is announced: a port in use is a one-line
ServeError, and no banner claims a service that never ran.
"""

from __future__ import annotations

import errno
import importlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import uvicorn

from actors import NamedOperation, Operation
from actors.logs import library_logger
from storycore_tasks.manager import TaskManager
from storycore_tasks.service.app import create_app
from storycore_tasks.service.auth import TOKENS_ENV_VAR, TokenFileError, TokenStore
from storycore_tasks.service.deps import DEFAULT_MAX_BODY_BYTES, ServiceConfig
from storycore_tasks.service.redaction import install_log_redaction

__all__ = [
    "DEFAULT_DATABASE",
    "NO_AUTH_WARNING",
    "NO_OPERATIONS_WARNING",
    "OPERATIONS_GROUP",
    "ServeError",
    "ServiceThread",
    "load_operations",
    "serve",
    "serve_in_thread",
    "service_config",
    "uvicorn_server",
]

_log = library_logger("storycore_tasks.service")

_GRACEFUL_SECONDS = 5
"""How long a stop waits for open connections (event streams) before closing them."""

OPERATIONS_GROUP = "storycore_tasks.operations"
"""The entry point group whose mappings ``{name: function}`` every service registers."""
DEFAULT_DATABASE = Path("storycore-tasks.db")
NO_AUTH_WARNING = (
    "authentication is OFF: anyone who can reach this port can read and cancel every task"
)

Operations = dict[str, Operation | NamedOperation]


class ServeError(Exception):
    """The service cannot start; the message says why and what to do, in one line."""


# -- operations ---------------------------------------------------------------------------


def load_operations(
    specs: Sequence[str] = (), *, group: str | None = OPERATIONS_GROUP
) -> Operations:
    """The operations of the entry point ``group`` (None: none) and of every
    ``module:attr`` in ``specs``, by name. ServeError names a spec that cannot be loaded,
    is neither a mapping nor a function, or registers a name a second time."""
    operations: Operations = {}
    origins: dict[str, str] = {}
    if group is not None:
        for point in entry_points(group=group):
            where = f"entry point {point.name} = {point.value} (group {group})"
            try:
                loaded = point.load()
            except Exception as exc:
                raise ServeError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
            _add(operations, origins, _as_operations(loaded, where), where)
    for spec in specs:
        where = f"--operations {spec}"
        _add(operations, origins, _as_operations(_import(spec, where), where), where)
    return operations


def _import(spec: str, where: str) -> object:
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ServeError(
            f"{where}: expected module:attr, e.g. mypackage.tasks:OPERATIONS (a mapping "
            "{name: function}) or mypackage.tasks:render (one function)"
        )
    try:
        found: object = importlib.import_module(module_name)
    except Exception as exc:
        raise ServeError(
            f"{where}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ServeError(f"{where}: {module_name} has no attribute {attr}") from None
    return found


def _as_operations(found: object, where: str) -> Operations:
    if isinstance(found, Mapping):
        operations: Operations = {}
        for name, operation in found.items():
            if not isinstance(name, str) or not name:
                raise ServeError(f"{where}: operation names must be strings, got {name!r}")
            if not (callable(operation) or isinstance(operation, NamedOperation)):
                raise ServeError(
                    f"{where}: {name!r} must be a function (params, task) or a "
                    f"NamedOperation, got {type(operation).__name__}"
                )
            operations[name] = operation
        return operations
    if callable(found):
        name = getattr(found, "__name__", None)
        if not isinstance(name, str) or not name or name == "<lambda>":
            raise ServeError(
                f"{where}: a single function is registered under its __name__, and this "
                "one has none; export a mapping {name: function} instead"
            )
        function: Operation = found
        return {name: function}
    raise ServeError(
        f"{where}: expected a mapping {{name: function}} or a function, got {type(found).__name__}"
    )


def _add(operations: Operations, origins: dict[str, str], new: Operations, where: str) -> None:
    for name, operation in new.items():
        if name in operations:
            raise ServeError(
                f"the operation {name!r} is registered twice: by {origins[name]} and by {where}"
            )
        operations[name] = operation
        origins[name] = where


# -- configuration ------------------------------------------------------------------------


def service_config(
    *,
    tokens_file: str | os.PathLike[str] | None = None,
    no_auth: bool = False,
    webhook_secret_env: str | None = None,
    webhook_allowed_hosts: Sequence[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    environ: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """The ServiceConfig the options describe; ServeError when the service must not
    start with them (no tokens and no ``no_auth``, a webhook secret variable not set,
    ...)."""
    env = os.environ if environ is None else environ
    tokens: TokenStore | None = None
    if no_auth:
        if tokens_file is not None:
            raise ServeError("--no-auth and --tokens contradict each other; pass one of them")
    else:
        try:
            tokens = TokenStore.load(tokens_file, environ=env)
        except TokenFileError as exc:
            raise ServeError(str(exc)) from None
        if len(tokens) == 0:
            where = (
                f"the tokens file {tokens_file} holds none and ${TOKENS_ENV_VAR} is not set"
                if tokens_file is not None
                else f"no --tokens FILE and no ${TOKENS_ENV_VAR}"
            )
            raise ServeError(
                f"refusing to start without authentication: {where}. Create a token with "
                "`storycore-tasks token create --user NAME --role admin --tokens "
                "tokens.json` and pass --tokens tokens.json, or pass --no-auth to let "
                "anyone who can reach the port in (local use only)"
            )
    secret: str | None = None
    if webhook_secret_env is not None:
        secret = env.get(webhook_secret_env) or None
        if secret is None:
            raise ServeError(
                f"--webhook-secret-env {webhook_secret_env}: ${webhook_secret_env} is not "
                "set or empty; set it to the secret webhooks are signed with"
            )
    hosts = tuple(webhook_allowed_hosts) if webhook_allowed_hosts else None
    if hosts is not None and secret is None:
        raise ServeError(
            "--webhook-allow-host needs --webhook-secret-env: without a secret the "
            "service sends no webhooks"
        )
    if max_body_bytes < 1:
        raise ServeError(f"--max-body-bytes must be at least 1, got {max_body_bytes}")
    return ServiceConfig(
        tokens=tokens,
        max_body_bytes=max_body_bytes,
        webhook_secret=secret,
        webhook_allowed_hosts=hosts,
    )


# -- running ------------------------------------------------------------------------------


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    db: str | os.PathLike[str] = DEFAULT_DATABASE,
    operations: Sequence[str] = (),
    tokens_file: str | os.PathLike[str] | None = None,
    no_auth: bool = False,
    webhook_secret_env: str | None = None,
    webhook_allowed_hosts: Sequence[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    *,
    workers: int = 4,
    resources: Mapping[str, float] | None = None,
    log_level: str = "info",
    environ: Mapping[str, str] | None = None,
    stderr: TextIO | None = None,
    ray_address: str | None = None,
) -> None:
    """Serve the task API at ``http://host:port`` until SIGINT or SIGTERM, then stop the
    manager (see the module docstring). Everything is checked before anything starts:
    a ServeError says, in one line, why the service will not start. ``ray_address``
    (``"local"`` or a cluster's ``host:port``): tasks with ``isolation="ray"`` run there."""
    out = stderr if stderr is not None else sys.stderr
    ray = None
    if ray_address is not None:
        from storycore_tasks import RayBackend

        try:
            ray = RayBackend(address=ray_address)
        except Exception as exc:  # no ray extra, an address that is refused
            raise ServeError(f"cannot use the Ray cluster: {exc}") from exc
    config = service_config(
        tokens_file=tokens_file,
        no_auth=no_auth,
        webhook_secret_env=webhook_secret_env,
        webhook_allowed_hosts=webhook_allowed_hosts,
        max_body_bytes=max_body_bytes,
        environ=environ,
    )
    loaded = load_operations(operations)
    store = str(db) if str(db).startswith("sqlite:") else Path(db)
    # Bound before anything is announced or started: a port in use is one line, and
    # no banner claims a service that never ran.
    listening = _bind(host, port)
    try:
        if config.tokens is None:
            _say(out, f"WARNING: {NO_AUTH_WARNING} (--no-auth)")
        if not loaded:
            _say(out, f"WARNING: {NO_OPERATIONS_WARNING}")
        try:
            manager = TaskManager(
                num_workers=workers,
                store=store,
                operations=loaded,
                resources=resources,
                ray=ray,
            )
        except Exception as exc:  # a database that cannot be opened, a bad operation name
            raise ServeError(f"cannot start the task manager: {exc}") from exc
    except BaseException:
        listening.close()
        raise
    stopping: list[threading.Thread] = []
    try:
        names = ", ".join(sorted(loaded)) or "none"
        auth = "off" if config.tokens is None else f"{len(config.tokens)} token(s)"
        where = store.resolve() if isinstance(store, Path) else store
        bound = listening.getsockname()[1]
        _say(
            out,
            f"storycore-tasks serve: http://{host}:{bound} (operations: {names}; task "
            f"database: {where}; authentication: {auth})",
        )
        app = create_app(manager, config)

        def begin_stop() -> None:
            # On the first SIGINT or SIGTERM, before uvicorn waits for open connections:
            # pending tasks are cancelled now (none starts during the wait), and the
            # event streams end, so their connections close instead of being cancelled
            # (a CancelledError traceback) when the graceful wait runs out.
            thread = threading.Thread(
                target=_begin_stop, args=(manager, app), name="storycore-tasks-stopping"
            )
            stopping.append(thread)
            thread.start()

        server = _StoppingServer(
            uvicorn_server(app, host, port, log_level).config, on_first_signal=begin_stop
        )
        with _signals_noted():
            try:
                server.run(sockets=[listening])
            except SystemExit:  # uvicorn exits when it cannot start; it logged why
                raise ServeError(
                    f"the HTTP server on {host}:{bound} failed to start (the reason is "
                    "logged above)"
                ) from None
        if not server.started:
            raise ServeError(f"the HTTP server on {host}:{port} did not start (see the log)")
    finally:
        listening.close()
        for thread in stopping:
            thread.join()
        _stop(manager, out)


NO_OPERATIONS_WARNING = (
    "no operations are registered, so every task will be refused; pass --operations "
    "MODULE:ATTR (try --operations storycore_tasks.examples:OPERATIONS)"
)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; ServeError, in one line, if it cannot be had."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: unknown host ({exc})") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        hint = (
            "; another process is listening there: stop it, or pass --port N"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise ServeError(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    return sock


class _StoppingServer(uvicorn.Server):
    """A uvicorn server that calls ``on_first_signal`` when the first SIGINT or SIGTERM
    arrives (in the signal handler: it must not block)."""

    def __init__(self, config: uvicorn.Config, on_first_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_first_signal = on_first_signal
        self._signalled = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if not self._signalled:
            self._signalled = True
            self._on_first_signal()


def _begin_stop(manager: TaskManager, app: Any) -> None:
    try:
        manager.shutdown(wait=False, cancel_pending=True)
    except Exception as exc:  # _stop shuts it down again and says what is left
        _log.warning("serve.cancel_pending_failed", error=f"{type(exc).__name__}: {exc}")
    app.state.service.events.close()


def uvicorn_server(app: Any, host: str, port: int, log_level: str = "warning") -> uvicorn.Server:
    """The uvicorn server that runs the service, however it is run (``serve``,
    :func:`serve_in_thread`)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        # Open event streams (a dashboard's never ends) must not hold a stop.
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
    install_log_redaction()  # after uvicorn configured its loggers
    return uvicorn.Server(config)


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that sets ``start_attempted`` once its start-up has finished,
    listening or not (then ``started`` says which): a thread waits on it, no polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.start_attempted = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.start_attempted.set()


@dataclass(frozen=True, slots=True)
class ServiceThread:
    """A service running on a thread: its base URL and its uvicorn server."""

    url: str
    server: uvicorn.Server


@contextmanager
def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout: float = 10.0,
    log_level: str = "warning",
) -> Iterator[ServiceThread]:
    """Serve ``app`` on a thread until the block ends (tests, benchmarks, embedding).
    ``port`` 0 takes a free one. The app's manager is not shut down here."""
    server = _AnnouncingServer(uvicorn_server(app, host, port, log_level).config)

    def run() -> None:
        try:
            server.run()
        except SystemExit:  # uvicorn exits when it cannot start; it logged why
            pass  # server.started stays False: the caller raises ServeError
        finally:
            server.start_attempted.set()  # it never got to start-up: say so, not hang

    thread = threading.Thread(target=run, name="storycore-tasks-http", daemon=True)
    thread.start()
    try:
        if not server.start_attempted.wait(start_timeout):
            raise ServeError(f"the HTTP server on {host}:{port} did not start in {start_timeout} s")
        if not server.started:
            raise ServeError(f"the HTTP server on {host}:{port} failed to start (see the log)")
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield ServiceThread(f"http://{host}:{bound}", server)
    finally:
        server.should_exit = True
        thread.join(start_timeout)
        if thread.is_alive():
            raise ServeError(f"the HTTP server on {host}:{port} did not stop")


@contextmanager
def _signals_noted() -> Iterator[None]:
    """While uvicorn runs it handles SIGINT and SIGTERM itself, then raises the signal
    again under the handler it found: this no-op one, so a stop is not a
    KeyboardInterrupt (SIGINT) nor a kill (SIGTERM) and the manager can be stopped."""
    with _signal_handlers(lambda signum, frame: None):
        yield


@contextmanager
def _signal_handlers(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signals go to the main thread only: nothing to handle here
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop(manager: TaskManager, out: TextIO) -> None:
    """Cancel the pending tasks, wait for the running ones (a second SIGINT or SIGTERM
    cancels them), then stop every actor and thread of the manager."""
    again = threading.Event()
    cancelled_running = False
    with _signal_handlers(lambda signum, frame: again.set()):
        running = _running(manager)
        if running:
            _say(
                out,
                f"stopping: waiting for {len(running)} running task(s) to end; pending "
                "tasks are cancelled (Ctrl-C again cancels the running ones)",
            )
        while True:
            try:
                manager.shutdown(wait=True, cancel_pending=True, timeout=0.2)
            except TimeoutError:
                if again.is_set() and not cancelled_running:
                    cancelled_running = True
                    stopping = _running(manager)
                    _say(out, f"stopping: cancelling {len(stopping)} running task(s)")
                    for task_id in stopping:
                        manager.cancel_task(task_id)
                continue
            break
    _say(out, "storycore-tasks serve: stopped")


def _say(out: TextIO, line: str) -> None:
    """One line in one write: the manager's threads log to the same stream."""
    out.write(line + "\n")
    out.flush()


def _running(manager: TaskManager) -> list[str]:
    try:
        return [task["task_id"] for task in manager.get_running_tasks()]
    except Exception:  # a manager that failed still shuts down; the list is only news
        return []
