"""The fault proxy's JSON control API, under ``/_airisk/`` (the same shape as the emulator's).

    GET    /_airisk/health                 routes, faults in force, requests logged
    GET    /_airisk/routes                 each route's upstream and dialect
    GET    /_airisk/fault-types            the fault catalogue with parameters and defaults
    GET    /_airisk/faults                 faults in force (lapsed leases are dropped)
    POST   /_airisk/faults                 add one: {"type", "params", "probability", "route", "model",
                                           "feature", "method", "path", "for_s"} -> 201 with its id
    POST   /_airisk/faults/{id}/renew      extend its lease: {"for_s"} (drills keep short leases alive)
    DELETE /_airisk/faults/{id}            remove one
    DELETE /_airisk/faults                 remove all
    POST   /_airisk/reset                  remove all faults at once
    GET    /_airisk/log?limit=N&after=ID   the request log, oldest first (after: only newer entries)
    DELETE /_airisk/log                    empty the request log
    GET    /_airisk/capture                what ``airisk proxy --capture`` keeps: per feature its N and how
                                           many are taken, what waits, what was written, dropped or skipped

Errors are ``{"error": "<field>: <problem>"}`` with status 400 (404 for unknown ids or paths).
Every request passes `chaos.controlguard` first (403 another host or origin, 401 no token where
one is needed, 415 a body that is not JSON), and a body is read up to ``MAX_BODY`` bytes (413).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from chaos.controlguard import LOOPBACK, MAX_BODY, ControlGuard
from chaos.emulator import known_fault_types
from chaos.faults import Fault, FaultError
from chaos.proxy import BodyTooLarge, ClientGone, read_body, send_json

if TYPE_CHECKING:
    from chaos.proxy import FaultProxy

PREFIX = "/_airisk/"
# Who may use each proxy's control API; `chaos.proxyserve.serve_proxy` sets it for the address it
# binds. A proxy with none set answers loopback callers only.
_GUARDS: weakref.WeakKeyDictionary[FaultProxy, ControlGuard] = weakref.WeakKeyDictionary()


def set_guard(proxy: FaultProxy, guard: ControlGuard) -> None:
    _GUARDS[proxy] = guard


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    raw = query.get(name, [str(default)])[-1]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValueError(f"{name}: must be a whole number, got {raw[:20]!r}")
    return int(raw)


async def handle(proxy: FaultProxy, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
    method, path = scope["method"], scope["path"][len(PREFIX):].rstrip("/")
    headers: dict[bytes, bytes] = {}
    for key, value in scope["headers"]:
        headers.setdefault(key.lower(), value)

    def header(name: bytes) -> str | None:
        value = headers.get(name)
        return None if value is None else value.decode("latin-1")

    length = header(b"content-length")
    has_body = b"transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))
    refusal = _GUARDS.get(proxy, LOOPBACK).check(
        host=header(b"host"), origin=header(b"origin"), content_type=header(b"content-type"),
        authorization=header(b"authorization"), has_body=has_body)
    if refusal is not None:
        extra = [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
        await send_json(send, refusal.status, {"error": refusal.message}, extra=extra)
        return
    try:
        if length is not None and length.strip().isdigit() and int(length) > MAX_BODY:
            raise BodyTooLarge(MAX_BODY)  # refused before a byte of it is read
        body = await read_body(receive, limit=MAX_BODY)
    except BodyTooLarge:
        await send_json(send, 413, {"error": f"body: larger than {MAX_BODY} bytes"})
        return
    except ClientGone:
        return  # a partial body is never taken for a whole one, and nobody is left to answer
    query = parse_qs(scope["query_string"].decode("latin-1"))
    try:
        status, data = _dispatch(proxy, method, path, body, query)
    except (FaultError, ValueError) as exc:
        status, data = 400, {"error": str(exc)}
    await send_json(send, status, data)


def _dispatch(proxy: FaultProxy, method: str, path: str, body: bytes, query: dict[str, list[str]]) -> tuple[int, Any]:
    faults = proxy.faults
    if path == "health" and method == "GET":
        return 200, {"ok": True, "routes": {name: r.upstream for name, r in proxy.routes.items()},
                     "faults": len(faults.active()), "logged": len(proxy.log)}
    if path == "routes" and method == "GET":
        return 200, {name: {"upstream": r.upstream, "dialect": r.dialect, "local": r.local}
                     for name, r in proxy.routes.items()}
    if path == "fault-types" and method == "GET":
        return 200, known_fault_types()
    if path == "faults":
        if method == "GET":
            return 200, [f.to_dict() for f in faults.active()]
        if method == "POST":
            return 201, faults.add(Fault.from_dict(_json(body), routes=proxy.routes)).to_dict()
        if method == "DELETE":
            return 200, {"removed": faults.clear()}
    if path.startswith("faults/") and path.endswith("/renew") and method == "POST":
        fault_id = path.removeprefix("faults/").removesuffix("/renew")
        fault = next((f for f in faults.active() if f.id == fault_id), None)
        if fault is None:
            return 404, {"error": f"fault {fault_id!r}: no such fault (its lease may have ended)"}
        data = _json(body) if body else None
        fault.renew(data.get("for_s") if isinstance(data, dict) else None)
        return 200, fault.to_dict()
    if path.startswith("faults/") and method == "DELETE":
        fault_id = path.removeprefix("faults/")
        if not faults.remove(fault_id):
            return 404, {"error": f"fault {fault_id!r}: no such fault"}
        return 200, {"removed": fault_id}
    if path == "reset" and method == "POST":
        return 200, {"reset": True, "removed": faults.clear()}
    if path == "capture" and method == "GET":
        return 200, proxy.capture.summary() if proxy.capture is not None else {"features": {}}
    if path == "log":
        if method == "GET":
            return 200, proxy.log.since(_int(query, "after", 0), _int(query, "limit", 0) or None)
        if method == "DELETE":
            return 200, {"removed": proxy.log.clear()}
    return 404, {"error": f"{method} {PREFIX}{path}: no such control endpoint"}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("body: not valid JSON") from None
