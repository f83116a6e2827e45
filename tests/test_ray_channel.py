"""The host channel of the Ray back-end without Ray: the host's end (``HostChannel``, on
an asyncio loop of its own thread) and a worker's end (``NodeLink``, blocking sockets
and a reader thread), over a real TCP connection on loopback.

What the attempts rely on: a node's ``started`` and progress reach the attempt by its
key and in order; the host's go, stop, interrupt and stored reach the node's listener;
a stop said before the node's ``started`` is not lost; a peer without the secret is
refused by either end; a broken connection is heard on both ends; an attempt that is
over holds nothing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from actors._enums import StopReason
from actors._execution import ray_node_link
from actors._execution.ray_node_link import AttemptListener, NodeLink, link_to
from actors._execution.ray_wire import (
    DIGEST_BYTES,
    MAX_FRAME,
    NONCE_BYTES,
    ChannelClosed,
    digest,
    frame,
    length_of,
    parse,
)
from tests.channel_host import BOUND, SECRET, Host, Peer


@pytest.fixture
def host() -> Iterator[Host]:
    made = Host()
    try:
        yield made
    finally:
        made.close()


def _link(host: Host) -> NodeLink:
    return NodeLink(host.host, host.port, SECRET, patience=1.0)


def _joined(link: NodeLink, key: int) -> tuple[AttemptListener, threading.Event]:
    wake = threading.Event()
    listener = AttemptListener(wake.set)
    link.join(key, listener)
    return listener, wake


class Started:
    """One attempt the host attached, whose node joined it and said "started"."""

    def __init__(self, host: Host, key: int) -> None:
        self.peer = Peer()
        host.call(host.channel.attach, key, self.peer)
        self.link = _link(host)
        self.listener, self.wake = _joined(self.link, key)
        assert self.link.send(("started", key, 1, "n"))
        self.peer.wait_for(1)


def test_started_and_progress_reach_the_attempt_by_key_in_order(host: Host) -> None:
    one, two = Peer(), Peer()
    host.call(host.channel.attach, 1, one)
    host.call(host.channel.attach, 2, two)
    link = _link(host)
    assert link.send(("started", 1, 111, "node-a"))
    assert link.send(("started", 2, 111, "node-a"))
    for number in range(50):
        assert link.send(("progress", 1, number / 50, False, None, True, None, 0))
    assert link.send(("progress", 2, 0.5, True, b"blob", False, '{"at": 3}', 7))
    assert link.send(("answer", 1, "completed", b"result", 50, None))
    assert link.send(("ending", 2))
    heard = one.wait_for(52)
    assert heard[0] == ("started", 111, "node-a")
    assert [item[1] for item in heard[1:51]] == [number / 50 for number in range(50)]
    assert heard[51] == ("answer", "completed", b"result", 50, None)  # after its progress
    assert two.wait_for(3) == [
        ("started", 111, "node-a"),
        ("progress", 0.5, True, b"blob", False, '{"at": 3}', 7),
        ("ending",),
    ]


def test_the_hosts_word_reaches_the_nodes_listener(host: Host) -> None:
    attempt = Started(host, 5)
    listener, wake = attempt.listener, attempt.wake
    host.call(host.channel.send, ("go", 5, True))
    assert listener.go_event.wait(BOUND)
    assert listener.go is True
    host.call(host.channel.send, ("stop", 5, StopReason.TIMEOUT.value))
    assert listener.stop.wait(BOUND)
    assert listener.stop_reason is StopReason.TIMEOUT
    host.call(host.channel.send, ("interrupt", 5))
    assert wake.wait(BOUND)
    assert listener.interrupts == 1
    waiter = listener.commits.waiter()
    host.call(host.channel.send, ("stored", 5, waiter.number, None))
    # The answer covers the checkpoint: a wait on it returns, with no error raised.
    listener.commits.wait(waiter, BOUND, "t")
    waiter_two = listener.commits.waiter()
    host.call(host.channel.send, ("stored", 5, waiter_two.number, "disk full"))
    with pytest.raises(RuntimeError, match="disk full"):
        listener.commits.wait(waiter_two, BOUND, "t")


def test_a_stop_said_before_the_nodes_started_is_delivered_after_it(host: Host) -> None:
    peer = Peer()
    host.call(host.channel.attach, 9, peer)
    host.call(host.channel.send, ("stop", 9, StopReason.CANCEL_REQUESTED.value))
    link = _link(host)
    listener, _ = _joined(link, 9)
    assert link.send(("started", 9, 1, "n"))
    host.call(host.channel.send, ("go", 9, False))
    assert listener.go_event.wait(BOUND)
    assert listener.stop.wait(BOUND)
    assert (listener.go, listener.stop_reason) == (False, StopReason.CANCEL_REQUESTED)


def test_an_attempt_that_is_over_holds_nothing_and_hears_nothing(host: Host) -> None:
    attempt = Started(host, 3)
    peer, link = attempt.peer, attempt.link
    host.call(host.channel.send, ("stop", 4, "timeout"))  # never attached: dropped
    assert host.call(host.channel.size) == 2  # the peer and its route
    host.call(host.channel.detach, 3)
    assert host.call(host.channel.size) == 0
    assert link.send(("progress", 3, 0.1, False, None, False, None, 0))
    other = Peer()  # the connection still serves the process's next attempt
    host.call(host.channel.attach, 4, other)
    assert link.send(("started", 4, 1, "n"))
    assert other.wait_for(1) == [("started", 1, "n")]
    assert peer.heard == [("started", 1, "n")]


def test_a_broken_connection_is_heard_on_both_ends(host: Host) -> None:
    attempt = Started(host, 1)
    peer, link, listener = attempt.peer, attempt.link, attempt.listener
    host.call(host.channel.drop_connections)
    assert listener.go_event.wait(BOUND)  # the verdict never comes: the wait ends
    assert listener.go is None
    assert listener.lost is not None
    assert "broke" in listener.lost
    heard = peer.wait_for(2)
    assert heard[1][0] == "lost"
    assert not link.send(("progress", 1, 0.5, False, None, False, None, 0))
    late, _ = _joined(link, 2)  # joined after the break: told at once
    assert late.lost == link.broken


def test_a_node_without_the_secret_is_refused(host: Host) -> None:
    with pytest.raises(ChannelClosed):
        NodeLink(host.host, host.port, b"x" * 32, patience=1.0)
    peer = Peer()  # the channel serves the right secret still
    host.call(host.channel.attach, 1, peer)
    assert _link(host).send(("started", 1, 2, "n"))
    assert peer.wait_for(1) == [("started", 2, "n")]


def test_a_host_without_the_secret_is_refused() -> None:
    """An impostor that takes any answer and answers with another secret's digest."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def impostor() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"n" * NONCE_BYTES)
            answer = b""
            while len(answer) < DIGEST_BYTES + NONCE_BYTES:
                answer += conn.recv(1024)
            conn.sendall(digest(b"y" * 32, b"host", answer[DIGEST_BYTES:]))
            conn.recv(1)  # until the node hangs up

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    try:
        with pytest.raises(ChannelClosed, match="another secret"):
            NodeLink("127.0.0.1", port, SECRET, patience=1.0)
    finally:
        thread.join(BOUND)
        server.close()


