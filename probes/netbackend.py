"""An httpcore network backend that timestamps response bytes when they *arrive*.

A probe's time-to-first-token must not include the time a busy event loop took to
get round to reading the socket. Linux can stamp every received TCP segment in the
kernel (``SO_TIMESTAMPNS``); `TimedStream` reads with ``recvmsg`` and keeps that stamp,
so with 200 probes sharing one loop the measured arrival is still the real one.

Every timestamp here is in the ``time.perf_counter_ns()`` domain, so a probe can take
its own ``perf_counter_ns()`` marks and subtract. A kernel stamp (``CLOCK_REALTIME``) is
converted with the offset ``perf_counter_ns() - time_ns()`` (`clock_offset`) sampled at the
moment of the read. When no stamp comes with the data (a kernel without support, unix sockets) the
fallback is ``perf_counter_ns()`` as ``recvmsg`` returns, and ``last_rx_kernel`` is False.

When one ``recvmsg`` consumes several segments, Linux reports the stamp of the *latest*
of them (segments coalesced in the receive queue carry the newest stamp), so
``last_rx_ns`` is when the last of the returned bytes arrived: for the first read of a
response that may be slightly later than its first byte, never earlier.

Errors map to httpcore's exceptions as httpcore's own anyio backend maps them, always
``raise httpcore.XError(exc) from exc``, so the original `OSError`
(`ConnectionRefusedError`, `socket.gaierror`, `ssl.SSLCertVerificationError`, ...) is the
``__cause__`` (and ``args[0]``) of the httpcore exception raised here. Beware: httpcore
1.0.9's connection pool re-raises with ``raise exc from None`` (encode/httpcore#915,
wontfix), which clears that ``__cause__``. Through httpx the chain therefore reads
``httpx.ConnectError -[__cause__]-> httpcore.ConnectError -[__context__]->
ConnectionRefusedError``; a classifier must follow ``__cause__ or __context__``.
"""

# httpcore's AsyncNetworkStream/AsyncNetworkBackend interface takes `timeout` arguments.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import atexit
import select
import socket
import ssl
import struct
import sys
from collections.abc import Coroutine, Iterable
from time import perf_counter_ns, time_ns
from typing import Any, TypeVar

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

__all__ = ["SO_TIMESTAMPNS", "TimedBackend", "TimedStream", "TimedTLSStream"]

# Python's socket module has no constant for it. 35 is SO_TIMESTAMPNS(_OLD) on every Linux
# architecture but parisc/sparc/alpha; on 64-bit ones the cmsg carries a 64-bit timespec.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_STAMPING = sys.platform == "linux"
_TIMESPEC = struct.Struct("qq")
_ANCBUF = socket.CMSG_SPACE(_TIMESPEC.size)
_SOL_SOCKET = socket.SOL_SOCKET
_TLS_RAW_READ = 65536  # ciphertext read size under TLS (records are at most ~16 KiB)

_T = TypeVar("_T")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _guard(
    aw: Coroutine[Any, Any, _T],
    timeout: float | None,
    on_timeout: type[Exception],
    on_error: type[Exception],
) -> _T:
    """Await ``aw`` under a deadline: deadline -> ``on_timeout``, any `OSError` -> ``on_error``.

    The deadline's `TimeoutError` is told from a socket's ETIMEDOUT (also a `TimeoutError`)
    by where it is caught: socket errors are mapped inside the ``asyncio.timeout`` block.
    Only slow paths come here, so the fast paths arm no timer.
    """
    try:
        async with asyncio.timeout(timeout):
            try:
                return await aw
            except OSError as exc:  # ssl.SSLError is an OSError too
                raise on_error(exc) from exc
    except TimeoutError as exc:
        raise on_timeout(exc) from exc


def _is_readable(sock: socket.socket) -> bool:
    # As httpcore's `is_socket_readable`: a closed socket counts as readable (its next read is b"").
    fd = sock.fileno()
    if fd < 0:
        return True
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


def _tune(sock: socket.socket, socket_options: Iterable[httpcore.SOCKET_OPTION] | None) -> None:
    sock.setblocking(False)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _STAMPING:
        sock.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
    # The caller's options last, so they can override ours (TCP_NODELAY included).
    for option in socket_options or ():
        sock.setsockopt(*option)


def clock_offset(tries: int = 3) -> int:
    """``perf_counter_ns() - time_ns()``, read so that a preemption between the two reads cannot
    skew it (a loaded machine made one such gap 0.64 ms): each realtime read is bracketed by two
    perf_counter reads, and the tightest bracket of up to ``tries`` is taken."""
    width, offset = None, 0
    for _ in range(tries):
        before = perf_counter_ns()
        real = time_ns()
        after = perf_counter_ns()
        if width is None or after - before < width:
            width, offset = after - before, (before + after) // 2 - real
        if width < 20_000:  # 20 us: no preemption in between
            break
    return offset


