"""Run the fault proxy under uvicorn, on loopback unless told otherwise.

`AiriskHttpProtocol` is uvicorn's own httptools protocol with one addition: the
connection's transport in ``scope["extensions"]["airisk.transport"]``, because a fault
proxy must be able to reset (RST) or drop a connection, and ASGI has no message for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chaos import proxycontrol
from chaos.controlguard import ControlGuard
from chaos.proxy import _TRANSPORT_KEY, FaultProxy

GRACE_S = 3.0
"""How long a stop waits for requests in flight before dropping their connections: a ``hang``
fault holds its request for minutes, and a stop must not wait for it."""
_BACKSTOP_S = 2.0  # after the grace and the drop, uvicorn cancels what still runs


class AiriskHttpProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {_TRANSPORT_KEY: self.transport}  # type: ignore[typeddict-unknown-key]


class _Server(uvicorn.Server):
    def capture_signals(self):  # the caller owns signals (uvicorn would take SIGINT/SIGTERM)
        return contextlib.nullcontext()

    async def shutdown(self, sockets=None) -> None:
        """uvicorn's shutdown, with the connections still held after the grace dropped (FIN): a
        client held by a ``hang`` fault sees its connection end, as when a server goes away. (Left
        to uvicorn's own timeout, each request's task is cancelled and the client gets a 500.)"""
        grace = max(0.0, (self.config.timeout_graceful_shutdown or 0) - _BACKSTOP_S)
        dropping = asyncio.get_running_loop().call_later(grace, self._drop_connections)
        try:
            await super().shutdown(sockets)
        finally:
            dropping.cancel()

    def _drop_connections(self) -> None:
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()  # the request's receive() now says http.disconnect: its task ends


class UnsafeBind(ValueError):
    pass


def check_bind(host: str, *, allow_external: bool) -> None:
    """Refuse a non-loopback address unless ``allow_external``: a fault proxy open to a network
    lets anyone there break (or read) the traffic it carries."""
    if allow_external:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise UnsafeBind(f"--host {host!r}: cannot resolve it ({exc.strerror})") from None
    outside = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if outside:
        raise UnsafeBind(f"--host {host!r}: {outside[0]} is not a loopback address; "
                         "pass --allow-external to serve the fault proxy beyond this machine")


@dataclass
class RunningProxy:
    proxy: FaultProxy
    server: uvicorn.Server
    task: asyncio.Task
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


def config(proxy: FaultProxy, host: str, port: int, *, grace: float = GRACE_S) -> uvicorn.Config:
    return uvicorn.Config(proxy, host=host, port=port, http=AiriskHttpProtocol, lifespan="on", access_log=False,
                          log_level="warning", backlog=2048, timeout_keep_alive=30,
                          server_header=False, date_header=False,  # the upstream's own pass through
                          proxy_headers=False,  # X-Forwarded-* rewriting: nothing to do for a fault proxy
                          timeout_graceful_shutdown=grace + _BACKSTOP_S)


async def serve_proxy(proxy: FaultProxy, *, host: str = "127.0.0.1", port: int = 8480,
                      allow_external: bool = False, guard: ControlGuard | None = None,
                      grace: float = GRACE_S) -> RunningProxy:
    """Start serving in the running loop; ``stop()`` ends it, waiting at most ``grace`` seconds for
    requests in flight. Port 0 picks a free port. The control API takes requests as ``guard``
    says (default: `ControlGuard.for_server`, which refuses ``allow_external`` with no token)."""
    check_bind(host, allow_external=allow_external)
    proxycontrol.set_guard(proxy, guard or ControlGuard.for_server(host, allow_external=allow_external))
    server = _Server(config(proxy, host, port, grace=grace))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it (e.g. the port is taken)
            raise RuntimeError("the fault proxy stopped while starting")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningProxy(proxy, server, task, bound)
