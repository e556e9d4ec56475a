"""Who may use a control API (``/_airisk/...``): one check shared by the emulator and the proxy.

A control API changes what a product gets from its provider and reads its request log, so a
request must come from this machine's own tools, not from a web page the user happens to have
open. A page can send a "simple" cross-origin request (a POST with a ``text/plain`` body needs
no CORS preflight) to 127.0.0.1, and by DNS rebinding it can read the answers too. So:

- ``Host`` must name this machine (127.0.0.1, localhost, [::1], any port) or the address the
  server was told to bind: a rebinding page's requests carry its own domain.
- An ``Origin`` (browsers send one with every cross-origin POST, PUT and DELETE) must name such
  a host too; ``null`` (a sandboxed frame, a local file) is foreign.
- A request with a body says ``Content-Type: application/json``, which a page cannot send
  across origins without a preflight, and the control API answers no preflight.
- Served beyond loopback (``--allow-external``), every request carries
  ``Authorization: Bearer $AIRISK_CONTROL_TOKEN``; starting so with no token is refused. When
  the server binds a wildcard address (0.0.0.0, ::) it cannot know the names it is reached by:
  any ``Host`` is taken then, and the token is the check.
- A body is at most `MAX_BODY` bytes (413).

`ControlGuard.check` is pure (headers in, a `Refusal` or None out); `chaos.control.api`'s
`ControlAPI.handle` calls it, once, for the emulator and the proxy alike, before reading a body.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from probes.addresses import is_loopback as is_loopback_name

TOKEN_ENV = "AIRISK_CONTROL_TOKEN"
MAX_BODY = 1024 * 1024  # a control body is a fault or a timeline: a megabyte is a long script
_WILDCARD = frozenset({"", "0.0.0.0", "::", "[::]"})


class ControlGuardError(ValueError):
    """A control API that cannot be served safely as asked (external, with no token)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str  # "<what>: <why>", the body's "error"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="airisk"'} if self.status == 401 else {}


def _host_name(value: str) -> str | None:
    """The host part of a Host header or an Origin's netloc, lowercased; None if unparsable."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not (value[end + 1] == ":" and value[end + 2:].isdigit())):
            return None
        return value[1:end]
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    elif ":" in value:
        return None
    return value.rstrip(".") or None


@dataclass(frozen=True, slots=True)
class ControlGuard:
    """What a control request must show. The default: loopback callers only, no token."""

    names: frozenset[str] = frozenset()  # other host names taken (the bound address)
    token: str | None = None  # required of every request when set
    any_host: bool = False  # bound to a wildcard address with a token: any Host

    @classmethod
    def for_server(cls, host: str, *, allow_external: bool, environ: Mapping[str, str] | None = None
                   ) -> ControlGuard:
        """The guard for a server bound to ``host``; `ControlGuardError` (one line) if it cannot be safe."""
        environ = os.environ if environ is None else environ
        if not allow_external:
            return cls()
        token = environ.get(TOKEN_ENV) or None
        if token is None:
            raise ControlGuardError(f"--allow-external: set {TOKEN_ENV} to a secret first; every control "
                                    "request must then send it as 'Authorization: Bearer <token>'")
        bound = host.strip().lower()
        if bound in _WILDCARD:
            return cls(token=token, any_host=True)
        name = _host_name(bound) or bound
        return cls(names=frozenset({name}), token=token)

    def host_allowed(self, name: str | None) -> bool:
        return name is not None and (self.any_host or is_loopback_name(name) or name in self.names)

    def check(self, *, host: str | None, origin: str | None, content_type: str | None,
              authorization: str | None, has_body: bool) -> Refusal | None:
        """None if the request may go on, else why not (403 host/origin, 401 token, 415 body type)."""
        if host is None:
            return Refusal(403, "Host: required (the control API answers only requests naming this machine)")
        if not self.host_allowed(_host_name(host)):
            return Refusal(403, f"Host: {host[:100]!r} is not this machine; the control API answers only "
                                "requests to 127.0.0.1, localhost or [::1] (a page on another site cannot use it)")
        if origin is not None:
            parts = urlsplit(origin.strip()) if origin.strip() != "null" else None
            name = _host_name(parts.netloc) if parts is not None and parts.scheme in ("http", "https") else None
            if not self.host_allowed(name):
                return Refusal(403, f"Origin: {origin[:100]!r} is another site; the control API takes no "
                                    "requests from web pages")
        if self.token is not None:
            scheme, _, given = (authorization or "").strip().partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
                return Refusal(401, f"Authorization: this control API needs 'Authorization: Bearer <token>' "
                                    f"with the token in {TOKEN_ENV}")
        if has_body:
            media = (content_type or "").partition(";")[0].strip().lower()
            if media != "application/json":
                return Refusal(415, f"Content-Type: must be application/json, got {(content_type or 'none')[:100]!r} "
                                    "(curl: -H 'content-type: application/json')")
        return None


LOOPBACK = ControlGuard()

__all__ = ["LOOPBACK", "MAX_BODY", "TOKEN_ENV", "ControlGuard", "ControlGuardError", "Refusal", "is_loopback_name"]
