"""A Ray worker's end of the host channel (see ``actors._execution.ray_wire``): one
connection per worker process and host, made by the first attempt the process runs and
kept for the next ones, and what the host told each attempt on it.

Lean, as everything a Ray worker imports: the standard library and leaf modules.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from actors._enums import StopReason
from actors._execution.published import RemoteCommits
from actors._execution.ray_wire import ChannelClosed, frame, node_handshake, read_frame

__all__ = ["CONNECT_RETRY_SECONDS", "AttemptListener", "NodeLink", "link_to"]

# The host not reachable this long (a busy host, a dropped connection) is lost; a
# shorter gap is retried, every CONNECT_RETRY_INTERVAL seconds.
CONNECT_RETRY_SECONDS = 30.0
CONNECT_RETRY_INTERVAL = 0.2


class AttemptListener:
    """What the host told one attempt, as events its threads wait on (the reader thread
    of the link sets them); ``on_interrupt`` is called, on the reader thread, for each
    of the host's interrupts."""

    def __init__(self, on_interrupt: Callable[[], None]) -> None:
        self._on_interrupt = on_interrupt
        self.go: bool | None = None
        self.go_event = threading.Event()
        self.stop = threading.Event()
        self.stop_reason: StopReason | None = None
        self.interrupts = 0
        # The host's word on the checkpoints that wait for their commit.
        self.commits = RemoteCommits()
        self.lost: str | None = None  # why the host could not be heard (then go is None)

    def heard(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "go":
            if self.go is None:
                self.go = bool(message[2])
                self.go_event.set()
        elif kind == "stop":
            if self.stop_reason is None:
                self.stop_reason = StopReason(message[2])
                self.stop.set()
        elif kind == "interrupt":
            self.interrupts += 1
            self._on_interrupt()
        elif kind == "stored":
            self.commits.answer(int(message[2]), message[3])

    def lose(self, why: str) -> None:
        """The host cannot be heard any more: a verdict not given yet never will be (a
        running operation runs on; the host can still end it through Ray)."""
        if self.lost is None:
            self.lost = why
        self.go_event.set()


class NodeLink:
    """One worker process's connection to the host."""

    def __init__(self, host: str, port: int, secret: bytes, patience: float) -> None:
        self._sock = _connect(host, port, secret, patience)
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._listeners: dict[int, AttemptListener] = {}
        self.broken: str | None = None
        self._reader = threading.Thread(target=self._read, name="host-channel", daemon=True)
        self._reader.start()

    def join(self, key: int, listener: AttemptListener) -> None:
        with self._lock:
            broken = self.broken
            if broken is None:
                self._listeners[key] = listener
        if broken is not None:
            listener.lose(broken)

    def leave(self, key: int) -> None:
        with self._lock:
            self._listeners.pop(key, None)

    def send(self, message: tuple[Any, ...]) -> bool:
        """Whether it was written (False once the link is broken)."""
        data = frame(message)
        try:
            with self._send_lock:
                self._sock.sendall(data)
        except OSError as exc:
            self._break(f"the host's channel could not be written: {type(exc).__name__}: {exc}")
            return False
        return True

    def _read(self) -> None:
        while True:
            try:
                message = read_frame(self._sock)
            except (OSError, ChannelClosed) as exc:
                self._break(f"the host's channel broke: {type(exc).__name__}: {exc}")
                return
            with self._lock:
                listener = self._listeners.get(message[1])
            if listener is not None:
                listener.heard(message)

    def _break(self, why: str) -> None:
        with self._lock:
            if self.broken is not None:
                return
            self.broken = why
            listeners = list(self._listeners.values())
            self._listeners.clear()
        _forget(self)
        with contextlib.suppress(OSError):
            self._sock.close()
        for listener in listeners:
            listener.lose(why)


_LINKS: dict[tuple[str, int, bytes], NodeLink] = {}
_LINKS_LOCK = threading.Lock()


def link_to(
    host: str, port: int, secret: bytes, patience: float = CONNECT_RETRY_SECONDS
) -> NodeLink:
    """This process's link to the host (made on first use; a broken one is made again).
    Raises OSError, or :class:`ChannelClosed` (another secret), once the host stayed
    unreachable for ``patience`` seconds."""
    with _LINKS_LOCK:
        link = _LINKS.get((host, port, secret))
        if link is None or link.broken is not None:
            link = _LINKS[(host, port, secret)] = NodeLink(host, port, secret, patience)
        return link


def _forget(link: NodeLink) -> None:
    with _LINKS_LOCK:
        for address, known in list(_LINKS.items()):
            if known is link:
                del _LINKS[address]


def _connect(host: str, port: int, secret: bytes, patience: float) -> socket.socket:
    deadline = time.monotonic() + patience
    while True:
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((host, port), timeout=max(patience, 1.0))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            node_handshake(sock, secret)
            return sock
        except ChannelClosed:  # another secret: retrying cannot help
            if sock is not None:
                sock.close()
            raise
        except OSError:
            if sock is not None:
                sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(CONNECT_RETRY_INTERVAL)
