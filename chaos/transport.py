"""The fault proxy's in-process twin: an httpx transport that breaks providers, with no proxy.

A Python product hands it to the official SDKs through their own ``http_client=``, and each
fault of `chaos.faults` reaches the product's code as the exception or answer the real
outage would give, with nothing to deploy::

    chaos = ChaosTransport()
    client = openai.OpenAI(http_client=httpx.Client(transport=chaos))
    chaos.faults.add(Fault.from_dict({"type": "overloaded", "for_s": 60}))
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])  # openai.InternalServerError, 503
    chaos.log.since()  # what each request met

One class serves sync and async clients of both ``httpx`` and ``httpx2`` (the module the
openai 3.x and anthropic 2.x SDKs use natively): responses and exceptions are built from
the module the request came from, and requests go on to ``wrapped``, by default that
module's ``HTTPTransport`` / ``AsyncHTTPTransport`` (pass your own to set TLS, limits or
proxies: a client given a transport no longer builds one from its own settings).

The route (which provider, and so which fault scope and which error format) is ``route=``,
or read from the URL: a catalog provider's real host (``api.openai.com`` -> ``openai``), or
``airisk emulate``'s ``/<provider>/...`` prefix on a loopback address. Faults see the path
below the route's base, as through the proxy (``/chat/completions``, ``/v1/messages``). A
request no route matches passes through untouched, logged with route None.

What each fault does, as in `chaos.proxy`:

- an error fault answers in the provider's own status, headers and body, without calling
  the wrapped transport;
- ``hang`` sends nothing until the request's read timeout, then raises ``ReadTimeout`` (if
  the fault's ``seconds`` run out first, the "connection" closes with no response, as
  through the proxy: ``RemoteProtocolError``); ``connection_reset`` raises ``ReadError``,
  ``unreachable`` ``ConnectError``, each from the OS error a real socket gives;
- ``first_token_delay`` holds the response back once, before its headers;
- stream faults and ``slow_tokens`` edit the real response's stream
  (`chaos.rewrite.StreamEditor`), a stalled one timing out like ``hang``; empty, filtered
  and wrong answers are synthesized.

Every request goes into ``log`` (a `chaos.requestlog.RequestLog`, the proxy's fields); an
entry is done when the client closes the response.
"""

from __future__ import annotations

import errno
import functools
import importlib
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from chaos.asks import sniff_ask
from chaos.faults import FaultSet, Plan, RequestInfo
from chaos.faults.catalogue import edits_stream, response_effect
from chaos.faults.wire import Drop, Hold
from chaos.requestlog import RequestLog
from chaos.rewrite import StreamEditor, is_stream, needs_editing, synthesize
from chaos.routes import catalog_routes, sdk_base
from chaos.speakers import SPEAKERS
from probes.catalog import CATALOG
from probes.dialects import get_dialect
from probes.framing import NDJSONParser, SSEParser

FEATURE_HEADER = "x-airisk-feature"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_PLACEHOLDER = "your-resource."  # the catalog's Azure host: any resource's host under it
_PORTS = {"http": 80, "https": 443}


# -- which route a request is for ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Resolved:
    route: str | None  # None: no route matched; the request passes through untouched
    dialect: str
    path: str  # below the route's base: what fault scopes and `sniff_ask` see


@dataclass(frozen=True, slots=True)
class _Base:
    route: str
    dialect: str
    path: str  # the base path, no trailing slash
    host: str | None = None  # None: the emulator's prefix, on any loopback host and port
    port: int | None = None

    def matches(self, host: str, port: int | None, path: str) -> bool:
        if self.host is None:
            if host not in _LOOPBACK:
                return False
        elif self.host.startswith(_PLACEHOLDER):
            if not host.endswith(self.host[len(_PLACEHOLDER) - 1:]) or port != self.port:
                return False
        elif port != self.port or (host != self.host and not {host, self.host} <= _LOOPBACK):
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


