"""A loopback HTTP server in a process of its own, for a test that opens more
connections than one process could hold both ends of: it answers no request until
``expected`` connections are open at once (proof that they are), then answers all.

Run as ``python -m tests.loopback_server EXPECTED`` from the repository root; it prints
its port as one line on standard output and serves until it is terminated.
"""

from __future__ import annotations

import asyncio
import sys

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def serve(expected: int) -> None:
    connected = 0
    all_in = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connected
        await reader.readuntil(b"\r\n\r\n")
        connected += 1
        if connected == expected:
            all_in.set()
        await all_in.wait()
        writer.write(ANSWER)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()  # until terminated


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
