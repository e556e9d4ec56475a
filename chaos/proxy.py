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

What either side sends is bounded and taken as sent (`chaos.proxyhttp`): the path goes
upstream as received (a control character in it is a 400), a body over ``max_body`` is a
413, an upstream with no response head after ``head_timeout_s`` is a 504 (unreachable: 502)
in the route's own error format, and a product that hangs up frees the upstream connection
at once, whether the upstream was silent or mid-answer.

Every request goes into a bounded request log (route, model, ``X-AIRisk-Feature``,
status, faults, timings), which drills read and `airisk proxy --store` keeps in the
monitor's database. With ``capture`` (`chaos.proxycapture`, ``airisk proxy --capture``), the
bodies and answers of the features named are also kept, redacted, as eval material.

Why this shape: measured here (PERF_NOTES.md, bench/proxy_overhead.py), a framework +
httpx pass-through keeps ~0.1x direct throughput; raw ASGI on uvicorn with a lean upstream
client (`chaos.upstream`: asyncio protocol + httptools, LIFO keep-alive pool) keeps most
of it. A RST needs the socket, which ASGI does not expose: `AiriskHttpProtocol` (the uvicorn
protocol `serve_proxy` runs) puts the transport in ``scope["extensions"]``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from chaos.asks import sniff_ask
from chaos.faults import Fault, FaultSet, Plan, RequestInfo
from chaos.faults.catalogue import edits_stream, response_effect
from chaos.faults.wire import Drop, Hold
from chaos.proxycontrol import handle as control_handle
from chaos.proxyhttp import (
    MAX_BODY,
    TRANSPORT_KEY,
    BodyTooLarge,
    ClientGone,
    Watch,
    drop,
    hold,
    log_entry,
    no_head,
    proxy_error,
    read_body,
    request_headers,
    response_headers,
    send_json,
    split_target,
    unreachable,
)
from chaos.requestlog import LOG_SIZE, RequestLog
from chaos.rewrite import StreamEditor, is_stream, needs_editing, synthesize
from chaos.routes import Route
from chaos.speakers import SPEAKERS, Ask
from chaos.upstream import Response, UpstreamPool, origin

if TYPE_CHECKING:
    from chaos.proxycapture import Capture, Tap

__all__ = ["DEFAULT_PORT", "HEAD_TIMEOUT_S", "MAX_BODY", "BodyTooLarge", "ClientGone", "FaultProxy", "read_body",
           "send_json"]
_TRANSPORT_KEY = TRANSPORT_KEY  # (chaos.proxyserve's name for it)
DEFAULT_PORT = 8480
HEAD_TIMEOUT_S = 600.0
"""How long the proxy waits for the upstream's response head before answering 504. Generous:
a non-streamed answer sends its head only when the whole answer is written, which takes minutes
for a long or reasoning answer, and the official SDKs themselves wait 10 minutes by default; the
proxy must not time out before the product would. It exists so that a black-holed upstream
cannot hold a task and a socket for ever when the product's client has no timeout."""
_NO_FAULTS = Plan()
"""The plan of every request while no fault is in force; read, never changed (only `FaultSet.plan` fills a
plan, and it makes a new one each time)."""


