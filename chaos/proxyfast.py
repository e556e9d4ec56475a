"""The fault proxy's pass-through without a task: a request that meets no fault, relayed by callbacks.

With no fault in force and no capture, the proxy's work on a request is to pass it on and pass the
answer back, and log it. `chaos.proxy.FaultProxy` does that as an ASGI application, on a task of its
own per request; measured here (bench/proxy_overhead.py, docs/BENCHMARKS.md) the task, its ASGI
messages and the watch on the client were most of what the proxy cost beyond the bare design of
PERF_NOTES.md. `pass_through` is the server's ``fast`` hook (`chaos.proxyserver.ProxyServer`): it
takes a request that arrived whole, writes it upstream from the parser's callback, and a `Relay`
then moves the answer from the upstream connection's parser (`chaos.upstream.Sink`) to the client's
connection as it is read, one client write per upstream read: no task, no future, no ASGI message.

It does what `FaultProxy._proxy` and `_forward` do for such a request: the same bytes upstream,
the same status, headers and body to the client, the same log entry (tests/chaos/test_proxy_fast.py
compares them). Headers as sent (less hop-by-hop and ``X-AIRisk-*``), the path as received, the
answer as it arrives: what one upstream read holds goes on as one write (one chunk of a chunked
answer, where the ASGI course writes a chunk per piece the parser hands over); 502 in the route's
error format when the upstream cannot be reached or fails before its head, the client's
connection dropped when it fails after (what was read whole before goes on first); 504 after
``head_timeout_s`` with no head; a client that hangs up closes the upstream connection (or
stops its connect) at once; a client that reads slowly stops the upstream's reads, also for the
connection's next request.

It declines (the ASGI course serves the request, as before) whatever it does not cover: a fault in
force or capture on, the control API, HEAD, HTTP/1.0, a path or headers the ASGI course answers
with an error of its own (a control character, an unknown route, a body over ``max_body``), and a
route whose upstream URL has a query.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from chaos.proxyhttp import (
    HOP_BY_HOP,
    hop_by_hop,
    log_entry,
    no_head,
    proxy_error,
    request_headers,
    response_headers,
    split_target,
    unreachable,
)
from chaos.proxyserver import plain_answer
from chaos.upstream import _TARGET, UpstreamError, build_head, origin

if TYPE_CHECKING:
    import asyncio

    from chaos.proxy import FaultProxy
    from chaos.proxyserver import _Cycle
    from chaos.routes import Route
    from chaos.speakers import Ask
    from chaos.upstream import _Conn

log = logging.getLogger(__name__)
_BODIED = ("POST", "PUT", "PATCH")


def pass_through(proxy: FaultProxy, cycle: _Cycle) -> bool:
    """Take the request in ``cycle`` (arrived whole) and relay it, or return False to leave it to
    the ASGI course. Nothing is changed when it returns False."""
    pool = proxy.pool
    if pool is None or not proxy.faults.empty or proxy.capture is not None:
        return False
    scope = cycle.scope
    method = scope["method"]
    if method == "HEAD" or scope["http_version"] != "1.1" or scope["path"].startswith("/_airisk/"):
        return False
    try:
        name, raw_path, path, query = split_target(scope)
        route = proxy.routes.get(name)
        to = origin(route.upstream) if route is not None else None
    except ValueError:
        return False
    if to is None or "?" in raw_path or "#" in raw_path or "#" in query or cycle.buffered > proxy.max_body:
        return False
    pieces = cycle.body
    body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    target = (to.path + raw_path or "/") + ("?" + query if query else "")
    sized = len(body) if body or method in _BODIED else None
    made = request_head(method, target, to.host_header, scope["headers"], sized)
    if made is None:  # what only the general builder says (a bad target or host: 502), or a rare Connection
        headers, feature, length = request_headers(scope["headers"])
        try:
            made = build_head(method, target, to.host_header, headers, sized), feature, length
        except ValueError:
            return False  # (the ASGI course answers it: 502, naming the part)
    head, feature, length = made
    if length is not None and length > proxy.max_body:
        return False
    at = time.time()  # (when its faults were decided: none)
    conn = pool.take(to.key)
    if conn is not None:  # the request goes now; what follows is bookkeeping, off the path to the first byte
        conn.no_body = False
        conn.transport.write(head + body)  # type: ignore[union-attr]
    relay = Relay(proxy, cycle, route,  # type: ignore[arg-type]
                  log_entry(at, route.name, route.upstream + raw_path, method, path, feature))  # type: ignore[union-attr]
    cycle.relay = relay  # (from here an exception is the relay's to end, `crash`: the request has gone)
    if conn is not None:
        relay.attach(conn)  # (before this callback returns: no answer can have come yet)
    entry = proxy.log.open(relay.entry)
    cycle.body, cycle.buffered, cycle.read = [], 0, True
    cycle.conn.resume()  # the body is read: a client that hangs up from now on is seen at once
    if conn is None:
        relay.connecting = task = cycle.conn.loop.create_task(pool.connect(to.key))
        cycle.conn.server.tasks.add(task)  # (a stopping server waits for it, then cancels it)
        task.add_done_callback(lambda t: relay.connected(t, head + body))
    # Read for the log (its model and stream) once the request has gone upstream (see `FaultProxy._proxy`).
    relay.ask = proxy.read_ask(route, path, query, body, entry)  # type: ignore[arg-type]
    return True


def request_head(method: str, target: str, host: bytes, raw: list[tuple[bytes, bytes]],
                 length: int | None) -> tuple[bytes, str | None, int | None] | None:
    """(the request head for the upstream, the ``X-AIRisk-Feature`` value, the declared Content-Length)
    in one pass: what `request_headers` then `build_head` make of headers the server read (names
    in lower case, tokens, values free of controls: the llhttp parser refuses any other), with
    ``length`` the body's length to send. None when those two must run: a ``Connection`` header
    naming more than keep-alive or close, or a target or host that is not printable ASCII."""
    if not (_TARGET.fullmatch(target.encode("latin-1", "replace")) and target.isascii() and _TARGET.fullmatch(host)):
        return None
    out = [f"{method} {target} HTTP/1.1\r\nhost: ".encode("latin-1"), host, b"\r\n"]
    feature = declared = None
    for name, value in raw:
        if name in HOP_BY_HOP or name.startswith(b"x-airisk-"):
            if name == b"x-airisk-feature":
                feature = value.decode("latin-1")
            elif name == b"connection":
                if hop_by_hop(((name, value),)) is not HOP_BY_HOP:
                    return None
            elif name == b"content-length" and value.strip().isdigit():
                declared = int(value)
            continue
        out += (name, b": ", value, b"\r\n")
    if length is not None:
        out.append(b"content-length: %d\r\n" % length)
    out.append(b"\r\n")
    return b"".join(out), feature, declared


_HEAD_END = b"\r\n\r\n"
CHUNKED = -1  # (`passes_as_is`: a chunked answer, whose length is known only at its end)
# A header line that bars passing a head on as it came: a hop-by-hop name other than the framing
# ones, or a folded line (obs-fold, RFC 9112 5.2).
_NOT_AS_IS = re.compile(rb"\n(?:(?:connection|keep-alive|proxy-[a-z-]*|te|trailer|upgrade|host)[ \t]*:|[ \t])", re.I)
# ``Connection: keep-alive`` (what a CDN in front of a provider sends on every answer) says nothing the
# client's connection does not (it is kept alive, or the answer does not pass as it came): cut out, the
# rest goes on as it came. Any other Connection header is the general course's.
_KEEP_ALIVE = re.compile(rb"\r\nconnection[ \t]*:[ \t]*keep-alive[ \t]*(?=\r\n)", re.I)
_FRAMING = re.compile(rb"\n(transfer-encoding|content-length)[ \t]*:[ \t]*([^\r]*)\r", re.I)


def passes_as_is(data: bytes) -> tuple[bytes, int] | None:
    """Whether a response beginning ``data`` can go to the client as it came (the floor's design,
    PERF_NOTES.md: bytes on as they arrive, written before they are parsed): an HTTP/1.1 answer
    with a body (2xx-5xx, not 204 or 304), its head whole in ``data``, framed by one Content-Length
    or by chunked alone, with no header the proxy must take out but a ``Connection: keep-alive``.
    Returns (``data`` to write, that line cut out if it was there; the answer's whole length in bytes
    as the upstream sends it, head and body, for a Content-Length answer, `CHUNKED` for a chunked
    one), or None when the answer must have its head rebuilt. What the client reads then is
    what the general course sends, but for the chunks' sizes, the header names' case and order,
    and a chunked answer's trailers, which it keeps. The parse that follows tells where the answer
    ends: bytes the upstream sent past its end, or that do not parse, have gone on with the read
    that held them, and the client's connection is then closed (at once when they do not parse,
    after the answer when the parser let them be, as a stray CRLF), so the client never reads them as
    a next answer (the general course answers a head that does not parse with a 502 of its own, and
    drops the connection at a bad byte after it)."""
    status = data[9:12]
    if not (data.startswith(b"HTTP/1.1 ") and status.isdigit() and b"200" <= status <= b"599") \
            or status in (b"204", b"304"):
        return None
    end = data.find(_HEAD_END)
    if end < 0:
        return None
    head = data[:end + 2]
    cut = _KEEP_ALIVE.search(head)
    if cut is not None:
        head = head[:cut.start()] + head[cut.end():]
    if _NOT_AS_IS.search(head):
        return None
    framing = _FRAMING.findall(head)
    if len(framing) != 1:
        return None
    name, value = framing[0]
    value = value.strip()
    if name.lower() == b"content-length":
        size = end + 4 + int(value) if value.isdigit() else None
    else:
        size = CHUNKED if value.lower() == b"chunked" else None
    if size is None:
        return None
    return (data if cut is None else data[:cut.start()] + data[cut.end():]), size


def response_block(raw: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes | None] | None:
    """(the upstream's response headers as the block `_Cycle.start_block` takes, its Content-Length)
    in one pass: what `response_headers` then `_Cycle.start` make of them, for headers the llhttp
    parser read (names tokens, values free of controls); None when a ``Connection`` header may name
    more headers to leave out (then those two run)."""
    out: list[bytes] = []
    length = None
    for name, value in raw:
        name = name.lower()
        if name in HOP_BY_HOP:
            if name == b"content-length":
                length = value
            elif name == b"connection":
                return None
            else:
                continue
        out += (name, b": ", value, b"\r\n")
    return b"".join(out), length


class Relay:
    """One request's answer moved from its upstream connection to its client (`chaos.upstream.Sink`
    on one side, `chaos.proxyserver.Relay` on the other)."""

    __slots__ = ("ask", "conn", "connecting", "cycle", "ended", "entry", "last", "paused", "pending", "proxy", "raw",
                 "route", "sent", "size", "timer")

    def __init__(self, proxy: FaultProxy, cycle: _Cycle, route: Route, entry: dict[str, Any]) -> None:
        self.proxy, self.cycle, self.route, self.entry = proxy, cycle, route, entry
        self.ask: Ask | None = None
        self.conn: _Conn | None = None
        self.connecting: asyncio.Task | None = None
        self.pending: list[bytes] = []
        self.ended = False  # the entry is done: nothing more is relayed
        self.paused = False  # the upstream's reads are stopped for a client reading slowly
        self.raw = False  # the answer goes on as it arrives (`arrived`)
        self.sent = 0  # bytes of the answer read so far (written, when `raw`)
        self.size = 0  # when `raw`: its whole length (`passes_as_is`)
        self.last = b""  # when `raw`: the last read written
        loop = cycle.conn.loop
        self.timer: asyncio.TimerHandle | None = loop.call_at(loop.time() + proxy.head_timeout_s, self._timeout)

    # -- the request goes upstream --
    def attach(self, conn: _Conn) -> None:
        """``conn`` carries this request: its answer comes here (not faster than the client reads:
        a connection whose client is still draining an earlier answer starts paused)."""
        self.conn = conn
        conn.sink = self
        if self.paused or self.cycle.conn.write_paused is not None:
            self.paused = True
            conn.transport.pause_reading()  # type: ignore[union-attr]

    def connected(self, task: asyncio.Task, payload: bytes) -> None:
        self.connecting = None
        self.cycle.conn.server.tasks.discard(task)
        if task.cancelled():
            exc: BaseException | None = UpstreamError("connect cancelled: the proxy is stopping")
        else:
            exc = task.exception()
        if exc is not None:
            if not self.ended:
                self._unreachable(exc)
            return
        conn = task.result()
        if self.ended:  # the client left meanwhile
            if conn.transport is not None:
                conn.transport.close()
            return
        self.attach(conn)
        conn.no_body = False
        conn.transport.write(payload)  # type: ignore[union-attr]

    # -- the answer comes back (chaos.upstream.Sink) --
    def arrived(self, conn: _Conn, data: bytes) -> None:
        """The bytes of one read, before they are parsed: an answer whose head is whole in its first
        read and can go on as it is (`passes_as_is`) is written now, then every later read as it
        comes; the parse that follows only tells where it ends."""
        if self.raw:
            if not self.ended:
                self.sent += len(data)
                self.last = data
                self.cycle.conn.transport.write(data)
            return
        if self.sent:  # only the answer's first read may begin a head that passes as it came
            return
        self.sent = len(data)
        cycle = self.cycle
        if self.ended or cycle.started or not cycle.keep_alive or cycle.conn.closing or cycle.conn.refusing:
            return
        as_is = passes_as_is(data)
        if as_is is None:
            return
        out, self.size = as_is
        self.raw, self.last = True, data
        cycle.start_raw()
        cycle.conn.transport.write(out)
        self.entry["ttfb_ms"] = round((time.perf_counter() - cycle.began) * 1000, 3)

    def head(self, conn: _Conn) -> None:
        cycle = self.cycle
        if self.raw:
            self.entry["status"] = conn.status
            return
        if self.ended or cycle.started:
            return
        # (the head timer is let be until the end: `_timeout` does nothing once the answer has started)
        status = self.entry["status"] = conn.status
        try:
            block = response_block(conn.headers)
            if block is None:  # a Connection header naming more: the general course
                cycle.start(status, response_headers(conn.headers)[0])
            else:
                cycle.start_block(status, *block)
        except Exception as exc:  # (a header the server will not write)
            self.crash(exc)
            return
        self.entry["ttfb_ms"] = round((time.perf_counter() - cycle.began) * 1000, 3)

    def body(self, data: bytes) -> None:
        if not self.raw:
            self.pending.append(data)

    def flush(self, conn: _Conn) -> None:
        if self.ended:
            return
        if self.raw:
            if conn.done:
                if conn.error is not None:  # bytes past the answer's end went on with its last read
                    self.cycle.conn.transport.abort()  # (the client must not read them as a next answer)
                else:
                    if not self._ended_exactly():  # (bytes the parser let be, as a stray CRLF)
                        self.cycle.keep_alive = False  # the connection closes after the answer
                    self.cycle.finish()
                self._done(conn)
            return
        if conn.done and not self.cycle.started:  # a whole answer with no head seen: not one to pass on
            self.fail(conn.error or UpstreamError("upstream sent an answer the proxy could not read"))
            return
        pending = self.pending
        if not pending and not conn.done:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        try:
            self.cycle.write(data, not conn.done)
        except Exception as exc:
            self.crash(exc)
            return
        if conn.done:
            self._done(conn)

    def _ended_exactly(self) -> bool:
        """Whether the bytes written as they came end where the answer does: its length for a
        Content-Length answer, the last chunk's empty line for a chunked one."""
        if self.size != CHUNKED:
            return self.sent == self.size
        return self.last.endswith(_HEAD_END) and not self.last.endswith(b"\n\r\n\r\n")

    def _done(self, conn: _Conn) -> None:
        """The answer is whole: the entry is logged, the connection goes back to the pool."""
        self.conn = None
        self._end()
        if self.paused:  # (the client's buffer filled with this last write: the connection reads again)
            self.paused = False
            conn.transport.resume_reading()  # type: ignore[union-attr]
        pool = self.proxy.pool
        if pool is not None:
            pool.release(conn)  # (its sink goes with the reset; one that erred is closed)
        elif conn.transport is not None:
            conn.transport.close()

    def fail(self, exc: BaseException) -> None:
        if self.ended:
            return
        if not self.cycle.started:
            self._unreachable(exc)
            return
        self.entry["error"] = f"upstream: {exc!s}"[:300]  # mid-answer: so does the product's answer end
        self.cycle.conn.transport.abort()
        self._end()
        self._drop_upstream()

    # -- the client's side (chaos.proxyserver.Relay) --
    def lost(self) -> None:
        if self.ended:
            return
        self.entry["error"] = "client disconnected"
        self._end()
        self._drop_upstream()

    def pause(self) -> None:
        if self.paused:
            return
        self.paused = True  # (kept for `attach` when the connection is still being made)
        conn = self.conn
        if conn is not None and conn.transport is not None:
            conn.transport.pause_reading()

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        conn = self.conn
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading()

    # -- ends --
    def _timeout(self) -> None:
        self.timer = None
        if self.ended or self.cycle.started:
            return
        self.entry["status"] = 504
        self.entry["error"], message = no_head(self.route.upstream, self.proxy.head_timeout_s)
        self._drop_upstream()
        self._answer(504, message, b"timeout")

    def _unreachable(self, exc: BaseException) -> None:
        self.entry["status"] = 502
        self.entry["error"], message = unreachable(self.route.upstream, exc)
        self._drop_upstream()
        self._answer(502, message, b"upstream")

    def _answer(self, status: int, message: str, reason: bytes) -> None:
        """An error of the proxy's own, in the route's format (as `FaultProxy._send_error`)."""
        status, headers, body = proxy_error(self.route.dialect, status, message, self.ask, reason)
        cycle = self.cycle
        if not cycle.disconnected:
            try:
                cycle.start(status, headers)
                cycle.write(body, False)
            except Exception as exc:
                self.crash(exc)
                return
        self._end()

    def crash(self, exc: BaseException) -> None:
        """What the ASGI course does with an exception: log it, 500 if nothing was sent, close."""
        log.error("Exception in the fault proxy's pass-through", exc_info=exc)
        transport = self.cycle.conn.transport
        if not (self.cycle.disconnected or transport.is_closing()):
            if not self.cycle.started:
                transport.write(plain_answer(500, b"Internal Server Error"))
            transport.close()
        self._end()
        self._drop_upstream()

    def _drop_upstream(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.connecting is not None:  # (`connected` then sees a cancelled task and an ended relay)
            self.connecting.cancel()
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.sink = None
            if conn.transport is not None:
                conn.transport.close()

    def _end(self) -> None:
        """The entry is complete (whatever became of the answer): logged, once."""
        if self.ended:
            return
        self.ended = True
        cycle = self.cycle
        cycle.done = True
        cycle.relay = None  # (no reference cycle left behind: the cycle and its relay go when the last user drops them)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        entry = self.entry
        entry["total_ms"] = round((time.perf_counter() - cycle.began) * 1000, 3)
        self.proxy.log.done(entry)
