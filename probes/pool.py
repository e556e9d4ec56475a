"""A small keep-alive connection pool: last idle connection in, first out.

Why not httpcore's own `AsyncConnectionPool`: with many requests queued at once it hands
them all to the first idle connection, because that connection still counts as idle until
its request starts (encode/httpcore#1035), so 200 concurrent probes crawl through a few
connections and their deadlines measure our queue, not the provider. It also checks every
idle connection on every request (about 45% of its CPU under load, PERF_NOTES.md).

Here a request takes an idle connection *before* it awaits anything, so no two requests
ever share one; the most recently used connection is taken first (LIFO keeps the warm ones
warm and lets the rest expire); only the connection taken is checked for expiry. The rest do
expire: connections idle past ``keepalive_expiry`` are closed from the bottom of the stack (the
oldest, by when they were handed back) whenever a connection is taken or handed back. Left
there, they were never taken again after a burst until as many requests came at once (fewer
never dig that deep): a burst's connections could stay open for good, sockets the server had long
closed among them, so the open sockets followed the largest burst so far. (In the soak, whose
hang faults make bursts all the time, the stack was dug through often enough that this did not
show: its fd floor follows the connections in flight, bench/soak.py.)
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import httpcore

from probes.netbackend import TimedBackend

_Key = tuple[bytes, bytes, int]


def _key(origin: httpcore.Origin) -> _Key:
    return origin.scheme, origin.host, origin.port  # httpcore's Origin is not hashable


class LifoPool:
    """Duck-types the part of `httpcore.AsyncConnectionPool` that httpx's transport calls."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None, max_connections: int,
                 keepalive_expiry: float | None, network_backend: TimedBackend,
                 local_address: str | None = None, uds: str | None = None, socket_options=None) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._backend = network_backend
        self._local_address = local_address
        self._uds = uds
        self._socket_options = socket_options
        # Per origin, (handed back at, connection), oldest first: taken from the end, expired from the front.
        self._idle: defaultdict[_Key, list[tuple[float, httpcore.AsyncHTTPConnection]]] = defaultdict(list)
        self._slots = asyncio.Semaphore(max_connections)  # requests in flight = connections busy

    def _take_idle(self, origin: httpcore.Origin) -> tuple[httpcore.AsyncHTTPConnection | None, list]:
        idle = self._idle.get(_key(origin))
        stale = self._expired(idle)
        while idle:
            _, conn = idle.pop()
            if conn.is_available() and not conn.has_expired():
                return conn, stale
            stale.append(conn)
        return None, stale

    def _expired(self, idle: list[tuple[float, httpcore.AsyncHTTPConnection]] | None) -> list:
        """Takes the connections idle past ``keepalive_expiry`` off the front of ``idle``; they are
        to be closed. Only the oldest are looked at: the first one still young ends the search."""
        if not idle or self._keepalive_expiry is None:
            return []
        cutoff = time.monotonic() - self._keepalive_expiry
        n = 0
        while n < len(idle) and idle[n][0] <= cutoff:
            n += 1
        stale = [conn for _, conn in idle[:n]]
        del idle[:n]
        return stale

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        pool_timeout = request.extensions.get("timeout", {}).get("pool")
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpcore.PoolTimeout("no free connection slot within the pool timeout") from None
        origin = request.url.origin
        conn, stale = self._take_idle(origin)  # no await between choosing and using it
        try:
            for old in stale:
                await old.aclose()
            if conn is None:
                conn = httpcore.AsyncHTTPConnection(
                    origin=origin, ssl_context=self._ssl_context, keepalive_expiry=self._keepalive_expiry,
                    http1=True, http2=False, local_address=self._local_address, uds=self._uds,
                    network_backend=self._backend, socket_options=self._socket_options,
                )
            response = await conn.handle_async_request(request)
        except BaseException:
            self._slots.release()
            if conn is not None:
                await conn.aclose()
            raise
        response.stream = _Returning(response.stream, self, origin, conn)
        return response

    async def _give_back(self, origin: httpcore.Origin, conn: httpcore.AsyncHTTPConnection) -> None:
        self._slots.release()
        if conn.is_idle() and not conn.has_expired():
            idle = self._idle[_key(origin)]
            idle.append((time.monotonic(), conn))
            stale = self._expired(idle)
        else:
            stale = [conn]
        for old in stale:
            await old.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, defaultdict(list)
        for conns in idle.values():
            for _, conn in conns:
                await conn.aclose()

    async def __aenter__(self) -> LifoPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Returning:
    """A response body stream that hands its connection back to the pool when closed."""

    def __init__(self, stream, pool: LifoPool, origin: httpcore.Origin, conn: httpcore.AsyncHTTPConnection) -> None:
        self._stream = stream
        self._pool = pool
        self._origin = origin
        self._conn: httpcore.AsyncHTTPConnection | None = conn

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            if conn is not None:
                await self._pool._give_back(self._origin, conn)
