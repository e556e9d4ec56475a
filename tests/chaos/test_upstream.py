"""The proxy's upstream client against real servers on loopback: framing, reuse, failures."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web

from chaos.upstream import UpstreamError, UpstreamPool, build_head


@pytest.fixture
async def upstream():
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"X-Upstream": "yes"})
        await resp.prepare(request)
        for part in (b"one ", b"two ", b"three"):
            await resp.write(part)
            await asyncio.sleep(0.01)
        return resp

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, headers={"X-Method": request.method, "X-Host": request.host})

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b"partial")
        request.transport.close()
        return resp

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/cut", cut)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


async def test_body_pieces_arrive_as_sent_and_the_connection_is_reused(upstream):
    pool = UpstreamPool()
    try:
        response = await pool.request("GET", upstream + "/chunked", [], b"")
        assert response.status == 200 and response.header(b"x-upstream") == b"yes"
        pieces = [piece async for piece in response.chunks()]
        assert b"".join(pieces) == b"one two three" and len(pieces) == 3  # chunked framing removed, reads kept
        for _ in range(5):
            again = await pool.request("POST", upstream + "/echo?x=1", [(b"content-type", b"text/plain")], b"hello")
            assert b"".join([p async for p in again.chunks()]) == b"hello"
            assert again.header(b"x-method") == b"POST"
        assert sum(len(idle) for idle in pool._idle.values()) == 1  # one connection served all six
    finally:
        pool.close()


async def test_head_ends_at_the_head(upstream):
    pool = UpstreamPool()
    try:
        response = await pool.request("HEAD", upstream + "/echo", [], b"")
        assert response.status == 200 and [p async for p in response.chunks()] == []
    finally:
        pool.close()


async def test_a_body_cut_short_is_an_error_not_a_short_answer(upstream):
    pool = UpstreamPool()
    try:
        response = await pool.request("GET", upstream + "/cut", [], b"")
        with pytest.raises(UpstreamError, match="closed the connection"):
            [p async for p in response.chunks()]
        assert not any(pool._idle.values())  # a broken connection is never reused
    finally:
        pool.close()


async def test_nobody_listening_is_an_os_error():
    pool = UpstreamPool()
    with pytest.raises(OSError):
        await pool.request("GET", "http://127.0.0.1:9/", [], b"")


@pytest.mark.parametrize("interim", [b"HTTP/1.1 100 Continue\r\n\r\n",
                                     b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
                                     b"HTTP/1.1 102 Processing\r\n\r\n"])
async def test_interim_responses_are_not_the_answer(interim):
    final = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nfinal"
    ended = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(interim)
                await writer.drain()
                await asyncio.sleep(0.2)  # the interim response alone first, as when the answer takes time
                writer.write(final)
                await writer.drain()
        writer.close()
        ended.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    pool = UpstreamPool()
    try:
        for _ in range(2):  # and the kept-alive connection stays in step for the next request
            response = await pool.request("GET", url, [], b"")
            assert response.status == 200 and response.header(b"link") is None  # before: 100 taken as final
            assert b"".join([p async for p in response.chunks()]) == b"final"
        assert sum(len(idle) for idle in pool._idle.values()) == 1
    finally:
        pool.close()
        await asyncio.wait_for(ended.wait(), 10)  # the server's side closed too, before the loop ends
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("target", "headers", "problem"), [
    ("/a b", [], "request target"), ("/a\r\nx: y", [], "request target"), ("/caf\u00e9", [], "request target"),
    ("/", [(b"x-a", b"1\r\nx-injected: 1")], "header 'x-a'"), ("/", [(b"x-a", b"\x00")], "header 'x-a'"),
    ("/", [(b"bad name", b"1")], "header name"), ("/", [(b"", b"1")], "header name")])
def test_a_head_that_would_mean_something_else_is_refused(target, headers, problem):
    with pytest.raises(ValueError, match=problem):
        build_head("GET", target, b"127.0.0.1:1", headers, None)
    assert build_head("GET", "/a%20b?q=1", b"h:1", [(b"x-a", b"tab\tand \xff")], 2) == (
        b"GET /a%20b?q=1 HTTP/1.1\r\nhost: h:1\r\nx-a: tab\tand \xff\r\ncontent-length: 2\r\n\r\n")