def test_an_unreachable_host_is_given_up_after_the_patience() -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    with pytest.raises(ConnectionRefusedError):
        NodeLink("127.0.0.1", port, SECRET, patience=0.3)


def test_one_link_per_process_and_host_remade_once_broken(host: Host) -> None:
    first = link_to(host.host, host.port, SECRET, 1.0)
    try:
        assert link_to(host.host, host.port, SECRET, 1.0) is first
        host.call(host.channel.drop_connections)
        listener, _ = _joined(first, 1)
        assert listener.go_event.wait(BOUND)  # broken (at once, or heard by now)
        second = link_to(host.host, host.port, SECRET, 1.0)
        assert second is not first
        assert second.broken is None
    finally:
        ray_node_link._LINKS.clear()


def test_frames_are_plain_values_and_bounded() -> None:
    message = ("progress", 1, None, True, b"\x00" * 10, False, None, 0)
    data = frame(message)
    assert length_of(data[:4]) == len(data) - 4
    assert parse(data[4:]) == message
    with pytest.raises(ChannelClosed, match="over the limit"):
        length_of((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ChannelClosed, match="not a message"):
        parse(b"\xff\xfe")
    with pytest.raises(ChannelClosed, match="not a message"):
        parse(frame(("only-a-kind",))[4:])


def test_a_frame_that_arrives_in_pieces_is_read_whole(host: Host) -> None:
    """A partial result of megabytes comes in many reads of the socket."""
    peer = Peer()
    host.call(host.channel.attach, 1, peer)
    link = _link(host)
    blob = bytes(range(256)) * 20_000  # 5 MB
    assert link.send(("started", 1, 1, "n"))
    assert link.send(("progress", 1, 0.5, True, blob, False, None, 0))
    assert link.send(("progress", 1, 0.6, False, None, False, None, 0))
    heard = peer.wait_for(3)
    assert heard[1] == ("progress", 0.5, True, blob, False, None, 0)
    assert heard[2][1] == 0.6


def test_a_malformed_message_closes_only_its_connection(host: Host) -> None:
    """A message of the wrong shape (a bug on a node) breaks that node's connection,
    heard by its attempts, and the channel serves the others."""
    attempt = Started(host, 1)
    broken, bad = attempt.peer, attempt.link
    fine = Peer()
    host.call(host.channel.attach, 2, fine)
    assert bad.send(("started", 1))  # no pid, no node
    assert broken.wait_for(2)[1][0] == "lost"
    good = _link(host)
    assert good.send(("started", 2, 2, "m"))
    assert fine.wait_for(1) == [("started", 2, "m")]
