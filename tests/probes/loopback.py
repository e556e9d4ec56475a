"""A loopback HTTP/1.1 server that answers every request with one canned response.

For probe tests that need the real client path (`probes.make_client`: the timed backend,
chunked transfer, a clean end of body) rather than `httpx.MockTransport`. 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Canned:
    status: int = 200
    content_type: str = "text/event-stream"
    chunks: Sequence[bytes] = ()  # each is sent as one HTTP chunk, flushed on its own
    requests: list[bytes] = field(default_factory=list)  # the request heads received


async def _handle(canned: Canned, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        canned.requests.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        writer.write(f"HTTP/1.1 {canned.status} Canned\r\ncontent-type: {canned.content_type}\r\n"
                     "transfer-encoding: chunked\r\nconnection: close\r\n\r\n".encode())
        for chunk in canned.chunks:
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        writer.write(b"0\r\n\r\n")  # the body ends cleanly
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def serving(canned: Canned) -> AsyncIterator[str]:
    """Serve ``canned`` on a free loopback port; yields the base URL."""
    server = await asyncio.start_server(lambda r, w: _handle(canned, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
