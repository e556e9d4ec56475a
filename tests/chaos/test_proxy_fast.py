"""The proxy's pass-through without a task (`chaos.proxyfast`): which requests it takes, that it
sends the upstream and the client exactly what the ASGI course sends for the same request (and logs
the same entry), and that a client reading slowly stops the upstream's reads on both courses.

The behaviours both courses must keep (keep-alive, pipelining refusal, request bodies, 100-continue,
HTTP/1.0, hang-ups, timeouts, 502/504) are tested on both by the ``course`` and ``served``
fixtures of test_proxy.py, test_proxy_bounds.py, test_proxy_http.py and test_sdk_compat.py."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.faults import Fault
from chaos.faults.fault import Scope
from chaos.proxy import FaultProxy
from chaos.proxyfast import CHUNKED, passes_as_is
from chaos.proxyserve import serve_proxy
from chaos.proxyserver import ProxyServer
from chaos.routes import Route
from tests.chaos.test_proxy_http import Reader
from tests.conftest import InThread, until


class Recorder:
    """A raw loopback upstream: keeps each request (head and body) as received, byte for byte, and
    answers it with an answer derived from it alone (sized or chunked, by the body's length; with a
    hop-by-hop header or not, so that the relay passes some on as they came and rebuilds the others'
    heads), so the same request gets the same answer whichever course the proxy took."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                digest = hashlib.sha256(head + body).hexdigest().encode()
                if length % 2:
                    pieces = [b"data: %s\n\n" % digest[i:i + 16] for i in range(0, 64, 16)]
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-up: 1\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n")
                    for piece in pieces:
                        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        await writer.drain()
                    writer.write(b"0\r\n\r\n")
                else:
                    answer = json.dumps({"sha": digest.decode(), "n": length}).encode()
                    # passed on as it came with the line cut out / its head rebuilt / as it came
                    hop = (b"Connection: keep-alive\r\n", b"keep-alive: timeout=5\r\n", b"")[length % 3]
                    writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
                                 % (200 + length % 5, hop, len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        writer.close()


class Pair(InThread):
    """One upstream, two proxies in front of it: ``fast`` on (the relay) and off (the ASGI course),
    on a loop in a background thread so that hypothesis can drive them with blocking sockets."""

    def __init__(self) -> None:
        super().__init__()
        self.upstream = Recorder()

    async def _start(self) -> None:
        base = await self.upstream.start()
        self.proxies, self.running = {}, {}
        for fast in (True, False):
            proxy = FaultProxy({"up": Route("up", base + "/v1", "openai")}, max_body=4096)
            self.proxies[fast] = proxy
            self.running[fast] = await serve_proxy(proxy, port=0, grace=0.5, fast=fast)
        self.taken: list[bool] = []
        server = self.running[True].server
        offered = server.fast
        assert offered is not None

        def spy(cycle) -> bool:
            taken = offered(cycle)
            self.taken.append(taken)
            return taken

        server.fast = spy  # (a connection takes the server's hook when it is made)

    async def _stop(self) -> None:
        for running in self.running.values():
            await running.stop()
        self.upstream.server.close()  # type: ignore[union-attr]

    def exchange(self, fast: bool, request: bytes) -> tuple[int, dict[str, str], bytes, bytes, dict]:
        """(status, headers, body as the client read it; the bytes the upstream got; the log entry)."""
        before = len(self.upstream.requests)
        with socket.create_connection(("127.0.0.1", self.running[fast].port), timeout=10) as sock:
            sock.sendall(request)
            answer = Reader(sock).response()
        got = self.upstream.requests[before:]
        entry = self.call(self._last_entry(self.proxies[fast]))
        return answer.status, answer.headers, answer.body, b"".join(got), entry

    async def _last_entry(self, proxy: FaultProxy) -> dict:
        for _ in range(200):  # the entry is done when its answer's last byte has been handed on
            entries = proxy.log.since()
            if entries and "total_ms" in entries[-1]:
                return entries[-1]
            await asyncio.sleep(0.01)
        raise AssertionError("no finished log entry")


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with Pair() as p:
        yield p


_NAMED = ["connection", "keep-alive", "te", "trailer", "proxy-authorization", "proxy-connection", "x-drop",
          "x-airisk-other", "X-AIRisk-Feature", "accept-encoding", "Content-Type"]  # what the proxy treats apart
_FRAMING = {"host", "content-length", "transfer-encoding", "expect", "upgrade"}  # (the test's own framing)
_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_SEGMENT = st.text("abcdefghijklmnopqrstuvwxyzABCDEF0123456789-._~%20", min_size=1, max_size=10)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
       segments=st.lists(_SEGMENT, min_size=1, max_size=3),
       query=st.one_of(st.just(""), st.builds(lambda k, v: f"{k}={v}", _TOKEN, _TOKEN)),
       headers=st.lists(st.tuples(st.one_of(_TOKEN, st.sampled_from(_NAMED)).filter(lambda n: n not in _FRAMING),
                                  st.one_of(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20),
                                            st.sampled_from(["keep-alive", "close", "keep-alive, x-drop", "x-drop"]))),
                        max_size=6),
       feature=st.one_of(st.none(), _TOKEN),
       body=st.binary(max_size=300),
       close=st.booleans())
