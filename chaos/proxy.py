"""The fault proxy: an ASGI reverse proxy that breaks providers the way real outages do.

``http://127.0.0.1:8480/<route>/...`` forwards to the route's upstream (`chaos.routes`):
the product changes only its base URL. With no fault in force a request passes through
untouched: headers as sent (less hop-by-hop ones and airisk's own ``X-AIRisk-*``), the
body, and the response streamed chunk for chunk, one client write per upstream read, so a
product sees the same first-token time through the proxy as without it.

When faults are in force (`chaos.faults`, set through the control API under
``/_airisk/``, `chaos.proxycontrol`), each request gets a `Plan`:

- an error fault answers in the provider's own status, headers and body, and the request
  never reaches the upstream (as when the provider's edge refuses it);
- ``hang`` holds the connection silent, ``connection_reset`` sends a TCP RST,
  ``unreachable`` closes the connection with no response;
- ``first_token_delay`` holds the response back once, before its first byte (not once per
  chunk: a TCP-level delay on every read would turn 100 ms into seconds of stutter);
- stream faults edit the real upstream stream (`chaos.rewrite.StreamEditor`), and the
  content faults (empty, filtered, wrong answer) send a synthesized answer instead.

Every request goes into a bounded request log (route, model, ``X-AIRisk-Feature``,
status, faults, timings), which drills read and `airisk proxy --store` keeps in the
monitor's database.

Why this shape: measured here (PERF_NOTES.md, bench/proxy_overhead.py), a framework +
httpx pass-through keeps ~0.1x direct throughput; raw ASGI on uvicorn with a lean upstream
client (`chaos.upstream`: asyncio protocol + httptools, LIFO keep-alive pool) keeps most
of it. A RST needs the socket, which ASGI does not expose: `AiriskHttpProtocol` (the uvicorn
protocol `serve_proxy` runs) puts the transport in ``scope["extensions"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from chaos.asks import sniff_ask
from chaos.faults import Fault, FaultSet, Plan, RequestInfo
from chaos.requestlog import LOG_SIZE, RequestLog
from chaos.rewrite import SYNTHESIZED, StreamEditor, is_stream, needs_editing, synthesize
from chaos.routes import Route
from chaos.speakers import SPEAKERS, Ask
from chaos.upstream import Response, UpstreamPool

DEFAULT_PORT = 8480
_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
                  b"upgrade", b"host", b"content-length"})
_TRANSPORT_KEY = "airisk.transport"


class FaultProxy:
    """The ASGI application. One event loop owns it (the fault set and the log are not locked)."""

    def __init__(self, routes: dict[str, Route], *, faults: FaultSet | None = None, log_size: int = LOG_SIZE,
                 sink: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.routes = routes
        self.faults = faults or FaultSet()
        self.log = RequestLog(log_size, sink)
        self._pool: UpstreamPool | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._pool is None:
            # No read timeout: the product's client decides how long it waits, as it would for
            # the provider. Bytes pass through as the upstream sent them (no decompression).
            self._pool = UpstreamPool()

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/_airisk/"):
                from chaos.proxycontrol import handle

                await handle(self, scope, receive, send)
                return
            name, _, rest = path[1:].partition("/")
            route = self.routes.get(name)
            if route is None:
                known = ", ".join(sorted(self.routes))
                await send_json(send, 404, {"error": f"route {name!r}: unknown (known: {known})"})
                return
            await self._proxy(route, "/" + rest, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- one request ----------------------------------------------------------------------------

    async def _proxy(self, route: Route, path: str, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        body = await read_body(receive)
        headers: list[tuple[bytes, bytes]] = []
        feature = None
        for key, value in scope["headers"]:
            if key in _HOP or key.startswith(b"x-airisk-"):
                if key == b"x-airisk-feature":
                    feature = value.decode("latin-1")
                continue
            headers.append((key, value))
        query = scope["query_string"].decode("latin-1")
        ask = sniff_ask(route.dialect, path, body, dict(parse_qsl(query)) if query else None)
        entry = self.log.open({
            "at": time.time(), "route": route.name, "method": scope["method"], "path": path,
            "upstream": route.upstream + path, "model": ask.model if ask else None, "feature": feature,
            "stream": ask.stream if ask else None, "status": None, "faults": [],
        })
        plan = self.faults.plan(RequestInfo(route=route.name, method=scope["method"], path=path,
                                            model=entry["model"], feature=feature))
        entry["faults"] = plan.names
        try:
            if plan.respond is not None:
                if plan.first_token_delay_s:  # a slow error is still slow
                    await asyncio.sleep(plan.first_token_delay_s)
                await self._respond_fault(route, plan.respond, ask, scope, receive, send, entry)
            elif plan.stream is not None and plan.stream.type in SYNTHESIZED and ask is not None and (
                    synth := synthesize(route.dialect, plan.stream.type, ask)) is not None:
                await self._send_synthesized(synth, plan, send, entry, started)
            else:
                await self._forward(route, path, query, scope, headers, body, plan, ask, receive, send, entry,
                                    started)
        finally:
            entry["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self.log.done(entry)

    async def _forward(self, route: Route, path: str, query: str, scope: dict[str, Any],
                       headers: list[tuple[bytes, bytes]], body: bytes, plan: Plan, ask: Ask | None,
                       receive: Callable, send: Callable, entry: dict[str, Any], started: float) -> None:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        editing = needs_editing(plan)
        if editing:  # the editor reads events: no compressed body
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"] + [(b"accept-encoding", b"identity")]
        url = route.upstream + path + ("?" + query if query else "")
        if plan.first_token_delay_s:
            # Before asking the upstream, not before relaying its answer: the whole answer shifts
            # once, later tokens keep their pace (held back, they would arrive as one burst).
            await asyncio.sleep(plan.first_token_delay_s)
        try:
            response = await self._pool.request(scope["method"], url, headers, body)
        except (OSError, ValueError) as exc:
            entry["status"], entry["error"] = 502, f"upstream unreachable: {exc!s}"[:300]
            await send_json(send, 502, {"error": {
                "message": f"airisk fault proxy: cannot reach {route.upstream} ({exc!s})"[:500],
                "type": "airisk_proxy_error"}}, extra=[(b"x-airisk-proxy-error", b"upstream")])
            return
        try:
            status = response.status
            entry["status"] = status
            streaming = is_stream(response.header(b"content-type") or b"")
            edit = editing and streaming and status == 200
            out_headers = [(k, v) for k, v in response.headers
                           if (lk := k.lower()) not in _HOP or (lk == b"content-length" and not edit)]
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            entry["ttfb_ms"] = round((time.perf_counter() - started) * 1000, 3)
            if edit:
                await self._send_edited(route, plan, ask, response, scope, receive, send, entry)
            elif streaming:
                await self._send_watched(response, receive, send, entry)
            else:
                async for data in response.chunks():
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError as exc:  # the upstream went away mid-answer: so does the product's answer
            entry["error"] = f"upstream: {exc!s}"[:300]
            await _drop(scope, reset=False)
        finally:
            response.close()

    async def _send_watched(self, response: Response, receive: Callable, send: Callable,
                            entry: dict[str, Any]) -> None:
        """A stream, passed on chunk for chunk; if the product hangs up, stop reading the upstream."""
        async with _client_gone(receive) as watch:
            async for data in response.chunks():
                await send({"type": "http.response.body", "body": data, "more_body": True})
            watch.finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        if watch.gone:
            entry["error"] = "client disconnected"

    async def _send_edited(self, route: Route, plan: Plan, ask: Ask | None, response: Response,
                           scope: dict[str, Any], receive: Callable, send: Callable, entry: dict[str, Any]) -> None:
        editor = StreamEditor(plan, route.dialect, ask)
        gap = plan.token_gap_s
        last = 0.0
        loop = asyncio.get_running_loop()
        async with _client_gone(receive) as watch:
            reads = response.chunks()
            while not editor.ended:
                data = await anext(reads, None)
                for out in editor.feed(data) if data is not None else editor.close():
                    if out.paced and gap is not None:
                        if last:
                            await asyncio.sleep(max(0.0, last + gap - loop.time()))
                        last = loop.time()
                    if out.data:
                        await send({"type": "http.response.body", "body": out.data, "more_body": True})
                    if out.end == "stall":
                        entry["broken"] = editor.broke
                        # silent; the watch ends this early if the product hangs up first
                        await asyncio.sleep(plan.stream.params["seconds"] if plan.stream else 0)
                        await _drop(scope, reset=False)
                        return
            entry["broken"] = editor.broke
            watch.finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        if watch.gone:
            entry["error"] = "client disconnected"

    async def _send_synthesized(self, synth, plan: Plan, send: Callable, entry: dict[str, Any],
                                started: float) -> None:
        if plan.first_token_delay_s:
            await asyncio.sleep(plan.first_token_delay_s)
        headers = [(k.encode(), v.encode()) for k, v in synth.headers.items()]
        entry["status"] = synth.status
        await send({"type": "http.response.start", "status": synth.status, "headers": headers})
        entry["ttfb_ms"] = round((time.perf_counter() - started) * 1000, 3)
        gap = plan.token_gap_s if plan.token_gap_s is not None else 0.0
        for i, frame in enumerate(synth.frames):
            if i and gap:
                await asyncio.sleep(gap)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _respond_fault(self, route: Route, fault: Fault, ask: Ask | None, scope: dict[str, Any],
                             receive: Callable, send: Callable, entry: dict[str, Any]) -> None:
        if fault.type == "hang":
            await _hold(receive, fault.params["seconds"])
            await _drop(scope, reset=False)
            return
        if fault.type in ("connection_reset", "unreachable"):
            await _drop(scope, reset=fault.type == "connection_reset")
            return
        kind = "server_error" if fault.type == "flapping" else fault.type
        status, headers, body = SPEAKERS[route.dialect].error(
            kind, status=fault.params.get("status"), retry_after=fault.params.get("retry_after"), ask=ask)
        entry["status"] = status
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()]
                    + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})


# -- ASGI helpers -------------------------------------------------------------------------------

async def read_body(receive: Callable) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def send_json(send: Callable, status: int, data: Any, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Watch:
    __slots__ = ("finished", "gone")

    def __init__(self) -> None:
        self.gone = False
        self.finished = False  # set before the last send: the disconnect that follows is the normal end


@contextlib.asynccontextmanager
async def _client_gone(receive: Callable):
    """Watch for the client hanging up mid-stream; then stop waiting on the upstream at once.

    The request body has been read, so the next ``receive`` returns only at disconnect (or
    once the response is complete). The streaming task is cancelled, and the cancellation
    ends here, so a waiting upstream read does not outlive the product's connection."""
    watch = _Watch()
    owner = asyncio.current_task()
    assert owner is not None

    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not watch.finished:
            watch.gone = True
            owner.cancel()

    task = asyncio.ensure_future(wait())
    try:
        yield watch
    except asyncio.CancelledError:
        if not watch.gone:
            raise
        owner.uncancel()
    finally:
        watch.finished = True
        task.cancel()


async def _hold(receive: Callable, seconds: float) -> None:
    """Send nothing until the client leaves or ``seconds`` pass."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass


async def _drop(scope: dict[str, Any], *, reset: bool) -> None:
    """End the connection with no (more) response: RST with ``reset``, else FIN."""
    transport = scope.get("extensions", {}).get(_TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("the fault proxy needs the connection to drop it: run it with chaos.proxy.serve_proxy")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns close() into an RST: what a crashed load balancer sends.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)  # let the server see the connection lost, so it sends no 500 of its own
