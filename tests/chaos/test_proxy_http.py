"""The fault proxy's own HTTP/1.1 server (`chaos.proxyserver`) at a real loopback socket, from a raw
socket client: what the SDKs never send (pipelined requests, HTTP/1.0, a malformed head, arbitrary
bytes) must not crash it or mix answers up, and what they do send (keep-alive, chunked and sized
bodies, ``Expect: 100-continue``, hanging up mid-stream) must work as before.

The proxy and its upstream run on an event loop in a thread of their own, so the tests can use
plain blocking sockets, byte for byte, and hypothesis can drive them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httptools
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.faults import Fault
from chaos.proxy import FaultProxy
from chaos.proxyserve import serve_proxy
from chaos.proxyserver import MAX_HEAD, ProxyServer
from chaos.routes import Route
from tests.conftest import InThread


@dataclass
class Upstream:
    """What the upstream saw: each request's method, path and body; how many streams the client left."""

    seen: list[dict] = field(default_factory=list)
    left: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/echo", self.echo)
        app.router.add_post("/v1/slow", self.slow)
        return app

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append({"method": request.method, "path": request.path_qs, "body": body})
        return web.json_response({"n": len(self.seen), "len": len(body), "body": body.decode("latin-1")})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(int(request.query.get("n", "5"))):
                await resp.write(b'data: {"n": %d}\n\n' % i)
                await asyncio.sleep(0.1)
            await resp.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.left += 1
            raise
        return resp


class Served(InThread):
    """The proxy in front of `Upstream`, on a loop in a background thread."""

    def __init__(self, fast: bool = True, **options) -> None:
        super().__init__()
        self.upstream = Upstream()
        self.fast = fast
        self.options = options

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.upstream.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.proxy = FaultProxy({"up": Route("up", f"http://127.0.0.1:{port}/v1", "openai")}, **self.options)
        self.running = await serve_proxy(self.proxy, port=0, grace=0.5, fast=self.fast)
        self.port = self.running.port

    async def _stop(self) -> None:
        await self.running.stop()
        await self.runner.cleanup()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


@pytest.fixture(scope="module", params=[True, False], ids=["relay", "asgi"])
def served(request) -> Iterator[Served]:
    """On both courses of a request meeting no fault (see tests/chaos/conftest.py's ``course``)."""
    with Served(request.param) as s:
        yield s


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    version: str = "1.1"
    pieces: list[bytes] = field(default_factory=list)