@functools.cache
def _bases() -> tuple[_Base, ...]:
    """Every catalog provider's real base and emulator prefix, the longest path first."""
    bases = []
    for route in catalog_routes().values():
        url = urlsplit(route.upstream)
        bases.append(_Base(route.name, route.dialect, url.path.rstrip("/"), url.hostname,
                           url.port or _PORTS.get(url.scheme)))
    for p in CATALOG.values():
        if p.emulator_prefix:
            bases.append(_Base(p.name, p.dialect, sdk_base(p.dialect, p.emulator_prefix)))
    return tuple(sorted(bases, key=lambda b: len(b.path), reverse=True))


def resolve(url: Any, route: str | None = None, dialect: str | None = None) -> Resolved:
    """The route, dialect and sub-path of a request URL (an ``httpx``/``httpx2`` URL or a string).

    An explicit ``route`` wins; the catalog still says where its base ends when the URL
    matches one (otherwise faults see the whole path)."""
    parts = urlsplit(str(url))
    host = (parts.hostname or "").lower()
    port = parts.port or _PORTS.get(parts.scheme)
    path = parts.path or "/"
    base = next((b for b in _bases() if b.matches(host, port, path)), None)
    sub = (path[len(base.path):] or "/") if base is not None else path
    if route is None:
        if base is None:
            return Resolved(None, dialect or "openai", path)
        route = base.route
    known = CATALOG.get(route)
    dialect = dialect or (known.dialect if known else base.dialect if base else "openai")
    return Resolved(route, dialect, sub)


# -- the per-module pieces (httpx or httpx2) -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Kit:
    module: Any  # httpx or httpx2
    body: type  # _Body, as that module's SyncByteStream and AsyncByteStream


@functools.cache
def _kit(name: str) -> _Kit:
    module = importlib.import_module(name)
    return _Kit(module, type("ChaosBody", (_Body, module.SyncByteStream, module.AsyncByteStream), {}))


def _kit_of(request: Any) -> _Kit:
    name = type(request).__module__.partition(".")[0]
    if name not in ("httpx", "httpx2"):
        raise TypeError(f"ChaosTransport: expected an httpx or httpx2 Request, got {type(request)!r}")
    return _kit(name)


@dataclass(slots=True)
class _Stop:
    """End the request with no response: wait, then raise."""

    wait: float
    exc: Exception


# -- one request ----------------------------------------------------------------------------------

