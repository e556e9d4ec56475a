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
import re
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from chaos.asks import sniff_ask
from chaos.faults import Fault, FaultSet, Plan, RequestInfo
from chaos.requestlog import LOG_SIZE, RequestLog
from chaos.rewrite import SYNTHESIZED, StreamEditor, is_stream, needs_editing, synthesize
from chaos.routes import Route
from chaos.speakers import SPEAKERS, Ask
from chaos.upstream import Response, UpstreamPool

DEFAULT_PORT = 8480
HEAD_TIMEOUT_S = 600.0
"""How long the proxy waits for the upstream's response head before answering 504. Generous:
a non-streamed answer sends its head only when the whole answer is written, which takes minutes
for a long or reasoning answer, and the official SDKs themselves wait 10 minutes by default; the
proxy must not time out before the product would. It exists so that a black-holed upstream
cannot hold a task and a socket for ever when the product's client has no timeout."""
# RFC 9110 7.6.1 (and the older names still sent): meaningful for one connection only. Host and
# Content-Length are set again for the next hop, Proxy-Authorization is the proxy's own.
_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization",
                  b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host", b"content-length"})
_TRANSPORT_KEY = "airisk.transport"
WATCH_AFTER_S = 0.05  # see `_Watch`: well within the 1 s in which a hung-up client's upstream is let go
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))  # kept as sent in a request target, '%' included
_RAW_CTL = re.compile(rb"[\x00-\x20\x7f]")
_ASCII = re.compile(rb"[\x21-\x7e]*")
_CTL = re.compile(r"[\x00-\x1f\x7f]")


def hop_by_hop(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The header names (lower case) not to pass on: the standard hop-by-hop set, and every
    name the message's own ``Connection`` header lists."""
    connection = [value for key, value in headers if key.lower() == b"connection"]
    if not connection:
        return _HOP
    named = {token.strip().lower() for value in connection for token in value.split(b",")}
    named -= _HOP
    named.discard(b"")
    return _HOP | named if named else _HOP


def split_target(scope: dict[str, Any]) -> tuple[str, str, str, str]:
    """(route name, path after it as received, the same path decoded, query as received).

    The upstream gets the path as the client sent it (``raw_path``): decoding it first would
    turn ``%20``, ``%23``, ``%3F`` into a space (a broken request line), a fragment and a
    query. Raises `ValueError` naming the problem for a control character, encoded or not:
    no provider path holds one, and a ``%00`` or ``%0D%0A`` only reaches the upstream (and the
    request log's database) as an attack."""
    raw: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
    query: bytes = scope.get("query_string", b"")
    # The common case (printable ASCII, nothing encoded) costs two regex passes: this is the hot path.
    if _ASCII.fullmatch(raw) and _ASCII.fullmatch(query) and b"%" not in raw:
        name, _, rest = raw.decode()[1:].partition("/")
        return name, "/" + rest, "/" + rest, query.decode()
    if _RAW_CTL.search(raw) or _RAW_CTL.search(query):
        raise ValueError("path: a control character or space is not allowed in a request target")
    # Bytes beyond ASCII are not valid in a request line: sent percent-encoded, as a browser would.
    raw_name, _, raw_rest = quote(raw, safe=_PRINTABLE)[1:].partition("/")
    rest = "/" + raw_rest
    decoded = unquote(rest)
    if _CTL.search(decoded):
        raise ValueError("path: an encoded control character (%00-%1F, %7F) is not allowed")
    return unquote(raw_name), rest, decoded, quote(query, safe=_PRINTABLE)


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], str | None, int | None]:
    """(headers for the upstream, the ``X-AIRisk-Feature`` value, the declared Content-Length):
    hop-by-hop ones and airisk's own ``X-AIRisk-*`` are not passed on."""
    headers: list[tuple[bytes, bytes]] = []
    feature = length = None
    named: list[bytes] = []
    for key, value in raw:
        lk = key.lower()
        if lk in _HOP or lk.startswith(b"x-airisk-"):
            if lk == b"x-airisk-feature":
                feature = value.decode("latin-1")
            elif lk == b"connection":
                named.append(value)
            elif lk == b"content-length" and value.strip().isdigit():
                length = int(value)
            continue
        headers.append((key, value))
    if named:  # rare beyond "keep-alive" or "close": a second pass only then
        hop = hop_by_hop((b"connection", v) for v in named)
        if hop is not _HOP:
            headers = [(k, v) for k, v in headers if k.lower() not in hop]
    return headers, feature, length


def _sniff(dialect: str, path: str, body: bytes, query: str) -> Ask | None:
    """`sniff_ask`, made total: a request body is the client's, and whatever it holds (deep
    nesting, a model that is an object, a max_tokens that is a string) the request is passed on.
    The Ask keeps only well-typed values, as the fault plan and the speakers expect them."""
    try:
        ask = sniff_ask(dialect, path, body, dict(parse_qsl(query)) if query else None)
    except Exception:  # RecursionError on deep nesting, and whatever else a hostile body finds
        return None
    if ask is None:
        return None
    model = ask.model if isinstance(ask.model, str) else ""
    max_tokens = ask.max_tokens if type(ask.max_tokens) is int and ask.max_tokens > 0 else 64
    prompt = ask.prompt if isinstance(ask.prompt, str) else ""
    if (model, max_tokens, prompt) != (ask.model, ask.max_tokens, ask.prompt):
        ask = replace(ask, model=model, max_tokens=max_tokens, prompt=prompt)
    return ask


