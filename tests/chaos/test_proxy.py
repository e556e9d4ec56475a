"""The fault proxy over real sockets: pass-through fidelity, timing faults, leases, control API, safety.

Which exception each fault produces in the official SDKs is in test_sdk_compat.py, which runs
every SDK test through the proxy as well as directly against the emulator.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from chaos.faults import Fault
from chaos.proxy import FaultProxy
from chaos.proxyserve import UnsafeBind, check_bind, serve_proxy
from chaos.routes import Route, catalog_routes, parse_route, sdk_base
from tests.conftest import until

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 2 plus 3?"}]}


class Echo:
    """An upstream that reports what it received, and streams on request, slowly."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.finished_at: float | None = None
        self.disconnected = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/v1/echo", self.echo)
        app.router.add_post("/v1/slow", self.slow)
        app.router.add_get("/v1/gzip", self.gzipped)
        return app

    async def echo(self, request: web.Request) -> web.Response:
        self.seen.append({"method": request.method, "path": request.path_qs, "headers": request.headers.copy(),
                          "body": (await request.read()).decode()})
        return web.json_response({"ok": True}, headers={"x-request-id": "req_123", "openai-processing-ms": "7"})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        """``?n=`` events (default 5), 0.2 s apart."""
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(int(request.query.get("n", 5))):
                await resp.write(f"data: {{\"n\": {i}}}\n\n".encode())
                await asyncio.sleep(0.2)
            await resp.write(b"data: [DONE]\n\n")
        except ConnectionResetError:
            self.disconnected.set()
            return resp
        self.finished_at = time.monotonic()
        return resp

    async def gzipped(self, request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b'{"zipped": true}'),
                            headers={"content-type": "application/json", "content-encoding": "gzip"})


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, str]]:
    upstream = Echo()
    runner = web.AppRunner(upstream.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield upstream, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def proxied(emulator, echo, course) -> AsyncIterator[tuple[FaultProxy, str]]:
    routes = catalog_routes(emulator.url)
    routes["echo"] = Route("echo", echo[1] + "/v1", "openai")
    proxy = FaultProxy(routes, log_size=50)
    running = await serve_proxy(proxy, port=0, fast=course)
    try:
        yield proxy, running.url
    finally:
        await running.stop()


# -- pass-through -------------------------------------------------------------------------------

async def test_request_and_response_pass_through_untouched(proxied, echo):
    proxy, url = proxied
    upstream, _ = echo
    async with httpx.AsyncClient() as c:
        r = await c.put(f"{url}/echo/echo?api-version=2024-10-21&x=1", content=b"not json at all",
                        headers={"authorization": "Bearer sk-secret", "x-custom": "kept",
                                 "x-airisk-feature": "search", "connection": "keep-alive"})
    assert r.status_code == 200
    assert r.json() == {"ok": True}
    assert r.headers["x-request-id"] == "req_123"  # the provider's headers reach the product
    assert r.headers["openai-processing-ms"] == "7"
    got = upstream.seen[0]
    assert got["method"] == "PUT"
    assert got["path"] == "/v1/echo?api-version=2024-10-21&x=1"
    assert got["body"] == "not json at all"
    assert got["headers"]["Authorization"] == "Bearer sk-secret"
    assert got["headers"]["X-Custom"] == "kept"
    assert "X-Airisk-Feature" not in got["headers"]  # airisk's own header stays with airisk
    assert got["headers"]["Host"] == echo[1].removeprefix("http://")
    entry = proxy.log.since()[-1]
    assert (entry["route"], entry["feature"], entry["status"], entry["faults"]) == ("echo", "search", 200, [])
    assert "secret" not in json.dumps(entry) and "api-version" not in json.dumps(entry)  # no headers, no query


async def test_compressed_body_is_passed_as_sent(proxied):
    _, url = proxied
    async with httpx.AsyncClient() as c:
        r = await c.get(f"{url}/echo/gzip")
    assert r.headers["content-encoding"] == "gzip"
    assert r.json() == {"zipped": True}  # the client decompressed what the upstream compressed


async def test_stream_is_forwarded_chunk_by_chunk(proxied, echo):
    _, url = proxied
    upstream, _ = echo
    async with httpx.AsyncClient() as c, c.stream("POST", f"{url}/echo/slow?n=10", json={}) as r:
        chunks = r.aiter_raw()
        first = await anext(chunks)
        first_at = time.monotonic()
        rest = b"".join([chunk async for chunk in chunks])
    assert first == b'data: {"n": 0}\n\n'
    # The first event reached the client while the upstream was still writing (~2 s more; the
    # 0.5 s margin leaves 1.5 s for a slow machine). A buffering proxy would deliver it only after
    # the upstream finished: a difference <= 0.
    assert upstream.finished_at is not None and upstream.finished_at - first_at > 0.5
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_client_hanging_up_stops_the_upstream_read(proxied, echo):
    proxy, url = proxied
    upstream, _ = echo
    # ~10 s of events: a proxy that kept reading would leave the upstream writing past the wait
    async with httpx.AsyncClient() as c, c.stream("POST", f"{url}/echo/slow?n=50", json={}) as r:
        await anext(r.aiter_raw())
    await asyncio.wait_for(upstream.disconnected.wait(), 10)  # the proxy let go of the upstream too
    await until(lambda: proxy.log.since()[-1].get("error"), 10, "the hang-up in the log")
    assert proxy.log.since()[-1]["error"] == "client disconnected"


async def test_unknown_route_and_unreachable_upstream(emulator, course):
    routes = {"gone": Route("gone", "http://127.0.0.1:9", "openai")}  # port 9 (discard): nothing listens
    proxy = FaultProxy(routes)
    running = await serve_proxy(proxy, port=0, fast=course)
    try:
        async with httpx.AsyncClient() as c:
            unknown = await c.post(f"{running.url}/nope/v1/chat/completions", json=CHAT)
            gone = await c.post(f"{running.url}/gone/chat/completions", json=CHAT)
    finally:
        await running.stop()
    assert unknown.status_code == 404 and "route 'nope': unknown (known: gone)" in unknown.json()["error"]
    assert gone.status_code == 502
    # in the route's own error format (OpenAI's here), marked as the proxy's own answer
    assert gone.json()["error"]["message"].startswith("airisk fault proxy: cannot reach http://127.0.0.1:9")
    assert gone.headers["x-airisk-proxy-error"] == "upstream"
    assert proxy.log.since()[-1]["error"].startswith("upstream unreachable")


# -- faults ----------------------------------------------------------------------------------------

async def _stream_timing(client: httpx.AsyncClient, url: str) -> tuple[float, float, list[float]]:
    """(first byte, total, arrival of each chunk) in seconds, for one streamed chat completion."""
    start = time.perf_counter()
    arrivals = []
    async with client.stream("POST", url, json={**CHAT, "stream": True}) as r:
        async for _ in r.aiter_raw():
            arrivals.append(time.perf_counter() - start)
    return arrivals[0], arrivals[-1], arrivals


async def test_first_token_delay_is_applied_once_per_request(proxied, emulator):
    proxy, url = proxied
    emulator.emu.default_profile.token_gap_ms = 20
    async with httpx.AsyncClient() as c:
        await _stream_timing(c, f"{url}/openai/chat/completions")  # warm the connections
        _, total0, _ = await _stream_timing(c, f"{url}/openai/chat/completions")
        proxy.faults.add(Fault.from_dict({"type": "first_token_delay", "params": {"delay_ms": 1000}}))
        first1, total1, arrivals = await _stream_timing(c, f"{url}/openai/chat/completions")
    assert first1 >= 1.0  # the first byte waits for the delay...
    # ...once (the 0.8 s are slack for a slow machine): twice would add 2 s, per chunk >= 8 s.
    assert total1 - total0 < 1.0 + 0.8
    # the tokens keep their 20 ms pace: the delay held anywhere after the first byte is a >= 1 s gap
    assert len(arrivals) >= 4 and max(b - a for a, b in itertools.pairwise(arrivals)) < 0.6


async def test_slow_tokens_space_the_answer(proxied):
    proxy, url = proxied
    proxy.faults.add(Fault.from_dict({"type": "slow_tokens", "params": {"gap_ms": 100}}))
    async with httpx.AsyncClient() as c:
        _, total, arrivals = await _stream_timing(c, f"{url}/openai/chat/completions")
    # 8 answer tokens, 100 ms apart: the upstream's own 2 ms gaps are stretched.
    assert total >= 0.7
    assert len(arrivals) >= 8


async def test_scope_model_feature_and_probability(proxied):
    proxy, url = proxied
    proxy.faults.add(Fault.from_dict({"type": "overloaded", "feature": "description"}))
    proxy.faults.add(Fault.from_dict({"type": "auth", "model": "gpt-4o"}))
    async with httpx.AsyncClient() as c:
        hit = await c.post(f"{url}/openai/chat/completions", json=CHAT, headers={"x-airisk-feature": "description"})
        other = await c.post(f"{url}/openai/chat/completions", json=CHAT, headers={"x-airisk-feature": "search"})
        model = await c.post(f"{url}/openai/chat/completions", json={**CHAT, "model": "gpt-4o"})
        proxy.faults.clear()
        proxy.faults.add(Fault.from_dict({"type": "server_error", "probability": 0.5}))
        statuses = [(await c.post(f"{url}/openai/chat/completions", json=CHAT)).status_code for _ in range(60)]
    assert (hit.status_code, other.status_code, model.status_code) == (503, 200, 401)
    assert 10 <= statuses.count(500) <= 50 and statuses.count(500) + statuses.count(200) == 60


async def test_lease_ends_the_fault_by_itself(proxied):
    _, url = proxied
    async with httpx.AsyncClient() as c:
        added = (await c.post(f"{url}/_airisk/faults", json={"type": "overloaded", "route": "openai",
                                                              "for_s": 2})).json()
        during = await c.post(f"{url}/openai/chat/completions", json=CHAT)
        deadline = time.monotonic() + 10
        while (after := await c.post(f"{url}/openai/chat/completions", json=CHAT)).status_code == 503:
            assert time.monotonic() < deadline, "the fault outlived its 2 s lease by 8 s"
            await asyncio.sleep(0.05)
        over_at = time.time()
        listed = (await c.get(f"{url}/_airisk/faults")).json()
    assert added["expires_at"] is not None
    assert (during.status_code, after.status_code) == (503, 200)
    assert over_at >= added["expires_at"]  # not before its lease was up
    assert listed == []


async def test_reset_removes_every_fault_at_once(proxied):
    proxy, url = proxied
    async with httpx.AsyncClient() as c:
        for kind in ("overloaded", "hang", "slow_tokens"):
            await c.post(f"{url}/_airisk/faults", json={"type": kind})
        reset = (await c.post(f"{url}/_airisk/reset")).json()
        ok = await c.post(f"{url}/openai/chat/completions", json=CHAT, timeout=2)
    assert reset == {"reset": True, "removed": 3}
    assert ok.status_code == 200 and proxy.faults.active() == []


# -- control API ----------------------------------------------------------------------------------

async def test_control_api_names_the_bad_field(proxied):
    _, url = proxied
    async with httpx.AsyncClient() as c:
        bad_route = await c.post(f"{url}/_airisk/faults", json={"type": "overloaded", "route": "opneai"})
        bad_type = await c.post(f"{url}/_airisk/faults", json={"type": "meltdown"})
        bad_param = await c.post(f"{url}/_airisk/faults", json={"type": "hang", "params": {"secs": 1}})
        bad_json = await c.post(f"{url}/_airisk/faults", content=b"{nope", headers={"content-type": "application/json"})
        missing = await c.delete(f"{url}/_airisk/faults/f999")
        nowhere = await c.get(f"{url}/_airisk/nothing")
    assert bad_route.status_code == 400 and bad_route.json()["error"].startswith("fault.route: unknown route 'opneai'")
    assert bad_type.json()["error"].startswith("fault.type: unknown fault 'meltdown'")
    assert bad_param.json()["error"].startswith("fault.params.secs: hang takes no such parameter")
    assert bad_json.json() == {"error": "body: not valid JSON"}
    assert missing.status_code == 404 and nowhere.status_code == 404


async def test_log_is_bounded_and_readable_incrementally(proxied):
    proxy, url = proxied  # log_size=50
    async with httpx.AsyncClient() as c:
        for _ in range(60):
            await c.get(f"{url}/openai/models")
        entries = (await c.get(f"{url}/_airisk/log")).json()
        newer = (await c.get(f"{url}/_airisk/log", params={"after": entries[-3]["id"]})).json()
        last = (await c.get(f"{url}/_airisk/log", params={"limit": 1})).json()
        cleared = (await c.delete(f"{url}/_airisk/log")).json()
    assert len(entries) == 50 and entries[-1]["id"] == 60
    assert [e["id"] for e in newer] == [59, 60]
    assert last[0]["id"] == 60
    assert cleared == {"removed": 50} and len(proxy.log) == 0


# -- safety and routes ----------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "8.8.8.8"])
def test_only_loopback_without_allow_external(host):
    with pytest.raises(UnsafeBind, match="--allow-external"):
        check_bind(host, allow_external=False)
    check_bind(host, allow_external=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_is_allowed(host):
    check_bind(host, allow_external=False)


async def test_serve_refuses_a_public_address():
    with pytest.raises(UnsafeBind):
        await serve_proxy(FaultProxy({}), host="0.0.0.0", port=0)


def test_routes_use_each_sdks_own_base_url():
    real = catalog_routes()
    assert real["openai"].upstream == "https://api.openai.com/v1"
    assert real["anthropic"].upstream == "https://api.anthropic.com"  # the SDK appends /v1/messages
    assert real["gemini"].upstream == "https://generativelanguage.googleapis.com"
    assert real["cohere"].upstream == "https://api.cohere.com"
    emulated = catalog_routes("http://127.0.0.1:8470/")
    assert emulated["anthropic"].upstream == "http://127.0.0.1:8470/anthropic"
    assert emulated["openai"].upstream == "http://127.0.0.1:8470/openai/v1"
    assert sdk_base("openai", "https://x/v1/") == "https://x/v1"
    assert parse_route("mine:anthropic=http://127.0.0.1:1/") == Route("mine", "http://127.0.0.1:1", "anthropic")
    assert parse_route("local=http://127.0.0.1:8011/v1").local
    for bad in ("nourl", "x=ftp://a", "x:klingon=http://a", "_x=http://a"):
        with pytest.raises(ValueError, match="--route"):
            parse_route(bad)


# -- the request log and the garbage collector -------------------------------------------------

async def test_a_kept_entry_is_out_of_the_garbage_collectors_reach_and_reads_as_before(proxied):
    """A pass-through request's entry holds no container (its faults an empty tuple), so a full
    ring adds nothing to a collection's pause; readers still see ``faults`` as a list."""
    import gc

    proxy, url = proxied
    async with httpx.AsyncClient() as c:
        assert (await c.post(f"{url}/openai/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
                ).status_code in (200, 400)
        proxy.faults.add(Fault.from_dict({"type": "overloaded", "id": "f1"}))
        assert (await c.post(f"{url}/openai/chat/completions", json={"model": "m", "messages": []})).status_code == 503
    plain, faulted = proxy.log._entries[-2], proxy.log._entries[-1]
    assert not gc.is_tracked(plain) and plain["faults"] == ()
    assert faulted["faults"] == ("overloaded",)
    gc.collect()  # a collection finds the faulted entry's tuple holds only a string: both leave its reach
    assert not gc.is_tracked(faulted)
    assert [e["faults"] for e in proxy.log.since()][-2:] == [[], ["overloaded"]]
    assert [e["faults"] for e in proxy.log][-2:] == [[], ["overloaded"]] and proxy.log[-1]["faults"] == ["overloaded"]


async def test_an_entrys_time_is_when_its_faults_were_decided_not_when_its_head_came(proxied):
    """A body that comes late: the entry's ``at`` is after it came (a drill counts a request by it,
    against when faults came and went), and a fault added in between is the one it meets."""
    proxy, url = proxied
    body = b'{"model": "m", "messages": []}'
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        await writer.drain()
        await until(lambda: len(proxy.log) == 1)  # the head is read: the request is in the log
        proxy.faults.add(Fault.from_dict({"type": "overloaded", "id": "f1"}))
        added = time.time()
        writer.write(body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 503")
    entry = proxy.log.since()[-1]
    assert entry["at"] >= added and entry["faults"] == ["overloaded"]


async def test_with_no_fault_the_request_is_read_after_it_went_upstream_and_logged_as_before(emulator, course):
    """No fault in force: the body's model and stream are read once the request has gone upstream
    (off the path to the first byte), and still reach the log, also when the upstream is unreachable."""
    routes = catalog_routes(emulator.url)
    routes["gone"] = Route("gone", "http://127.0.0.1:9", "anthropic")  # port 9: nothing listens
    proxy = FaultProxy(routes)
    running = await serve_proxy(proxy, port=0, fast=course)
    try:
        async with httpx.AsyncClient() as c:
            ask = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            ok = await c.post(f"{running.url}/openai/chat/completions", json=ask)
            gone = await c.post(f"{running.url}/gone/v1/messages", json={"model": "claude-x", "max_tokens": 5,
                                                                         "messages": ask["messages"]})
    finally:
        await running.stop()
    assert ok.status_code == 200 and "data: " in ok.text
    assert gone.status_code == 502 and gone.json()["error"]["type"] == "api_error"
    first, second = proxy.log.since()
    assert (first["model"], first["stream"], first["status"]) == ("gpt-4o-mini", True, 200)
    assert (second["model"], second["status"]) == ("claude-x", 502)