def test_the_relay_sends_and_answers_exactly_what_the_asgi_course_does(pair, method, segments, query, headers,
                                                                        feature, body, close):
    target = "/up/" + "/".join(segments) + (f"?{query}" if query else "")
    lines = [f"{method} {target} HTTP/1.1", "host: x", *(f"{n}: {v.strip()}" for n, v in headers)]
    if feature is not None:
        lines.append(f"x-airisk-feature: {feature}")
    if close:
        lines.append("connection: close")
    request = ("\r\n".join(lines) + f"\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
    relayed, course = pair.exchange(True, request), pair.exchange(False, request)
    status, answer_headers, answer, upstream_got, entry = relayed
    assert status == course[0] and answer_headers == course[1] and answer == course[2]
    assert upstream_got == course[3]  # byte for byte: the same head, the same body
    if upstream_got:
        assert b"x-airisk-" not in upstream_got.split(b"\r\n\r\n")[0]
    ignore = {"id", "at", "ttfb_ms", "total_ms"}
    assert {k: v for k, v in entry.items() if k not in ignore} == \
        {k: v for k, v in course[4].items() if k not in ignore}
    # The relay took it (the comparison is between the two courses), but for a path the ASGI course
    # refuses with a 400 of its own: an encoded control character.
    assert pair.taken[-1] == (re.search(r"%(?:[01][0-9a-fA-F]|7[fF])", target) is None)


def test_the_relay_leaves_what_it_does_not_cover_to_the_asgi_course(pair):
    """A fault in force, HEAD, HTTP/1.0, the control API, an unknown route, a body over the cap,
    a bad path: offered and declined (the ASGI course answers). 100-continue and a body not whole in
    the head's read are never offered."""
    def offered(request: bytes, *, pieces: int = 1) -> list[bool]:
        before = len(pair.taken)
        with socket.create_connection(("127.0.0.1", pair.running[True].port), timeout=10) as sock:
            cut = len(request) // pieces
            for i in range(pieces):
                sock.sendall(request[i * cut:] if i == pieces - 1 else request[i * cut:(i + 1) * cut])
                if i < pieces - 1:
                    threading.Event().wait(0.1)
            if b"expect: 100-continue" in request:
                assert sock.recv(100).startswith(b"HTTP/1.1 100 ")
                sock.sendall(b"{}")
            if request.startswith(b"HEAD "):  # (a head only: the reader would wait for the body it announces)
                got = b""
                while b"\r\n\r\n" not in got:
                    got += sock.recv(65536)
            else:
                Reader(sock).response()
        return pair.taken[before:]

    plain = b"POST /up/x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
    assert offered(plain) == [True]
    assert offered(plain.replace(b"POST", b"HEAD").replace(b"content-length: 2", b"content-length: 0")[:-2]) == [False]
    assert offered(plain.replace(b"HTTP/1.1", b"HTTP/1.0")) == [False]
    assert offered(b"GET /_airisk/faults HTTP/1.1\r\nhost: x\r\n\r\n") == [False]
    assert offered(plain.replace(b"/up/", b"/nope/")) == [False]
    assert offered(plain.replace(b"/up/x", b"/up/%00")) == [False]
    big = b"x" * 5000
    assert offered(b"POST /up/x HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n" + big) == [False]
    assert offered(plain.replace(b"\r\n\r\n", b"\r\nexpect: 100-continue\r\n\r\n")[:-2]) == []
    assert offered(b"POST /up/x HTTP/1.1\r\nhost: x\r\ncontent-length: 200\r\n\r\n" + b"y" * 200, pieces=2) == []
    proxy = pair.proxies[True]
    pair.call(_add(proxy, Fault("http_error", {"status": 500}, scope=Scope(route="elsewhere"))))
    try:
        assert offered(plain) == [False]  # a fault in force anywhere: every request is planned
    finally:
        pair.call(_clear(proxy))
    assert offered(plain) == [True]


async def _add(proxy: FaultProxy, fault: Fault) -> None:
    proxy.faults.add(fault)


async def _clear(proxy: FaultProxy) -> None:
    proxy.faults.clear()


# -- back-pressure ----------------------------------------------------------------------------------

STREAM = 48 << 20


async def test_a_client_reading_slowly_stops_the_upstreams_reads(course):
    """The upstream writes 48 MB as fast as it can; the client reads nothing for a while. The
    proxy must stop reading the upstream (its writes then wait), not buffer the answer; once the
    client reads, the whole answer arrives."""
    written = 0

    async def firehose(request: web.Request) -> web.StreamResponse:
        nonlocal written
        resp = web.StreamResponse(headers={"content-type": "application/octet-stream",
                                           "content-length": str(STREAM)})
        await resp.prepare(request)
        piece = b"z" * (256 << 10)
        while written < STREAM:
            await resp.write(piece)
            written += len(piece)
        return resp

    async def small(request: web.Request) -> web.Response:
        return web.json_response({"small": True})

    app = web.Application()
    app.router.add_get("/v1/big", firehose)
    app.router.add_get("/v1/small", small)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy = FaultProxy({"up": Route("up", f"http://127.0.0.1:{port}/v1", "openai")})
    running = await serve_proxy(proxy, port=0, fast=course)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", running.port))
        await loop.sock_sendall(sock, b"GET /up/big HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(1.5)  # not reading
        held = written
        assert held < STREAM // 2, f"the upstream wrote {held:,} bytes to a client reading nothing"
        got = 0
        async with asyncio.timeout(60):
            while got < STREAM:
                data = await loop.sock_recv(sock, 1 << 20)
                assert data, "the connection ended before the whole answer"
                got += len(data)  # (head included: at least the body's length once it is whole)
        sock.close()
        assert written == STREAM
        # The upstream connection goes back to the pool reading again (its reads may have stopped on the
        # last piece): the next request on it is answered.
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /up/small HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ")
        writer.close()
    finally:
        await running.stop()
        await runner.cleanup()


# -- the server's hook failing ----------------------------------------------------------------------

async def test_a_fast_hook_that_raises_leaves_the_request_to_the_application():
    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    def broken(cycle) -> bool:
        raise RuntimeError("a bug in the hook")

    server = ProxyServer(app, host="127.0.0.1", port=0, fast=broken)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        writer.write(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ") and await reader.readexactly(5) == b"hello"
        writer.close()
    finally:
        await server.stop(0.5)


# -- wire edge cases, on both courses ----------------------------------------------------------------

class Raw:
    """A raw loopback upstream running ``handler(reader, writer)`` per connection; counts them."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.closed: list[float] = []  # when each connection's other end (the proxy) let go

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await self.handler(reader, writer)
        self.closed.append(time.monotonic())
        writer.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream handler: ``{}`` for every request on the connection."""
    while True:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()


@contextlib.asynccontextmanager
async def proxied(handler, course: bool, **options):
    upstream = Raw(handler)
    base = await upstream.start()
    proxy = FaultProxy({"up": Route("up", base + "/v1", "openai")}, **options)
    running = await serve_proxy(proxy, port=0, grace=0.5, fast=course)
    try:
        yield upstream, proxy, running
    finally:
        await running.stop()
        upstream.server.close()


async def finished(proxy: FaultProxy) -> dict:
    for _ in range(500):
        entries = proxy.log.since()
        if entries and "total_ms" in entries[-1]:
            return entries[-1]
        await asyncio.sleep(0.01)
    raise AssertionError("the request's entry never finished")


async def test_a_client_leaving_after_a_large_body_frees_the_upstream_at_once(course):
    """A body over the server's read buffer (64 KiB) that came whole: the client's socket is read
    again once the body is taken, so its hang-up is seen (not at the head timeout)."""
    async def silent(reader, writer) -> None:
        await read_request(reader)
        await reader.read()  # until the proxy lets go

    async with proxied(silent, course, head_timeout_s=30) as (upstream, proxy, running):
        body = b'{"model": "m", "x": "' + b"a" * (80 << 10) + b'"}'
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", running.port))
        await asyncio.sleep(0.05)
        sock.setblocking(True)
        sock.sendall(b"POST /up/chat HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.2)  # noqa: ASYNC251 (the loop held on purpose: the proxy reads the request whole, in one go)
        sock.setblocking(False)
        await asyncio.sleep(0.3)
        left = time.monotonic()
        sock.close()
        entry = await finished(proxy)
        await until(lambda: upstream.closed, 5, "the upstream let go")
        assert upstream.closed[0] - left < 2 and entry["error"] == "client disconnected"


async def test_a_client_still_draining_one_answer_holds_back_the_next_ones(course):
    """An answer whose last write fills the client's connection past its high-water mark, then a
    48 MB answer on the same connection while the client reads nothing: the upstream is not read
    (the pause outlives the request that met it)."""
    written = 0

    async def answers(reader, writer) -> None:
        nonlocal written
        while True:
            head = await read_request(reader)
            if b" /v1/a " in head:
                body = b"y" * (100 << 10)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                time.sleep(0.1)  # noqa: ASYNC251 (held on purpose: the whole answer reaches the proxy at once)
                await writer.drain()
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % STREAM)
                while written < STREAM:
                    writer.write(b"z" * (256 << 10))
                    await writer.drain()
                    written += 256 << 10

    async with proxied(answers, course) as (_, proxy, running):
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", running.port))
        await asyncio.sleep(0.05)
        (conn,) = running.server.connections
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        await loop.sock_sendall(sock, b"GET /up/a HTTP/1.1\r\nhost: x\r\n\r\n")
        await finished(proxy)
        assert conn.write_paused is not None  # (the premise: the first answer left the connection full)
        await loop.sock_sendall(sock, b"GET /up/b HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.sleep(1.5)
        assert written < STREAM // 2, f"the upstream wrote {written:,} bytes for a client reading nothing"
        assert conn.transport.get_write_buffer_size() < 4 << 20
        sock.close()


async def test_what_was_read_before_an_upstream_error_reaches_the_client_first(course):
    async def garbage(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"d\r\ndata: hello\n\n\r\nZZZZ not a chunk\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with proxied(garbage, course) as (_, proxy, running):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"POST /up/chat HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        got = b""
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(5):
                while data := await reader.read(65536):
                    got += data
        writer.close()
        entry = await finished(proxy)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n\r\nd\r\ndata: hello\n\n\r\n" in got
    # then cut: what follows is the upstream's bad bytes as sent (passed on as they came) or nothing
    assert got.endswith((b"d\r\ndata: hello\n\n\r\n", b"ZZZZ not a chunk\r\n\r\n")) and not got.endswith(b"0\r\n\r\n")
    assert entry["status"] == 200 and "malformed response" in entry["error"]


async def test_a_second_response_in_one_read_is_not_taken_for_the_first(course):
    async def two(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 500 Oops\r\ncontent-length: 3\r\n\r\nabc")
        await writer.drain()
        await reader.read()

    async with proxied(two, course) as (upstream, proxy, running):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"POST /up/chat HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ") and await reader.readexactly(2) == b"{}"
        entry = await finished(proxy)
        await until(lambda: upstream.closed, 5, "the upstream that answered twice let go (not pooled)")
        writer.close()
    assert entry["status"] == 200


async def test_a_client_leaving_while_the_upstream_connects_stops_the_connect(course):
    """An upstream whose accept queue is full (the connect hangs): a client that leaves meanwhile
    ends the connect at once, and a stop does not wait for it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # the queue is full from now on
    proxy = FaultProxy({"up": Route("up", f"http://127.0.0.1:{port}/v1", "openai")})
    running = await serve_proxy(proxy, port=0, grace=3, fast=course)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"POST /up/chat HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        entry = await finished(proxy)
        await asyncio.sleep(0.1)
        assert entry["error"] == "client disconnected"
        assert not [t for t in running.server.tasks if not t.done()]
    finally:
        began = time.monotonic()
        await running.stop()
        filler.close()
        listener.close()
    assert time.monotonic() - began < 2  # (within the grace of 3 s: nothing left to wait for)


async def test_an_exception_after_the_relay_took_a_request_ends_it_cleanly(monkeypatch):
    """A bug in the relay's bookkeeping (here: reading the request for the log) after the request
    went upstream: 500, the upstream let go, the entry finished, nothing left running."""
    async with proxied(answer_each, True) as (upstream, proxy, running):
        async with httpx.AsyncClient() as client:
            assert (await client.post(f"{running.url}/up/chat", content=b"{}")).status_code == 200  # (pooled now)

            def broken(*args):
                raise RuntimeError("a bug")

            monkeypatch.setattr(proxy, "read_ask", broken)
            answer = await client.post(f"{running.url}/up/chat", content=b"{}")
        assert answer.status_code == 500
        entry = await finished(proxy)
        assert entry["id"] == 2 and "total_ms" in entry
        await until(lambda: upstream.closed, 5, "the upstream let go")
        assert not [t for t in running.server.tasks if not t.done()]


async def test_a_passed_request_leaves_no_garbage_for_the_collector(course):
    """Each request's objects go when their last user drops them, not at the next collection: a
    reference cycle a request (its relay and its cycle) left behind cost a collection pause in the
    first-byte p99 (measured: bench/proxy_overhead.py, docs/BENCHMARKS.md)."""
    async with proxied(answer_each, course) as (_, _, running):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)

        async def one() -> None:
            writer.write(b"POST /up/x HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)

        for _ in range(20):
            await one()
        gc.collect()
        gc.disable()
        try:
            for _ in range(500):
                await one()
            found = gc.collect()
        finally:
            gc.enable()
        writer.close()
    assert found < 100, f"{found} objects left to the collector by 500 requests"


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize(("head", "as_is"), [
    (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n", CHUNKED),
    (b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}", 62),  # its length as sent
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}", 64),  # (written as _OK)
    (b"HTTP/1.1 200 OK\r\nConnection:keep-alive \r\nContent-Length: 2\r\n\r\n{}", 64),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", None),  # hop-by-hop headers
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-drop\r\nContent-Length: 2\r\n\r\n{}", None),
    (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", None),
    (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n{}", None),
    (b"HTTP/1.1 200 OK\r\nx: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", None),  # a folded line
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", None),  # two framings
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}", None),  # ended by the close
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", None),  # the head not whole in this read
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", None),
    (b"HTTP/1.1 100 Continue\r\n\r\n", None),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", None),
    (b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}", None),
])
def test_which_answers_pass_on_as_they_came(head, as_is):
    made = passes_as_is(head)
    if as_is is None:
        assert made is None
        return
    out, size = made
    assert size == as_is
    assert out == (_OK if b"onnection" in head else head)  # a Connection: keep-alive cut out, nothing else


def script(*steps: bytes | float | None):
    """An upstream handler that plays ``steps`` on its connection: None reads a request, bytes are
    written, a number waits that many seconds; then it reads until the proxy lets go."""
    async def play(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for step in steps:
            if step is None:
                await read_request(reader)
            elif isinstance(step, bytes):
                writer.write(step)
                await writer.drain()
            else:
                await asyncio.sleep(step)
        await reader.read()

    return play


async def exchange(port: int, wait: float) -> tuple[bytes, bool]:
    """One POST on a new connection: (what came within ``wait`` s, whether the proxy closed it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /up/chat HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
    got, closed = b"", False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while data := await reader.read(65536):
                got += data
            closed = True
    writer.close()
    return got, closed


async def test_bytes_an_idle_upstream_connection_got_unasked_make_it_unfit_for_the_next_request(course):
    """An upstream that sends a response nobody asked for (a 408) on a pooled, idle connection: the
    next request goes on another connection and is answered."""
    stray = script(None, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", 0.1,
                   b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n",
                   None, b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nokay")
    async with proxied(stray, course, head_timeout_s=30) as (upstream, proxy, running):
        first, _ = await exchange(running.port, 0.3)
        await asyncio.sleep(0.3)
        second, _ = await exchange(running.port, 2.0)
        entry = await finished(proxy)
    assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b"{}")
    # answered on a new connection (whose first answer is "{}"), not left to wait on the spoilt one
    assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"{}") and entry["status"] == 200
    assert upstream.accepted == 2


async def test_a_stray_line_after_an_answer_passed_as_it_came_never_reaches_a_next_answer(course):
    """The upstream ends an answer with a CRLF too many, which the parser lets be: a client that
    reuses its connection still reads its next answer right."""
    async def crlf(reader, writer) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}\r\n")
            await writer.drain()

    async with proxied(crlf, course) as (_, _, running), httpx.AsyncClient() as client:
        answers = [await client.post(f"{running.url}/up/chat", content=b"{}") for _ in range(3)]
    assert [(a.status_code, a.content) for a in answers] == [(200, b"{}")] * 3


async def test_only_an_answers_first_read_may_begin_a_head_passed_as_it_came(course):
    """A head split where its second read happens to begin like a status line: the client gets the
    answer the upstream sent (503), not one made of the second read."""
    split = script(None, b"HTTP/1.1 503 Unavailable\r\nx-note: ", 0.1,
                   b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
    async with proxied(split, course) as (_, proxy, running):
        got, _ = await exchange(running.port, 0.5)
        entry = await finished(proxy)
    assert got.startswith(b"HTTP/1.1 503 ") and b"x-note: HTTP/1.1 200 OK" in got and entry["status"] == 503
