"""The host's end of the channel to its Ray attempts (see ``actors._execution.ray_wire``):
a TCP listener on the Ray back-end's bridge loop. Each Ray worker process that runs an
attempt keeps one connection to it (``actors._execution.ray_node_link``), reused by
every attempt the process runs.

It replaces an actor that attempts long-polled: an actor call cost about 1.1 ms of CPU
(BENCHMARKS.md, B14), four a task; a message here costs microseconds. Everything runs on
the bridge loop's thread; :meth:`HostChannel.send` is the only way in from elsewhere
(through ``loop.call_soon_threadsafe``, by the back-end).
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

    def on_lost(self, why: str) -> None: ...


class _Connection:
    __slots__ = ("keys", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.keys: set[int] = set()  # the attempts it carries (said "started")


class HostChannel:
    """Routes the nodes' messages to the attempts, by attempt key, and the host's to the
    connection of the node that runs the attempt."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._server: asyncio.Server | None = None
        self._peers: dict[int, ChannelPeer] = {}
        self._routes: dict[int, _Connection] = {}
        # What the host said before the node said "started" (a stop), sent once it has.
        self._early: dict[int, list[tuple[Any, ...]]] = {}
        self._connections: set[_Connection] = set()
        self.address: tuple[str, int] | None = None

    async def open(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port)
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
        connection.writer.write(frame(message))

    def size(self) -> int:
        """How many attempts the channel holds (for tests: none once every one ended)."""
        return len(self._peers) + len(self._early) + len(self._routes)

    def drop_connections(self) -> None:
        """Close every node's connection (the attempts on them hear it as lost); new ones
        are still accepted. For tests: what a network failure does."""
        for connection in list(self._connections):
            connection.writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self.drop_connections()
            await self._server.wait_closed()
            self._server = None

    # -- one connection ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_SECONDS)
        except (OSError, EOFError, TimeoutError, ChannelClosed) as exc:
            _log.warning("ray.channel_refused", peer=_peer(writer), error=str(exc))
            writer.transport.abort()
            return
        connection = _Connection(writer)
        self._connections.add(connection)
        why = "the node closed the channel"
        try:
            while True:
                header = await reader.readexactly(4)
                self._heard(connection, parse(await reader.readexactly(length_of(header))))
        except asyncio.IncompleteReadError:
            pass  # the worker ended (or was killed): its attempts' streams say how
        except (OSError, ChannelClosed) as exc:
            why = f"the channel to the node broke: {type(exc).__name__}: {exc}"
        finally:
            self._connections.discard(connection)
            writer.transport.abort()
            for key in list(connection.keys):
                self._routes.pop(key, None)
                peer = self._peers.get(key)
                if peer is not None:
                    peer.on_lost(why)

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonce = os.urandom(NONCE_BYTES)
        writer.write(nonce)
        answer = await reader.readexactly(DIGEST_BYTES + NONCE_BYTES)
        theirs = answer[DIGEST_BYTES:]
        if not hmac.compare_digest(answer[:DIGEST_BYTES], digest(self._secret, b"node", nonce)):
            raise ChannelClosed("the node's answer to the handshake is wrong (another secret)")
        writer.write(digest(self._secret, b"host", theirs))
        await writer.drain()

    def _heard(self, connection: _Connection, message: tuple[Any, ...]) -> None:
        kind, key = message[0], message[1]
        peer = self._peers.get(key)
        if peer is None:
            return  # an attempt already over (a late item from a stopped one)
        if kind == "progress":
            peer.on_progress(message[2:])
        elif kind == "started":
            connection.keys.add(key)
            self._routes[key] = connection
            for early in self._early.pop(key, ()):
                connection.writer.write(frame(early))
            peer.on_started(int(message[2]), str(message[3]))
        else:
            raise ChannelClosed(f"a message of unknown kind {kind!r}")


def _peer(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)
