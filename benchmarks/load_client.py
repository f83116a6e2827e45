"""B12's load generator, run in its own process: ``python -m benchmarks.load_client``.

``--clients`` keep-alive HTTP/1.1 connections to one loopback host and port, opened
before anything is timed, each a coroutine of one asyncio loop sending its next request
as soon as its previous response has fully arrived, until ``--requests`` requests have
been answered in all. Prints one JSON object: the seconds from the first request to the
last response, every request's latency (seconds), the status codes counted.

A bare asyncio client, not httpx: a request here is written as bytes and its response
read by its ``Content-Length``, so the client costs little next to the server it
measures (httpx's per-request cost in pure Python is about what a bare FastAPI route
costs, and would cap both contenders at the client's rate). It imports only the
standard library: it is what the server is measured against, not part of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time

__all__ = ["main"]

CONNECT_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 60.0


def _request(method: str, host: str, port: int, path: str, body: bytes) -> bytes:
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: application/json",
    ]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding":
            raise RuntimeError(f"a {value.strip()} response: this client reads Content-Length")
    if length is None:
        raise RuntimeError("a response without Content-Length")
    await reader.readexactly(length)
    return status


async def _run(
    host: str, port: int, method: str, path: str, body: bytes, clients: int, requests: int
) -> dict[str, object]:
    connections = [
        await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_SECONDS)
        for _ in range(clients)
    ]
    request = _request(method, host, port, path, body)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    left = [requests]

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while left[0] > 0:
            left[0] -= 1
            start = time.perf_counter()
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT_SECONDS)
            latencies.append(time.perf_counter() - start)
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    start = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in connections))
    seconds = time.perf_counter() - start
    for _, writer in connections:
        writer.close()
    for _, writer in connections:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return {"seconds": seconds, "latencies": latencies, "statuses": statuses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", default="", help="a JSON body to send with each request")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, required=True)
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in {"localhost", "::1"}:
        parser.error("the load generator only targets loopback addresses")
    result = asyncio.run(
        _run(
            args.host,
            args.port,
            args.method,
            args.path,
            args.body.encode("utf-8"),
            args.clients,
            args.requests,
        )
    )
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
