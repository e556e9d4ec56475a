"""The fault proxy's HTTP plumbing: what it reads from the client (the target, the headers, the
body, each bounded and checked) and how it answers or hangs up on its own (its errors in the
route's format, the watch on a client that leaves, a dropped connection).

Split from `chaos.proxy`, which keeps the request's course (plan, forward, edit, log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

from chaos.speakers import SPEAKERS, Ask

# RFC 9110 7.6.1 (and the older names still sent): meaningful for one connection only. Host and
# Content-Length are set again for the next hop, Proxy-Authorization is the proxy's own.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
                        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host",
                        b"content-length"})
TRANSPORT_KEY = "airisk.transport"
WATCH_AFTER_S = 0.05  # see `Watch`: well within the 1 s in which a hung-up client's upstream is let go
_PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))  # kept as sent in a request target, '%' included
_RAW_CTL = re.compile(rb"[\x00-\x20\x7f]")
_ASCII = re.compile(rb"[\x21-\x7e]*")
_CTL = re.compile(r"[\x00-\x1f\x7f]")


def hop_by_hop(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The header names (lower case) not to pass on: the standard hop-by-hop set, and every
    name the message's own ``Connection`` header lists."""
    connection = [value for key, value in headers if key.lower() == b"connection"]
    if not connection:
        return HOP_BY_HOP
    named = {token.strip().lower() for value in connection for token in value.split(b",")}
    named -= HOP_BY_HOP
    named.discard(b"")
    return HOP_BY_HOP | named if named else HOP_BY_HOP


def response_headers(raw: list[tuple[bytes, bytes]]) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(the upstream's response headers to pass on, its ``Content-Type`` or b""), in one pass:
    hop-by-hop ones are not passed on, but ``Content-Length`` is (the caller drops it when it
    changes the body)."""
    out: list[tuple[bytes, bytes]] = []
    content_type = None
    named = False
    for key, value in raw:
        lk = key.lower()
        if lk == b"content-type" and content_type is None:
            content_type = value
        if lk in HOP_BY_HOP and lk != b"content-length":
            named = named or lk == b"connection"
            continue
        out.append((key, value))
    if named:  # a Connection header may name more (rare beyond "keep-alive" or "close")
        hop = hop_by_hop(raw)
        if hop is not HOP_BY_HOP:
            out = [(k, v) for k, v in out if (lk := k.lower()) not in hop or lk == b"content-length"]
    return out, content_type or b""


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
        if lk in HOP_BY_HOP or lk.startswith(b"x-airisk-"):
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
        if hop is not HOP_BY_HOP:
            headers = [(k, v) for k, v in headers if k.lower() not in hop]
    return headers, feature, length


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


def log_entry(at: float, route: str, upstream: str, method: str, path: str, feature: str | None) -> dict[str, Any]:
    """A request's log entry as the proxy opens it, on either course (`chaos.requestlog` says what
    each field means; the answer fills in the rest)."""
    return {"at": at, "route": route, "method": method, "path": path, "upstream": upstream, "model": None,
            "feature": feature, "stream": None, "status": None, "faults": ()}


def unreachable(upstream: str, exc: BaseException) -> tuple[str, str]:
    """(the log entry's error, the 502's message) for an upstream that could not be reached or failed
    before its head."""
    return f"upstream unreachable: {exc!s}"[:300], f"airisk fault proxy: cannot reach {upstream} ({exc!s})"[:500]


def no_head(upstream: str, seconds: float) -> tuple[str, str]:
    """(the log entry's error, the 504's message) for an upstream with no head after ``seconds``."""
    return (f"upstream sent no response head in {seconds:g}s",
            f"airisk fault proxy: {upstream} sent no response within {seconds:g}s")


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


class Watch:
    """``async with Watch(receive) as watch``: if the client hangs up, the block's wait on the
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

    def __init__(self, receive: Callable, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._receive = receive
        self._loop = loop  # the running loop, when the caller knows it (asking costs a getpid() on 3.11)
        self.gone = False
        self.timed_out = False
        self.finished = False  # set before the last send: the disconnect that follows is the normal end
        self._task: asyncio.Task | None = None
        self._deadline: float | None = None

    async def __aenter__(self) -> Watch:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        owner = asyncio.current_task(loop)
        assert owner is not None
        self._owner = owner
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


async def hold(receive: Callable, seconds: float) -> None:
    """Send nothing until the client leaves or ``seconds`` pass."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass


async def drop(scope: dict[str, Any], *, reset: bool) -> None:
    """End the connection with no (more) response: RST with ``reset``, else FIN."""
    transport = scope.get("extensions", {}).get(TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("the fault proxy needs the connection to drop it: run it with chaos.proxy.serve_proxy")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns close() into an RST: what a crashed load balancer sends.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(0)  # let the server see the connection lost, so it sends no 500 of its own
