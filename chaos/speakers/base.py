"""What every speaker (the server side of one wire protocol) shares.

A speaker renders, in one provider's own format, what the emulator, the fault proxy and
`chaos.transport` send: stream events, a non-streamed body, model listings, and each error of
the fault catalogue. It reads only what it needs from a request (`Ask`).

A speaker also declares where its protocol lives, so that nothing else keeps a table per
protocol: the paths the emulator serves and how its listing pages (`chaos.speakers.serving`),
the version segment its provider's SDK appends to a base URL (``sdk_suffix``), and how it reads
a request (``ask_of``). Adding a protocol is then its dialect module, its speaker module and the
two registries.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from chaos.speakers.serving import ONE_PAGE, EmulatorRoute, Listed, Paging

Rendered = tuple[int, dict[str, str], bytes]  # status, headers, body


@dataclass(slots=True)
class Ask:
    """The parts of a generation request the emulator acts on."""

    model: str
    prompt: str
    max_tokens: int = 64
    stream: bool = False
    include_usage: bool = False
    completions: bool = False  # OpenAI legacy /v1/completions
    # 24 hex digits, as before from a uuid4, at a tenth of the cost (read on the proxy's hot path)
    id: str = field(default_factory=lambda: f"{random.getrandbits(96):024x}")
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def input_tokens(self) -> int:
        return max(1, len(self.prompt.split()))


# The airisk-only field in which the emulator states a retirement date, for providers whose own
# listing has no such field (`probes.dialects.base.RETIRES_FIELD`, which reads it).
RETIRES_FIELD = "x_airisk_retires"


def retiring(entry: Listed) -> dict[str, str]:
    """The extension field for ``entry``, or nothing when it has no date."""
    return {RETIRES_FIELD: entry.retires} if entry.retires else {}


@dataclass(frozen=True, slots=True)
class Stated:
    """An error as a provider states it: the status, the message (``{model}`` and ``{message}`` filled in by
    `fill`), and the provider's own type and code where its bodies carry them."""

    status: int
    message: str
    type: str | None = None
    code: str | None = None


class Speaker(Protocol):
    """What callers of a speaker may rely on (`SPEAKERS` holds one per dialect)."""

    name: str
    content_type: str
    routes: tuple[EmulatorRoute, ...]  # what the emulator serves for it; `routes_for` picks a provider's
    paging: Paging  # how its listing pages (`ONE_PAGE`: all at once)
    sdk_suffix: str  # what its provider's SDK appends to the base URL it is given ("" for none)
    unsupported: frozenset[str]  # stream fault types it cannot render (its provider has no such thing)

    def error(self, kind: str, *, status: int | None = None, retry_after: float | None = None,
              ask: Ask | None = None, detail: str = "") -> Rendered:
        """The error ``kind`` (a fault type's name, ``bad_request`` or ``server_error``) as an HTTP answer;
        ``status`` for a server error, ``retry_after`` for a rate limit, ``detail`` for a bad request."""
        ...

    def status_error(self, status: int, message: str, ask: Ask | None = None) -> Rendered:
        """An error of a status and message that no fault kind names (the fault proxy's own), in this format."""
        ...

    def ask_of(self, body: dict[str, Any], path: str, query: Mapping[str, str]) -> Ask:
        """The generation request (a JSON object, sent to ``path`` with ``query``) as its API reads it;
        `chaos.speakers.reading.BadRequest`, in the provider's words, for what the API refuses."""
        ...

    def open(self, ask: Ask) -> bytes: ...
    def token(self, ask: Ask, text: str, index: int) -> bytes: ...
    def close(self, ask: Ask, finish: str, output_tokens: int) -> bytes: ...
    def terminator(self, ask: Ask, finish: str, output_tokens: int) -> bytes: ...
    def stream_error(self, ask: Ask, kind: str) -> bytes:
        """The error ``kind`` as it arrives inside a 200 stream."""
        ...

    def malformed(self, ask: Ask) -> bytes: ...
    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]: ...
    def models(self, entries: list[Listed], next_page: str | None = None, *,
               variant: str | None = None) -> dict[str, Any]:
        """A listing page; ``variant`` is the route's (`EmulatorRoute.variant`), for a provider whose listing
        differs (Azure OpenAI's "Models - List")."""
        ...

    def refusal_voice(self, ask: Ask) -> Speaker | None:
        """The speaker that renders ``ask``'s answer in the provider's own refusal field (the ``refusal``
        fault's answer), or None where the protocol has no such field: the decline is then plain text."""
        ...


class Speaking:
    """The parts of a speaker that are the same skeleton for every protocol: the defaults of the declared
    attributes, and `error` / `stream_error`, which look the kind up in ``errors`` (any other kind is a
    server error of its status) and leave the provider's headers, body and stream framing to the speaker."""

    paging: Paging = ONE_PAGE
    sdk_suffix: str = ""
    unsupported: frozenset[str] = frozenset()
    errors: Mapping[str, Stated]
    # Around an error body sent inside a 200 stream: the stream's own framing of one event.
    stream_error_frame: tuple[bytes, bytes] = (b"data: ", b"\n\n")

    def error(self, kind: str, *, status: int | None = None, retry_after: float | None = None,
              ask: Ask | None = None, detail: str = "") -> Rendered:
        stated = self.errors[kind] if kind in self.errors else self.server_error(status or 500)
        stated = replace(stated, message=fill(stated.message, ask, detail))
        wait = retry_after if retry_after is not None else 5
        headers = {**JSON, **self.error_headers(kind, stated, ask, wait)}
        return stated.status, headers, self.error_body(kind, stated, ask, wait)

    def status_error(self, status: int, message: str, ask: Ask | None = None) -> Rendered:
        """An error that is no fault of the catalogue (the fault proxy's own 502, 504, 413 or 400): ``status``
        and ``message`` as given, in this protocol's form of a server error (5xx) or a refused request."""
        kind = "server_error" if status >= 500 else "bad_request"
        shape = self.server_error(status) if status >= 500 else self.errors["bad_request"]
        stated = replace(shape, status=status, message=message)
        return status, {**JSON, **self.error_headers(kind, stated, ask, 5)}, self.error_body(kind, stated, ask, 5)

    def refusal_voice(self, ask: Ask) -> Speaker | None:
        return None

    def server_error(self, status: int) -> Stated:
        """A 5xx (or any status) that is not a named kind; the message must not claim overload."""
        return Stated(status, SERVER_ERROR_TEXT.format(status=status))

    def error_headers(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> dict[str, str]:
        """Headers beyond the content type; by default the rate limit's ``retry-after`` (seconds)."""
        return {"retry-after": f"{wait:g}"} if kind == "rate_limited" else {}

    def error_body(self, kind: str, stated: Stated, ask: Ask | None, wait: float) -> bytes:
        raise NotImplementedError

    def stream_error(self, ask: Ask, kind: str) -> bytes:
        _, _, body = self.error(kind, ask=ask)
        head, tail = self.stream_error_frame
        return head + body + tail


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + dumps(data) + b"\n\n"


JSON = {"content-type": "application/json"}
# 5xx fault statuses that are not "overloaded"; the message must not claim overload.
SERVER_ERROR_TEXT = "The server had an error while processing your request (emulated HTTP {status})."


def fill(template: str, ask: Ask | None, detail: str) -> str:
    return template.format(model=ask.model if ask else "", message=detail)
