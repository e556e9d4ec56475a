"""The fault proxy's HTTP/1.1 server: `asyncio.Protocol` + httptools' request parser, serving an
ASGI application (`chaos.proxy.FaultProxy`) over plain TCP.

Why not uvicorn (which served it before, on the same parser): measured here (PERF_NOTES.md,
bench/proxy_overhead.py) the server was most of what the proxy cost. uvicorn writes a response's
head and body in two socket writes (~30% of a profile), and builds a cycle object, an
`asyncio.Event` and a keep-alive timer for every request. This one writes the head with the first
body piece (a non-streamed answer is one write), relays each later piece as one write (chunk for
chunk: a product sees the upstream's pacing), keeps one sweep for every idle connection, and
answers a request that arrived whole with its head without waiting on anything.

What it takes from HTTP/1.1 (RFC 9112) and what it refuses:

- keep-alive (the default in 1.1; in 1.0 only with ``Connection: keep-alive``, answered with the
  same header, RFC 9112 9.3 and appendix C.2.2); an idle connection closes after `KEEP_ALIVE_S`;
- request bodies with ``Content-Length`` or ``Transfer-Encoding: chunked`` (llhttp decodes);
  ``Expect: 100-continue`` gets ``100 Continue`` when the application first asks for the body
  (RFC 9110 10.1.1), and a final answer given without it closes the connection (the client may
  not have sent the body, so what follows cannot be read as a next request);
- pipelining is refused, never mixed up: a request sent before the previous answer ends the
  connection after that answer (``Connection: close``) and is not read (RFC 9112 9.3.2 lets a
  server close; a client retries an unanswered idempotent request on a new connection);
- a malformed request, a head over `MAX_HEAD`, a URL that is not ASCII: 400 (431) and close;
- responses: ``Content-Length`` as the application gives it, else chunked (1.1) or ended by
  closing the connection (1.0: RFC 9112 7.1, chunked is not for 1.0 recipients); nothing after
  the head for HEAD, 204 and 304 (RFC 9110 6.4.1).

A ``fast`` hook (`ProxyServer`) may take a request that arrived whole in one read before any task
exists for it and answer it through the cycle's `start`/`write` (or `start_raw`/`finish`): the
fault proxy's relay (`chaos.proxyfast`) for a request that meets no fault. Everything it declines
is served as below.

The ASGI side is what FaultProxy uses (ASGI 3, HTTP spec 2.3, lifespan): ``receive`` gives the
body, then ``http.disconnect`` when the client leaves or the answer is complete; ``send`` takes
``http.response.start`` and ``.body``; ``scope["extensions"]["airisk.transport"]`` is the
connection's transport, because a fault proxy must reset (RST) or drop a connection and ASGI has
no message for that (`chaos.proxyhttp.drop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

import httptools

from chaos.proxyhttp import TRANSPORT_KEY

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 30.0  # an idle connection (between requests, or a head begun and stalled) closes after this
MAX_HEAD = 64 << 10
"""The largest request head (request line and headers) read: four times Node's default
``--max-http-header-size`` (16 KiB), which the provider SDKs' own requests fit many times over.
Without a cap a client could grow one header without end."""
_HIGH_WATER = 64 << 10  # request body buffered unread: stop reading the socket above this
_SWEEP_S = 5.0
_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in http.HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_DISCONNECT = {"type": "http.disconnect"}
# A response header block as built here: "name: value\r\n" lines, a name a token, a value free of
# CR, LF, NUL and other controls but tab (RFC 9110 5.5). One pass over the block, not one per header.
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9a-z]+: [^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")


def _status_line(status: int) -> bytes:
    line = _STATUS.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise RuntimeError(f"status {status!r}: not an HTTP status")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def plain_answer(status: int, text: bytes) -> bytes:
    """A whole answer of the server's own, that closes the connection."""
    return b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        _status_line(status), len(text), text)


class Relay(Protocol):
    """What a `fast` handler leaves on a request it took (``cycle.relay``): told what the client's
    connection does while the answer is relayed."""

    def lost(self) -> None:
        """The client's connection is gone before the answer's end."""

    def pause(self) -> None:
        """The client's connection has more unsent than its transport's high-water mark: stop
        feeding it."""

    def resume(self) -> None:
        """... and drained below the low-water mark again."""

    def crash(self, exc: BaseException) -> None:
        """The handler raised after taking the request: log it, answer 500 if nothing was sent,
        close, let go of what the request holds."""


