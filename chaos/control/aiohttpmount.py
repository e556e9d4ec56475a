"""The control API mounted on the emulator's aiohttp application: one catch-all route under
``/_airisk/`` that hands the request to `ControlAPI.handle` and writes its `Reply` as JSON."""

from __future__ import annotations

from aiohttp import web

from chaos.control.api import PREFIX, TooLarge
from chaos.control.changes import Emulator
from chaos.control.emulatorside import emulator_api


def add_routes(app: web.Application, emu: Emulator) -> None:
    api = emulator_api(emu)

    async def control(request: web.Request) -> web.Response:
        async def read_body(limit: int) -> bytes:
            raw = bytearray()
            async for chunk in request.content.iter_any():
                raw += chunk
                if len(raw) > limit:
                    raise TooLarge(limit)
            return bytes(raw)

        headers = {name: request.headers[name] for name in
                   ("host", "origin", "content-type", "authorization", "content-length", "transfer-encoding")
                   if name in request.headers}
        reply = await api.handle(request.method, request.path, request.query, headers, read_body)
        assert reply is not None  # aiohttp raises when the client leaves mid-body
        return web.json_response(reply.body, status=reply.status, headers=dict(reply.headers))

    app.router.add_route("*", PREFIX + "{tail:.*}", control)
