"""The proxy's upstream client against real servers on loopback: framing, reuse, failures."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from chaos.upstream import UpstreamError, UpstreamPool


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
