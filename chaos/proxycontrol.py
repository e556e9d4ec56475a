"""The control API (`chaos.control.api`) mounted on the fault proxy: `handle` turns an ASGI-shaped
request under ``/_airisk/`` into a call of `ControlAPI.handle` and sends its reply as JSON.

The verbs are the emulator's common ones plus the proxy's own (`chaos.control.proxyside`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from chaos.control.api import ControlAPI, TooLarge
from chaos.control.proxyside import FaultProxy, proxy_api
from chaos.controlguard import LOOPBACK, ControlGuard
from chaos.proxyhttp import BodyTooLarge, ClientGone, read_body, send_json

PREFIX = "/_airisk/"
# Who may use each proxy's control API; `chaos.proxyserve.serve_proxy` sets it for the address it
# binds. A proxy with none set answers loopback callers only.
_GUARDS: weakref.WeakKeyDictionary[FaultProxy, ControlGuard] = weakref.WeakKeyDictionary()
_APIS: weakref.WeakKeyDictionary[FaultProxy, ControlAPI] = weakref.WeakKeyDictionary()


def set_guard(proxy: FaultProxy, guard: ControlGuard) -> None:
    _GUARDS[proxy] = guard


def control_api(proxy: FaultProxy) -> ControlAPI:
    """The proxy's `ControlAPI` (made once a proxy): a server that parses requests itself can call
    its ``handle`` directly instead of going through the ASGI-shaped `handle` below."""
    api = _APIS.get(proxy)
    if api is None:
        api = _APIS[proxy] = proxy_api(proxy, lambda: _GUARDS.get(proxy, LOOPBACK))
    return api


async def handle(proxy: FaultProxy, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
    headers: dict[str, str] = {}
    for key, value in scope["headers"]:
        headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))

    async def body(limit: int) -> bytes | None:
        try:
            return await read_body(receive, limit=limit)
        except BodyTooLarge:
            raise TooLarge(limit) from None
        except ClientGone:
            return None  # a partial body is never taken for a whole one

    query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
    reply = await control_api(proxy).handle(scope["method"], scope["path"], query, headers, body)
    if reply is not None:
        extra = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send_json(send, reply.status, reply.body, extra=extra)
