"""`TimedBackend` through `make_client`, against real loopback servers, under asyncio and uvloop.

The servers run on their own event-loop thread: the arrival tests block the client's
loop with ``time.sleep`` and the server must keep sending meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
import trustme
from aiohttp import web

from probes.client import TimedTransport, make_client, stream_timing
from probes.netbackend import SO_TIMESTAMPNS, TimedBackend, TimedStream, TimedTLSStream
from tests.conftest import need

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Run = Callable[[Coroutine[Any, Any, Any]], Any]

BLOCK_S = 0.3  # how long the arrival tests block the client's loop
MIN_LAG_NS = 200_000_000  # the stamp must be at least this much older than the late read
CLOCKS_NS = 5_000_000  # what a kernel stamp (realtime clock) may be off in perf_counter time


# -- harness ---------------------------------------------------------------------------------


class ServerThread:
    """Loopback servers on a private event-loop thread; handler failures re-raised at `close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="loopback-server", daemon=True)
        self._thread.start()
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.errors: list[BaseException] = []

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=5)

    def soon(self, callback: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(callback)

    def serve(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> int:
        async def start() -> int:
            server = await asyncio.start_server(partial(self._run_handler, handler), "127.0.0.1", 0, ssl=ssl_context)
            self._cleanups.append(partial(self._stop_server, server))
            return server.sockets[0].getsockname()[1]

        return self.call(start())

    def serve_unix(self, handler: Handler, path: str) -> None:
        async def start() -> None:
            server = await asyncio.start_unix_server(partial(self._run_handler, handler), path)
            self._cleanups.append(partial(self._stop_server, server))

        self.call(start())

    def serve_app(self, app: web.Application) -> int:
        async def start() -> int:
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._cleanups.append(runner.cleanup)
            return runner.addresses[0][1]

        return self.call(start())

    @staticmethod
    async def _stop_server(server: asyncio.Server) -> None:
        server.close()
        await server.wait_closed()

    async def _run_handler(self, handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, as clients do
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self._handlers.discard(task)
            writer.transport.abort()

    def close(self) -> None:
        async def stop() -> None:
            for cleanup in reversed(self._cleanups):
                await cleanup()
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            for _ in range(3):  # let aborted transports run connection_lost and close their sockets
                await asyncio.sleep(0)

        try:
            self.call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.loop.close()
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def server() -> Iterator[ServerThread]:
    srv = ServerThread()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Runs the client side on a fresh loop of each kind: production runs on uvloop."""
    uvloop = pytest.importorskip("uvloop") if request.param == "uvloop" else None
    factory = uvloop.new_event_loop if uvloop else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner.run


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for a trustme CA and a cert for 127.0.0.1."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def _kernel_gives_rx_stamps() -> bool:
    TimedBackend()  # holds the process-wide stamping socket, as in production
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        with client:
            try:
                client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                return False
            client.connect(listener.getsockname())
            peer, _ = listener.accept()
            with peer:
                peer.sendall(b"x")
                _, ancdata, _, _ = client.recvmsg(16, socket.CMSG_SPACE(16))
    return any(level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS for level, kind, _ in ancdata)


def require_kernel_stamps() -> None:
    """Skip where the kernel gives no receive stamps; fail under CI=true, whose kernel must (`need`)."""
    need(_kernel_gives_rx_stamps(),
         "the kernel returns no SO_TIMESTAMPNS cmsg on TCP recvmsg: arrival stamps fall back to read time")


@pytest.fixture(scope="module")
def kernel_stamps() -> None:
    require_kernel_stamps()


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what led to it, as a traceback prints them.

    The backend raises ``httpcore.XError(exc) from exc``, but httpcore's pool re-raises
    with ``raise exc from None`` (connection_pool.py), which clears that ``__cause__``;
    the original error stays reachable as ``__context__``, so follow both.
    """
    chain = []
    current: BaseException | None = exc
    while current is not None:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The next request head, or None once the client closed the connection."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None


@dataclass
class Gate:
    """``opened`` (set from the client's side) lets the server send b"later"; ``sent`` says it did."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)
    sent: threading.Event = field(default_factory=threading.Event)


def gated_handler(gate: Gate) -> Handler:
    """``/gated`` answers b"first", then b"later" once ``gate`` opens; anything else b"hello"."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (head := await read_request(reader)) is not None:
            if head.startswith(b"GET /gated "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
                await writer.drain()
                await gate.opened.wait()
                gate.opened.clear()
                writer.write(b"later")
                await writer.drain()
                gate.sent.set()
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                await writer.drain()

    return handler


async def check_arrival(client: httpx.AsyncClient, url: str, srv: ServerThread, gate: Gate) -> TimedStream:
    """Chunk 2 arrives while the client's loop is blocked; its stamp must show that, not the late read."""
    async with client.stream("GET", url) as response:
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"first"
        stream = stream_timing(response)
        assert stream is not None
        gate.sent.clear()
        released = time.perf_counter_ns()
        srv.soon(gate.opened.set)
        # The point: a loop too busy to read, from before the chunk is sent until well after it arrived.
        assert gate.sent.wait(10)
        sent = time.perf_counter_ns()
        time.sleep(BLOCK_S)  # noqa: ASYNC251
        assert await anext(chunks) == b"later"
        read_done = time.perf_counter_ns()
        assert [chunk async for chunk in chunks] == []
    assert stream.last_rx_kernel
    assert stream.last_rx_ns is not None
    # When it came in, however late the server sent it. The kernel stamps by CLOCK_REALTIME, turned into
    # perf_counter time with the offset at the read: 5 ms for the two clocks drifting apart over the
    # blocked 0.3 s (a CI run saw the stamp 0.64 ms before `released`).
    assert released - CLOCKS_NS <= stream.last_rx_ns <= sent + CLOCKS_NS
    assert read_done - stream.last_rx_ns >= MIN_LAG_NS  # not when the loop got round to reading it
    return stream


# -- plain HTTP ------------------------------------------------------------------------------


def streaming_app() -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for part in (b"data: alpha\n\n", b"data: beta\n\n", b"data: [DONE]\n\n"):
            await response.write(part)
        await response.write_eof()
        return response

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"pong")

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/small", small)
    return app


def test_plain_stream_and_keepalive_reuse(run: Run, server: ServerThread) -> None:
    port = server.serve_app(streaming_app())

    async def main() -> None:
        async with make_client() as client:
            async with client.stream("GET", f"http://127.0.0.1:{port}/stream") as response:
                body = b"".join([chunk async for chunk in response.aiter_bytes()])
            assert response.status_code == 200
            assert body == b"data: alpha\n\ndata: beta\n\ndata: [DONE]\n\n"
            stream = stream_timing(response)
            assert type(stream) is TimedStream
            assert stream.requests == 1
            assert stream.tls_done_ns is None
            first_start, first_rx = stream.request_started_ns, stream.last_rx_ns
            assert first_start is not None and first_rx is not None
            assert stream.dns_started_ns <= stream.connect_started_ns <= stream.connected_ns <= first_start
            assert first_start < first_rx <= time.perf_counter_ns()
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
            assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
            assert isinstance(stream.get_extra_info("socket"), socket.socket)
            assert stream.get_extra_info("ssl_object") is None
            assert stream.get_extra_info("is_readable") is False

            connected = stream.connected_ns
            response = await client.get(f"http://127.0.0.1:{port}/small")
            assert response.content == b"pong"
            assert stream_timing(response) is stream  # the keep-alive connection was reused
            assert stream.requests == 2
            assert stream.connected_ns == connected
            assert stream.request_started_ns is not None and stream.request_started_ns > first_rx
            assert stream.last_rx_ns is not None and stream.last_rx_ns > stream.request_started_ns

    run(main())


def test_plain_arrival_is_stamped_not_read_time(run: Run, server: ServerThread, kernel_stamps: None) -> None:
    gate = Gate()
    port = server.serve(gated_handler(gate))

    async def main() -> None:
        async with make_client() as client:
            stream = await check_arrival(client, f"http://127.0.0.1:{port}/gated", server, gate)
            assert stream.requests == 1

    run(main())


def test_stream_timing_is_none_for_other_transports(run: Run, server: ServerThread) -> None:
    port = server.serve_app(streaming_app())

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/small")
        assert response.content == b"pong"
        assert stream_timing(response) is None

    run(main())


def test_unix_socket(run: Run, server: ServerThread) -> None:
    gate = Gate()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s.sock")
        server.serve_unix(gated_handler(gate), path)

        async def main() -> None:
            async with httpx.AsyncClient(transport=TimedTransport(uds=path)) as client:
                before = time.perf_counter_ns()
                response = await client.get("http://local/")
            assert response.content == b"hello"
            stream = stream_timing(response)
            assert stream is not None and stream.requests == 1
            assert stream.last_rx_ns is not None and before < stream.last_rx_ns <= time.perf_counter_ns()
            assert stream.dns_started_ns == stream.connect_started_ns

        run(main())


def test_backend_directly(run: Run, server: ServerThread) -> None:
    """Name resolution, socket options, EOF, `is_readable` and closing under a parked read."""
    hang_up = asyncio.Event()

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(4) == b"ping"
        writer.write(b"pong")
        await writer.drain()
        await hang_up.wait()
        writer.write_eof()
        await reader.read()

    port = server.serve(talk)

    async def main() -> None:
        backend = TimedBackend()
        # "localhost" goes through loop.getaddrinfo, and maybe through a refused ::1 first.
        options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        stream = await backend.connect_tcp("localhost", port, timeout=2.0, socket_options=options)
        try:
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS) == 1
            assert stream.dns_started_ns < stream.connect_started_ns < stream.connected_ns
            await stream.write(b"ping")
            assert stream.requests == 1
            assert await stream.read(100, timeout=2.0) == b"pong"
            rx = stream.last_rx_ns
            assert rx is not None and rx > stream.request_started_ns
            assert stream.get_extra_info("is_readable") is False
            server.soon(hang_up.set)
            assert await stream.read(100, timeout=2.0) == b""  # EOF
            assert stream.last_rx_ns == rx  # no bytes, no new arrival
            assert stream.get_extra_info("is_readable") is True
        finally:
            await stream.aclose()

        stream = await backend.connect_tcp("127.0.0.1", port, timeout=2.0)
        try:
            parked = asyncio.ensure_future(stream.read(100))
            await asyncio.sleep(0.01)
            assert not parked.done()
        finally:
            await stream.aclose()  # wakes the parked read rather than leaving it on a dead fd
        with pytest.raises(httpcore.ReadError):
            await parked
        with pytest.raises(httpcore.ReadError):
            await stream.read(100)
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"x")

    run(main())


# -- HTTPS -----------------------------------------------------------------------------------


def test_https_body_tls_timing_and_arrival(
    run: Run, server: ServerThread, tls: tuple[ssl.SSLContext, ssl.SSLContext], kernel_stamps: None
) -> None:
    server_ctx, client_ctx = tls
    gate = Gate()
    port = server.serve(gated_handler(gate), ssl_context=server_ctx)

    async def main() -> None:
        async with make_client(verify=client_ctx) as client:
            response = await client.get(f"https://127.0.0.1:{port}/")
            assert response.content == b"hello"
            stream = stream_timing(response)
            assert type(stream) is TimedTLSStream
            assert stream.requests == 1
            assert stream.tls_done_ns is not None and stream.connected_ns is not None
            assert stream.connected_ns < stream.tls_done_ns <= stream.request_started_ns
            ssl_object = stream.get_extra_info("ssl_object")
            assert isinstance(ssl_object, ssl.SSLObject) and ssl_object.version() is not None
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)

            again = await check_arrival(client, f"https://127.0.0.1:{port}/gated", server, gate)
            assert again is stream  # through the TLS wrapper, on the reused connection
            assert stream.requests == 2

    run(main())


def test_https_untrusted_certificate_is_connect_error(
    run: Run, server: ServerThread, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    port = server.serve(gated_handler(Gate()), ssl_context=tls[0])

    async def main() -> None:
        async with make_client() as client:  # the default CA bundle does not know trustme's CA
            with pytest.raises(httpx.ConnectError) as info:
                await client.get(f"https://127.0.0.1:{port}/")
        chain = causes(info.value)
        assert isinstance(chain[1], httpcore.ConnectError)
        assert any(isinstance(exc, ssl.SSLCertVerificationError) for exc in chain)

    run(main())


# -- failures --------------------------------------------------------------------------------


def test_connection_refused(run: Run) -> None:
    # Bound but not listening: the kernel answers a SYN with RST, and nobody can take the port.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]

        async def main() -> None:
            async with make_client() as client:
                with pytest.raises(httpx.ConnectError) as info:
                    await client.get(f"http://127.0.0.1:{port}/")
            chain = causes(info.value)
            assert isinstance(chain[1], httpcore.ConnectError)
            assert isinstance(chain[2], ConnectionRefusedError)

        run(main())


def test_read_timeout(run: Run, server: ServerThread) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # never answer; wait for the client to give up and close

    port = server.serve(silent)

    async def main() -> None:
        async with make_client(timeout=httpx.Timeout(5.0, read=0.2)) as client:
            started = time.perf_counter()
            with pytest.raises(httpx.ReadTimeout) as info:
                await client.get(f"http://127.0.0.1:{port}/")
            assert 0.15 < time.perf_counter() - started < 2.0
        assert isinstance(info.value.__cause__, httpcore.ReadTimeout)

    run(main())


def test_connect_timeout(run: Run) -> None:
    # A listener with backlog 0 that never accepts: once one connection fills its accept
    # queue, Linux drops further SYNs, so connect() hangs until the deadline.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = [socket.socket() for _ in range(2)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(address)

            async def main() -> None:
                async with make_client(timeout=httpx.Timeout(5.0, connect=0.2)) as client:
                    try:
                        await client.get(f"http://127.0.0.1:{address[1]}/")
                    except httpx.ConnectTimeout as exc:
                        assert isinstance(exc.__cause__, httpcore.ConnectTimeout)
                        return
                    except httpx.TransportError as exc:
                        pytest.skip(f"this kernel did not drop SYNs on a full backlog-0 queue ({exc!r})")
                    pytest.fail("connected to a listener that never accepts")

            run(main())
        finally:
            for filler in fillers:
                filler.close()


def test_reset_mid_body(run: Run, server: ServerThread) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # SO_LINGER 0 + close: RST instead of FIN

    port = server.serve(reset)

    async def main() -> None:
        async with make_client() as client:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)) as info:
                async with client.stream("GET", f"http://127.0.0.1:{port}/") as response:
                    await response.aread()
        # Linux reports the RST as ECONNRESET once the queued bytes are read.
        assert isinstance(info.value, httpx.ReadError)
        assert any(isinstance(exc, ConnectionResetError) for exc in causes(info.value))

    run(main())


def test_clock_offset_is_not_skewed_by_a_preemption_between_its_reads(monkeypatch) -> None:
    import probes.netbackend as nb

    # perf_counter runs 1_000 ns ahead of realtime. The first bracket has 2 ms in it (the thread
    # was preempted after the realtime read); the second is tight.
    perf = iter([10_000, 2_010_000, 3_000_000, 3_000_200])
    real = iter([9_000 + 1_000, 3_000_100 - 1_000])
    monkeypatch.setattr(nb, "perf_counter_ns", lambda: next(perf))
    monkeypatch.setattr(nb, "time_ns", lambda: next(real))
    assert nb.clock_offset() == 1_000  # not the first bracket's 1_000_000