class Reader:
    """Reads whole responses from a socket (httptools' response parser), keeping what follows one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rest = b""

    def response(self) -> Answer:
        done: list[Answer] = []
        state: dict = {"headers": {}, "pieces": []}

        class Callbacks:
            def on_header(self, name: bytes, value: bytes) -> None:
                state["headers"][name.decode().lower()] = value.decode("latin-1")

            def on_headers_complete(self) -> None:
                state["head"] = True

            def on_body(self, body: bytes) -> None:
                state["pieces"].append(body)

            def on_message_complete(self) -> None:
                done.append(Answer(parser.get_status_code(), state["headers"], b"".join(state["pieces"]),
                                   parser.get_http_version(), state["pieces"]))

        parser = httptools.HttpResponseParser(Callbacks())
        data, self.rest = self.rest, b""
        while True:
            if data:
                with contextlib.suppress(httptools.HttpParserError):  # (a second response after the first)
                    parser.feed_data(data)
                if done:
                    return done[0]
            data = self.sock.recv(65536)
            if not data:  # a body ended by the close (httptools has no call for it: the parser waits on)
                assert "head" in state, "the connection closed before a whole response"
                return Answer(parser.get_status_code(), state["headers"], b"".join(state["pieces"]),
                              parser.get_http_version(), state["pieces"])

    def closed(self, within: float = 5.0) -> bool:
        """True if the server closes the connection (FIN or RST) with nothing more sent."""
        self.sock.settimeout(within)
        try:
            extra = self.rest + self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        assert extra == b"", f"sent after the answer: {extra[:200]!r}"
        return True


def post(path: str, body: bytes = b"{}", *, version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    return (b"POST /up/" + path.encode() + b" HTTP/" + version + b"\r\nhost: x\r\ncontent-type: application/json\r\n"
            + b"content-length: %d\r\n" % len(body) + extra + b"\r\n" + body)


# -- keep-alive and pipelining ------------------------------------------------------------------

def test_several_requests_on_one_connection(served):
    with served.connect() as sock:
        reader = Reader(sock)
        seen = []
        for i in range(3):
            sock.sendall(post("echo", b'{"i": %d}' % i))
            answer = reader.response()
            assert answer.status == 200 and "connection" not in answer.headers
            seen.append(json.loads(answer.body)["body"])
        assert seen == ['{"i": 0}', '{"i": 1}', '{"i": 2}']
        assert not reader.closed(0.2)  # still open for a fourth


@pytest.mark.parametrize("late", [False, True], ids=["same-write", "while-the-first-streams"])
def test_a_pipelined_request_is_refused_never_mixed_up(served, late):
    with served.connect() as sock:
        reader = Reader(sock)
        first = post("slow?n=3")
        second = post("echo", b'{"second": true}')
        if late:
            sock.sendall(first)
            time.sleep(0.15)  # the first answer is streaming
            sock.sendall(second)
        else:
            sock.sendall(first + second)
        answer = reader.response()
        assert answer.status == 200 and answer.body.endswith(b"data: [DONE]\n\n")  # the first's answer, whole
        if not late:  # its head had not gone when the second arrived: it says so
            assert answer.headers["connection"] == "close"
        assert reader.closed()  # and nothing of the second: it was never read
    assert all(s["body"] != b'{"second": true}' for s in served.upstream.seen)


# -- request bodies -------------------------------------------------------------------------------

def test_a_chunked_request_body_arrives_whole(served):
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /up/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n")
        time.sleep(0.1)
        sock.sendall(b"5\r\n: 12}\r\n0\r\n\r\n")
        answer = reader.response()
    assert json.loads(answer.body)["body"] == '{"a": 12}'


def test_a_sized_request_body_sent_in_pieces_arrives_whole(served):
    body = b'{"text": "' + b"x" * 200_000 + b'"}'
    request = post("echo", body)
    with served.connect() as sock:
        reader = Reader(sock)
        for i in range(0, len(request), 50_000):
            sock.sendall(request[i:i + 50_000])
            time.sleep(0.01)
        answer = reader.response()
    assert json.loads(answer.body)["len"] == len(body)


def test_expect_100_continue_gets_100_then_the_answer(served):
    body = b'{"expect": 1}'
    with served.connect() as sock:
        sock.sendall(post("echo", body, extra=b"expect: 100-continue\r\n")[:-len(body)])
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = Reader(sock).response()
    assert answer.status == 200 and json.loads(answer.body)["body"] == '{"expect": 1}'


def test_a_body_refused_before_100_continue_ends_the_connection(course):
    with Served(course, max_body=100) as s, s.connect() as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /up/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\nexpect: 100-continue\r\n\r\n")
        answer = reader.response()
        assert answer.status == 413 and answer.headers["connection"] == "close"
        # The client never sent the body: what it sends next could not be read as a request.
        assert reader.closed()


def test_a_body_over_the_cap_is_read_and_let_go_and_the_connection_serves_on(course):
    with Served(course, max_body=1000) as s, s.connect() as sock:
        reader = Reader(sock)
        sock.sendall(b"POST /up/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        sock.sendall(b"%x\r\n%s\r\n" % (3000, b"y" * 3000))  # no length said: refused on arrival
        answer = reader.response()
        assert answer.status == 413
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (3000, b"y" * 3000))  # the rest of it, let go
        sock.sendall(post("echo", b'{"after": 1}'))
        assert json.loads(reader.response().body)["body"] == '{"after": 1}'
        assert s.upstream.seen == [{"method": "POST", "path": "/v1/echo", "body": b'{"after": 1}'}]


# -- HTTP/1.0, HEAD -------------------------------------------------------------------------------

def test_http_1_0_closes_after_the_answer(served):
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(post("echo", version=b"1.0"))
        answer = reader.response()
        assert answer.status == 200 and answer.headers.get("connection") == "close"
        assert reader.closed()


def test_http_1_0_with_keep_alive_keeps_the_connection(served):
    with served.connect() as sock:
        reader = Reader(sock)
        for _ in range(2):
            sock.sendall(post("echo", version=b"1.0", extra=b"connection: keep-alive\r\n"))
            answer = reader.response()
            assert answer.status == 200 and answer.headers["connection"] == "keep-alive"
        assert not reader.closed(0.2)


def test_a_stream_to_http_1_0_is_not_chunked_and_ends_with_the_connection(served):
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(post("slow?n=2", version=b"1.0", extra=b"connection: keep-alive\r\n"))
        answer = reader.response()
        assert "transfer-encoding" not in answer.headers and "content-length" not in answer.headers
        assert answer.body == b'data: {"n": 0}\n\ndata: {"n": 1}\n\ndata: [DONE]\n\n'


def test_a_stream_is_relayed_piece_by_piece(served):
    with served.connect() as sock:
        sock.sendall(post("slow?n=3"))
        answer = Reader(sock).response()
    assert answer.headers["transfer-encoding"] == "chunked"
    assert answer.pieces[:3] == [b'data: {"n": 0}\n\n', b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\n']


def test_a_head_request_gets_a_head_only(served):
    with served.connect() as sock:
        sock.sendall(b"HEAD /up/echo HTTP/1.1\r\nhost: x\r\n\r\n")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200 ")
        sock.sendall(post("echo", b'{"next": 1}'))  # no body came between: the next answer is next
        assert json.loads(Reader(sock).response().body)["body"] == '{"next": 1}'


# -- the client leaving, malformed requests, limits -----------------------------------------------

def test_a_client_hanging_up_mid_stream_stops_the_upstream_read(served):
    before = served.upstream.left
    with served.connect() as sock:
        sock.sendall(post("slow?n=100"))  # ~10 s of events
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
    deadline = time.monotonic() + 5
    while served.upstream.left == before:
        assert time.monotonic() < deadline, "the upstream still writing after the client left"
        time.sleep(0.05)


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /up/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
    b"POST /up/echo HTTP/1.1\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n",
    b"GET /up/\xff HTTP/1.1\r\n\r\n",
    b"GET /up/echo HTTP/1.1\r\nbad header\r\n\r\n",
], ids=["garbage", "two-lengths", "length-and-chunked", "non-ascii", "no-colon"])
def test_a_malformed_request_is_a_400_and_a_close(served, request_bytes):
    with served.connect() as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes)
        answer = reader.response()
        assert answer.status == 400 and answer.headers["connection"] == "close"
        assert reader.closed()


def test_a_head_over_the_cap_is_a_431_and_a_close(served):
    with served.connect() as sock:
        reader = Reader(sock)
        # Just over the cap, then nothing: the server reads it all (so its close is a FIN, not a reset)
        sock.sendall(b"GET /up/echo HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * MAX_HEAD)
        answer = reader.response()
        assert answer.status == 431 and answer.headers["connection"] == "close"
        assert reader.closed()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.builds(lambda a, b: a + b, st.sampled_from([
    b"POST /up/echo HTTP/1.1\r\n", b"GET / HTTP/1.0\r\n",
    b"POST /up/echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
    b"GET /up/echo HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n"]), st.binary(max_size=200)))
def test_arbitrary_bytes_never_kill_the_server(served, data):
    with served.connect() as sock:
        sock.settimeout(2)
        with contextlib.suppress(OSError):  # answered, closed, reset, or still waiting: all fine here
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
    with served.connect() as sock:  # and it still serves
        sock.sendall(post("echo", b'{"still": 1}'))
        assert json.loads(Reader(sock).response().body)["body"] == '{"still": 1}'


# -- the server's own course: lifespan, an application error, stopping ---------------------------

async def test_lifespan_starts_and_closes_the_proxy():
    proxy = FaultProxy({})
    running = await serve_proxy(proxy, port=0)
    assert proxy._pool is not None  # started before the first connection
    await running.stop()
    assert proxy._pool is None


async def _lifespan(receive, send) -> None:
    """A test application's lifespan: started, then stopped when asked."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def test_an_application_error_is_a_500_and_the_server_serves_on():
    calls = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        calls.append(scope["path"])
        if scope["path"] == "/boom":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    server = ProxyServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        for path, expected in (("/boom", b"HTTP/1.1 500 "), ("/fine", b"HTTP/1.1 200 ")):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
            try:
                assert (await asyncio.wait_for(reader.readexactly(13), 5)) == expected
            finally:
                writer.close()
                await writer.wait_closed()
    finally:
        await server.stop(0.5)
    assert calls == ["/boom", "/fine"]


async def test_stop_waits_the_grace_then_ends_a_held_connection():
    proxy = FaultProxy({"up": Route("up", "http://127.0.0.1:9/v1", "openai")})
    proxy.faults.add(Fault("hang", {"seconds": 300}))
    running = await serve_proxy(proxy, port=0, grace=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(post("echo"))
    await asyncio.sleep(0.2)  # held by the hang
    started = time.monotonic()
    await asyncio.wait_for(running.stop(), 10)
    assert 0.25 <= time.monotonic() - started < 5  # the grace, not the hang's 300 s
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), 5) == b""  # ended with no answer
    writer.close()


async def test_a_204_carries_no_body_and_the_connection_serves_on():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        status = 204 if scope["path"] == "/empty" else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-path", scope["path"].encode())]})
        await send({"type": "http.response.body", "body": b"not for a 204", "more_body": False})

    server = ProxyServer(app, host="127.0.0.1", port=0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    try:
        writer.write(b"GET /empty HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 204 ") and b"transfer-encoding" not in head
        writer.write(b"GET /next HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # nothing of the 204's body came first
        assert head.startswith(b"HTTP/1.1 200 ") and b"x-path: /next" in head
    finally:
        writer.close()
        await writer.wait_closed()
        await server.stop(0.5)