class FaultProxy:
    """The ASGI application. One event loop owns it (the fault set and the log are not locked).

    ``head_timeout_s``: how long to wait for an upstream's response head (then 504);
    ``max_body``: the largest request body passed on (then 413); ``capture``: the features whose
    traffic is captured (none without it), written while the proxy runs."""

    def __init__(self, routes: dict[str, Route], *, faults: FaultSet | None = None, log_size: int = LOG_SIZE,
                 sink: Callable[[dict[str, Any]], None] | None = None, head_timeout_s: float = HEAD_TIMEOUT_S,
                 max_body: int | None = None, capture: Capture | None = None) -> None:
        self.routes = routes
        self.capture = capture
        self.faults = faults or FaultSet()
        self.log = RequestLog(log_size, sink)
        self.head_timeout_s = head_timeout_s
        self.max_body = MAX_BODY if max_body is None else max_body
        self._pool: UpstreamPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop (see `Watch`)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._pool is None:
            # No read timeout on the body: the product's client decides how long it waits, as it
            # would for the provider. Bytes pass through as the upstream sent them (no decompression).
            self._pool = UpstreamPool()
        if self.capture is not None:
            self.capture.start()

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self.capture is not None:
            await self.capture.stop()

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/_airisk/"):
                await control_handle(self, scope, receive, send)
                return
            try:
                name, raw_path, path, query = split_target(scope)
            except ValueError as exc:
                await send_json(send, 400, {"error": str(exc)}, extra=[(b"x-airisk-proxy-error", b"bad-path")])
                return
            route = self.routes.get(name)
            if route is None:
                known = ", ".join(sorted(self.routes))
                await send_json(send, 404, {"error": f"route {name!r}: unknown (known: {known})"})
                return
            await self._proxy(route, raw_path, path, query, scope, receive, send)
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

    async def _proxy(self, route: Route, raw_path: str, path: str, query: str, scope: dict[str, Any],
                     receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        headers, feature, length = request_headers(scope["headers"])
        entry = self.log.open(log_entry(time.time(), route.name, route.upstream + raw_path, scope["method"], path,
                                        feature))
        tap: Tap | None = None
        try:
            try:
                if length is not None and length > self.max_body:  # refused before a byte of it is read
                    raise BodyTooLarge(self.max_body)  # (a client that sent Expect: 100-continue never sends it)
                body = await read_body(receive, limit=self.max_body)
            except BodyTooLarge as exc:
                entry["status"], entry["error"] = 413, str(exc)
                status, out, text = proxy_error(route.dialect, 413, f"airisk fault proxy: request {exc}",
                                                reason=b"body-too-large")
                # The connection stays open: the server discards the rest of the body as it arrives
                # (closing now would reset the connection under a client still sending, and with
                # it the 413 before the client reads it).
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": text, "more_body": False})
                return
            except ClientGone:
                entry["error"] = "client disconnected"
                return
            # The entry's time is when its faults are decided, not when its head came: a body that
            # comes later (or a pause of this process) would leave a request stamped before a fault
            # came or went but decided after it, and a drill counts the entry by its time.
            entry["at"] = now = time.time()
            # With no fault in force and no capture, nothing needs the request read (`Ask`: its model
            # and stream, for the log) before it goes upstream: it is read after (`_forward`), while
            # the upstream works on it, off the path to the first byte (a JSON parse; ~60 µs on a
            # cold process, measured: docs/BENCHMARKS.md).
            late = self.faults.empty and self.capture is None
            ask = None if late else self.read_ask(route, path, query, body, entry)
            if self.faults.empty:  # no fault in force: no request to describe, no dice to roll
                plan = _NO_FAULTS
            else:
                plan = self.faults.plan(RequestInfo(route=route.name, method=scope["method"], path=path,
                                                    model=entry["model"], feature=feature), now)
                entry["faults"] = tuple(plan.names)
            if plan.respond is not None:
                if plan.first_token_delay_s:  # a slow error is still slow
                    await asyncio.sleep(plan.first_token_delay_s)
                await self._respond_fault(route, plan.respond, ask, scope, receive, send, entry)
            elif plan.stream is not None and not edits_stream(plan.stream) and ask is not None and (
                    synth := synthesize(route.dialect, plan.stream, ask)) is not None:
                await self._send_synthesized(synth, plan, send, entry, started)
            else:
                if self.capture is not None and feature is not None and ask is not None and not plan.faults:
                    tap = self.capture.open(feature, route=route.name, dialect=route.dialect, path=path,
                                            model=entry["model"], body=body)
                await self._forward(route, raw_path, query, scope, headers, body, plan, ask, receive, send, entry,
                                    started, tap, late=(path, body) if late else None)
        finally:
            entry["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self.log.done(entry)
            if tap is not None:
                self.capture.done(tap)  # type: ignore[union-attr]

    @property
    def pool(self) -> UpstreamPool | None:
        """The upstream connections (None before lifespan startup and after shutdown)."""
        return self._pool

    def read_ask(self, route: Route, path: str, query: str, body: bytes, entry: dict[str, Any]) -> Ask | None:
        """The request as its dialect reads it, its model and stream noted in the log entry."""
        ask = sniff_ask(route.dialect, path, body, dict(parse_qsl(query)) if query else None)
        if ask is not None:
            entry["model"] = ask.model or None
            entry["stream"] = ask.stream
        return ask

    async def _forward(self, route: Route, raw_path: str, query: str, scope: dict[str, Any],
                       headers: list[tuple[bytes, bytes]], body: bytes, plan: Plan, ask: Ask | None,
                       receive: Callable, send: Callable, entry: dict[str, Any], started: float,
                       tap: Tap | None = None, late: tuple[str, bytes] | None = None) -> None:
        """Pass the request upstream and its answer back. ``late``: (path, body) of a request not
        read yet (see `_proxy`), read once it has gone upstream, or before an error of ours."""
        if late is not None:
            def read_late() -> None:
                nonlocal ask, late
                if late is not None:
                    (late_path, late_body), late = late, None  # once, whatever the read does
                    ask = self.read_ask(route, late_path, query, late_body, entry)
        else:
            read_late = None
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        editing = needs_editing(plan)
        if editing or tap is not None:  # the editor and the capture read events: no compressed body
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"] + [(b"accept-encoding", b"identity")]
        # One watch from the request to the last byte: if the product hangs up while the upstream
        # is silent (before its head, or mid-body), the upstream connection is closed at once.
        async with Watch(receive, self._loop) as watch:
            if plan.first_token_delay_s:
                # Before asking the upstream, not before relaying its answer: the whole answer shifts
                # once, later tokens keep their pace (held back, they would arrive as one burst).
                await asyncio.sleep(plan.first_token_delay_s)
            watch.expect_head(self.head_timeout_s)
            try:
                to = origin(route.upstream)
                if to is None or "?" in raw_path or "#" in raw_path or "#" in query:
                    url = route.upstream + raw_path + ("?" + query if query else "")
                    response = await self._pool.request(scope["method"], url, headers, body, sent=read_late)
                else:  # the route's upstream split once, not on every request
                    target = (to.path + raw_path or "/") + ("?" + query if query else "")
                    response = await self._pool.send(scope["method"], to, target, headers, body, sent=read_late)
            except (OSError, ValueError) as exc:
                if read_late is not None:
                    read_late()
                entry["status"] = 502
                entry["error"], message = unreachable(route.upstream, exc)
                await self._send_error(route, ask, send, 502, message, b"upstream")
                return
            watch.head_arrived()
            try:
                status = response.status
                entry["status"] = status
                out_headers, content_type = response_headers(response.headers)
                edit = editing and status == 200 and is_stream(content_type)
                if edit:  # the editor changes the body's length
                    out_headers = [(k, v) for k, v in out_headers if k.lower() != b"content-length"]
                await send({"type": "http.response.start", "status": status, "headers": out_headers})
                entry["ttfb_ms"] = round((time.perf_counter() - started) * 1000, 3)
                if edit:
                    if await self._send_edited(route, plan, ask, response, send, entry):
                        watch.finished = True  # the drop below is the fault, not the product leaving
                        await drop(scope, reset=False)
                        return
                elif tap is None:
                    while (data := await response.read()) is not None:
                        if response.drained:  # the last piece: the end goes with it (one send, not two)
                            watch.finished = True
                            await send({"type": "http.response.body", "body": data, "more_body": False})
                            return
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                else:  # the bytes are read after the answer has gone, off the event loop (chaos.proxycapture)
                    tap.status, tap.content_type = status, response.header(b"content-type") or b""
                    tap.encoding = response.header(b"content-encoding") or b""
                    async for data in response.chunks():
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                        tap.add(data)
                watch.finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                if tap is not None:
                    tap.complete = True
            except OSError as exc:  # the upstream went away mid-answer: so does the product's answer
                entry["error"] = f"upstream: {exc!s}"[:300]
                watch.finished = True
                await drop(scope, reset=False)
            finally:
                response.close()
        if read_late is not None:
            read_late()  # (when the upstream was never written to, or the product left first)
        if watch.timed_out:  # the request's connection was closed by the cancellation
            entry["status"] = 504
            entry["error"], message = no_head(route.upstream, self.head_timeout_s)
            await self._send_error(route, ask, send, 504, message, b"timeout")
        elif watch.gone:
            entry["error"] = "client disconnected"

    async def _send_error(self, route: Route, ask: Ask | None, send: Callable, status: int, message: str,
                          reason: bytes) -> None:
        status, headers, body = proxy_error(route.dialect, status, message, ask, reason)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _send_edited(self, route: Route, plan: Plan, ask: Ask | None, response: Response,
                           send: Callable, entry: dict[str, Any]) -> bool:
        """The upstream stream with the plan's stream fault applied; True when a stall has run its
        course and the connection is to be dropped."""
        editor = StreamEditor(plan, route.dialect, ask)
        gap = plan.token_gap_s
        last = 0.0
        loop = asyncio.get_running_loop()
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
                    return True
        entry["broken"] = editor.broke
        if editor.overflow:
            entry["error"] = editor.overflow
        return False

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
        """The proxy's side of `chaos.faults.wire`: hold and drop the socket, or send the error."""
        effect = response_effect(fault, SPEAKERS[route.dialect], ask)
        if isinstance(effect, Hold):
            await hold(receive, effect.seconds)
            await drop(scope, reset=False)
            return
        if isinstance(effect, Drop):
            await drop(scope, reset=effect.reset)
            return
        entry["status"] = effect.status
        await send({"type": "http.response.start", "status": effect.status,
                    "headers": [(k.encode(), v.encode()) for k, v in effect.headers.items()]
                    + [(b"content-length", str(len(effect.body)).encode())]})
        await send({"type": "http.response.body", "body": effect.body, "more_body": False})
