"""Run the fault proxy on its own HTTP/1.1 server (`chaos.proxyserver`), on loopback unless told otherwise.

The server hands each request's connection to the proxy in ``scope["extensions"]["airisk.transport"]``,
because a fault proxy must be able to reset (RST) or drop a connection, and ASGI has no message for that.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass, field

from chaos import proxycontrol
from chaos.controlguard import ControlGuard
from chaos.proxy import FaultProxy
from chaos.proxyfast import pass_through
from chaos.proxyserver import ProxyServer

GRACE_S = 3.0
"""How long a stop waits for requests in flight before dropping their connections: a ``hang``
fault holds its request for minutes, and a stop must not wait for it."""
_BACKSTOP_S = 2.0  # after the grace and the drop, what still runs is cancelled


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
    server: ProxyServer
    task: asyncio.Task
    port: int
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening, wait at most the grace for requests in flight, then drop (FIN) the
        connections still held (a client held by a ``hang`` fault sees its connection end, as when
        a server goes away), and close the proxy (lifespan shutdown)."""
        self.stopping.set()
        await self.task


async def _serve(server: ProxyServer, stopping: asyncio.Event, grace: float) -> None:
    await stopping.wait()
    await server.stop(grace, _BACKSTOP_S)


async def serve_proxy(proxy: FaultProxy, *, host: str = "127.0.0.1", port: int = 8480,
                      allow_external: bool = False, guard: ControlGuard | None = None,
                      grace: float = GRACE_S, fast: bool = True) -> RunningProxy:
    """Start serving in the running loop; ``stop()`` ends it, waiting at most ``grace`` seconds for
    requests in flight. Port 0 picks a free port. The control API takes requests as ``guard``
    says (default: `ControlGuard.for_server`, which refuses ``allow_external`` with no token).
    ``fast=False``: every request takes the ASGI course, none the pass-through without a task
    (`chaos.proxyfast`; the tests run both, the bench compares them)."""
    check_bind(host, allow_external=allow_external)
    proxycontrol.set_guard(proxy, guard or ControlGuard.for_server(host, allow_external=allow_external))
    server = ProxyServer(proxy, host=host, port=port, fast=functools.partial(pass_through, proxy) if fast else None)
    await server.start()  # raises what stops it (e.g. the port is taken)
    stopping = asyncio.Event()
    task = asyncio.create_task(_serve(server, stopping, grace))
    return RunningProxy(proxy, server, task, server.bound_port, stopping)