class _Call:
    """One request on its way through: its route, plan and log entry."""

    def __init__(self, transport: ChaosTransport, request: Any, kit: _Kit) -> None:
        self.started = time.perf_counter()
        self.request = request
        self.kit = kit
        feature = request.headers.get(FEATURE_HEADER)
        for name in [k for k in request.headers if k.lower().startswith("x-airisk-")]:
            del request.headers[name]  # airisk's own headers never reach the provider
        where = resolve(request.url, transport.route, transport.dialect)
        self.dialect = where.dialect
        self.ask = sniff_ask(where.dialect, where.path, request.content, dict(request.url.params)) \
            if where.route is not None else None
        with transport._lock:  # a sync client may send from several threads
            self.entry = transport.log.open({
                "at": time.time(), "route": where.route, "method": request.method, "path": where.path,
                "upstream": str(request.url.copy_with(query=None)),
                "model": self.ask.model if self.ask else None, "feature": feature,
                "stream": self.ask.stream if self.ask else None, "status": None, "faults": [],
            })
            self.plan = transport.faults.plan(RequestInfo(
                route=where.route, method=request.method, path=where.path, model=self.entry["model"],
                feature=feature)) if where.route is not None else Plan()
        self.entry["faults"] = self.plan.names
        self._log = transport.log
        self._done = False
        self.raised: BaseException | None = None  # an exception a fault made (not an error to log)
        if needs_editing(self.plan):
            request.headers["accept-encoding"] = "identity"  # the editor reads events: no compressed body

    @property
    def delay(self) -> float:
        return self.plan.first_token_delay_s if self.plan.respond is None else 0.0

    def start(self) -> Any:
        """A response made here (an error, a synthesized answer), a `_Stop`, or None: forward it.

        This is the transport's side of `chaos.faults.wire`: a `Drop` or `Hold` becomes the httpx
        exception a real socket gives, a `Respond` a response the wrapped transport never sees."""
        fault = self.plan.respond
        module, request = self.kit.module, self.request
        if fault is not None:
            effect = response_effect(fault, SPEAKERS[self.dialect], self.ask)
            if isinstance(effect, Hold):
                return self.silence(effect.seconds, mid_body=False)
            if isinstance(effect, Drop):
                if effect.reset:
                    return _Stop(0.0, _from_os(module.ReadError, request,
                                               ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")))
                if effect.connect:
                    return _Stop(0.0, _from_os(module.ConnectError, request,
                                               OSError(errno.ENETUNREACH, "Network is unreachable")))
                return _Stop(0.0, module.RemoteProtocolError("Server disconnected without sending a response.",
                                                             request=request))
            return self._made(effect.status, {**effect.headers, "content-length": str(len(effect.body))},
                              [effect.body])
        stream = self.plan.stream
        if stream is not None and not edits_stream(stream) and self.ask is not None and (
                synth := synthesize(self.dialect, stream, self.ask)) is not None:
            return self._made(synth.status, synth.headers, synth.frames, gap=self.plan.token_gap_s or 0.0)
        return None

    def _made(self, status: int, headers: dict[str, str], frames: list[bytes], gap: float = 0.0) -> Any:
        self.entry["status"] = status
        return self.kit.module.Response(status, headers=list(headers.items()),
                                        stream=self.kit.body(self, frames=frames, gap=gap))

    def forwarded(self, upstream: Any) -> Any:
        """The wrapped transport's response, its body edited where the plan says."""
        status = upstream.status_code
        self.entry["status"] = status
        edit = needs_editing(self.plan) and status == 200 and is_stream(upstream.headers.get("content-type", ""))
        headers = [(k, v) for k, v in upstream.headers.raw if not (edit and k.lower() == b"content-length")]
        editor = StreamEditor(self.plan, self.dialect, self.ask) if edit else None
        return self.kit.module.Response(status, headers=headers, extensions=upstream.extensions,
                                        stream=self.kit.body(self, source=upstream.stream, editor=editor))

    def silence(self, seconds: float, *, mid_body: bool) -> _Stop:
        """Nothing more arrives: the client's read timeout fires, or (sooner) the fault's
        ``seconds`` run out and the connection closes, as through the proxy."""
        module, request = self.kit.module, self.request
        read = (request.extensions.get("timeout") or {}).get("read")
        if read is not None and read <= seconds:
            return _Stop(read, module.ReadTimeout("timed out", request=request))
        message = ("peer closed connection without sending complete message body: incomplete chunked read"
                   if mid_body else "Server disconnected without sending a response.")
        return _Stop(seconds, module.RemoteProtocolError(message, request=request))

    def stop(self, stop: _Stop) -> BaseException:
        self.raised = stop.exc
        self.close()
        return stop.exc

    def responded(self, response: Any) -> Any:
        self.entry["ttfb_ms"] = round((time.perf_counter() - self.started) * 1000, 3)
        return response

    def failed(self, exc: BaseException) -> None:
        """The request or its body ended in an exception: log it unless a fault made it."""
        if exc is not self.raised and "error" not in self.entry:
            self.entry["error"] = (f"{type(exc).__name__}: {exc}"[:300] if isinstance(exc, Exception)
                                   else "client disconnected")

    def close(self) -> None:
        if not self._done:
            self._done = True
            self.entry["total_ms"] = round((time.perf_counter() - self.started) * 1000, 3)
            self._log.done(self.entry)


def _from_os(cls: type, request: Any, cause: OSError) -> Exception:
    exc = cls(str(cause), request=request)
    exc.__cause__ = cause
    return exc


# -- the response body ------------------------------------------------------------------------------

# The steps a body's script yields (`_Body._script`) and a request's course (`ChaosTransport._course`).
_READ, _SLEEP, _SEND, _FORWARD, _CLOSE, _DONE = "read", "sleep", "send", "forward", "close", "done"


class _Body:
    """The body handed to the client: frames made here, or the upstream's, edited or not.

    `_script` holds the logic once, as a generator of steps (read the upstream, sleep, send
    bytes); `__iter__` and `__aiter__` only carry the steps out, blocking or awaiting."""

    def __init__(self, call: _Call, *, source: Any = None, editor: StreamEditor | None = None,
                 frames: list[bytes] | None = None, gap: float = 0.0) -> None:
        self._call = call
        self._source = source
        self._editor = editor
        self._frames = frames
        self._gap = gap
        self._ended = False  # the body has ended, or its last bytes are out: a close now is no hang-up
        self._tail = b""  # the last bytes passed on unedited

    def _script(self) -> Generator[tuple[str, Any], bytes | None, None]:
        if self._frames is not None:
            for i, frame in enumerate(self._frames):
                if i and self._gap:
                    yield _SLEEP, self._gap
                self._ended = i == len(self._frames) - 1
                yield _SEND, frame
            return
        editor = self._editor
        if editor is None:
            while (data := (yield _READ, None)) is not None:
                self._tail = data
                yield _SEND, data
            return
        plan, entry = self._call.plan, self._call.entry
        gap, last = plan.token_gap_s, 0.0
        entry["broken"] = None  # the fault that ended the answer, once one does
        while not editor.ended:
            data = yield _READ, None
            for out in editor.feed(data) if data is not None else editor.close():
                if out.paced and gap is not None:
                    if last and (wait := last + gap - time.monotonic()) > 0:
                        yield _SLEEP, wait
                    last = time.monotonic()
                if out.end is not None:
                    entry["broken"] = editor.broke
                if out.data:
                    self._ended = out.end == "end"
                    yield _SEND, out.data
                if out.end == "stall":
                    stop = self._call.silence(plan.stream.params["seconds"] if plan.stream else 0, mid_body=True)
                    self._call.raised = stop.exc
                    yield _SLEEP, stop.wait
                    raise stop.exc
        entry["broken"] = editor.broke
        if editor.overflow:  # as the proxy logs it: the rest went on unedited
            entry["error"] = editor.overflow

    def __iter__(self) -> Iterator[bytes]:
        script, reply = self._script(), None
        reads = iter(self._source) if self._source is not None else None
        try:
            while (step := _resume(script, reply))[0] is not _DONE:
                op, arg = step
                reply = None
                if op is _SEND:
                    yield arg
                elif op is _SLEEP:
                    time.sleep(arg)
                else:
                    reply = next(reads, None)
            self._ended = True
        except Exception as exc:  # not GeneratorExit: a close is judged in `_closing`
            self._call.failed(exc)
            self._ended = True
            raise
        finally:
            script.close()
            if reads is not None and hasattr(reads, "close"):
                reads.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        script, reply = self._script(), None
        reads = self._source.__aiter__() if self._source is not None else None
        try:
            while (step := _resume(script, reply))[0] is not _DONE:
                op, arg = step
                reply = None
                if op is _SEND:
                    yield arg
                elif op is _SLEEP:
                    await anyio.sleep(arg)
                else:
                    reply = await anext(reads, None)
            self._ended = True
        except Exception as exc:  # not GeneratorExit: a close is judged in `_closing`
            self._call.failed(exc)
            self._ended = True
            raise
        finally:
            script.close()
            if reads is not None and hasattr(reads, "aclose"):
                await reads.aclose()

    def _closing(self) -> None:
        """A close before the body ended is the product hanging up, unless what it read last
        ended the answer (the SDKs stop reading at ``[DONE]``, before the body's own end)."""
        call = self._call
        if not self._ended and call.entry.get("stream") and not _ends_stream(call.dialect, self._tail):
            call.entry.setdefault("error", "client disconnected")

    def close(self) -> None:
        self._closing()
        try:
            if self._source is not None:
                self._source.close()
        finally:
            self._call.close()

    async def aclose(self) -> None:
        self._closing()
        try:
            if self._source is not None:
                await self._source.aclose()
        finally:
            self._call.close()


def _ends_stream(dialect: str, data: bytes) -> bool:
    """Do these bytes hold the stream's end-of-stream marker or an in-stream error?"""
    if not data:
        return False
    reader = get_dialect(dialect)
    parser = NDJSONParser() if reader.framing == "ndjson" else SSEParser()
    try:
        events = [*parser.feed(data), *parser.close()]
    except ValueError:  # a line over the parser's cap: no marker we could read in it
        return False
    for event in events:
        try:
            chunk = reader.parse_event(event)
        except ValueError:
            continue
        if chunk.done or chunk.error is not None:
            return True
    return False


def _resume(steps: Generator, reply: Any, error: BaseException | None = None) -> tuple[str, Any]:
    """The next step of a body's `_Body._script` or a request's `ChaosTransport._course`, given the last
    step's result or exception; ``(_DONE, what it returned)`` at its end."""
    try:
        return steps.throw(error) if error is not None else steps.send(reply)
    except StopIteration as done:
        return _DONE, done.value


# -- the transport -------------------------------------------------------------------------------------

class ChaosTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An httpx/httpx2 transport wrapping another, applying the faults in ``faults``."""

    def __init__(self, wrapped: Any = None, *, faults: FaultSet | None = None, route: str | None = None,
                 dialect: str | None = None, log: RequestLog | None = None) -> None:
        if dialect is not None and dialect not in SPEAKERS:
            raise ValueError(f"dialect {dialect!r}: unknown (known: {', '.join(sorted(SPEAKERS))})")
        self.wrapped = wrapped
        self.faults = faults if faults is not None else FaultSet()
        self.log = log if log is not None else RequestLog()
        self.route = route
        self.dialect = dialect
        self._lock = threading.Lock()
        self._defaults: dict[tuple[str, bool], Any] = {}  # (module, async) -> the default wrapped transport

    def _next_hop(self, kit: _Kit, asynchronous: bool) -> Any:
        if self.wrapped is not None:
            return self.wrapped
        key = (kit.module.__name__, asynchronous)
        with self._lock:
            if key not in self._defaults:
                make = kit.module.AsyncHTTPTransport if asynchronous else kit.module.HTTPTransport
                self._defaults[key] = make()
            return self._defaults[key]

    def _course(self, request: Any, kit: _Kit, asynchronous: bool) -> Generator[tuple[str, Any], Any, Any]:
        """One request's course, written once for sync and async clients: it yields the steps that
        wait on I/O (sleep, forward to the next hop, close a response), which `handle_request` carries
        out blocking and `handle_async_request` awaiting; a step's exception is thrown back in at it.
        Returns the response."""
        call = _Call(self, request, kit)
        response = call.start()
        if isinstance(response, _Stop):
            try:
                if response.wait:
                    yield _SLEEP, response.wait
            finally:
                exc = call.stop(response)
            raise exc
        if response is None:
            try:
                response = call.forwarded((yield _FORWARD, self._next_hop(kit, asynchronous)))
            except BaseException as exc:
                call.failed(exc)
                call.close()
                raise
        if call.delay:
            try:
                yield _SLEEP, call.delay
            except BaseException:
                yield _CLOSE, response
                raise
        return call.responded(response)

    def handle_request(self, request: Any) -> Any:
        kit = _kit_of(request)
        request.read()
        course, reply, error = self._course(request, kit, False), None, None
        while (step := _resume(course, reply, error))[0] is not _DONE:
            op, arg = step
            reply = error = None
            try:
                reply = (time.sleep(arg) if op is _SLEEP else arg.close() if op is _CLOSE
                         else arg.handle_request(request))
            except BaseException as exc:
                error = exc
        return step[1]

    async def handle_async_request(self, request: Any) -> Any:
        kit = _kit_of(request)
        await request.aread()
        course, reply, error = self._course(request, kit, True), None, None
        while (step := _resume(course, reply, error))[0] is not _DONE:
            op, arg = step
            reply = error = None
            try:
                reply = await (anyio.sleep(arg) if op is _SLEEP else arg.aclose() if op is _CLOSE
                               else arg.handle_async_request(request))
            except BaseException as exc:
                error = exc
        return step[1]

    def close(self) -> None:
        for transport in [self.wrapped, *(t for (_, is_async), t in self._defaults.items() if not is_async)]:
            if transport is not None and hasattr(transport, "close"):
                transport.close()

    async def aclose(self) -> None:
        for transport in [self.wrapped, *(t for (_, is_async), t in self._defaults.items() if is_async)]:
            if transport is not None and hasattr(transport, "aclose"):
                await transport.aclose()


__all__ = ["FEATURE_HEADER", "ChaosTransport", "Resolved", "resolve"]