class _Cycle:
    """One request and its answer: what ``receive`` and ``send`` see. A new one per request, so
    a late ``receive`` of an answered request (a watch task ending) says disconnect and never
    reads the next request's body."""

    __slots__ = ("began", "body", "buffered", "chunked", "complete", "conn", "disconnected", "done", "expect", "head",
                 "head_only", "keep_alive", "left", "read", "relay", "scope", "started", "task", "waiter")

    def __init__(self, conn: _Connection, scope: dict[str, Any], keep_alive: bool, expect: int,
                 head_only: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect = expect  # _CONTINUE_* below
        self.head_only = head_only
        self.body: list[bytes] = []
        self.buffered = 0
        self.complete = False  # the request message has been read whole
        self.read = False  # ... and handed to the application
        self.disconnected = False
        self.started = False  # http.response.start received
        self.head: bytes | None = None  # the response head, written with the first body piece
        self.chunked = False
        self.left = -1  # bytes of a Content-Length answer still to send (-1: not that framing)
        self.done = False  # the answer is complete
        self.waiter: asyncio.Future | None = None
        self.task: asyncio.Task | None = None
        self.relay: Relay | None = None  # set by a `fast` handler that took the request (no task then)
        self.began = 0.0  # time.perf_counter() when the head was parsed (set when the server has `fast`)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.disconnected or self.done:
                return _DISCONNECT
            if self.body or (self.complete and not self.read):
                body = self.body
                data = body[0] if len(body) == 1 else b"".join(body)
                self.body = []
                self.buffered = 0
                if self.complete:
                    self.read = True  # from now on, receive() waits for the end (disconnect, or the answer sent)
                else:
                    self.conn.resume()
                return {"type": "http.request", "body": data, "more_body": not self.complete}
            if self.expect == _CONTINUE_WANTED:  # the body is wanted now (RFC 9110 10.1.1)
                self.expect = _CONTINUE_SENT
                self.conn.transport.write(_CONTINUE)
            self.conn.resume()
            self.waiter = self.conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def send(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn.write_paused is not None and not self.disconnected:
            await conn.write_paused
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self.start(message["status"], message.get("headers", ()))
            return
        if self.done or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the response")
        self.write(message.get("body", b""), message.get("more_body", False))

    # -- the answer, without ASGI (what `send` does, and what a `fast` handler calls) --
    def start(self, status: int, headers: Any) -> None:
        """The answer's status and headers: kept, and written with the first body piece."""
        self.started = True
        if self.expect == _CONTINUE_WANTED:
            self.expect = _CONTINUE_REFUSED
        self._start(status, headers)

    def write(self, body: bytes, more: bool) -> None:
        """A body piece (framed as `start` chose), and with ``more`` false the answer's end."""
        head, self.head = self.head, None
        if self.head_only:
            out = head or b""
        elif self.chunked:
            if body:
                out = b"%s%x\r\n%s\r\n" % (head or b"", len(body), body)
                if not more:
                    out += b"0\r\n\r\n"
            else:
                out = (head or b"") + (b"" if more else b"0\r\n\r\n")
        else:
            if self.left >= 0:
                self.left -= len(body)
                if self.left < 0:
                    raise RuntimeError("response content longer than its Content-Length")
            out = head + body if head is not None else body
        if out:
            self.conn.transport.write(out)
        if not more:
            if self.left > 0:
                raise RuntimeError("response content shorter than its Content-Length")
            self._finish()

    def start_block(self, status: int, block: bytes, length: bytes | None) -> None:
        """`start` for headers already as a block of ``name: value\r\n`` lines, names in lower case,
        each a token and each value free of controls but tab (as the llhttp parser leaves headers
        it read), with no ``transfer-encoding`` or ``connection`` line; ``length`` the block's
        ``content-length`` value, if any. One pass fewer over the headers than `start`."""
        self.started = True
        if self.expect == _CONTINUE_WANTED:
            self.expect = _CONTINUE_REFUSED
        self._frame(status, block, length, False)

    def start_raw(self) -> None:
        """The caller writes the answer's bytes itself, as it got them: its head (no connection or
        framing header this server would add: the connection stays open, Content-Length or chunked
        framing), then its body; `finish` when it is whole."""
        self.started = True
        if self.expect == _CONTINUE_WANTED:
            self.expect = _CONTINUE_REFUSED

    def finish(self) -> None:
        """A `start_raw` answer is whole."""
        self._finish()

    def _start(self, status: int, headers: Any) -> None:
        lines = []
        length = None
        close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                continue  # the framing is the server's to choose (the application's pieces are unframed)
            elif name == b"connection" and b"close" in value.lower():
                close = True
            lines += (name, b": ", value, b"\r\n")
        block = b"".join(lines)
        if not _FIELDS.fullmatch(block) or block.count(b"\n") != len(lines) // 4:
            raise RuntimeError("response header: a name that is not a token or a control character in a value")
        self._frame(status, block, length, close)

    def _frame(self, status: int, block: bytes, length: bytes | None, close: bool) -> None:
        """The head: status line, ``block``, and the framing and connection lines this answer takes."""
        lines = [_status_line(status), block]
        conn = self.conn
        if self.head_only or status in (204, 304) or status < 200:
            self.head_only = True  # no body, whatever the headers say (RFC 9110 6.4.1)
        elif length is not None:
            self.left = int(length)
        elif self.scope["http_version"] == "1.1":
            self.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            self.keep_alive = False  # HTTP/1.0: the body ends with the connection
        if close or conn.closing or conn.refusing or (self.expect == _CONTINUE_REFUSED and not self.complete):
            self.keep_alive = False  # (the last: the body may never come, so what follows cannot be read)
        if not self.keep_alive:
            if not close:
                lines.append(b"connection: close\r\n")
        elif self.scope["http_version"] == "1.0":
            lines.append(b"connection: keep-alive\r\n")
        lines.append(b"\r\n")
        self.head = b"".join(lines)

    def _finish(self) -> None:
        self.done = True
        self.wake()
        conn = self.conn
        if not self.keep_alive or conn.closing or conn.refusing:
            conn.transport.close()
        elif self.complete:
            conn.idle()
        else:
            conn.resume()  # the rest of the body is read and let go (on_body), then the next request


_CONTINUE_NONE, _CONTINUE_WANTED, _CONTINUE_SENT, _CONTINUE_REFUSED = range(4)


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs one at a time."""

    __slots__ = ("addresses", "app", "closing", "cycle", "expect", "extensions", "fast", "head_bytes", "headers",
                 "idle_since", "in_head", "loop", "parser", "paused", "refusing", "server", "transport",
                 "url", "write_paused")

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.app = server.app
        self.fast = server.fast
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.cycle: _Cycle | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.in_head = True
        self.head_bytes = 0
        self.expect = False
        self.paused = False
        self.refusing = False
        self.closing = False
        self.write_paused: asyncio.Future | None = None
        self.idle_since = self.loop.time()

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.extensions = {TRANSPORT_KEY: transport}
        sockname, peername = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        self.addresses = (tuple(sockname[:2]) if sockname else None, tuple(peername[:2]) if peername else None)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        self.closing = True
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnected = True
            cycle.wake()
            if cycle.relay is not None and not cycle.done:
                cycle.relay.lost()
        waiter, self.write_paused = self.write_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        if self.write_paused is None:  # (kept for the connection's next request too, whichever its course)
            self.write_paused = self.loop.create_future()
        cycle = self.cycle
        if cycle is not None and cycle.relay is not None and not cycle.done:
            cycle.relay.pause()  # (a relay waits on no future: it stops reading its source)

    def resume_writing(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.relay is not None and not cycle.done:
            cycle.relay.resume()
        waiter, self.write_paused = self.write_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.refusing:
            return  # not read: refused (see the module's docstring)
        cycle = self.cycle
        if cycle is not None and cycle.complete and not cycle.done:
            self._refuse_pipelined(cycle)  # a next request before this answer
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._launch()
            if isinstance(exc.__context__, _Pipelined) and self.cycle is not None:
                self._refuse_pipelined(self.cycle)
            else:
                self._bad(exc.__context__)
            return
        except httptools.HttpParserUpgrade:
            self._launch()
            # Upgrade (WebSocket, h2c) is not passed on: the answer is plain HTTP, then the connection ends.
            if self.cycle is not None:
                self._refuse_pipelined(self.cycle)
            else:
                self._bad(None)
            return
        except httptools.HttpParserError:
            self._launch()
            self._bad(None)
            return
        self._launch()
        if self.in_head and self.head_bytes > MAX_HEAD:
            self._bad(_HeadTooLarge())

    def eof_received(self) -> bool | None:
        return None  # close: a half-closed client is gone for this server, as it was for uvicorn

    # -- httptools callbacks --
    def on_message_begin(self) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.done:
            raise _Pipelined
        self.url = b""
        self.headers = []
        self.expect = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if value.endswith((b" ", b"\t")):  # llhttp keeps trailing whitespace, not part of the value (RFC 9110 5.5)
            value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        url = self.url
        if url.startswith(b"/") and b"#" not in url:
            raw_path, _, query = url.partition(b"?")
        else:  # absolute-form (RFC 9112 3.2.2), or a fragment: the parser's URL split
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        method = parser.get_method().decode("ascii")
        version = parser.get_http_version()
        server, client = self.addresses
        scope = {
            "type": "http", "asgi": _ASGI, "http_version": version, "server": server, "client": client,
            "scheme": "http", "method": method, "root_path": "", "path": path, "raw_path": raw_path,
            "query_string": query, "headers": self.headers, "extensions": self.extensions,
        }
        cycle = _Cycle(self, scope, parser.should_keep_alive(), _CONTINUE_WANTED if self.expect else _CONTINUE_NONE,
                       method == "HEAD")
        self.in_head = False
        self.head_bytes = 0
        self.cycle = cycle
        if self.fast is None or self.expect:
            self._start_task(cycle)
        else:  # the task waits for the end of this read: a request whole in it may be taken by `fast`
            cycle.began = time.perf_counter()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is None or cycle.done:
            return  # answered already (a 413): the rest is read and let go
        cycle.body.append(body)
        cycle.buffered += len(body)
        if cycle.buffered > _HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        self.in_head = True
        cycle = self.cycle
        if cycle is None:
            return
        cycle.complete = True
        if cycle.task is None and cycle.relay is None and not cycle.done:
            self._offer(cycle)
        if cycle.done:  # answered before its body ended: the connection is free again
            if cycle.keep_alive and not self.transport.is_closing():
                self.idle()
        else:
            cycle.wake()

    # -- the request's course --
    def _start_task(self, cycle: _Cycle) -> None:
        cycle.task = task = self.loop.create_task(self._run(cycle))
        self.server.tasks.add(task)

    def _offer(self, cycle: _Cycle) -> None:
        """A request arrived whole: to `fast` first, to a task if it declines."""
        try:
            taken = self.fast(cycle)  # type: ignore[misc]
        except Exception as exc:  # (a bug: the request is not lost with it, nor the server's parse)
            if cycle.done:  # taken and ended already
                log.error("Exception in the server's fast handler", exc_info=exc)
                return
            if cycle.relay is not None:  # taken, then failed: the relay ends it (500, upstream let go, logged)
                cycle.relay.crash(exc)
                return
            log.error("Exception in the server's fast handler", exc_info=exc)
            taken = False
        if not taken:
            self._start_task(cycle)

    def _launch(self) -> None:
        """After a read: a request not taken by `fast` (its body not whole in the read, or a bad
        read) runs as an ASGI task, as every request does without `fast`."""
        cycle = self.cycle
        if cycle is not None and cycle.task is None and cycle.relay is None and not cycle.done:
            self._start_task(cycle)

    async def _run(self, cycle: _Cycle) -> None:
        transport = self.transport
        try:
            await self.app(cycle.scope, cycle.receive, cycle.send)
        except BaseException as exc:  # (CancelledError included: the server is stopping)
            if not isinstance(exc, asyncio.CancelledError):
                log.error("Exception in ASGI application", exc_info=exc)
            if not (cycle.disconnected or transport.is_closing()):
                if not cycle.started:
                    transport.write(plain_answer(500, b"Internal Server Error"))
                transport.close()  # (after a head, the answer is cut short: the client sees it so)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            if not (cycle.done or cycle.disconnected or transport.is_closing()):
                if not cycle.started:
                    log.error("ASGI application returned without starting a response")
                    transport.write(plain_answer(500, b"Internal Server Error"))
                transport.close()
        finally:
            cycle.done = True
            self.server.tasks.discard(cycle.task)  # type: ignore[arg-type]

    def idle(self) -> None:
        self.idle_since = self.loop.time()
        self.resume()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.transport.resume_reading()

    def _refuse_pipelined(self, cycle: _Cycle) -> None:
        """A second request before the first one's answer: the answer (``Connection: close`` if its
        head has not gone yet) ends the connection, the second request is never read."""
        self.refusing = True
        if cycle.done:
            self.transport.close()

    def _bad(self, exc: BaseException | None) -> None:
        status, text = (431, b"Request header fields too large") if isinstance(exc, _HeadTooLarge) \
            else (400, b"Invalid HTTP request")
        cycle = self.cycle
        if cycle is not None and not cycle.done:
            cycle.disconnected = True  # the application's answer, if any, is not sent after this
            cycle.wake()
            if cycle.started and cycle.head is None:
                self.transport.abort()  # part of an answer has gone: a 400 now would be mixed into it
                return
        self.transport.write(plain_answer(status, text))
        self.transport.close()
        self.closing = self.refusing = True  # nothing more is read

    def shutdown(self) -> None:
        """The server is stopping: close now if idle, else after the answer in progress."""
        self.closing = True
        cycle = self.cycle
        if cycle is None or cycle.done:
            self.transport.close()


class _Pipelined(Exception):
    """Raised from the parser's callback to stop it at a second request sent before an answer."""


class _HeadTooLarge(Exception):
    """Raised from the parser's callback when a request head passes the size cap (answered 431)."""


class ProxyServer:
    """Serves ``app`` (an ASGI 3 application with lifespan) on one listening socket.

    ``fast``: called with a request that arrived whole in one read (head and body, no ``Expect:
    100-continue``), before any task for it exists; it returns True when it took the request
    (it answers through the cycle's `start` and `write`, and sets ``cycle.relay``), False to let
    ``app`` serve it as every other request. See `chaos.proxyfast`."""

    def __init__(self, app: Callable, *, host: str, port: int, backlog: int = 2048,
                 keep_alive_s: float = KEEP_ALIVE_S, fast: Callable[[_Cycle], bool] | None = None) -> None:
        self.app = app
        self.fast = fast
        self.host, self.port, self.backlog = host, port, backlog
        self.keep_alive_s = keep_alive_s
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task] = set()  # the requests' tasks (one may outlive its answer, or its connection)
        self.loop = asyncio.get_running_loop()
        self.server: asyncio.AbstractServer | None = None
        self._lifespan: _Lifespan | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._emptied: asyncio.Future | None = None  # while stopping: set when the last connection is gone

    @property
    def bound_port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Lifespan startup (raises if the application fails it), then listen."""
        self._lifespan = _Lifespan(self.app)
        await self._lifespan.startup()
        try:
            self.server = await self.loop.create_server(lambda: _Connection(self), self.host, self.port,
                                                        backlog=self.backlog, reuse_address=True)
        except BaseException:
            await self._lifespan.shutdown()
            raise
        self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle longer than ``keep_alive_s`` (one timer for all, not one per request)."""
        limit = self.loop.time() - self.keep_alive_s
        for conn in list(self.connections):
            cycle = conn.cycle
            if (cycle is None or cycle.done) and conn.idle_since < limit and not conn.transport.is_closing():
                conn.transport.close()
        self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)

    async def stop(self, grace: float, backstop: float = 2.0) -> None:
        """Stop listening; let requests in flight end within ``grace`` seconds; then drop their
        connections (FIN: a client held by a ``hang`` fault sees its connection end, as when a
        server goes away); after ``backstop`` more seconds cancel what still runs; lifespan
        shutdown last."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.shutdown()
        loop = self.loop
        deadline = loop.time() + grace
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=grace)
        if self.connections:  # answered, their last bytes still being written
            self._emptied = loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied, max(0.0, deadline - loop.time()))
        for conn in list(self.connections):
            conn.transport.abort()  # the request's receive() now says http.disconnect: its task ends
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=backstop)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=backstop)
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    def forget(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._emptied is not None and not self._emptied.done():
            self._emptied.set_result(None)


class _Lifespan:
    """ASGI lifespan, as uvicorn ran it with ``lifespan="on"``: startup before the first
    connection, shutdown after the last; an application that fails startup stops the server."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started = asyncio.get_running_loop().create_future()
        self.ended = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task | None = None

    async def startup(self) -> None:
        self.task = asyncio.create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        await asyncio.wait([self.started, self.task], return_when=asyncio.FIRST_COMPLETED)
        if not self.started.done():
            self.task.result()  # raises what stopped it
            raise RuntimeError("the application ended during lifespan startup")
        message = self.started.result()
        if message["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"lifespan startup failed: {message.get('message', '')}")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait([self.ended, self.task], return_when=asyncio.FIRST_COMPLETED)
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": {}}
        await self.app(scope, self.inbox.get, self._send)

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind.startswith("lifespan.startup") and not self.started.done():
            self.started.set_result(message)
        elif kind.startswith("lifespan.shutdown") and not self.ended.done():
            self.ended.set_result(message)
