"""One control API for every fault injection point, framework-free: a request in, a reply out.

The emulator (aiohttp, `chaos.control.aiohttpmount`) and the fault proxy (its own HTTP server,
`chaos.proxycontrol`) each turn a request under ``/_airisk/`` into a call of `ControlAPI.handle`
and write the `Reply` back in their own framework. So the guard runs in one place, and the verbs
both have mean the same on both:

    GET    /_airisk/health                 routes served, faults in force, requests logged
    GET    /_airisk/fault-types            the fault catalogue with parameters and defaults
    GET    /_airisk/faults                 faults in force (lapsed leases are dropped)
    POST   /_airisk/faults                 add one -> 201 with its id
    POST   /_airisk/faults/{id}/renew      extend its lease: {"for_s"}; 404 when gone, with
                                           "lapsed_at" when its lease ran out (not removed)
    DELETE /_airisk/faults/{id}            remove one
    DELETE /_airisk/faults                 remove all
    POST   /_airisk/reset                  remove every fault, and whatever else the side resets:
                                           {"reset": true, "removed": n}
    GET    /_airisk/log?after=ID&limit=N   the request log, oldest first: every entry kept (the ring's
                                           size), only those newer than ``after``, the last ``limit``

Each side adds its own verbs (`Verb`): the emulator its profiles, status pages, timeline and model
listings (`chaos.control.emulatorside`); the proxy its routes, capture and ``DELETE log``
(`chaos.control.proxyside`). Errors are ``{"error": "<field>: <problem>"}``: 400 for a bad
request, 404 for an unknown id or path, 405 for a path that does not take the method (with
``Allow``). Every request passes `chaos.controlguard` first (403/401/415), then its body is read
up to ``MAX_BODY`` bytes (413).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.controlguard import MAX_BODY, ControlGuard
from chaos.faults import Fault, FaultError, FaultSet, known_fault_types
from chaos.requestlog import RequestLog

PREFIX = "/_airisk/"


class TooLarge(ValueError):
    """Raised by a mount's body reader once the body passes the limit it was given."""


@dataclass(frozen=True, slots=True)
class Request:
    """One control request, parsed by the mount: ``path`` is below ``/_airisk/`` without a
    trailing slash; ``query`` holds one value a name."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON; ValueError "body: not valid JSON" otherwise (an empty body included)."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ValueError("body: not valid JSON") from None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class NotFound(LookupError):
    """An id the request names does not exist: a 404 with this message (and ``fields``, more of
    the answer's JSON)."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = fields


# A verb: the request and the values of the path's ``{...}`` segments in, a reply (or a JSON body for
# a 200) out. It raises ValueError (400) or NotFound (404).
Verb = Callable[[Request, dict[str, str]], Any]


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {"error": message}, headers or {})


