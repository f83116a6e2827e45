"""Which Ray cluster this process drives, and how it gets there: ``"local"`` starts a
private cluster (with a token of its own, so nothing is written under ``$HOME``) that
its back-end stops; an address joins that running cluster and leaves it running; never
an implicit "join whatever is there". ``ray`` is imported here, lazily (the base
package works without the ``ray`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors._errors import RayNotInstalledError, RayUnavailableError

__all__ = ["LOCAL", "DriverConnection", "connect_driver", "import_ray", "ray_available"]

LOCAL = "local"


def ray_available() -> bool:
    """Whether the ``ray`` extra is installed (without importing it)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # an import hook refused it
        return False


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalledError(exc) from None
    return ray


def _give_private_token() -> dict[str, str]:
    """Before a private local cluster starts: token auth with a random token of its own,
    in the environment its processes inherit. Ray 2.60 turns token auth on for a new
    local cluster and, given no token, writes one to ``~/.ray/auth_token``: a file under
    ``$HOME`` the user never chose. An environment that names a token, a token file or
    ``RAY_AUTH_MODE`` already is left as it is. Returns what was set (to take back)."""
    if {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"} & os.environ.keys():
        return {}
    given = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    os.environ.update(given)
    # The driver read its configuration and looked for a token when ``ray`` was
    # imported: both are read again (what Ray's own switch to token auth does).
    raylet: Any = importlib.import_module("ray._raylet")  # compiled, untyped
    raylet.Config.initialize("")
    raylet.AuthenticationTokenLoader.instance().reset_cache()
    return given


def _take_back_token(given: Mapping[str, str]) -> None:
    """Once the private cluster is stopped: the variables :func:`_give_private_token`
    set, unless something changed them since."""
    if not given:
        return
    for name, value in given.items():
        if os.environ.get(name) == value:
            del os.environ[name]
    # The driver's configuration as the environment now says (a later ray.init of the
    # user's own is not made to use token auth by this back-end).
    importlib.import_module("ray._raylet").Config.initialize("")


@dataclass(slots=True)
class DriverConnection:
    """This process as a driver of one cluster: whether its back-end started it (then
    :meth:`close` stops it) and what the back-end set in the environment for it."""

    gcs_address: str
    owns: bool
    token_env: dict[str, str] = field(default_factory=dict)

    def close(self, ray: Any) -> None:
        """Stop the cluster if this connection started it; take its token back."""
        if self.owns:
            ray.shutdown()
            self.owns = False
        _take_back_token(self.token_env)
        self.token_env = {}


def connect_driver(
    ray: Any,
    address: str,
    *,
    namespace: str | None,
    runtime_env: Mapping[str, Any] | None,
    start_local: Mapping[str, Any],
) -> DriverConnection:
    """``ray.init`` for ``address`` (or the connection this process has to it already)."""
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address == LOCAL or current != address.removeprefix("ray://"):
            raise RayUnavailableError(
                f"this process is already a Ray driver of the cluster at {current}; a "
                f"RayBackend(address={address!r}) cannot connect elsewhere (one "
                f"cluster per process): pass address={current!r}, or ray.shutdown() first"
            )
        return DriverConnection(current, owns=False)
    # ray.init replaces the host's SIGTERM handler: put the host's back.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
    token_env: dict[str, str] = {}
    if namespace is not None:
        kwargs["namespace"] = namespace
    if runtime_env is not None:
        kwargs["runtime_env"] = runtime_env
    if address == LOCAL:
        kwargs.update(start_local)
        token_env = _give_private_token()
    else:
        del kwargs["include_dashboard"]  # a joined cluster's own choice
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:
        _take_back_token(token_env)
        raise RayUnavailableError(
            f"could not connect to the Ray cluster at {address!r}: {exc}"
        ) from exc
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return DriverConnection(ray.get_runtime_context().gcs_address, owns=True, token_env=token_env)