def proxy_error(dialect: str, status: int, message: str, ask: Ask | None = None,
                reason: bytes = b"upstream") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """An error of the proxy's own (502, 504, 413, 400) in the route's error format, so the
    product's SDK reads it as it would read the provider's; ``X-AIRisk-Proxy-Error`` says
    that the proxy, not the provider, answered."""
    speaker = SPEAKERS[dialect]
    kind = "server_error" if status >= 500 else "bad_request"
    _, headers, body = speaker.error(kind, status=status, retry_after=None, ask=ask, detail=message)
    with contextlib.suppress(ValueError):
        doc = json.loads(body)
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict):  # OpenAI, Anthropic, Gemini
            error["message"] = message
            if isinstance(error.get("code"), int):
                error["code"] = status
        elif isinstance(error, str):  # Ollama
            doc["error"] = message
        elif isinstance(doc, dict) and "message" in doc:  # Cohere
            doc["message"] = message
        body = json.dumps(doc).encode()
    out = [(k.encode(), v.encode()) for k, v in headers.items() if k.lower() != "content-length"]
    out += [(b"content-length", str(len(body)).encode()), (b"x-airisk-proxy-error", reason)]
    return status, out, body


class FaultProxy:
    """The ASGI application. One event loop owns it (the fault set and the log are not locked).

    ``head_timeout_s``: how long to wait for an upstream's response head (then 504);
    ``max_body``: the largest request body passed on (then 413)."""

    def __init__(self, routes: dict[str, Route], *, faults: FaultSet | None = None, log_size: int = LOG_SIZE,
                 sink: Callable[[dict[str, Any]], None] | None = None, head_timeout_s: float = HEAD_TIMEOUT_S,
                 max_body: int | None = None) -> None:
        self.routes = routes
        self.faults = faults or FaultSet()
        self.log = RequestLog(log_size, sink)
        self.head_timeout_s = head_timeout_s
        self.max_body = MAX_BODY if max_body is None else max_body
        self._pool: UpstreamPool | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._pool is None:
            # No read timeout on the body: the product's client decides how long it waits, as it
            # would for the provider. Bytes pass through as the upstream sent them (no decompression).
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
        entry = self.log.open({
            "at": time.time(), "route": route.name, "method": scope["method"], "path": path,
            "upstream": route.upstream + raw_path, "model": None, "feature": feature,
            "stream": None, "status": None, "faults": [],
        })
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
            ask = _sniff(route.dialect, path, body, query)
            if ask is not None:
                entry["model"] = ask.model or None
                entry["stream"] = ask.stream
            plan = self.faults.plan(RequestInfo(route=route.name, method=scope["method"], path=path,
                                                model=entry["model"], feature=feature))
            entry["faults"] = plan.names
            if plan.respond is not None:
                if plan.first_token_delay_s:  # a slow error is still slow
                    await asyncio.sleep(plan.first_token_delay_s)
                await self._respond_fault(route, plan.respond, ask, scope, receive, send, entry)
            elif plan.stream is not None and plan.stream.type in SYNTHESIZED and ask is not None and (
                    synth := synthesize(route.dialect, plan.stream.type, ask)) is not None:
                await self._send_synthesized(synth, plan, send, entry, started)
            else:
                url = route.upstream + raw_path + ("?" + query if query else "")
                await self._forward(route, url, scope, headers, body, plan, ask, receive, send, entry, started)
        finally:
            entry["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
            self.log.done(entry)

    async def _forward(self, route: Route, url: str, scope: dict[str, Any], headers: list[tuple[bytes, bytes]],
                       body: bytes, plan: Plan, ask: Ask | None, receive: Callable, send: Callable,
                       entry: dict[str, Any], started: float) -> None:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        editing = needs_editing(plan)
        if editing:  # the editor reads events: no compressed body
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"] + [(b"accept-encoding", b"identity")]
        # One watch from the request to the last byte: if the product hangs up while the upstream
        # is silent (before its head, or mid-body), the upstream connection is closed at once.
        async with _Watch(receive) as watch:
            if plan.first_token_delay_s:
                # Before asking the upstream, not before relaying its answer: the whole answer shifts
                # once, later tokens keep their pace (held back, they would arrive as one burst).
                await asyncio.sleep(plan.first_token_delay_s)
            watch.expect_head(self.head_timeout_s)
            try:
                response = await self._pool.request(scope["method"], url, headers, body)
            except (OSError, ValueError) as exc:
                entry["status"], entry["error"] = 502, f"upstream unreachable: {exc!s}"[:300]
                message = f"airisk fault proxy: cannot reach {route.upstream} ({exc!s})"[:500]
                await self._send_error(route, ask, send, 502, message, b"upstream")
                return
            watch.head_arrived()
            try:
                status = response.status
                entry["status"] = status
                streaming = is_stream(response.header(b"content-type") or b"")
                edit = editing and streaming and status == 200
                hop = hop_by_hop(response.headers)
                out_headers = [(k, v) for k, v in response.headers
                               if (lk := k.lower()) not in hop or (lk == b"content-length" and not edit)]
                await send({"type": "http.response.start", "status": status, "headers": out_headers})
                entry["ttfb_ms"] = round((time.perf_counter() - started) * 1000, 3)
                if edit:
                    if await self._send_edited(route, plan, ask, response, send, entry):
                        watch.finished = True  # the drop below is the fault, not the product leaving
                        await _drop(scope, reset=False)
                        return
                else:
                    async for data in response.chunks():
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                watch.finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError as exc:  # the upstream went away mid-answer: so does the product's answer
                entry["error"] = f"upstream: {exc!s}"[:300]
                watch.finished = True
                await _drop(scope, reset=False)
            finally:
                response.close()
        if watch.timed_out:  # the request's connection was closed by the cancellation
            entry["status"], entry["error"] = 504, f"upstream sent no response head in {self.head_timeout_s:g}s"
            await self._send_error(route, ask, send, 504, f"airisk fault proxy: {route.upstream} sent no "
                                   f"response within {self.head_timeout_s:g}s", b"timeout")
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

MAX_BODY = 32 << 20
"""Default cap on a proxied request body (bytes). Large enough for what the providers themselves
accept (Anthropic's Messages API: 32 MB, Gemini's inline data: 20 MB; a request with a few
base64 images is several MB), because a proxy that refuses what the provider would take is a
fault nobody asked for; small enough that a client streaming an endless body cannot exhaust
memory. `FaultProxy(max_body=...)` changes it."""


class BodyTooLarge(ValueError):
    """The request body exceeds the cap; answer 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: larger than the {limit:,}-byte limit")
        self.limit = limit


class ClientGone(ConnectionError):
    """The client disconnected before its request body was complete."""


async def read_body(receive: Callable, limit: int | None = None) -> bytes:
    """The whole request body. Raises `BodyTooLarge` once more than ``limit`` bytes arrive
    (reading stops there: the rest is never buffered) and `ClientGone` if the client leaves
    before the body is complete (a partial body must not be taken for the whole)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone("client disconnected before sending its body")
    body = message.get("body", b"")
    if limit is not None and len(body) > limit:
        raise BodyTooLarge(limit)
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone("client disconnected before sending its whole body")
        part = message.get("body", b"")
        size += len(part)
        if limit is not None and size > limit:
            raise BodyTooLarge(limit)
        parts.append(part)
    return b"".join(parts)


async def send_json(send: Callable, status: int, data: Any, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Watch:
    """``async with _Watch(receive) as watch``: if the client hangs up, the block's wait on the
    upstream (for its head, or mid-body) ends at once, and so does the block (``watch.gone``);
    after `expect_head`, so it does if the head is late (``watch.timed_out``). The cancellation
    ends at the block's end, so a waiting upstream read never outlives the product's connection.

    The request body has been read, so the next ``receive`` returns only at disconnect (or
    once the response is complete: set ``finished`` before the last send). The task that waits
    on it starts only once the block has run `WATCH_AFTER_S`: a request answered sooner (most,
    from a nearby upstream) costs one timer handle, not a task (~30 µs of CPU on this hot path);
    a client gone meanwhile is seen as soon as it starts (the disconnect is kept). The same
    handle, re-armed, is the head's deadline: one timer at a time."""

    __slots__ = ("_deadline", "_loop", "_owner", "_receive", "_task", "_timer", "finished", "gone", "timed_out")

    def __init__(self, receive: Callable) -> None:
        self._receive = receive
        self.gone = False
        self.timed_out = False
        self.finished = False  # set before the last send: the disconnect that follows is the normal end
        self._task: asyncio.Task | None = None
        self._deadline: float | None = None

    async def __aenter__(self) -> _Watch:
        owner = asyncio.current_task()
        assert owner is not None
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(WATCH_AFTER_S, self._tick)
        return self

    def expect_head(self, seconds: float) -> None:
        """From now, the upstream's head has ``seconds`` to arrive."""
        self._deadline = self._loop.time() + seconds
        if self._timer is None or self._deadline < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(self._deadline, self._tick)

    def head_arrived(self) -> None:
        self._deadline = None
        if self._task is not None and self._timer is not None:  # a deadline far ahead: not left in the heap
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self.finished or self.gone:
            return
        if self._task is None:
            self._task = self._loop.create_task(self._wait())
        if self._deadline is not None:
            if self._loop.time() >= self._deadline - 0.001:  # (a handle may run a clock tick early)
                self.timed_out = True
                self._owner.cancel()
            else:
                self._timer = self._loop.call_at(self._deadline, self._tick)

    async def _wait(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not (self.finished or self.timed_out):
            self.gone = True
            self._owner.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
        if exc_type is asyncio.CancelledError and (self.gone or self.timed_out):
            self._owner.uncancel()
            return True
        return False


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
