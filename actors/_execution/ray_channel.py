"""The host's end of the channel to its Ray attempts (see ``actors._execution.ray_wire``):
a TCP listener on the Ray back-end's bridge loop. Each Ray worker process that runs an
attempt keeps one connection to it (``actors._execution.ray_node_link``), reused by
every attempt the process runs.

It replaces an actor that attempts long-polled: an actor call cost about 1.1 ms of CPU
(BENCHMARKS.md, B14), four a task; a message here costs microseconds. Everything runs on
the bridge loop's thread; the back-end calls in from elsewhere through its
``LoopInbox``.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from typing import Any, Protocol

from actors._execution.ray_wire import (
    DIGEST_BYTES,
    HANDSHAKE_SECONDS,
    NONCE_BYTES,
    ChannelClosed,
    digest,
    frame,
    length_of,
    parse,
)
from actors.logs import library_logger

__all__ = ["ChannelPeer", "HostChannel"]

_log = library_logger("actors.ray")


class ChannelPeer(Protocol):
    """An attempt as the channel sees it (``RayAttempt``): told on the bridge loop."""

    def on_started(self, worker_pid: int, node_id: str) -> None: ...

    def on_progress(self, fields: tuple[Any, ...]) -> None: ...

    def on_answer(self, answer: tuple[Any, ...]) -> None: ...

    def on_ending(self) -> None: ...

    def on_lost(self, why: str) -> None: ...


class _Connection(asyncio.Protocol):
    """One node's connection: the handshake, then frames parsed as they come (a
    protocol, not a stream reader: no coroutine step per frame on the per-task path)."""

    def __init__(self, channel: HostChannel) -> None:
        self._channel = channel
        self._buffer = bytearray()
        self._nonce = os.urandom(NONCE_BYTES)
        self._ready = False  # the handshake passed
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.keys: set[int] = set()  # the attempts it carries (said "started")
        self.why = "the node closed the channel"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._nonce)
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_SECONDS, self._too_slow)

    def write(self, message: tuple[Any, ...]) -> None:
        assert self.transport is not None
        self.transport.write(frame(message))

    def abort(self, why: str | None = None) -> None:
        if why is not None:
            self.why = why
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        try:
            if not self._ready and not self._handshake():
                return
            offset, size = 0, len(buffer)
            while size - offset >= 4:
                length = length_of(bytes(buffer[offset : offset + 4]))
                end = offset + 4 + length
                if end > size:
                    break
                message = parse(bytes(buffer[offset + 4 : end]))
                offset = end
                self._channel._heard(self, message)
            del buffer[:offset]
        except ChannelClosed as exc:
            self.abort(f"the channel to the node broke: {exc}")
        except (IndexError, TypeError, ValueError) as exc:  # a message of the wrong shape
            self.abort(f"the node sent a malformed message: {type(exc).__name__}: {exc}")

    def _handshake(self) -> bool:
        """Whether it passed (False: not all of the node's answer is here yet)."""
        buffer = self._buffer
        if len(buffer) < DIGEST_BYTES + NONCE_BYTES:
            return False
        answer, theirs = bytes(buffer[:DIGEST_BYTES]), bytes(buffer[DIGEST_BYTES:][:NONCE_BYTES])
        del buffer[: DIGEST_BYTES + NONCE_BYTES]
        if self._timer is not None:
            self._timer.cancel()
        if not hmac.compare_digest(answer, digest(self._channel.secret, b"node", self._nonce)):
            _log.warning("ray.channel_refused", peer=self._peer(), error="another secret")
            raise ChannelClosed("the node's answer to the handshake is wrong (another secret)")
        assert self.transport is not None
        self.transport.write(digest(self._channel.secret, b"host", theirs))
        self._ready = True
        self._channel._joined(self)
        return True

    def _too_slow(self) -> None:
        _log.warning("ray.channel_refused", peer=self._peer(), error="no handshake in time")
        self.abort()

    def _peer(self) -> str:
        name = self.transport.get_extra_info("peername") if self.transport else None
        return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if exc is not None and self.why == "the node closed the channel":
            self.why = f"the channel to the node broke: {type(exc).__name__}: {exc}"
        self._channel._left(self)


class HostChannel:
    """Routes the nodes' messages to the attempts, by attempt key, and the host's to the
    connection of the node that runs the attempt."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self._server: asyncio.Server | None = None
        self._peers: dict[int, ChannelPeer] = {}
        self._routes: dict[int, _Connection] = {}
        # What the host said before the node said "started" (a stop), sent once it has.
        self._early: dict[int, list[tuple[Any, ...]]] = {}
        self._connections: set[_Connection] = set()
        self.address: tuple[str, int] | None = None

    async def open(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        bound = self._server.sockets[0].getsockname()
        self.address = (str(bound[0]), int(bound[1]))
        return self.address

    def attach(self, key: int, peer: ChannelPeer) -> None:
        self._peers[key] = peer

    def detach(self, key: int) -> None:
        """The attempt is over: nothing more of it is routed either way."""
        self._peers.pop(key, None)
        self._early.pop(key, None)
        connection = self._routes.pop(key, None)
        if connection is not None:
            connection.keys.discard(key)

    def send(self, message: tuple[Any, ...]) -> None:
        """To the node of attempt ``message[1]``; held until it said "started"; dropped
        for an attempt that is over."""
        key = message[1]
        if key not in self._peers:
            return
        connection = self._routes.get(key)
        if connection is None:
            self._early.setdefault(key, []).append(message)
            return
        connection.write(message)

    def size(self) -> int:
        """How many entries the channel holds for attempts (their peer, route and held
        messages; for tests: none once every attempt ended)."""
        return len(self._peers) + len(self._early) + len(self._routes)

    def drop_connections(self) -> None:
        """Close every node's connection (the attempts on them hear it as lost); new ones
        are still accepted. For tests: what a network failure does."""
        for connection in list(self._connections):
            connection.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            await self._server.wait_closed()
            self._server = None

    # -- the connections (their protocol calls these) ---------------------------------

    def _joined(self, connection: _Connection) -> None:
        self._connections.add(connection)

    def _left(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        for key in list(connection.keys):
            self._routes.pop(key, None)
            peer = self._peers.get(key)
            if peer is not None:
                peer.on_lost(connection.why)

    def _heard(self, connection: _Connection, message: tuple[Any, ...]) -> None:
        kind, key = message[0], message[1]
        peer = self._peers.get(key)
        if peer is None:
            return  # an attempt already over (a late item from a stopped one)
        if kind == "progress":
            peer.on_progress(message[2:])
        elif kind == "answer":
            peer.on_answer(message[2:])
        elif kind == "ending":
            peer.on_ending()
        elif kind == "started":
            connection.keys.add(key)
            self._routes[key] = connection
            for early in self._early.pop(key, ()):
                connection.write(early)
            peer.on_started(int(message[2]), str(message[3]))
        else:
            raise ChannelClosed(f"a message of unknown kind {kind!r}")