def _whole(query: Mapping[str, str], name: str) -> int:
    raw = query.get(name, "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValueError(f"{name}: must be a whole number, got {raw[:20]!r}")
    return int(raw)


class ControlAPI:
    """The control API of one injection point: its faults, its request log, its guard, and the
    verbs only it has.

    ``routes`` are the routes a fault may name (checked by `Fault.from_dict`); ``health`` gives the
    side's ``routes`` field; ``reset`` resets what the side has besides its faults."""

    def __init__(self, *, faults: FaultSet, log: RequestLog, routes: Callable[[], Mapping[str, Any]],
                 health: Callable[[], dict[str, Any]], guard: Callable[[], ControlGuard],
                 reset: Callable[[], None] = lambda: None,
                 verbs: tuple[tuple[str, str, Verb], ...] = ()) -> None:
        self.faults, self.log, self.guard = faults, log, guard
        self._routes, self._health, self._reset = routes, health, reset
        common: tuple[tuple[str, str, Verb], ...] = (
            ("GET", "health", self._get_health),
            ("GET", "fault-types", _fault_types),
            ("GET", "faults", lambda r, p: [f.to_dict() for f in self.faults.active()]),
            ("POST", "faults", self._add),
            ("DELETE", "faults", lambda r, p: {"removed": self.faults.clear()}),
            ("POST", "faults/{id}/renew", self._renew),
            ("DELETE", "faults/{id}", self._remove),
            ("POST", "reset", self._reset_all),
            ("GET", "log", self._log),
        )
        self._verbs = [(method, tuple(pattern.split("/")), verb) for method, pattern, verb in (*common, *verbs)]

    # -- the request course ---------------------------------------------------------------------

    async def handle(self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str],
                     read_body: Callable[[int], Awaitable[bytes | None]]) -> Reply | None:
        """Guard, body, dispatch. ``headers`` answer ``get`` with lowercase names; ``read_body(limit)``
        returns the whole body, raises `TooLarge` past ``limit``, or returns None if the client left
        before sending all of it (then there is nobody to answer: None)."""
        length = headers.get("content-length")
        has_body = headers.get("transfer-encoding") is not None or (
            length is not None and length.strip() not in ("", "0"))
        refusal = self.guard().check(host=headers.get("host"), origin=headers.get("origin"),
                                     content_type=headers.get("content-type"),
                                     authorization=headers.get("authorization"), has_body=has_body)
        if refusal is not None:
            return _error(refusal.status, refusal.message, refusal.headers)
        too_large = _error(413, f"body: larger than {MAX_BODY} bytes")
        if length is not None and length.isascii() and length.strip().isdigit() and int(length) > MAX_BODY:
            return too_large  # refused before a byte of it is read
        try:
            body = await read_body(MAX_BODY)
        except TooLarge:
            return too_large
        if body is None:
            return None
        return self.dispatch(Request(method, path.removeprefix(PREFIX).strip("/"), query, body))

    def dispatch(self, request: Request) -> Reply:
        """The reply to a request the guard let through."""
        parts = tuple(request.path.split("/"))
        allowed: list[str] = []
        for method, pattern, verb in self._verbs:
            bound = _match(pattern, parts)
            if bound is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            try:
                result = verb(request, bound)
            except NotFound as exc:
                return Reply(404, {"error": str(exc.args[0]), **exc.fields})
            except ValueError as exc:  # FaultError among them
                return _error(400, str(exc))
            return result if isinstance(result, Reply) else Reply(200, result)
        where = f"{request.method} {PREFIX}{request.path}"
        if allowed:
            return _error(405, f"{where}: not allowed here (allowed: {', '.join(allowed)})",
                          {"Allow": ", ".join(allowed)})
        return _error(404, f"{where}: no such control endpoint")

    # -- the common verbs -----------------------------------------------------------------------

    def _get_health(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        return {"ok": True, "routes": self._health(), "faults": len(self.faults.active()), "logged": len(self.log)}

    def _add(self, request: Request, path: dict[str, str]) -> Reply:
        fault = self.faults.add(Fault.from_dict(request.json(), routes=self._routes()))
        return Reply(201, fault.to_dict())

    def _renew(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        fault_id = path["id"]
        fault = next((f for f in self.faults.active() if f.id == fault_id), None)
        if fault is None:
            lapsed = self.faults.lapsed_at(fault_id)
            if lapsed is not None:  # said apart from "never there / removed": a drill puts it back
                raise NotFound(f"fault {fault_id!r}: its lease ended at {lapsed:.3f}; add it again", lapsed_at=lapsed)
            raise NotFound(f"fault {fault_id!r}: no such fault (removed, or its lease ended long ago)")
        data = request.json() if request.body else None  # no body: "for_s: must be ..." names what is missing
        fault.renew(data.get("for_s") if isinstance(data, dict) else None)
        return fault.to_dict()

    def _remove(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        if not self.faults.remove(path["id"]):
            raise NotFound(f"fault {path['id']!r}: no such fault")
        return {"removed": path["id"]}

    def _reset_all(self, request: Request, path: dict[str, str]) -> dict[str, Any]:
        removed = self.faults.clear()
        self._reset()
        return {"reset": True, "removed": removed}

    def _log(self, request: Request, path: dict[str, str]) -> list[dict[str, Any]]:
        after, limit = _whole(request.query, "after"), _whole(request.query, "limit")
        return self.log.since(after, limit or None)


def _fault_types(request: Request, path: dict[str, str]) -> list[dict[str, Any]]:
    return known_fault_types()


def _match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> dict[str, str] | None:
    if len(pattern) != len(parts):
        return None
    bound: dict[str, str] = {}
    for want, got in zip(pattern, parts, strict=True):
        if want.startswith("{"):
            if not got:
                return None
            bound[want[1:-1]] = got
        elif want != got:
            return None
    return bound


__all__ = ["PREFIX", "ControlAPI", "FaultError", "NotFound", "Reply", "Request", "TooLarge", "Verb"]
