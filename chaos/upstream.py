"""The fault proxy's upstream client: HTTP/1.1 on `asyncio.Protocol` with httptools' parser.

Why not aiohttp's client (the first version used it): on the proxy's hot path it cost ~120 µs
of CPU per request (request object, cookie and header machinery, a stream reader), the
largest share of what the proxy adds to a product's first byte. This client does what a
pass-through needs and nothing else: one write per request (head and body together), the
response head handed over as soon as it is parsed, each body read handed on as it arrives
(chunked encoding removed by the parser; the ASGI server re-frames), and a LIFO pool of idle
keep-alive connections per upstream (the most recently used connection is the one least
likely to have been closed by the upstream's idle timeout).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

import httptools

IDLE_S = 15.0  # an idle connection older than this is closed, not reused (upstreams time out idlers)
MAX_IDLE = 256  # per upstream
_HIGH_WATER = 1 << 20  # pause reading the upstream when this much body waits for a slow client


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2: a method or a header name
_TARGET = re.compile(rb"[\x21-\x7e]+")  # printable ASCII, no space: percent-encoding is the sender's job
# The whole header block in one pass (this is on the hot path): "name: value" lines, a name a
# token, a value free of NUL and controls but tab (obs-text allowed, as RFC 9110 5.5), counted.
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class UpstreamError(OSError):
    pass


class Origin(NamedTuple):
    """Where a base URL's requests go: the pool's key (scheme, host, port), the ``host`` header
    as sent, and the base's path (prefixed to each request's target)."""

    key: tuple[str, str, int]
    host_header: bytes
    path: str


@functools.lru_cache(maxsize=1024)
def origin(base: str) -> Origin | None:
    """``base`` split once (a route's upstream is the same on every request; `urlsplit` is not
    free on the hot path), or None when it holds a query or fragment (its requests' URLs are then
    split whole, as `UpstreamPool.request` does). Raises `ValueError` for a bad port, not cached."""
    parts = urlsplit(base)
    if parts.query or parts.fragment or "?" in base or "#" in base:
        return None
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    return Origin((scheme, parts.hostname or "", port), parts.netloc.rpartition("@")[2].encode(), parts.path)


def build_head(method: str, target: str, host: bytes, headers: list[tuple[bytes, bytes]], length: int | None) -> bytes:
    """The request head as sent (request line, ``host``, the headers, ``content-length`` if
    ``length`` is not None). Raises `ValueError` naming the part that would corrupt the
    message (a space or CR/LF in the target, a CR/LF/NUL in a header): the request line and
    the header block must be exactly what they seem, whatever reached the proxy."""
    line = f"{method} {target} HTTP/1.1\r\n".encode("latin-1", "replace")
    if not _TOKEN.fullmatch(method.encode("latin-1", "replace")):
        raise ValueError(f"method {method!r}: not an HTTP token")
    if not _TARGET.fullmatch(target.encode("latin-1", "replace")) or not target.isascii():
        raise ValueError(f"request target {target[:100]!r}: only printable ASCII without spaces may be sent")
    if not _TARGET.fullmatch(host):
        raise ValueError(f"host {host[:100]!r}: not a valid host")
    fields = []
    colon = False
    for name, value in headers:
        fields += [name, b": ", value, b"\r\n"]
        colon = colon or b":" in name
    block = b"".join(fields)
    # As many lines as headers (a CR/LF inside a value would make a well-formed line of its own),
    # and no colon in a name: the block alone cannot tell where a name ends (name "a: " and value
    # "b" read as name "a", value ": b"), so a name is looked at once more for that, not by a regex.
    if colon or block.count(b"\n") != len(headers) or not _FIELDS.fullmatch(block):  # then say which one
        for name, value in headers:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name[:100]!r}: not an HTTP token")
            if _BAD_VALUE.search(value):
                raise ValueError(f"header {name.decode('latin-1')!r}: a control character in its value")
        raise ValueError("header block: malformed")  # not reached: each header passed on its own
    length_line = b"content-length: %d\r\n" % length if length is not None else b""
    return b"".join((line, b"host: ", host, b"\r\n", block, length_line, b"\r\n"))


class _Conn(asyncio.Protocol):
    """One upstream connection; one request at a time."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, str, int]) -> None:
        self.pool, self.key = pool, key
        # Kept: on Python 3.11 each asyncio.get_running_loop() is a getpid() system call (a fork
        # check), and this is the hot path.
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.no_body = False  # a HEAD request: the response ends at its head
        self.interim = False  # parsing a 1xx response: not the answer, the final one follows
        self._reset()

    def _reset(self) -> None:
        self.head: asyncio.Future | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.done = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.paused = False
        self.sink: Sink | None = None  # given: the response goes to it as parsed, not to `read`

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.sink is None and self.head is None:  # idle in the pool: bytes nobody asked for (a stray
            self.closed = True                       # 408, say) make the connection unfit for a next request
            if self.transport is not None:
                self.transport.close()
            return
        if self.sink is not None:
            self.sink.arrived(self, data)
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.sink is not None and not self.done:
                self.sink.flush(self)  # what was read whole before the bad bytes goes on first
            why = "switched protocols (101) unasked" if isinstance(exc, httptools.HttpParserUpgrade) \
                else f"sent a malformed response: {exc}"
            self._fail(UpstreamError(f"upstream {why}"))
            if not self.done:
                return  # (bytes after a whole response, e.g. a 204 with a body: the response stands)
        sink = self.sink
        if sink is not None:
            sink.flush(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.done:
            self._fail(UpstreamError(f"upstream closed the connection{f': {exc}' if exc else ''}"))

    # -- httptools callbacks --
    def on_message_begin(self) -> None:
        if self.done:  # a second response to one request: never read as this one's, never reused
            raise UpstreamError("upstream sent more than one response")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101:  # the proxy never passes Upgrade on: nothing it could relay follows
            self._fail(UpstreamError("upstream switched protocols (101) unasked"))
            return
        if status < 200:
            # 100 Continue, 103 Early Hints: interim, skipped (relayed as final, the answer would be lost)
            self.interim = True
            self.headers = []
            return
        self.status = status
        if self.no_body:
            self.done = True
        if self.head is not None and not self.head.done():
            self.head.set_result(None)
        elif self.sink is not None:
            self.sink.head(self)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.body(body)
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()  # asked later, the parser says False
        self._wake()

    # -- the request --
    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        if self.head is not None and not self.head.done():
            self.head.set_exception(exc)
        elif self.sink is not None and not self.done:
            self.sink.fail(exc)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> bytes | None:
        """The next body piece as received, or None at the end of the body."""
        while True:
            if self.body:
                data = self.body.popleft()
                self.buffered -= len(data)
                if self.paused and self.buffered < _HIGH_WATER // 2 and self.transport is not None:
                    self.transport.resume_reading()
                    self.paused = False
                return data
            if self.done:
                return None
            if self.error is not None:
                raise self.error
            self.waiter = self.loop.create_future()
            await self.waiter
            self.waiter = None


class Sink(Protocol):
    """Takes a response as the connection parses it, with no task and no buffering (`_Conn.sink`):
    `arrived` with each read's bytes before they are parsed, `head` once the head is parsed, `body`
    with each piece, `flush` after each read from the socket (the pieces of one read go on as one),
    `fail` if the response cannot be read whole. ``conn.done`` says the response is complete."""

    def arrived(self, conn: _Conn, data: bytes) -> None: ...

    def head(self, conn: _Conn) -> None: ...

    def body(self, data: bytes) -> None: ...

    def flush(self, conn: _Conn) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class Response:
    """A response whose head has arrived; iterate `chunks()` for the body, then it is released."""

    __slots__ = ("_conn", "_pool", "headers", "read", "status")

    def __init__(self, conn: _Conn, pool: UpstreamPool) -> None:
        self._conn, self._pool = conn, pool
        self.status = conn.status
        self.headers = conn.headers
        # The next body piece as received, or None at the end (what `chunks` yields, without an
        # async generator or a second coroutine on the hot path); the caller closes the response.
        self.read = conn.read

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def drained(self) -> bool:
        """The whole body has arrived and been read: the last piece read was the last."""
        conn = self._conn
        return conn.done and not conn.body

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while (data := await conn.read()) is not None:
                yield data
        except BaseException:
            self.close()
            raise
        self.close()

    def close(self) -> None:
        """Give the connection back when the body was read whole, else drop it."""
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is not None:
            self._pool.release(conn)


class UpstreamPool:
    """Keep-alive connections per (scheme, host, port), reused most-recent first."""

    def __init__(self, *, connect_timeout: float = 30.0) -> None:
        self._idle: dict[tuple[str, str, int], list[_Conn]] = collections.defaultdict(list)
        self._ssl: ssl.SSLContext | None = None
        self.connect_timeout = connect_timeout

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import certifi

            self._ssl = ssl.create_default_context(cafile=certifi.where())
        return self._ssl

    async def connect(self, key: tuple[str, str, int]) -> _Conn:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, key), host, port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None)
        except TimeoutError:
            raise UpstreamError(f"connect to {host}:{port} timed out after {self.connect_timeout:g}s") from None
        return conn

    def take(self, key: tuple[str, str, int]) -> _Conn | None:
        """An idle connection to ``key``, or None (then `connect`)."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    def release(self, conn: _Conn) -> None:
        """Give back a connection whose response was read whole (by a `Sink`), else close it."""
        if conn.done and conn.keep_alive and conn.error is None and not conn.closed and not conn.no_body:
            self._release(conn)
        elif conn.transport is not None:
            conn.transport.close()

    def _release(self, conn: _Conn) -> None:
        idle = self._idle[conn.key]
        if len(idle) >= MAX_IDLE:
            conn.transport.close()  # type: ignore[union-attr]
            return
        if conn.paused:  # (its reads stopped for a reader that left: the next request must be read)
            conn.transport.resume_reading()  # type: ignore[union-attr]
        conn._reset()
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def request(self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes,
                      sent: Callable[[], None] | None = None) -> Response:
        """Send the request; return when the response head has arrived. ``sent``: called once the
        request has been handed to the connection, before waiting for the head."""
        parts = urlsplit(url)
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        host = parts.hostname or ""
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rpartition("@")[2].encode()
        return await self.send(method, Origin((scheme, host, port), host_header, ""), target, headers, body, sent)

    async def send(self, method: str, to: Origin, target: str, headers: list[tuple[bytes, bytes]],
                   body: bytes, sent: Callable[[], None] | None = None) -> Response:
        """`request` with the URL already split (`origin`): ``target`` is the request target as
        sent (path and query, the origin's path included)."""
        key = to.key
        host_header = to.host_header
        length = len(body) if body or method in ("POST", "PUT", "PATCH") else None
        payload = build_head(method, target, host_header, headers, length) + body
        conn = self.take(key) or await self.connect(key)
        conn.no_body = method == "HEAD"
        conn.head = conn.loop.create_future()
        conn.transport.write(payload)  # type: ignore[union-attr]
        try:
            if sent is not None:
                sent()
            await conn.head
        except BaseException:
            if conn.transport is not None:
                conn.transport.close()
            raise
        return Response(conn, self)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
