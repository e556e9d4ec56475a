"""What every speaker (the server side of one wire protocol) shares.

A speaker renders, in one provider's own format, what the emulator (and later the
fault proxy) sends: stream events, a non-streamed body, model listings, and each
error of the fault catalogue. It reads only what it needs from a request (`Ask`).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True, slots=True)
class Listed:
    """One model in an emulated listing, with the day it retires (``YYYY-MM-DD``) if it has one."""

    name: str
    retires: str | None = None


# The airisk-only field in which the emulator states a retirement date, for providers whose own
# listing has no such field (`probes.dialects.base.RETIRES_FIELD`, which reads it).
RETIRES_FIELD = "x_airisk_retires"


def retiring(entry: Listed) -> dict[str, str]:
    """The extension field for ``entry``, or nothing when it has no date."""
    return {RETIRES_FIELD: entry.retires} if entry.retires else {}


class Speaker(Protocol):
    name: str
    content_type: str

    def error(self, kind: str, *, status: int | None, retry_after: float | None, ask: Ask | None) -> Rendered: ...
    def open(self, ask: Ask) -> bytes: ...
    def token(self, ask: Ask, text: str, index: int) -> bytes: ...
    def close(self, ask: Ask, finish: str, output_tokens: int) -> bytes: ...
    def terminator(self, ask: Ask, finish: str, output_tokens: int) -> bytes: ...
    def stream_error(self, ask: Ask, kind: str) -> bytes: ...
    def malformed(self, ask: Ask) -> bytes: ...
    def complete(self, ask: Ask, text: str, finish: str, output_tokens: int) -> dict[str, Any]: ...
    def models(self, entries: list[Listed], next_page: str | None = None) -> dict[str, Any]: ...


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
