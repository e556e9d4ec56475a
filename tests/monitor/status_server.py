"""A hostile vendor status page on loopback, for the status-poll tests.

Each page is served at ``/<name>/api/v2/summary.json`` (so ``status_page`` is ``<url>/<name>``):

- ``bodies[name]``: a list of bodies served in turn, the last one for good;
- ``/big``: a body of ``big_bytes`` sent in 64 KiB chunks as the client reads it (chunked, no
  Content-Length), never built in memory at once; ``sent["big"]`` counts what went out;
- ``/bomb``: ``big_bytes`` of zeros, gzip-compressed (a few tens of KB on the wire);
- ``/loop``: a redirect to itself, each with a 16 MiB body; ``sent["loop"]`` counts what went out;
- ``/trickle``: a valid summary, one byte a second.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter

from aiohttp import web

GOOD = {"page": {"name": "Example"}, "status": {"indicator": "major", "description": "Partial System Outage"},
        "incidents": [{"id": "inc1", "name": "Elevated errors", "status": "investigating", "impact": "major",
                       "created_at": "2025-03-01T12:00:00Z",
                       "incident_updates": [{"created_at": "2025-03-01T12:01:00Z"}]}]}
# A valid ISO 8601 time whose UTC lies past datetime.max: OverflowError where it is converted.
OVERFLOW = {"status": {"indicator": "minor"},
            "incidents": [{"id": "x", "created_at": "9999-12-31T23:59:59-12:00",
                           "incident_updates": [{"created_at": "0001-01-01T00:00:00+01:00"}]}]}
# Nested past the JSON decoder's recursion limit: RecursionError where it is decoded.
DEEP = b'{"status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


class StatusServer:
    def __init__(self, *, big_bytes: int = 50 * 1024 * 1024) -> None:
        self.bodies: dict[str, list[bytes]] = {}
        self.headers: dict[str, dict[str, str]] = {}  # extra headers on a page's bodies
        self.served: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.big_bytes = big_bytes
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._bomb: bytes | None = None

    def prepare_bomb(self) -> None:
        """Builds the gzip bomb now (50 MB in memory for a moment), outside what a test measures."""
        self._bomb = gzip.compress(bytes(self.big_bytes), compresslevel=9)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, name: str, *bodies: bytes | dict) -> str:
        """Serve these bodies at ``name`` in turn; returns the status page URL (without the summary path)."""
        self.bodies[name] = [b if isinstance(b, bytes) else json.dumps(b).encode() for b in bodies]
        return f"{self.url}/{name}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{name}/api/v2/summary.json", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.served[name] += 1
        if name == "big":
            return await self._stream(request, name, web.StreamResponse(), self.big_bytes)
        if name == "loop":
            response = web.StreamResponse(status=302, headers={"Location": request.path})
            return await self._stream(request, name, response, 16 * 1024 * 1024)
        if name == "bomb":
            if self._bomb is None:
                self._bomb = gzip.compress(bytes(self.big_bytes), compresslevel=9)
            return web.Response(body=self._bomb, headers={"Content-Encoding": "gzip",
                                                          "Content-Type": "application/json"})
        if name == "trickle":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            try:
                for byte in json.dumps(GOOD).encode():
                    await response.write(bytes([byte]))
                    self.sent[name] += 1
                    await asyncio.sleep(1.0)
            except ConnectionError:
                pass
            return response
        bodies = self.bodies.get(name)
        if not bodies:
            return web.Response(status=404)
        body = bodies.pop(0) if len(bodies) > 1 else bodies[0]
        return web.Response(body=body, headers={"Content-Type": "application/json", **self.headers.get(name, {})})

    async def _stream(self, request: web.Request, name: str, response: web.StreamResponse,
                      size: int) -> web.StreamResponse:
        chunk = b"x" * 65536
        await response.prepare(request)
        try:
            while self.sent[name] < size:
                await response.write(chunk)  # waits while the client's window is full
                self.sent[name] += len(chunk)
        except ConnectionError:
            pass
        return response