class TimedStream(AsyncNetworkStream):
    """A plain socket stream that records when its bytes arrived.

    Timing attributes, all ``perf_counter_ns()`` values (``None`` until they happen):

    ``dns_started_ns``, ``connect_started_ns``, ``connected_ns``
        Name resolution began, the TCP connect began, it completed.
    ``tls_done_ns``
        The TLS handshake completed; ``None`` on a plain connection.
    ``last_rx_ns``
        Arrival of the bytes most recently returned by `read` (an EOF leaves it alone).
    ``last_rx_kernel``
        Whether ``last_rx_ns`` is a kernel stamp (True) or the fallback read time.
    ``request_started_ns``
        The first write after the previous read: when the current HTTP/1.1 request began
        on the wire. A request on a reused keep-alive connection sets it anew.
    ``requests``
        How many request starts this connection has seen; 1 means it was opened for the
        current request.
    """

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        *,
        dns_started_ns: int,
        connect_started_ns: int,
        connected_ns: int,
    ) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._rx_since_tx = True  # a read happened since the last write: the next write starts a request
        self.dns_started_ns: int | None = dns_started_ns
        self.connect_started_ns: int | None = connect_started_ns
        self.connected_ns: int | None = connected_ns
        self.tls_done_ns: int | None = None
        self.last_rx_ns: int | None = None
        self.last_rx_kernel = False
        self.request_started_ns: int | None = None
        self.requests = 0

    # -- receiving -------------------------------------------------------------------------

    def _recv_now(self, max_bytes: int) -> bytes:
        """One non-blocking ``recvmsg``; raises `BlockingIOError` when nothing is there."""
        data, ancdata, _flags, _addr = self._sock.recvmsg(max_bytes, _ANCBUF)
        if data:
            now = perf_counter_ns()
            for level, kind, cdata in ancdata:
                if kind == SO_TIMESTAMPNS and level == _SOL_SOCKET and len(cdata) >= 16:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)
                    stamp = sec * 1_000_000_000 + nsec + clock_offset()
                    # A stamp "after" now can only come from a realtime clock step: clamp.
                    self.last_rx_ns = stamp if stamp < now else now
                    self.last_rx_kernel = True
                    return data
            self.last_rx_ns = now
            self.last_rx_kernel = False
        return data

    async def _wait_readable(self) -> None:
        loop = self._loop
        fut = loop.create_future()
        self._waiter = fut
        loop.add_reader(self._fd, _wake, fut)
        try:
            await fut
        finally:
            # `aclose` may have taken the reader off already (and the fd may since be reused).
            if self._waiter is fut:
                self._waiter = None
                loop.remove_reader(self._fd)

    async def _recv_waiting(self, max_bytes: int) -> bytes:
        while True:
            await self._wait_readable()
            try:
                return self._recv_now(max_bytes)
            except BlockingIOError:
                continue

    async def _recv(self, max_bytes: int) -> bytes:
        """Receive without request accounting or error mapping (the TLS layer's transport)."""
        try:
            return self._recv_now(max_bytes)
        except BlockingIOError:
            return await self._recv_waiting(max_bytes)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._rx_since_tx = True
        try:
            return self._recv_now(max_bytes)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc
        return await _guard(self._recv_waiting(max_bytes), timeout, httpcore.ReadTimeout, httpcore.ReadError)

    # -- sending ---------------------------------------------------------------------------

    def _note_write(self) -> None:
        if self._rx_since_tx:
            self._rx_since_tx = False
            self.request_started_ns = perf_counter_ns()
            self.requests += 1

    async def _send(self, data: bytes) -> None:
        """Send all of ``data`` without request accounting or error mapping."""
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            await self._loop.sock_sendall(self._sock, memoryview(data)[sent:])

    async def _write_bytes(self, data: bytes, timeout: float | None) -> None:
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc
        if sent < len(data):
            await _guard(
                self._loop.sock_sendall(self._sock, memoryview(data)[sent:]),
                timeout,
                httpcore.WriteTimeout,
                httpcore.WriteError,
            )

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._note_write()
        await self._write_bytes(buffer, timeout)

    # -- the rest of the interface ---------------------------------------------------------

    async def aclose(self) -> None:
        waiter = self._waiter
        if waiter is not None:  # a read is parked on this fd: unpark it before the fd goes away
            self._waiter = None
            self._loop.remove_reader(self._fd)
            if not waiter.done():
                waiter.set_exception(OSError("the stream was closed during a read"))
        self._sock.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> TimedTLSStream:
        try:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            ssl_object = ssl_context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
            tls = TimedTLSStream(self, ssl_object, incoming, outgoing)
            await _guard(tls._handshake(), timeout, httpcore.ConnectTimeout, httpcore.ConnectError)
        except BaseException:
            await self.aclose()
            raise
        self.tls_done_ns = perf_counter_ns()
        return tls

    def get_extra_info(self, info: str) -> Any:
        sock = self._sock
        if info == "socket":
            return sock
        if info == "is_readable":
            return _is_readable(sock)
        if info in ("client_addr", "server_addr"):
            try:
                addr = sock.getsockname() if info == "client_addr" else sock.getpeername()
            except OSError:
                return None
            return addr[:2] if sock.family == socket.AF_INET6 else addr
        return None  # "ssl_object" included: this stream is not encrypted


