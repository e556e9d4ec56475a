"""The fault proxy stays correct and bounded whatever the two sides send (issue 13): an upstream
that never answers, paths that decoding would corrupt, hop-by-hop headers, interim responses,
bodies without end, stream events without end. Every hostile side is a loopback server or
client of the test's own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

import chaos.rewrite
from chaos.faults import Fault
from chaos.proxy import BodyTooLarge, ClientGone, FaultProxy, read_body
from chaos.proxyserve import serve_proxy
from chaos.routes import Route
from tests.conftest import until

OK = b'{"ok":true}'


def http_response(body: bytes = OK, *, status: bytes = b"200 OK", headers: bytes = b"",
                  content_type: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n" + headers + b"\r\n" + body)


class Scripted:
    """A loopback upstream that records each request head as received, byte for byte, and
    answers with ``answer`` (None: accepts, reads, and never answers; a tuple: its parts 0.2 s
    apart). ``closed`` counts the connections whose other end (the proxy) closed them."""

    def __init__(self, answer: bytes | tuple[bytes, ...] | None = None) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.accepted = 0
        self.closed = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if self.answer is None:
                    await reader.read()  # returns at EOF: when the proxy lets go
                    break
                for i, part in enumerate(self.answer if isinstance(self.answer, tuple) else [self.answer]):
                    if i:
                        await asyncio.sleep(0.2)
                    writer.write(part)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.closed += 1
        writer.close()


@pytest.fixture
async def make_proxy(course) -> AsyncIterator:
    """``await make_proxy(answer, dialect=..., **FaultProxy options)`` -> (proxy, its URL, the upstream)."""
    running, upstreams = [], []

    async def make(answer: bytes | None = b"", *, dialect: str = "openai", **options):
        upstream = Scripted(http_response() if answer == b"" else answer)
        base = await upstream.start()
        upstreams.append(upstream)
        proxy = FaultProxy({"up": Route("up", base + "/v1", dialect)}, **options)
        served = await serve_proxy(proxy, port=0, fast=course)
        running.append(served)
        return proxy, served.url, upstream

    try:
        yield make
    finally:
        for served in running:
            await served.stop()
        for upstream in upstreams:
            await upstream.stop()


async def raw_exchange(url: str, request: bytes, *, read: bool = True) -> bytes:
    """Sends ``request`` as is (no client library to normalise it) and reads until the proxy closes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10) if read else b""
    finally:
        writer.close()
        await writer.wait_closed()


def request_line(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0]


# -- 1. a silent upstream: the client leaving, and the head timeout -------------------------------

async def test_client_leaving_closes_a_silent_upstreams_socket(make_proxy):
    proxy, url, upstream = await make_proxy(None)
    host, port = url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /up/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
    await writer.drain()
    await until(lambda: upstream.heads, 10, "the request at the upstream")
    writer.close()  # the product gives up while the upstream has not sent a byte
    await writer.wait_closed()
    # Before: the proxy waited for the head for ever, holding this socket and a task.
    await until(lambda: upstream.closed == 1, 5, "the upstream's socket closed by the proxy")
    await until(lambda: proxy.log.since()[-1].get("error"), 5, "the hang-up in the log")
    assert proxy.log.since()[-1]["error"] == "client disconnected"


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini", "cohere", "ollama"])
async def test_no_head_within_the_timeout_is_a_504_in_the_routes_own_format(make_proxy, dialect):
    proxy, url, upstream = await make_proxy(None, dialect=dialect, head_timeout_s=0.3)
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.post(f"{url}/up/chat/completions", json={"model": "m"})
    assert r.status_code == 504
    assert r.headers["x-airisk-proxy-error"] == "timeout"
    text = json.dumps(r.json())
    assert "sent no response within 0.3s" in text
    if dialect == "anthropic":  # the SDK reads this shape and retries on its 5xx
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "api_error"
        assert r.headers["x-should-retry"] == "true"
    elif dialect in ("openai", "gemini"):
        assert r.json()["error"]["message"].startswith("airisk fault proxy")
    await until(lambda: upstream.closed == 1, 5, "the silent upstream's socket closed")
    assert proxy.log.since()[-1]["status"] == 504


