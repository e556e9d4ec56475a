"""The floor: a minimal raw pass-through, the "raw asyncio+httptools (floor)" row of bench/proxy_overhead.py.

It is what the design in shared/PERF_NOTES.md ("HTTP pass-through proxies") costs on this
machine, not a product: a raw `asyncio.Protocol` on uvloop (when importable), the request parsed
by `httptools`, one LIFO list of idle kept-alive upstream connections, and the response forwarded
as bytes the moment they arrive: one client write per upstream read, so a stream stays chunk for
chunk. The upstream response is parsed (`httptools.HttpResponseParser`) only to know where it
ends; its framing (Content-Length or chunked SSE) and headers reach the client untouched.
No faults, no logging, no metrics: whatever it costs is the price of the bare design.

What it does not do: the request is read whole before it is sent upstream (head rebuilt with
the upstream's Host and no hop-by-hop headers; the path goes unchanged), and it must carry a
Content-Length (or no body): a chunked request body is refused with 411 and the connection closed.
Clients speak HTTP/1.1 (keep-alive, pipelined requests are answered in order); HEAD, upgrades and
1xx answers are not handled. A kept-alive upstream connection found closed before any answer
byte is retried once on another; an upstream that cannot be reached answers 502.

Usage: .venv/bin/python bench/raw_proxy.py --port 8001 --upstream http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
from urllib.parse import urlsplit

import httptools

HOP_BY_HOP = {b"host", b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
              b"proxy-authorization", b"proxy-authenticate", b"transfer-encoding"}
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class Pool:
    """The upstream's address and its idle kept-alive connections, the last one returned used first."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host_header = f"host: {parts.netloc}\r\n".encode()
        self.idle: list[Upstream] = []

    def send(self, client: Client, data: bytes, retry: bool = True) -> None:
        while self.idle:
            up = self.idle.pop()
            if not up.transport.is_closing():
                up.start(client, data, retry)
                return
        asyncio.get_running_loop().create_task(self._connect(client, data))

    async def _connect(self, client: Client, data: bytes) -> None:
        try:
            _, up = await asyncio.get_running_loop().create_connection(lambda: Upstream(self), self.host, self.port)
        except OSError:
            client.fail(BAD_GATEWAY)
            return
        up.start(client, data, False)


class Upstream(asyncio.Protocol):
    """One connection to the upstream: each received chunk goes straight to the client it serves."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.client: Client | None = None
        self.data, self.retry, self.answered, self.keep_alive, self.paused = b"", False, False, True, False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def start(self, client: Client, data: bytes, retry: bool) -> None:
        if client.transport.is_closing():  # the client left while this connection was being found
            self.pool.idle.append(self)
            return
        self.client, self.data, self.retry, self.answered = client, data, retry, False
        client.upstream = self
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.answered = True
        if self.client is not None:
            self.client.transport.write(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        if self.keep_alive:
            self.pool.idle.append(self)
        else:
            self.transport.close()
        if client is not None:
            client.done(self.keep_alive)

    def connection_lost(self, exc) -> None:
        if self in self.pool.idle:
            self.pool.idle.remove(self)
        client, self.client = self.client, None
        if client is None or client.transport.is_closing():
            return
        if self.answered:  # cut mid-answer (or an answer framed by the close): the client's connection ends too
            client.transport.close()
        elif self.retry:  # a kept-alive connection the upstream had closed: once more on another
            self.pool.send(client, self.data, retry=False)
        else:
            client.fail(BAD_GATEWAY)


class Client(asyncio.Protocol):
    """One client connection: requests parsed, rebuilt and sent upstream one at a time, in order."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[tuple[bytes, bool]] = collections.deque()
        self.busy = False  # a request is upstream (its connection in self.upstream once found)
        self.upstream: Upstream | None = None
        self.keep_alive, self.chunked = True, False  # of the current request
        self.url, self.head, self.body = b"", [], []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.fail(LENGTH_REQUIRED if self.chunked else BAD_REQUEST)

    def on_message_begin(self) -> None:
        self.url, self.head, self.body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in HOP_BY_HOP:
            self.head += (name, b": ", value, b"\r\n")
        elif name.lower() == b"transfer-encoding":
            self.chunked = True
            raise ValueError("chunked request body")  # stops the parser: answered 411

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        data = b"".join([method, b" ", self.url, b" HTTP/1.1\r\n", self.pool.host_header, *self.head, b"\r\n",
                         *self.body])
        self.queue.append((data, self.parser.should_keep_alive()))
        if not self.busy:
            self._next()

    def _next(self) -> None:
        data, self.keep_alive = self.queue.popleft()
        self.busy = True
        self.pool.send(self, data)

    def done(self, upstream_keep_alive: bool) -> None:
        self.busy, self.upstream = False, None
        if not (upstream_keep_alive and self.keep_alive):
            self.transport.close()
        elif self.queue:
            self._next()

    def fail(self, answer: bytes) -> None:
        if self.upstream is not None:
            self.upstream.client = None
        self.busy, self.upstream = False, None
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def pause_writing(self) -> None:  # the client reads slower than the upstream answers
        if (up := self.upstream) is not None and not up.paused:
            up.paused = True
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        if (up := self.upstream) is not None and up.paused:
            up.paused = False
            up.transport.resume_reading()

    def connection_lost(self, exc) -> None:
        self.queue.clear()
        if (up := self.upstream) is not None:  # let its answer drain into nothing, then pool it
            up.client = None
            if up.paused:
                up.paused = False
                up.transport.resume_reading()
        self.upstream = None


async def serve(port: int, upstream: str) -> None:
    pool = Pool(upstream)
    server = await asyncio.get_running_loop().create_server(lambda: Client(pool), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port, args.upstream.rstrip("/")))
    else:
        uvloop.run(serve(args.port, args.upstream.rstrip("/")))