_stamp_keeper: socket.socket | None = None


def _keep_stamping_on() -> None:
    """Hold one socket with ``SO_TIMESTAMPNS`` for the life of the process.

    Linux stamps received packets only while some socket wants stamps, and switches that
    on through a deferred work item when the count goes 0 -> 1. Without a keeper, the first
    segments of a connection opened when no other stamping socket is alive can arrive
    unstamped (seen here in ~half of fresh loopback connections). With one, every
    connection's ``setsockopt`` is a plain increment that takes effect at once.
    """
    global _stamp_keeper
    if _stamp_keeper is not None or not _STAMPING:
        return
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # never bound: receives nothing
    try:
        keeper.setsockopt(_SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        keeper.close()
        return
    _stamp_keeper = keeper
    atexit.register(keeper.close)


class TimedBackend(AsyncNetworkBackend):
    """Opens `TimedStream` connections; stateless, so one instance may serve any number of pools."""

    def __init__(self) -> None:
        _keep_stamping_on()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> TimedStream:
        loop = asyncio.get_running_loop()
        dns_started = connect_started = perf_counter_ns()
        try:
            # As in anyio, one deadline covers resolution and connect.
            async with asyncio.timeout(timeout):
                try:  # an IP literal needs no lookup, nor a trip to the resolver thread pool
                    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
                except socket.gaierror:
                    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                connect_started = perf_counter_ns()
                sock = await _connect_first(loop, infos, local_address, socket_options)
        except TimeoutError as exc:  # the deadline, or the kernel's ETIMEDOUT
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:  # socket.gaierror included
            raise httpcore.ConnectError(exc) from exc
        return TimedStream(
            sock,
            loop,
            dns_started_ns=dns_started,
            connect_started_ns=connect_started,
            connected_ns=perf_counter_ns(),
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> TimedStream:
        loop = asyncio.get_running_loop()
        started = perf_counter_ns()  # no name to resolve: DNS takes no time
        try:
            async with asyncio.timeout(timeout):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    _tune(sock, socket_options)
                    await loop.sock_connect(sock, path)
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ConnectError(exc) from exc
        return TimedStream(
            sock, loop, dns_started_ns=started, connect_started_ns=started, connected_ns=perf_counter_ns()
        )

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect_first(
    loop: asyncio.AbstractEventLoop,
    infos: list[tuple[Any, ...]],
    local_address: str | None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
) -> socket.socket:
    """Connect to the first address that accepts, in resolver order (no happy eyeballs).

    When all fail, the last failure is raised, the others attached as notes: with
    ``localhost`` → [::1, 127.0.0.1] the IPv4 answer is usually the telling one.
    """
    options = list(socket_options or ())
    errors: list[OSError] = []
    try:
        for family, type_, proto, _canonname, address in infos:
            sock = socket.socket(family, type_, proto)
            try:
                _tune(sock, options)
                if local_address:
                    sock.bind((local_address, 0))
                await loop.sock_connect(sock, address)
                return sock
            except OSError as exc:
                sock.close()
                errors.append(exc)
            except BaseException:
                sock.close()
                raise
        raise _last_with_notes(errors)
    finally:
        errors.clear()  # break the frame -> list -> exception -> traceback -> frame cycle


def _last_with_notes(errors: list[OSError]) -> OSError:
    last = errors[-1]
    for earlier in errors[:-1]:
        last.add_note(f"also failed: {earlier!r}")
    return last


# At the end: probes.tlsstream builds on TimedStream above, and TimedStream.start_tls hands out
# its TLS streams, so the two modules import each other only once both are defined.
from probes.tlsstream import TimedTLSStream  # noqa: E402