async def test_an_unreachable_upstream_is_a_502_in_the_routes_own_format(course):
    proxy = FaultProxy({"gone": Route("gone", "http://127.0.0.1:9", "anthropic")})  # port 9: nothing listens
    running = await serve_proxy(proxy, port=0, fast=course)
    try:
        async with httpx.AsyncClient() as c:
            r = await c.post(f"{running.url}/gone/v1/messages", json={"model": "m"})
    finally:
        await running.stop()
    assert r.status_code == 502 and r.headers["x-airisk-proxy-error"] == "upstream"
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "api_error"  # before: OpenAI's shape
    assert r.json()["error"]["message"].startswith("airisk fault proxy: cannot reach http://127.0.0.1:9")


# -- 2. the path as sent ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"/a%20b", b"/a%23b", b"/a%3Fb", b"/a%2Fb/c", b"/caf%C3%A9", b"/a;b=c"])
async def test_the_path_reaches_the_upstream_as_sent(make_proxy, raw):
    _, url, upstream = await make_proxy()
    answer = await raw_exchange(url, b"GET /up" + raw + b"?q=%20x&r=1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    # Before: decoded first, %20 split the request line, %23 and %3F cut the path short.
    assert request_line(upstream.heads[0]) == b"GET /v1" + raw + b"?q=%20x&r=1 HTTP/1.1"


@pytest.mark.parametrize("raw", [b"/a%00b", b"/a%0D%0Ahost:%20evil", b"/a%0ab", b"/a%7Fb", b"/a%09b"])
async def test_an_encoded_control_character_is_refused(make_proxy, raw):
    proxy, url, upstream = await make_proxy()
    answer = await raw_exchange(url, b"GET /up" + raw + b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b'"path: an encoded control character' in answer
    assert upstream.heads == [] and len(proxy.log) == 0


# -- 3. hop-by-hop headers, interim responses ------------------------------------------------------

async def test_hop_by_hop_and_connection_named_headers_stop_at_the_proxy(make_proxy):
    answer = http_response(headers=b"connection: x-hop-down\r\nx-hop-down: 1\r\nproxy-authenticate: Basic\r\n"
                                   b"x-kept: yes\r\n")
    _, url, upstream = await make_proxy(answer)
    got = await raw_exchange(url, b"POST /up/chat HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n"
                                  b"connection: keep-alive, X-Hop-Up\r\nx-hop-up: secret\r\nkeep-alive: timeout=5\r\n"
                                  b"proxy-authorization: Basic cHJveHk6cGFzcw==\r\nte: trailers\r\n"
                                  b"authorization: Bearer sk-kept\r\nx-custom: kept\r\n\r\n{}"
                                  b"GET /up/close HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    head = upstream.heads[0].lower()
    for name in (b"x-hop-up", b"proxy-authorization", b"keep-alive", b"te:", b"connection"):
        assert name not in head, name
    assert b"authorization: bearer sk-kept" in head and b"x-custom: kept" in head
    first = got.split(b"\r\n\r\n", 1)[0].lower()
    assert b"x-hop-down" not in first and b"proxy-authenticate" not in first and b"x-kept: yes" in first


@pytest.mark.parametrize("interim", [b"100 Continue\r\n", b"103 Early Hints\r\nlink: </style.css>; rel=preload\r\n",
                                     b"100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n"])
async def test_interim_responses_are_skipped(make_proxy, interim):
    _, url, _ = await make_proxy((b"HTTP/1.1 " + interim + b"\r\n", http_response(headers=b"x-final: yes\r\n")))
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/up/chat/completions", json={"model": "m"}, headers={"expect": "100-continue"})
        again = await c.post(f"{url}/up/chat/completions", json={"model": "m"})  # the connection still in step
    assert (r.status_code, r.content, r.headers.get("x-final")) == (200, OK, "yes")
    assert "link" not in r.headers  # the interim response's headers are not the answer's
    assert (again.status_code, again.content) == (200, OK)


# -- 4. the request body cap ------------------------------------------------------------------------

async def test_a_body_over_the_cap_is_a_413_and_never_reaches_the_upstream(make_proxy):
    proxy, url, upstream = await make_proxy(dialect="anthropic", max_body=1000)

    async def chunks():  # no content-length: the cap must hold while reading, too
        for _ in range(40):
            yield b"x" * 100

    async with httpx.AsyncClient() as c:
        declared = await c.post(f"{url}/up/v1/messages", content=b"x" * 1001)
        streamed = await c.post(f"{url}/up/v1/messages", content=chunks())
        fits = await c.post(f"{url}/up/v1/messages", content=b"x" * 1000)
    for r in (declared, streamed):
        assert r.status_code == 413 and r.headers["x-airisk-proxy-error"] == "body-too-large"
        assert r.json()["error"]["message"] == "airisk fault proxy: request body: larger than the 1,000-byte limit"
    assert fits.status_code == 200 and len(upstream.heads) == 1
    assert [e["status"] for e in proxy.log.since()] == [413, 413, 200]


def _receiver(*messages: dict):
    queue = list(messages)

    async def receive() -> dict:
        return queue.pop(0)

    return receive


async def test_read_body_stops_at_the_limit_and_on_a_disconnect():
    parts = [{"type": "http.request", "body": b"x" * 60, "more_body": True} for _ in range(3)]
    assert await read_body(_receiver(*parts[:2], {"type": "http.request", "body": b"", "more_body": False}),
                           limit=120) == b"x" * 120
    with pytest.raises(BodyTooLarge, match="body: larger than the 100-byte limit"):
        await read_body(_receiver(*parts), limit=100)
    with pytest.raises(ClientGone):  # before: the part read so far was taken for the whole body
        await read_body(_receiver(parts[0], {"type": "http.disconnect"}), limit=1000)
    assert await read_body(_receiver({"type": "http.request", "body": b"{}"})) == b"{}"  # no limit given


# -- 6. a stream event without end ----------------------------------------------------------------

async def test_a_stream_event_over_the_cap_passes_on_unedited(make_proxy, monkeypatch):
    monkeypatch.setattr(chaos.rewrite, "MAX_EVENT", 64 * 1024)
    body = b"data: {\"x\": \"" + b"y" * 100_000 + b"\"}\n\n" + b"data: [DONE]\n\n"
    proxy, url, _ = await make_proxy(http_response(body, content_type=b"text/event-stream"))
    proxy.faults.add(Fault.from_dict({"type": "stream_cut", "params": {"after_chunks": 0}}))
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/up/chat/completions", json={"model": "m", "stream": True})
    # The editor cannot hold the event, so it cannot know what it carries: the real stream goes
    # on whole, and the log says the fault was not applied (before: buffered without bound).
    assert r.content == body
    entry = proxy.log.since()[-1]
    assert entry["broken"] is None and "passed on unedited" in entry["error"]


# -- bodies the proxy only looks at -----------------------------------------------------------------

@pytest.mark.parametrize("body", [b'{"model": {}, "messages": [{"role": "user", "content": "hi"}], "max_tokens": "x"}',
                                  b'{"model": "m", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"])
async def test_a_request_body_the_proxy_cannot_read_is_passed_on(make_proxy, body):
    proxy, url, upstream = await make_proxy()
    proxy.faults.add(Fault.from_dict({"type": "wrong_answer", "model": "m"}))  # plans read the model
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/up/chat/completions", content=body, headers={"content-type": "application/json"})
    # Before: deep nesting raised RecursionError out of the request sniffing (a 500 from the proxy itself).
    assert r.status_code == 200 and r.content == OK and len(upstream.heads) == 1
    assert proxy.log.since()[-1]["model"] is None
