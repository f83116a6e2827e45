"""The wire between the host and its Ray attempts' nodes (the host channel): frames,
the handshake that proves both ends hold the back-end's secret, and the messages.

Lean, as everything a Ray worker imports (standard library only). A frame is a 4-byte
big-endian length and a ``marshal`` payload: a tuple of plain values (``str``,
``int``, ``float``, ``bool``, ``None``, ``bytes``, tuples), never code. Nothing is read
from a peer before the handshake, and a frame longer than :data:`MAX_FRAME` closes the
connection. ``marshal``'s format is that of the Python version: the host and every node
run the same one (Ray requires it of a cluster and its driver).

The handshake, both ways (neither end takes the other's word): the host sends a random
nonce, the node answers ``HMAC(secret, "node" + nonce)`` and a nonce of its own, the
host answers ``HMAC(secret, "host" + that nonce)``.

Messages, each ``(kind, attempt_key, *values)``; ``attempt_key`` is the host's number
for one attempt (a task id repeats across retries, the key does not):

* node to host: ``("started", key, worker_pid, node_id)``; ``("progress", key,
  fraction | None, has_partial, partial_pickle | None, alive, checkpoint_json | None,
  checkpoint_number)``; ``("answer", key, *answer)`` (the attempt's answer, see
  ``actors._execution.ray_driver``) or ``("ending", key)`` (the answer is the Ray
  task's value) just before the Ray task returns.
* host to node: ``("go", key, bool)``; ``("stop", key, reason_value)``;
  ``("interrupt", key)``; ``("stored", key, number, error | None)``.
"""

from __future__ import annotations

import hmac
import marshal
import os
import socket
import struct
from typing import Any

__all__ = [
    "DIGEST_BYTES",
    "HANDSHAKE_SECONDS",
    "MAX_FRAME",
    "NONCE_BYTES",
    "ChannelClosed",
    "digest",
    "frame",
    "length_of",
    "node_handshake",
    "parse",
    "read_frame",
]

MAX_FRAME = 1 << 30  # a partial result travels in one frame
NONCE_BYTES = 32
DIGEST_BYTES = 32  # HMAC-SHA256
HANDSHAKE_SECONDS = 10.0
_LENGTH = struct.Struct(">I")


class ChannelClosed(ConnectionError):
    """The other end closed the connection, sent what is not a frame, or failed the
    handshake."""


def digest(secret: bytes, side: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, side + nonce, "sha256").digest()


def frame(message: tuple[Any, ...]) -> bytes:
    body = marshal.dumps(message)
    return _LENGTH.pack(len(body)) + body


def length_of(header: bytes) -> int:
    """The payload's length a frame's header gives (checked against :data:`MAX_FRAME`)."""
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ChannelClosed(f"a frame of {length} bytes, over the limit of {MAX_FRAME}")
    return int(length)


def parse(body: bytes) -> tuple[Any, ...]:
    try:
        message = marshal.loads(body)
    except (EOFError, ValueError, TypeError) as exc:
        raise ChannelClosed(f"not a message: {exc}") from None
    if not isinstance(message, tuple) or len(message) < 2 or not isinstance(message[0], str):
        raise ChannelClosed(f"not a message: {type(message).__name__}")
    return message


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks: list[bytes] = []
    while count:
        chunk = sock.recv(min(count, 1 << 20))
        if not chunk:
            raise ChannelClosed("the host closed the channel")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> tuple[Any, ...]:
    """The next message from a blocking socket (the node's end)."""
    return parse(_read_exactly(sock, length_of(_read_exactly(sock, _LENGTH.size))))


def node_handshake(sock: socket.socket, secret: bytes) -> None:
    """The node's half of the handshake, on a connected blocking socket."""
    sock.settimeout(HANDSHAKE_SECONDS)
    nonce = _read_exactly(sock, NONCE_BYTES)
    mine = os.urandom(NONCE_BYTES)
    sock.sendall(digest(secret, b"node", nonce) + mine)
    answer = _read_exactly(sock, DIGEST_BYTES)
    if not hmac.compare_digest(answer, digest(secret, b"host", mine)):
        raise ChannelClosed("the host's answer to the handshake is wrong (another secret)")
    sock.settimeout(None)
